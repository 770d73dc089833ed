"""The counts the ranking reads: live from the votes while open, frozen at closing after.

Closing writes the ballots as they stand into the append-only ``ballot`` table
(organisation as recoded at that moment) in the same transaction that changes
the consultation's status; the report, every export, the ballot file and its
SHA-256 come from those rows, so nothing after closing changes what counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from sqlalchemy import and_, case, exists, func, insert, literal, null, union_all
from sqlmodel import Session, col, select

from app import ballots
from app.db import Database
from app.models import (
    LISTED_STATUSES,
    Amendment,
    Ballot,
    Clause,
    Consultation,
    Organisation,
    User,
    Vote,
)
from app.ranking import OTHER, AmendmentTally, Counts, Rules, recode_small_organisations

CHUNK_LINES = 5000


def rules_of(consultation: Consultation) -> Rules:
    """The evidence thresholds this consultation is ranked with."""
    return Rules(min_votes=consultation.min_votes, min_organisations=consultation.min_organisations)


def amendment_ref(amendment_id: int) -> str:
    """The public reference of an amendment, as reports and ballot files print it."""
    return f"A{amendment_id}"


def _kind():
    return case(
        (Amendment.kind == "insert", literal("insert")),
        (Amendment.proposed_text == "", literal("delete")),
        else_=literal("change"),
    )


def voters_by_organisation(session: Session, consultation_id: int) -> dict[str, int]:
    """Distinct voters on listed amendments per organisation name (counted in SQL)."""
    voting_users = (
        select(Vote.user_id)
        .join(Amendment, col(Amendment.id) == Vote.amendment_id)
        .where(Amendment.consultation_id == consultation_id)
        .where(col(Amendment.status).in_(LISTED_STATUSES))
        .distinct()
        .subquery()
    )
    rows = session.exec(
        select(Organisation.name, func.count())
        .select_from(voting_users)
        .join(User, col(User.id) == voting_users.c.user_id)
        .outerjoin(Organisation, col(Organisation.id) == User.organisation_id)
        .group_by(Organisation.name)
    ).all()
    # Voters without an organisation (none once signed in with a verified e-mail) are "other".
    counts: dict[str, int] = defaultdict(int)
    for name, count in rows:
        counts[name or OTHER] += count
    return dict(counts)


def _group_expression(session: Session, consultation_id: int):
    """SQL for a voter's group: their organisation, or "other" below 5 voters."""
    recode = recode_small_organisations(voters_by_organisation(session, consultation_id))
    kept = sorted({group for group in recode.values() if group != OTHER})
    if not kept:
        return literal(OTHER)
    return case((col(Organisation.name).in_(kept), Organisation.name), else_=literal(OTHER))


def live_tallies(
    session: Session, consultation_id: int, clause_id: int | None = None
) -> list[AmendmentTally]:
    """Counts per listed amendment and recoded organisation, from the votes as they stand.

    With ``clause_id``, only that clause's amendments (the recoding stays consultation-wide).
    """
    listed = and_(
        Amendment.consultation_id == consultation_id,
        col(Amendment.status).in_(LISTED_STATUSES),
    )
    if clause_id is not None:
        listed = and_(listed, Amendment.clause_id == clause_id)
    group = _group_expression(session, consultation_id)
    supports = func.sum(case((Vote.stance == "support", 1), else_=0))
    opposes = func.sum(case((Vote.stance == "oppose", 1), else_=0))
    rows = session.exec(
        select(Vote.amendment_id, group.label("grp"), supports, opposes)
        .join(Amendment, col(Amendment.id) == Vote.amendment_id)
        .join(User, col(User.id) == Vote.user_id)
        .outerjoin(Organisation, col(Organisation.id) == User.organisation_id)
        .where(listed)
        .group_by(Vote.amendment_id, group)
    )
    by_amendment: dict[int, dict[str, Counts]] = defaultdict(dict)
    for amendment_id, grp, s, o in rows:
        by_amendment[amendment_id][grp] = Counts(int(s), int(o))
    listed = session.exec(
        select(Amendment.id, Clause.number, _kind())
        .join(Clause, col(Clause.id) == Amendment.clause_id)
        .where(listed)
    )
    return [
        AmendmentTally(amendment_ref(aid), number, by_amendment.get(aid, {}), kind)
        for aid, number, kind in listed
    ]


