"""The counts the ranking reads: live from the votes while open, frozen at closing after.

Closing writes the ballots as they stand into the append-only ``ballot`` table
(organisation as recoded at that moment) in the same transaction that changes
the consultation's status; the report, every export, the ballot file and its
SHA-256 come from those rows, so nothing after closing changes what counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping

from sqlalchemy import (
    and_,
    case,
    delete,
    distinct,
    exists,
    func,
    insert,
    literal,
    literal_column,
    null,
    union_all,
)
from sqlmodel import Session, col, select

from app import ballots, vote_sql
from app.db import Database
from app.models import (
    LISTED_STATUSES,
    Amendment,
    Ballot,
    BallotTally,
    BallotTurnout,
    Clause,
    Consultation,
    Organisation,
    User,
    Vote,
    Voter,
    VoteTally,
    utcnow,
)
from app.ranking import (
    NO_GROUPS,
    OTHER,
    AmendmentTally,
    Counts,
    Rules,
    recode_small_organisations,
    shared_counts,
)

CHUNK_LINES = 5000
# Closing hashes the whole file in one session: fewer, larger reads.
HASH_CHUNK_LINES = 50000


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
    """Participants per organisation name: people with at least one current vote here.

    Read from the ``voter`` rows kept with every vote (one per person), not the votes.
    """
    rows = session.exec(
        select(Organisation.name, func.count())
        .select_from(Voter)
        .outerjoin(Organisation, col(Organisation.id) == Voter.organisation_id)
        .where(Voter.consultation_id == consultation_id, Voter.votes > 0)
        .group_by(Organisation.name)
    ).all()
    # Voters without an organisation (none once signed in with a verified e-mail) are "other".
    counts: dict[str, int] = defaultdict(int)
    for name, count in rows:
        counts[name or OTHER] += count
    return dict(counts)


def change_vote(
    session: Session, consultation_id: int, amendment_id: int, user_id: int, stance: str | None
) -> str | None:
    """Cast, change or (stance None) withdraw one vote, keeping the tallies in step.

    Not committed: the caller has checked the rules and commits. Returns the previous
    stance. See ``record_vote``.
    """
    return record_vote(session, consultation_id, amendment_id, user_id, stance)[0]


def record_vote(
    session: Session,
    consultation_id: int,
    amendment_id: int,
    user_id: int,
    stance: str | None,
    with_counts: bool = False,
) -> tuple[str | None, tuple[int, int] | None]:
    """``change_vote``, and with ``with_counts`` the amendment's counts after it.

    Each step reads the vote row as it writes or locks it (an insert that does nothing
    when the row exists, a delete returning what it deleted, a locked read before an
    update), so that two clicks racing each other never fail or count twice: the
    tallies move by exactly the difference between what was stored before and what is
    stored after. A first vote is one statement on PostgreSQL (its counts moved in the
    same statement, and the counts read sent in the same round trip), the common case.
    The statements are app.vote_sql's, on the session's connection (see there for why).
    """
    run = vote_sql.Runner(session)
    sql = run.sql
    now = run.time(utcnow())
    supports, opposes = int(stance == "support"), int(stance == "oppose")
    counted_by_insert = sql.first_vote_counts
    first_vote = (amendment_id, user_id, stance, now, now)
    if counted_by_insert:
        # (voter: consultation, user, user, +1 vote; tally: amendment, +supports, +opposes)
        first_vote += (consultation_id, user_id, user_id, 1, amendment_id, supports, opposes)
    counts = None
    inserted = None
    if stance is not None:
        with run.together():
            insert = run.execute(sql.first_vote, first_vote)
            # Where the insert moved the counts itself, they can be read along with it.
            read_along = with_counts and counted_by_insert
            if read_along:
                read = run.execute(sql.counts, (amendment_id,))
        inserted = insert.fetchone()
        if inserted is not None and read_along:
            counts = read.fetchone()
    while inserted is None:
        if stance is None:
            deleted = run.execute(sql.withdrawal, (amendment_id, user_id)).fetchone()
            previous = deleted[0] if deleted is not None else None
            break
        # The row exists (or a racing first vote has just committed it): lock, then read.
        existing = run.execute(sql.locked_vote, (amendment_id, user_id)).fetchone()
        if existing is None:
            # Withdrawn in between by another request of the same person: insert.
            inserted = run.execute(sql.first_vote, first_vote).fetchone()
            continue
        previous = existing[1]
        if previous != stance:
            run.execute(sql.changed_vote, (stance, now, existing[0]))
        break
    else:
        previous = None
        if not counted_by_insert:
            _count(session, consultation_id, amendment_id, user_id, None, stance)
    if previous is not None and previous != stance:
        _count(session, consultation_id, amendment_id, user_id, previous, stance)
    if with_counts and counts is None:
        counts = run.execute(sql.counts, (amendment_id,)).fetchone()
    return previous, (None if counts is None else (int(counts[0]), int(counts[1])))


def participate(session: Session, consultation_id: int, user_id: int, votes_delta: int = 0):
    """Make sure the person has a voter row here (organisation fixed on first participation),
    add ``votes_delta`` to their vote count, and return the organisation they count for."""
    run = vote_sql.Runner(session)
    parameters = (consultation_id, user_id, user_id, votes_delta)
    return run.execute(run.sql.voter, parameters).fetchone()[0]


def _count(
    session: Session,
    consultation_id: int,
    amendment_id: int,
    user_id: int,
    old: str | None,
    new: str | None,
) -> None:
    """Move the voter's and the amendment's counts from ``old`` to ``new``."""
    votes_delta = (new is not None) - (old is not None)
    voter_organisation = participate(session, consultation_id, user_id, votes_delta)
    run = vote_sql.Runner(session)
    run.execute(
        run.sql.tally,
        (
            amendment_id,
            voter_organisation or 0,
            (new == "support") - (old == "support"),
            (new == "oppose") - (old == "oppose"),
        ),
    )


def rebuild_tallies(session: Session, consultation_id: int) -> None:
    """Recount the voter and tally rows of one consultation from its votes (not committed).

    For data loaded around ``change_vote`` (migrations, benchmarks) and for
    `redline recount`. A voter's organisation is kept where it is already fixed and
    otherwise taken from their account.
    """
    amendment_ids = select(Amendment.id).where(Amendment.consultation_id == consultation_id)
    session.execute(delete(VoteTally).where(col(VoteTally.amendment_id).in_(amendment_ids)))
    fixed = dict(
        session.exec(
            select(Voter.user_id, Voter.organisation_id).where(
                Voter.consultation_id == consultation_id
            )
        ).all()
    )
    session.execute(delete(Voter).where(Voter.consultation_id == consultation_id))
    counts = session.exec(
        select(Vote.user_id, User.organisation_id, func.count())
        .join(User, col(User.id) == Vote.user_id)
        .join(Amendment, col(Amendment.id) == Vote.amendment_id)
        .where(Amendment.consultation_id == consultation_id)
        .group_by(Vote.user_id, User.organisation_id)
    ).all()
    authors = session.exec(
        select(Amendment.author_id, User.organisation_id)
        .join(User, col(User.id) == Amendment.author_id)
        .where(Amendment.consultation_id == consultation_id)
        .distinct()
    ).all()
    people: dict[int, list] = {a: [o, 0] for a, o in authors}
    for user_id, organisation_id, n in counts:
        people[user_id] = [organisation_id, n]
    rows = [
        {
            "consultation_id": consultation_id,
            "user_id": user_id,
            "organisation_id": fixed.get(user_id, organisation_id),
            "votes": n,
        }
        for user_id, (organisation_id, n) in people.items()
    ]
    if rows:
        session.execute(insert(Voter), rows)
    session.flush()
    by_pair = session.exec(
        select(
            Vote.amendment_id,
            func.coalesce(Voter.organisation_id, literal_column("0")),
            func.sum(case((Vote.stance == "support", 1), else_=0)),
            func.sum(case((Vote.stance == "oppose", 1), else_=0)),
        )
        .join(Amendment, col(Amendment.id) == Vote.amendment_id)
        .join(
            Voter,
            and_(Voter.user_id == Vote.user_id, Voter.consultation_id == consultation_id),
        )
        .where(Amendment.consultation_id == consultation_id)
        .group_by(Vote.amendment_id, func.coalesce(Voter.organisation_id, literal_column("0")))
    ).all()
    if by_pair:
        session.execute(
            insert(VoteTally),
            [
                {"amendment_id": a, "organisation_id": o, "supports": int(s), "opposes": int(p)}
                for a, o, s, p in by_pair
            ],
        )


def recount(session: Session, consultation_id: int) -> dict[tuple[int, int], tuple[int, int]]:
    """(amendment, organisation) -> (supports, opposes) counted from the votes themselves."""
    rows = session.exec(
        select(
            Vote.amendment_id,
            func.coalesce(Voter.organisation_id, literal_column("0")),
            func.sum(case((Vote.stance == "support", 1), else_=0)),
            func.sum(case((Vote.stance == "oppose", 1), else_=0)),
        )
        .join(Amendment, col(Amendment.id) == Vote.amendment_id)
        .join(
            Voter,
            and_(Voter.user_id == Vote.user_id, Voter.consultation_id == consultation_id),
        )
        .where(Amendment.consultation_id == consultation_id)
        .group_by(Vote.amendment_id, func.coalesce(Voter.organisation_id, literal_column("0")))
    ).all()
    return {(a, o): (int(s), int(p)) for a, o, s, p in rows}


def kept_counts(session: Session, consultation_id: int) -> dict[tuple[int, int], tuple[int, int]]:
    """(amendment, organisation) -> (supports, opposes) as kept in ``vote_tally``."""
    rows = session.exec(
        select(
            VoteTally.amendment_id,
            VoteTally.organisation_id,
            VoteTally.supports,
            VoteTally.opposes,
        )
        .join(Amendment, col(Amendment.id) == VoteTally.amendment_id)
        .where(Amendment.consultation_id == consultation_id)
        .where((VoteTally.supports != 0) | (VoteTally.opposes != 0))
    ).all()
    return {(a, o): (s, p) for a, o, s, p in rows}


def _groups_by_organisation_id(
    session: Session, consultation_id: int, voters: Mapping[str, int] | None = None
) -> dict[int, str]:
    """Each voting organisation's id -> its group: its name, or "other" below 5 voters.

    ``voters``: ``voters_by_organisation``, where the caller has read it already.
    """
    if voters is None:
        voters = voters_by_organisation(session, consultation_id)
    recode = recode_small_organisations(voters)
    kept = {group for group in recode.values() if group != OTHER}
    if not kept:
        return {}
    rows = session.exec(
        select(Organisation.id, Organisation.name).where(col(Organisation.name).in_(kept))
    )
    return dict(rows.all())


def _group_expression(session: Session, consultation_id: int):
    """SQL for a voter's group: their organisation, or "other" below 5 voters."""
    recode = recode_small_organisations(voters_by_organisation(session, consultation_id))
    kept = sorted({group for group in recode.values() if group != OTHER})
    if not kept:
        return literal(OTHER)
    return case((col(Organisation.name).in_(kept), Organisation.name), else_=literal(OTHER))


