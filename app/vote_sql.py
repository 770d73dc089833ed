"""The SQL of a vote, written once per dialect and run on the session's DB-API connection.

Why it bypasses SQLAlchemy's execution (and the ORM): the htmx vote is the most
frequent write, and profiled on PostgreSQL its SQLAlchemy machinery per statement
(cache-key lookup, parameter processing, result metadata, ORM loading) cost more CPU
than the driver and the database together. These statements are the Core statements
they replaced (``app.tallies`` and ``app.services`` said what each does), run through
the DB-API cursor of the very connection the Session's transaction holds, so they are
part of that transaction and commit or roll back with it; on PostgreSQL as psycopg
prepared statements, and the ones that do not depend on each other's results sent
together in one round trip (pipeline mode). Rows come back as tuples; the values that
SQLAlchemy's column types convert (aware datetimes, SQLite's booleans and datetimes)
go through those same types' processors, so what is read here is what the ORM reads.

Only SQL lives here: the rules (eligibility, the voting window, the wording's
fingerprint) stay in their pure modules and are checked in Python on what this reads.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table
from sqlmodel import Session

from app.driver import driver_connection
from app.models import Amendment, Consultation, User, Vote
from app.precompiled import Converting, converted, converting, models_of

# First keys of PostgreSQL advisory locks, one namespace per kind of row locked
# (app.services takes the same locks for closing, withdrawing and editing).
CONSULTATION_LOCKS = 1
AMENDMENT_LOCKS = 2

_ENTITIES: tuple[tuple[type, str], ...] = ((Consultation, "c"), (Amendment, "a"), (User, "u"))
_ENTITIES_WIDTH = sum(len(model.__table__.columns) for model, _alias in _ENTITIES)  # type: ignore[attr-defined]


def _columns(model: type) -> list[str]:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return [column.name for column in table.columns]


def _select_list() -> str:
    return ", ".join(f"{alias}.{name}" for model, alias in _ENTITIES for name in _columns(model))


@dataclass(frozen=True)
class VoteSQL:
    """One dialect's statements, with the value converters of the columns they touch."""

    pipeline: bool  # whether independent statements can share one round trip
    locks: str | None  # queues for both advisory locks (PostgreSQL only)
    locked_read: str  # consultation, amendment (FOR SHARE) and the voter's account
    first_vote: str  # inserts the vote unless the person has one: returns its id if so
    first_vote_counts: bool  # whether first_vote also moves the voter and tally rows
    withdrawal: str  # deletes the vote: returns the stance it had
    locked_vote: str  # the vote's id and stance, locked until commit
    changed_vote: str
    voter: str  # the upsert of the voter row: returns the organisation they count for
    tally: str
    counts: str  # supports and opposes of one amendment (queries.vote_counts of one id)
    read_converting: Converting  # of locked_read's columns
    time_converter: Callable | None


def _counts_update(table: str) -> str:
    return (
        f"supports = {table}.supports + excluded.supports, "
        f"opposes = {table}.opposes + excluded.opposes"
    )