def frozen_tallies(session: Session, consultation_id: int) -> list[AmendmentTally]:
    """Counts per amendment and group from the ballots frozen at closing."""
    supports = func.sum(case((Ballot.stance == "support", 1), else_=0))
    opposes = func.sum(case((Ballot.stance == "oppose", 1), else_=0))
    rows = session.exec(
        select(
            Ballot.amendment_id,
            Ballot.clause_number,
            Ballot.kind,
            Ballot.organisation,
            supports,
            opposes,
        )
        .where(Ballot.consultation_id == consultation_id)
        .group_by(Ballot.amendment_id, Ballot.clause_number, Ballot.kind, Ballot.organisation)
    )
    by_amendment: dict[int, tuple[str, str, dict[str, Counts]]] = {}
    for amendment_id, clause, kind, organisation, s, o in rows:
        entry = by_amendment.setdefault(amendment_id, (clause, kind, {}))
        if organisation:
            entry[2][organisation] = Counts(int(s), int(o))
    return [
        AmendmentTally(amendment_ref(aid), clause, by_group, kind)
        for aid, (clause, kind, by_group) in by_amendment.items()
    ]


def tallies(session: Session, consultation: Consultation) -> list[AmendmentTally]:
    """Frozen counts once closed, live counts before: what this consultation is ranked on."""
    if consultation.status in ("closed", "published"):
        return frozen_tallies(session, consultation.id)
    return live_tallies(session, consultation.id)


def freeze_ballots(session: Session, consultation: Consultation) -> str:
    """Write the ballot snapshot and return its SHA-256 (in the caller's transaction).

    The caller holds the consultation row locked, so no vote can commit in between.
    """
    group = _group_expression(session, consultation.id)
    listed = and_(
        Amendment.consultation_id == consultation.id,
        col(Amendment.status).in_(LISTED_STATUSES),
    )
    voted = (
        select(
            Amendment.id.label("amendment_id"),
            Clause.number.label("clause_number"),
            _kind().label("kind"),
            Vote.user_id.label("user_id"),
            group.label("organisation"),
            Vote.stance.label("stance"),
        )
        .join(Clause, col(Clause.id) == Amendment.clause_id)
        .join(Vote, col(Vote.amendment_id) == Amendment.id)
        .join(User, col(User.id) == Vote.user_id)
        .outerjoin(Organisation, col(Organisation.id) == User.organisation_id)
        .where(listed)
    )
    unvoted = (
        select(
            Amendment.id,
            Clause.number,
            _kind(),
            null(),
            literal(""),
            literal(""),
        )
        .join(Clause, col(Clause.id) == Amendment.clause_id)
        .where(listed)
        .where(~exists().where(Vote.amendment_id == Amendment.id))
    )
    every = union_all(voted, unvoted).subquery()
    numbered = select(
        literal(consultation.id),
        func.row_number().over(order_by=(every.c.amendment_id, every.c.user_id)),
        every.c.amendment_id,
        every.c.clause_number,
        every.c.kind,
        every.c.user_id,
        every.c.organisation,
        every.c.stance,
    )
    session.execute(
        insert(Ballot).from_select(
            [
                "consultation_id",
                "line",
                "amendment_id",
                "clause_number",
                "kind",
                "user_id",
                "organisation",
                "stance",
            ],
            numbered,
        )
    )
    return ballots.sha256_of(
        ballots.csv_lines(ballot_rows(session, consultation), with_header=True)
    )


def _lines(
    session: Session, consultation: Consultation, after: int, limit: int
) -> list[tuple[int, tuple[str, str, str, str, str, str]]]:
    query = (
        select(
            Ballot.line,
            Ballot.amendment_id,
            Ballot.clause_number,
            Ballot.kind,
            Ballot.user_id,
            Ballot.organisation,
            Ballot.stance,
        )
        .where(Ballot.consultation_id == consultation.id, Ballot.line > after)
        .order_by(Ballot.line)
        .limit(limit)
    )
    key = consultation.ballot_key
    return [
        (
            line,
            (
                amendment_ref(amendment_id),
                clause,
                kind,
                ballots.voter_pseudonym(key, amendment_id, user_id) if user_id else "",
                organisation,
                stance,
            ),
        )
        for line, amendment_id, clause, kind, user_id, organisation, stance in session.exec(query)
    ]


def ballot_rows(session: Session, consultation: Consultation) -> Iterator[tuple]:
    """Every line of the frozen ballot file, in one session (for the CLI and tests)."""
    after = 0
    while chunk := _lines(session, consultation, after, CHUNK_LINES):
        yield from (row for _, row in chunk)
        after = chunk[-1][0]


def ballot_file(database: Database, consultation: Consultation) -> Iterator[bytes]:
    """The ballot file as CSV bytes, read in chunks, each in a short session of its own.

    No database connection is held while a client reads the response: a slow
    download costs a few milliseconds of database time per chunk, not a pooled
    connection for the whole transfer.
    """
    yield from ballots.csv_lines((), with_header=True)
    after = 0
    while True:
        with database.session() as session:
            chunk = _lines(session, consultation, after, CHUNK_LINES)
        if not chunk:
            return
        yield b"".join(ballots.csv_lines((row for _, row in chunk), with_header=False))
        after = chunk[-1][0]