# What ``live_tallies`` reads of each listed amendment besides its counts (join ``Clause``
# on ``Amendment.clause_id``); app.reporting reads them with the report's own columns.
TALLIED_COLUMNS = (Amendment.id, Clause.number, _kind())


# (id, reference, clause number, kind) of one listed amendment, as ``live_tallies`` takes it.
Listed = tuple[int, str, str, str]


def live_tallies(
    session: Session,
    consultation_id: int,
    clause_id: int | None = None,
    listed: Callable[[], Iterable[Listed]] | None = None,
    voters: Mapping[str, int] | None = None,
) -> list[AmendmentTally]:
    """Counts per listed amendment and recoded organisation, from the votes as they stand.

    With ``clause_id``, only that clause's amendments (the recoding stays consultation-wide).
    ``listed``, from a caller that reads the consultation's amendments anyway
    (app.reporting), saves reading them again: it is called once the counts are read, so
    the caller may be reading them meanwhile, and gives (id, reference, then
    ``TALLIED_COLUMNS``' clause number and kind) for every listed amendment. ``voters``
    likewise saves reading ``voters_by_organisation`` again.
    """
    where = _listed_where(consultation_id, clause_id)
    by_amendment = _live_counts(session, consultation_id, where, voters)
    if listed is None:
        read = session.connection().execute(
            select(*TALLIED_COLUMNS)
            .join(Clause, col(Clause.id) == Amendment.clause_id)
            .where(where)
        )
        chosen = [(aid, amendment_ref(aid), number, kind) for aid, number, kind in read.all()]
    else:
        chosen = listed()
    get = by_amendment.get
    make = tuple.__new__  # AmendmentTally's fields in order
    return [
        make(AmendmentTally, (ref, number, get(aid, NO_GROUPS), kind))
        for aid, ref, number, kind in chosen
    ]


