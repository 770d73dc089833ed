"""The ranked amendment report of one consultation, read from the database.

The ranking itself is app.ranking's; this module gathers what the report shows
around it (decisions, turnout, the consolidated text) and streams the ballots.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, distinct, exists, func
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app import ballots
from app.consolidation import Change, ClauseText, ConsolidatedClause, consolidate, suppress_small
from app.models import Amendment, Clause, ClauseVersion, Consultation, Organisation, User, Vote
from app.queries import (
    LISTED_STATUSES,
    AuthorLabel,
    amendment_ref,
    clause_rows,
    consultation_tally,
    organisation_recoding,
)
from app.ranking import ClauseOutcome, RankedAmendment, clause_outcomes, rank


@dataclass(frozen=True)
class ReportRow:
    """One ranked amendment with everything the report and its exports show."""

    ranked: RankedAmendment
    # The amendment's columns (id, author_id, kind, proposed_heading, proposed_text,
    # rationale, status, status_reason), read as attributes.
    amendment: Any
    author: AuthorLabel
    clause_heading: str
    target_version: int
    current_version: int
    leading: bool
    too_close_to_call: bool

    @property
    def outdated(self) -> bool:
        return self.target_version != self.current_version

    @property
    def decision(self) -> str | None:
        return self.amendment.status if self.amendment.status in ("accepted", "rejected") else None


@dataclass(frozen=True)
class TurnoutRow:
    organisation: str
    participants: int | str
    proposers: int | str
    voters: int | str


@dataclass
class Report:
    consultation: Consultation
    rows: list[ReportRow]
    outcomes: dict[str, ClauseOutcome]
    headings: dict[str, str]
    turnout: dict[str, int]
    turnout_by_organisation: list[TurnoutRow]
    consolidated: list[ConsolidatedClause] = field(default_factory=list)
    uses_decisions: bool = False


def build_report(session: Session, consultation: Consultation) -> Report:
    """Rank, then gather decisions, turnout and the consolidated text."""
    tally = consultation_tally(session, consultation.id)
    ranked = rank(tally.tallies, tally.groups)
    totals, by_organisation = turnout(session, consultation.id, tally.voters_by_organisation)
    outcomes = clause_outcomes(ranked, tally.clause_refs)
    clauses = clause_rows(session, consultation.id)
    headings = {row.clause.number: row.version.heading for row in clauses}
    current = {row.clause.number: row.version.version for row in clauses}
    # Plain rows with the columns the report reads (attribute access like the model),
    # not ORM objects: a report may hold tens of thousands of amendments.
    amendments = {
        amendment_ref(a.id): (a, a.version)
        for a in session.connection().execute(
            select(
                Amendment.id,
                Amendment.author_id,
                Amendment.kind,
                Amendment.proposed_heading,
                Amendment.proposed_text,
                Amendment.rationale,
                Amendment.status,
                Amendment.status_reason,
                ClauseVersion.version,
                User.display_name,
                User.pseudonym,
                User.show_organisation,
                Organisation.name.label("organisation"),
            )
            .join(ClauseVersion, col(ClauseVersion.id) == Amendment.clause_version_id)
            .join(User, col(User.id) == Amendment.author_id)
            .outerjoin(Organisation, col(Organisation.id) == User.organisation_id)
            .where(Amendment.consultation_id == consultation.id)
            .where(col(Amendment.status).in_(LISTED_STATUSES))
        )
    }
    leading = {o.leading.ref for o in outcomes.values() if o.leading}
    close = {o.leading.ref for o in outcomes.values() if o.leading and o.too_close_to_call}
    rows = []
    for r in ranked:
        amendment, version = amendments[r.ref]
        rows.append(
            ReportRow(
                ranked=r,
                amendment=amendment,
                author=AuthorLabel(
                    name=amendment.display_name or amendment.pseudonym,
                    organisation=amendment.organisation if amendment.show_organisation else None,
                ),
                clause_heading=headings.get(r.clause_ref, ""),
                target_version=version,
                current_version=current.get(r.clause_ref, version),
                leading=r.ref in leading,
                too_close_to_call=r.ref in close,
            )
        )
    report = Report(
        consultation=consultation,
        rows=rows,
        outcomes=outcomes,
        headings=headings,
        turnout=totals,
        turnout_by_organisation=by_organisation,
    )
    report.uses_decisions = any(row.decision for row in rows)
    report.consolidated = consolidated_text(clauses, rows, report.uses_decisions)
    return report


def consolidated_text(
    clauses, rows: list[ReportRow], uses_decisions: bool
) -> list[ConsolidatedClause]:
    """Accepted amendments once decided; until then, each clause's leading amendment."""
    chosen = [
        row for row in rows if (row.decision == "accepted" if uses_decisions else row.leading)
    ]
    changes: dict[str, Change] = {}
    insertions: dict[str, list[Change]] = {}
    for row in chosen:
        a = row.amendment
        change = Change(row.ranked.ref, a.kind, a.proposed_heading, a.proposed_text)
        if a.kind == "insert":
            insertions.setdefault(row.ranked.clause_ref, []).append(change)
        elif row.ranked.clause_ref not in changes:
            # Rows are in rank order: if several are accepted on one clause, the best one applies.
            changes[row.ranked.clause_ref] = change
    texts = [ClauseText(c.clause.number, c.version.heading, c.version.text) for c in clauses]
    return consolidate(texts, changes, insertions)


