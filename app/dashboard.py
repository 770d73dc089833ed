"""Reads behind the organiser dashboard: task list facts and participation figures.

Every figure comes from counts kept with every vote (``voter``, ``vote_tally``) or
from the amendment rows, never from a scan of the vote table, so the dashboard costs
the same with ten votes or a million.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, func, select

from app.eligibility import parse_domain_patterns
from app.lifecycle import Readiness
from app.models import AMENDMENT_STATUSES, Amendment, Clause, Consultation, VoteTally, utcnow
from app.queries import moderation_queue_size
from app.reporting import TurnoutRow, frozen_report, turnout
from app.tasklist import Facts


@dataclass(frozen=True)
class Participation:
    """Who took part and how, overall and by organisation (small numbers suppressed)."""

    # As app.disclosure lets them be shown: "at least N" and None (withheld) when an
    # exact total would reveal a count below 5 from one organisation.
    participants: int | str
    proposers: int | None
    voters: int | None
    amendments_by_status: dict[str, int]
    votes_by_status: dict[str, tuple[int, int]]
    by_organisation: list[TurnoutRow]

    @property
    def amendments(self) -> int:
        """Amendments ever proposed, withdrawn and hidden ones included."""
        return sum(self.amendments_by_status.values())

    @property
    def votes(self) -> int:
        """Current votes (supports and opposes) on all amendments."""
        return sum(s + o for s, o in self.votes_by_status.values())


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; Redline stores UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def readiness(session: Session, consultation: Consultation) -> Readiness:
    """What opening needs to know, as organising.change_status checks it."""
    clause_count = session.exec(
        select(func.count()).select_from(Clause).where(Clause.consultation_id == consultation.id)
    ).one()
    return Readiness(
        clause_count=clause_count,
        eligible_domains=tuple(parse_domain_patterns(consultation.eligible_domains)),
        amendments_close_at=_aware(consultation.amendments_close_at),
        voting_close_at=_aware(consultation.voting_close_at),
    )


def amendments_by_status(session: Session, consultation_id: int) -> dict[str, int]:
    """How many amendments are in each state (every state listed, zeros included)."""
    rows = session.exec(
        select(Amendment.status, func.count())
        .where(Amendment.consultation_id == consultation_id)
        .group_by(Amendment.status)
    ).all()
    counts = dict.fromkeys(AMENDMENT_STATUSES, 0)
    counts.update({status: int(n) for status, n in rows})
    return counts


def task_facts(session: Session, consultation: Consultation, now: datetime | None = None) -> Facts:
    """The facts the task list is drawn from."""
    by_status = amendments_by_status(session, consultation.id)
    unresolved: tuple[str, ...] = ()
    if consultation.status == "closed":
        # The frozen report is kept per change (reporting.frozen_report): cheap to ask again.
        report = frozen_report(session, consultation)
        unresolved = tuple(r.clause.number for r in report.outcome.unresolved)
    return Facts(
        slug=consultation.slug,
        status=consultation.status,
        readiness=readiness(session, consultation),
        now=now or utcnow(),
        amendments=by_status["open"] + by_status["accepted"] + by_status["rejected"],
        undecided=by_status["open"] if consultation.status in ("closed", "published") else 0,
        unresolved=unresolved,
        queue_size=moderation_queue_size(session, consultation.id),
    )


def participation(session: Session, consultation: Consultation) -> Participation:
    """Participants, proposers, voters, amendments and votes by status, and by organisation.

    Turnout is the report's own (app.reporting.turnout), read from the kept ``voter``
    rows: after closing these no longer change, so they equal the frozen ballots.
    Votes are summed from ``vote_tally``.
    """
    totals, by_organisation = turnout(session, consultation.id, frozen=False)
    rows = session.exec(
        select(Amendment.status, func.sum(VoteTally.supports), func.sum(VoteTally.opposes))
        .join(Amendment, Amendment.id == VoteTally.amendment_id)
        .where(Amendment.consultation_id == consultation.id)
        .group_by(Amendment.status)
    ).all()
    votes = {status: (int(s or 0), int(o or 0)) for status, s, o in rows}
    return Participation(
        participants=totals["participants"],
        proposers=totals["proposers"],
        voters=totals["voters"],
        amendments_by_status=amendments_by_status(session, consultation.id),
        votes_by_status=votes,
        by_organisation=by_organisation,
    )