def _listed_where(consultation_id: int, clause_id: int | None):
    where = and_(
        Amendment.consultation_id == consultation_id,
        col(Amendment.status).in_(LISTED_STATUSES),
    )
    if clause_id is not None:
        where = and_(where, Amendment.clause_id == clause_id)
    return where


def _live_counts(
    session: Session, consultation_id: int, where, voters: Mapping[str, int] | None
) -> dict[int, dict[str, Counts]]:
    """The kept counts of the amendments ``where`` chooses, by amendment id and group."""
    group_of = _groups_by_organisation_id(session, consultation_id, voters)
    # (amendment, organisation) is the key of vote_tally: no GROUP BY is needed, only
    # the recoding, done here on ids so the database reads one table in key order.
    rows = (
        session.connection()
        .execute(
            select(
                VoteTally.amendment_id,
                VoteTally.organisation_id,
                VoteTally.supports,
                VoteTally.opposes,
            )
            .join(Amendment, col(Amendment.id) == VoteTally.amendment_id)
            .where(where)
        )
        .all()
    )  # fetched in bulk: row-by-row fetching costs more than the query
    by_amendment: dict[int, dict[str, Counts]] = defaultdict(dict)
    for amendment_id, organisation_id, s, o in rows:
        if s or o:
            groups = by_amendment[amendment_id]
            name = group_of.get(organisation_id, OTHER)
            groups[name] = groups[name] + (s, o) if name in groups else shared_counts(s, o)
    return by_amendment


