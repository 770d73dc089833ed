"""Pure: what an organiser has done and still has to do before each lifecycle step. No I/O.

The organiser dashboard shows this as a GOV.UK task list, and a refused step (open,
close, publish) shows the same list instead of a dead end. The confirmation pages for
closing and publishing say, in words, what the step changes and how early it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from app.dates import relative_to
from app.lifecycle import Readiness, transition_refusal

DONE = "Completed"
TO_DO = "Incomplete"
NOT_YET = "Cannot start yet"


@dataclass(frozen=True)
class Facts:
    """What the task list needs to know about one consultation (read by the store)."""

    slug: str
    status: str
    readiness: Readiness
    now: datetime
    amendments: int = 0
    undecided: int = 0
    unresolved: tuple[str, ...] = ()
    queue_size: int = 0


@dataclass(frozen=True)
class Task:
    """One row of the task list: what, where it is done, and its state."""

    title: str
    href: str | None
    status: str
    hint: str = ""

    @property
    def done(self) -> bool:
        return self.status == DONE


@dataclass(frozen=True)
class Stage:
    """The tasks before one lifecycle step, under a heading."""

    heading: str
    action: str
    tasks: list[Task] = field(default_factory=list)

    @property
    def remaining(self) -> list[Task]:
        return [t for t in self.tasks if not t.done]


def _status(done: bool, reachable: bool = True) -> str:
    if done:
        return DONE
    return TO_DO if reachable else NOT_YET


def stages(facts: Facts) -> list[Stage]:
    """Three stages (open, close, publish), each with its tasks, for this consultation."""
    base = f"/organise/{facts.slug}"
    r = facts.readiness
    draft = facts.status == "draft"
    after_open = facts.status in ("open", "closed", "published")
    closed_or_later = facts.status in ("closed", "published")
    published = facts.status == "published"
    details = f"{base}#details"
    dates_ok = r.voting_close_at is not None and (after_open or (r.voting_close_at > facts.now))
    dates_ok = dates_ok and (
        r.amendments_close_at is None
        or r.voting_close_at is None
        or r.amendments_close_at <= r.voting_close_at
    )
    dates_hint = "" if dates_ok else "Set when voting closes, in the future."
    opening = Stage(
        "Before opening",
        "open",
        [
            Task(
                "Add clauses",
                f"{base}#clauses",
                _status(r.clause_count > 0 or after_open),
                "" if r.clause_count else "Create the consultation from a document with clauses.",
            ),
            Task(
                "Say who may take part (eligible domains)",
                details if draft else None,
                _status(bool(r.eligible_domains) or after_open),
            ),
            Task(
                "Set the closing dates",
                details if facts.status in ("draft", "open") else None,
                _status(dates_ok or after_open),
                "" if after_open else dates_hint,
            ),
            Task(
                "Open the consultation",
                f"{base}#next-step" if draft else None,
                _status(after_open, draft and _ready_to_open(facts)),
            ),
        ],
    )
    closing = Stage(
        "While it is open",
        "close",
        [
            Task(
                "Review the moderation queue",
                f"{base}/moderation",
                _status(facts.queue_size == 0 and after_open, after_open),
                f"{facts.queue_size} waiting" if facts.queue_size else "",
            ),
            Task(
                "Close the consultation",
                f"{base}/close" if facts.status == "open" else None,
                _status(closed_or_later, facts.status == "open"),
            ),
        ],
    )
    unresolved = ", ".join(facts.unresolved)
    decided = closed_or_later and facts.undecided == 0
    can_publish = facts.status == "closed" and decided and not facts.unresolved
    publishing = Stage(
        "Before publishing the outcome",
        "publish",
        [
            Task(
                "Accept or reject each amendment",
                f"{base}/decisions" if closed_or_later else None,
                _status(closed_or_later and facts.undecided == 0, closed_or_later),
                f"{facts.undecided} of {facts.amendments} still to decide"
                if closed_or_later and facts.undecided
                else "",
            ),
            Task(
                "Resolve clauses where accepted amendments conflict",
                f"{base}/decisions" if closed_or_later else None,
                # Conflicts show up as amendments are accepted: done once all are decided.
                _status(decided and not facts.unresolved, closed_or_later),
                f"Clause {unresolved}" if facts.unresolved else "",
            ),
            Task(
                "Publish the outcome",
                f"{base}/publish" if can_publish else None,
                _status(published, can_publish),
            ),
        ],
    )
    return [opening, closing, publishing]


def _ready_to_open(facts: Facts) -> bool:
    return transition_refusal("open", facts.status, facts.readiness, facts.now) is None


def blockers(facts: Facts, action: str) -> list[Task]:
    """The tasks still to do before ``action`` (excluding the step itself)."""
    for stage in stages(facts):
        if stage.action == action:
            return stage.remaining[:-1] if stage.remaining else []
    return []


@dataclass(frozen=True)
class Confirmation:
    """The words of a confirmation page: the question and what will happen."""

    question: str
    consequences: list[str]
    button: str


def close_confirmation(title: str, voting_close_at: datetime | None, now: datetime) -> Confirmation:
    """ "Are you sure you want to close <title> now, 4 weeks before the advertised date?"."""
    if voting_close_at is None:
        when = "now? No closing date was advertised."
    else:
        if voting_close_at.tzinfo is None:
            voting_close_at = voting_close_at.replace(tzinfo=UTC)
        relation = relative_to(now, voting_close_at)
        when = (
            "now, at the advertised closing time?"
            if relation == "at"
            else f"now, {relation} the advertised closing time?"
        )
    return Confirmation(
        question=f"Are you sure you want to close {title} {when}",
        consequences=[
            "People will no longer be able to propose amendments, vote, or change or "
            "withdraw their votes.",
            "The votes are frozen as they stand now, and the ballot file and its SHA-256 "
            "are fixed: nothing later changes what counts.",
            "You will then accept or reject each amendment before publishing the outcome.",
        ],
        button="Yes, close it now",
    )


def publish_confirmation(title: str, amendments: int, accepted: int) -> Confirmation:
    """What publishing makes public, for the confirmation page."""
    return Confirmation(
        question=f"Are you sure you want to publish the outcome of {title}?",
        consequences=[
            "Anyone, signed in or not, will be able to read the report: the outcome of "
            "each clause, all amendments ranked with their votes, and the consolidated text.",
            f"Your decisions on all {amendments} amendments ({accepted} accepted) and the "
            "reasons you gave will be public.",
            "The ballot file (one row per vote, voters as pseudonyms) will be downloadable, "
            "so anyone can check the ranking with redline tally.",
            "Decisions and final wording can no longer change once the outcome is published.",
        ],
        button="Yes, publish the outcome",
    )
