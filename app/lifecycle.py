"""Pure rules of a consultation's lifecycle: draft -> open -> closed -> published. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

TRANSITIONS = {"open": "draft", "close": "open", "publish": "closed"}
RESULT = {"open": "open", "close": "closed", "publish": "published"}
LABELS = {"open": "Open", "close": "Close", "publish": "Publish"}


@dataclass(frozen=True)
class Readiness:
    """What opening needs to know about a draft."""

    clause_count: int
    eligible_domains: tuple[str, ...]
    amendments_close_at: datetime | None
    voting_close_at: datetime | None


def transition_refusal(
    action: str, status: str, readiness: Readiness | None = None, now: datetime | None = None
) -> str | None:
    """Why ``action`` cannot be taken on a consultation in ``status``, or None when it can."""
    if action not in TRANSITIONS:
        return f"{action!r} is not a lifecycle action."
    if status != TRANSITIONS[action]:
        allowed = [a for a, s in TRANSITIONS.items() if s == status]
        nxt = f"; it can only be {RESULT[allowed[0]]} next" if allowed else ""
        return (
            f"A consultation that is {status} cannot be {RESULT[action]}{nxt}. "
            "Consultations go from draft to open to closed to published."
        )
    if action == "open" and readiness is not None:
        if readiness.clause_count == 0:
            return "Add at least one clause before opening the consultation."
        if not readiness.eligible_domains:
            return (
                "Say whose work e-mail addresses may take part (eligible domains) before opening."
            )
        if readiness.voting_close_at is None:
            return "Set when voting closes before opening the consultation."
        if now is not None and readiness.voting_close_at <= now:
            return "The voting closing time has already passed; set a later one."
        if (
            readiness.amendments_close_at is not None
            and readiness.amendments_close_at > readiness.voting_close_at
        ):
            return "The amendment window must close before (or when) voting closes."
    return None


def available_actions(status: str) -> list[str]:
    """The lifecycle actions an organiser may take next."""
    return [action for action, before in TRANSITIONS.items() if before == status]


def results_visible(status: str, live_results: bool) -> bool:
    """Whether participants see counts and results: live if the organisers chose so, else
    once the outcome is published (DESIGN.md, "Fair exposure")."""
    return live_results or status == "published"