def frozen_tallies(session: Session, consultation_id: int) -> list[AmendmentTally]:
    """Counts per amendment and group as frozen at closing (``ballot_tally``, see freeze_tallies).

    A few hundred thousand small rows at most, in key order, rather than every ballot line.
    """
    rows = (
        session.connection()
        .execute(
            select(
                BallotTally.amendment_id,
                BallotTally.clause_number,
                BallotTally.kind,
                BallotTally.organisation,
                BallotTally.supports,
                BallotTally.opposes,
            )
            .where(BallotTally.consultation_id == consultation_id)
            .order_by(BallotTally.amendment_id, BallotTally.organisation)
        )
        .all()
    )  # fetched in bulk, as plain rows: row-by-row fetching costs more than the query
    by_amendment: dict[int, tuple[str, str, dict[str, Counts]]] = {}
    for amendment_id, clause, kind, organisation, s, o in rows:
        entry = by_amendment.get(amendment_id)
        if entry is None:
            entry = by_amendment[amendment_id] = (clause, kind, {})
        if organisation:
            entry[2][organisation] = shared_counts(s, o)
    make = tuple.__new__  # AmendmentTally's fields in order
    return [
        make(AmendmentTally, (amendment_ref(aid), clause, by_group, kind))
        for aid, (clause, kind, by_group) in by_amendment.items()
    ]


def frozen_voters_by_group(session: Session, consultation_id: int) -> dict[str, int]:
    """Distinct voters per group in the frozen ballots (``ballot_turnout``, see freeze_tallies)."""
    rows = session.exec(
        select(BallotTurnout.organisation, BallotTurnout.voters).where(
            BallotTurnout.consultation_id == consultation_id
        )
    )
    return dict(rows.all())