def _statements(dialect: Any) -> VoteSQL:
    postgresql = dialect.name == "postgresql"
    p = "%s" if postgresql else "?"
    locked_read = (
        f"SELECT {_select_list()} FROM consultation c "
        "JOIN amendment a ON a.consultation_id = c.id "
        f"LEFT JOIN user_account u ON u.id = {p} WHERE a.id = {p}"
    )
    insert_vote = (
        "INSERT INTO vote (amendment_id, user_id, stance, created_at, updated_at) "
        f"VALUES ({p}, {p}, {p}, {p}, {p}) "
        "ON CONFLICT (amendment_id, user_id) DO NOTHING RETURNING id"
    )
    voter_values = f"{p}, {p}, (SELECT organisation_id FROM user_account WHERE id = {p})"
    voter_conflict = (
        "ON CONFLICT (consultation_id, user_id) "
        "DO UPDATE SET votes = voter.votes + excluded.votes RETURNING organisation_id"
    )
    tally_conflict = "ON CONFLICT (amendment_id, organisation_id) DO UPDATE SET " + _counts_update(
        "vote_tally"
    )
    if postgresql:
        # The first vote of a person on an amendment, and the counts it moves, in one
        # statement: the voter and tally rows change only if the vote row was inserted,
        # by exactly what change_vote's _count would move them by (passed in).
        first_vote = (
            f"WITH inserted AS ({insert_vote}), "
            "counted AS (INSERT INTO voter (consultation_id, user_id, organisation_id, votes) "
            f"SELECT {voter_values}, {p} FROM inserted {voter_conflict}), "
            "tallied AS (INSERT INTO vote_tally (amendment_id, organisation_id, supports, opposes) "
            f"SELECT {p}, COALESCE(organisation_id, 0), {p}, {p} FROM counted {tally_conflict}) "
            "SELECT id FROM inserted"
        )
    else:
        first_vote = insert_vote  # SQLite has no data-modifying WITH: _count follows it
    this_vote = f"amendment_id = {p} AND user_id = {p}"
    times = Vote.__table__.c.created_at.type  # type: ignore[attr-defined]
    return VoteSQL(
        pipeline=postgresql,
        locks=(
            f"SELECT pg_advisory_xact_lock_shared({CONSULTATION_LOCKS}, consultation_id), "
            f"pg_advisory_xact_lock_shared({AMENDMENT_LOCKS}, id) FROM amendment WHERE id = %s"
            if postgresql
            else None
        ),
        # SQLite has no row locks: BEGIN IMMEDIATE has serialised every writer already.
        locked_read=locked_read + (" FOR SHARE OF c, a" if postgresql else ""),
        first_vote=first_vote,
        first_vote_counts=postgresql,
        withdrawal=f"DELETE FROM vote WHERE {this_vote} RETURNING stance",
        locked_vote=f"SELECT id, stance FROM vote WHERE {this_vote}"
        + (" FOR UPDATE" if postgresql else ""),
        changed_vote=f"UPDATE vote SET stance = {p}, updated_at = {p} WHERE id = {p}",
        voter=(
            "INSERT INTO voter (consultation_id, user_id, organisation_id, votes) "
            f"VALUES ({voter_values}, {p}) {voter_conflict}"
        ),
        tally=(
            "INSERT INTO vote_tally (amendment_id, organisation_id, supports, opposes) "
            f"VALUES ({p}, {p}, {p}, {p}) {tally_conflict}"
        ),
        counts=(
            "SELECT COALESCE(SUM(supports), 0), COALESCE(SUM(opposes), 0) "
            f"FROM vote_tally WHERE amendment_id = {p}"
        ),
        read_converting=converting(
            (column for model, _alias in _ENTITIES for column in model.__table__.columns),  # type: ignore[attr-defined]
            dialect,
        ),
        time_converter=times.dialect_impl(dialect).bind_processor(dialect),
    )


_BUILT: dict[str, VoteSQL] = {}


def statements(session: Session) -> VoteSQL:
    """The vote's statements for the dialect of ``session``'s database (built once each)."""
    dialect = session.get_bind().dialect
    built = _BUILT.get(dialect.name)
    if built is None:
        built = _BUILT[dialect.name] = _statements(dialect)
    return built


class Runner:
    """Runs the vote's statements on the DB-API connection of a session's transaction."""

    def __init__(self, session: Session) -> None:
        self.sql = statements(session)
        # session.connection() begins the Session's transaction (the pool's checkout with
        # it), so every statement below belongs to it and commits or rolls back with it.
        self.connection = driver_connection(session.connection())
        self.prepare = {"prepare": True} if self.sql.pipeline else {}

    def time(self, value: Any) -> Any:
        """A datetime as the column type binds it (UTC; text on SQLite)."""
        convert = self.sql.time_converter
        return convert(value) if convert else value

    def execute(self, statement: str, parameters: tuple) -> Any:
        """Run one statement on a cursor of its own; the cursor (its rows)."""
        cursor = self.connection.cursor()
        cursor.execute(statement, parameters, **self.prepare)
        return cursor

    def together(self):
        """On PostgreSQL, statements run inside are sent in one round trip (pipeline mode):
        their rows can be read once the block is left. Elsewhere, one after another."""
        return self.connection.pipeline() if self.sql.pipeline else nullcontext()

    def entities(self, row: tuple) -> list[Any]:
        """The consultation, amendment and user (None if absent) of a ``locked_read`` row."""
        if len(row) != _ENTITIES_WIDTH:  # the converters' places would be wrong
            raise ValueError(f"a locked_read row of {len(row)} columns, not {_ENTITIES_WIDTH}")
        values = converted(row, self.sql.read_converting)
        return models_of(values, [model for model, _alias in _ENTITIES])