def _proposers_by_organisation(session: Session, consultation_id: int, only_non_voters: bool):
    """Distinct proposers per organisation; optionally only those who cast no vote here.

    Proposers are few (one per amendment at most), so this stays cheap however many votes
    there are; the voters per organisation come from the ranking's own aggregation.
    """
    query = (
        select(Organisation.name, func.count(distinct(Amendment.author_id)))
        .join(User, col(User.id) == Amendment.author_id)
        .outerjoin(Organisation, col(Organisation.id) == User.organisation_id)
        .where(Amendment.consultation_id == consultation_id, Amendment.status != "withdrawn")
        .group_by(Organisation.name)
    )
    if only_non_voters:
        voted_on = aliased(Amendment)
        voted = (
            select(Vote.id)
            .join(voted_on, col(voted_on.id) == Vote.amendment_id)
            .where(Vote.user_id == Amendment.author_id)
            .where(voted_on.consultation_id == consultation_id)
            .where(col(voted_on.status).in_(LISTED_STATUSES))
        )
        query = query.where(~exists(voted))
    counts: dict[str, int] = defaultdict(int)
    for name, count in session.exec(query):
        counts[name or "No organisation"] += count
    return counts


def turnout(
    session: Session, consultation_id: int, voters: dict[str, int]
) -> tuple[dict[str, int], list[TurnoutRow]]:
    """Participants, proposers and voters, overall and per organisation ("fewer than 5" below 5)."""
    proposers = _proposers_by_organisation(session, consultation_id, only_non_voters=False)
    proposers_only = _proposers_by_organisation(session, consultation_id, only_non_voters=True)
    voters = {("No organisation" if name == "other" else name): n for name, n in voters.items()}
    names = set(voters) | set(proposers)
    participants = {name: voters.get(name, 0) + proposers_only.get(name, 0) for name in names}
    totals = {
        "participants": sum(participants.values()),
        "proposers": sum(proposers.values()),
        "voters": sum(voters.values()),
    }
    rows = [
        TurnoutRow(
            organisation=name,
            participants=suppress_small(participants[name]),
            proposers=suppress_small(proposers.get(name, 0)),
            voters=suppress_small(voters.get(name, 0)),
        )
        for name in sorted(names, key=lambda n: (-participants[n], n))
    ]
    return totals, rows


def ballot_rows(
    session: Session, consultation: Consultation
) -> Iterator[tuple[str, str, str, str, str]]:
    """Every vote on a listed amendment, streamed from the database in a stable order."""
    recode, _ = organisation_recoding(session, consultation.id)
    query = (
        select(Vote.amendment_id, Clause.number, Vote.user_id, Organisation.name, Vote.stance)
        .join(Amendment, col(Amendment.id) == Vote.amendment_id)
        .join(Clause, col(Clause.id) == Amendment.clause_id)
        .join(User, col(User.id) == Vote.user_id)
        .outerjoin(Organisation, col(Organisation.id) == User.organisation_id)
        .where(Amendment.consultation_id == consultation.id)
        .where(col(Amendment.status).in_(LISTED_STATUSES))
        .order_by(Vote.amendment_id, Vote.user_id)
        .execution_options(yield_per=5000)
    )
    key = consultation.ballot_key
    for amendment_id, clause_number, user_id, organisation, stance in session.exec(query):
        yield (
            amendment_ref(amendment_id),
            clause_number,
            ballots.voter_pseudonym(key, user_id),
            recode.get(organisation or "other", "other"),
            stance,
        )
    unvoted = (
        select(Amendment.id, Clause.number)
        .join(Clause, col(Clause.id) == Amendment.clause_id)
        .outerjoin(Vote, and_(col(Vote.amendment_id) == Amendment.id))
        .where(Amendment.consultation_id == consultation.id)
        .where(col(Amendment.status).in_(LISTED_STATUSES))
        .where(col(Vote.id).is_(None))
        .order_by(Amendment.id)
    )
    for amendment_id, clause_number in session.exec(unvoted):
        yield (amendment_ref(amendment_id), clause_number, "", "", "")


def ballot_file_sha256(session: Session, consultation: Consultation) -> str:
    """SHA-256 of the ballot file exactly as `redline export --format ballots` writes it."""
    return ballots.sha256_of(ballots.csv_lines(ballot_rows(session, consultation)))