def freeze_tallies(session: Session, consultation_id: int) -> None:
    """Count the ballots just frozen into ``ballot_tally`` and ``ballot_turnout``.

    In the closing transaction, after the ballots: both are counted from the ballot rows
    themselves by the database, so they cannot disagree with the ballot file, and every
    closed report reads them instead of grouping a million ballot lines again.
    """
    ballot = select(Ballot).where(Ballot.consultation_id == consultation_id).subquery()
    session.execute(
        insert(BallotTally).from_select(
            [
                "consultation_id",
                "amendment_id",
                "organisation",
                "clause_number",
                "kind",
                "supports",
                "opposes",
            ],
            select(
                literal(consultation_id),
                ballot.c.amendment_id,
                ballot.c.organisation,
                ballot.c.clause_number,
                ballot.c.kind,
                func.sum(case((ballot.c.stance == "support", 1), else_=0)),
                func.sum(case((ballot.c.stance == "oppose", 1), else_=0)),
            ).group_by(
                ballot.c.amendment_id,
                ballot.c.organisation,
                ballot.c.clause_number,
                ballot.c.kind,
            ),
        )
    )
    session.execute(
        insert(BallotTurnout).from_select(
            ["consultation_id", "organisation", "voters"],
            select(
                literal(consultation_id),
                ballot.c.organisation,
                func.count(distinct(ballot.c.user_id)),
            )
            .where(ballot.c.user_id.is_not(None))
            .group_by(ballot.c.organisation),
        )
    )


def tallies(
    session: Session,
    consultation: Consultation,
    listed: Callable[[], Iterable[Listed]] | None = None,
    voters: Mapping[str, int] | None = None,
) -> list[AmendmentTally]:
    """Frozen counts once closed, live counts before: what this consultation is ranked on.

    ``listed`` and ``voters``: as ``live_tallies`` takes them (unused once closed).
    """
    if consultation.status in ("closed", "published"):
        return frozen_tallies(session, consultation.id)
    return live_tallies(session, consultation.id, listed=listed, voters=voters)


def freeze_ballots(session: Session, consultation: Consultation) -> str:
    """Write the ballot snapshot and its counts, and return its SHA-256 (caller's transaction).

    The caller holds the consultation row locked, so no vote can commit in between.
    """
    write_ballots(session, consultation)
    freeze_tallies(session, consultation.id)
    return ballots_sha256(session, consultation)


def write_ballots(session: Session, consultation: Consultation) -> None:
    """Write the ballot lines of the votes as they stand (organisations recoded now)."""
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
        .join(
            Voter,
            and_(Voter.user_id == Vote.user_id, Voter.consultation_id == consultation.id),
        )
        .outerjoin(Organisation, col(Organisation.id) == Voter.organisation_id)
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


def ballots_sha256(session: Session, consultation: Consultation) -> str:
    """The SHA-256 of the frozen ballot file, as ``ballot_file`` serves it."""
    return ballots.sha256_of(
        _ballot_chunks(lambda after: _lines(session, consultation, after, HASH_CHUNK_LINES))
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
        # Lines are numbered 1, 2, 3... without gaps, so a chunk is a range of the primary
        # key: read as such whatever the planner's statistics say of a million rows just
        # written in the closing transaction (with "line > after LIMIT n" alone it could sort
        # every remaining line for each chunk).
        .where(
            Ballot.consultation_id == consultation.id,
            Ballot.line > after,
            Ballot.line <= after + limit,
        )
        .order_by(Ballot.line)
        .limit(limit)
    )
    pseudonym = ballots.pseudonyms(consultation.ballot_key)
    # Plain rows fetched in bulk: a ballot file can have millions of lines.
    rows = session.connection().execute(query).all()
    return [
        (
            line,
            (
                amendment_ref(amendment_id),
                clause,
                kind,
                pseudonym(amendment_id, user_id) if user_id else "",
                organisation,
                stance,
            ),
        )
        for line, amendment_id, clause, kind, user_id, organisation, stance in rows
    ]


def _ballot_chunks(read: Callable[[int], list[tuple[int, tuple]]]) -> Iterator[bytes]:
    """The ballot file as CSV bytes: the header, then each chunk ``read(after)`` returns.

    The one writer of the file's bytes, so that what closing hashes is what is served.
    """
    yield from ballots.csv_lines((), with_header=True)
    after = 0
    while chunk := read(after):
        yield ballots.csv_chunk(row for _, row in chunk)
        after = chunk[-1][0]


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

    def read(after: int) -> list[tuple[int, tuple]]:
        with database.session() as session:
            return _lines(session, consultation, after, CHUNK_LINES)

    yield from _ballot_chunks(read)
