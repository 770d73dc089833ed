"""``limits`` storages of Redline's own: in its database (no Redis configured) and in memory.

Why: rate limits must hold across every web process (several uvicorn workers, several
hosts), and the one thing they all share without extra infrastructure is the database.
The ``limits`` library ships Redis, Memcached, MongoDB and in-memory storages but none
over SQL, so this implements its small ``Storage`` interface (enough for the fixed
window strategy) over one table, ``rate_limit_window``: a row per counter, increased
with one atomic ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` on both engines.
``MemoryStorage`` is the same counters in one process's memory, for the embedded
default (see its docstring for why not the library's own).

Store layer: imports the database and models, nothing from the web.
"""

from __future__ import annotations

import functools
import random
import threading
import time

from limits.storage import Storage
from sqlalchemy import bindparam, case, delete, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from app.db import DRIVER_ERRORS, Database
from app.driver import driver_connection
from app.errors import Busy
from app.models import RateLimitWindow

WINDOWS = RateLimitWindow.__table__
# About one increment in this many also deletes windows that have ended, so the table
# stays the size of the traffic of the longest window, without a separate job.
SWEEP_ONE_IN = 500


@functools.cache
def _increment_statement():
    """SQLite's upsert of one counter, built once (and compiled once: SQLAlchemy caches it).

    Executed with several parameter sets, one per counter, in one transaction. (A
    multi-row VALUES would be one statement, but SQLAlchemy neither caches nor batches
    it, and compiling it every time costs more than the second round trip.) PostgreSQL
    counts with ``_INCREMENT_POSTGRESQL`` instead.
    """
    statement = sqlite_insert(WINDOWS).values(
        key=bindparam("key"), hits=bindparam("hits"), expires_at=bindparam("expires_at")
    )
    ended = WINDOWS.c.expires_at <= bindparam("now")
    return statement.on_conflict_do_update(
        index_elements=[WINDOWS.c.key],
        # A window that has ended starts again from this hit.
        set_={
            "hits": case(
                (ended, statement.excluded.hits), else_=WINDOWS.c.hits + statement.excluded.hits
            ),
            "expires_at": case((ended, statement.excluded.expires_at), else_=WINDOWS.c.expires_at),
        },
    ).returning(WINDOWS.c.key, WINDOWS.c.hits)


# On PostgreSQL every counter of a request in one statement, written as SQL and run on
# the DB-API connection: it is the upsert of ``_increment_statement`` over arrays, which
# SQLAlchemy would neither cache nor batch (see there), and every vote runs it when no
# Redis is configured. With its COMMIT it is one round trip (pipeline mode), where BEGIN,
# the upserts and COMMIT took three or more. Counters are upserted in key order, so that
# two requests sharing counters (one person, one address) lock them in the same order.
_INCREMENT_POSTGRESQL = (
    "INSERT INTO rate_limit_window (key, hits, expires_at) "
    "SELECT * FROM unnest(%(keys)s::varchar[], %(hits)s::int[], %(expiries)s::float8[]) "
    "ON CONFLICT (key) DO UPDATE SET "
    "hits = CASE WHEN rate_limit_window.expires_at <= %(now)s THEN excluded.hits "
    "ELSE rate_limit_window.hits + excluded.hits END, "
    "expires_at = CASE WHEN rate_limit_window.expires_at <= %(now)s THEN excluded.expires_at "
    "ELSE rate_limit_window.expires_at END "
    "RETURNING key, hits"
)
_SWEEP_POSTGRESQL = "DELETE FROM rate_limit_window WHERE expires_at < %s"


def _increment(session: Session, counts: list[tuple[str, int, int]]) -> list[int]:
    """Add to each (key, expiry, amount) counter in a transaction of its own; their hits after.

    On PostgreSQL ``session`` may be one whose own transaction is about to begin (a
    vote's, see ``DatabaseStorage.incr_many``): the counts are committed before any
    statement of it, on its connection.
    """
    now = time.time()
    # One row per key: an upsert may not touch the same row twice.
    rows: dict[str, dict] = {}
    for key, expiry, amount in counts:
        row = rows.setdefault(key, {"key": key, "hits": 0, "expires_at": now + expiry, "now": now})
        row["hits"] += amount
    sweep = random.randrange(SWEEP_ONE_IN) == 0
    if session.get_bind().dialect.name != "postgresql":
        statement = _increment_statement()
        hits = dict(session.connection().execute(statement, list(rows.values())).all())
        if sweep:
            session.execute(delete(WINDOWS).where(WINDOWS.c.expires_at < now))
        session.commit()
        return [hits[key] for key, _expiry, _amount in counts]
    ordered = [rows[key] for key in sorted(rows)]
    parameters = {
        "keys": [row["key"] for row in ordered],
        "hits": [row["hits"] for row in ordered],
        "expiries": [row["expires_at"] for row in ordered],
        "now": now,
    }
    connection = driver_connection(session.connection())
    try:
        with connection.pipeline():
            cursor = connection.cursor()
            cursor.execute(_INCREMENT_POSTGRESQL, parameters, prepare=True)
            if sweep:
                connection.cursor().execute(_SWEEP_POSTGRESQL, (now,))
            connection.commit()
    except Exception:
        # Leave the connection clean for whatever the session runs next.
        connection.rollback()
        raise
    hits = dict(cursor.fetchall())
    return [hits[key] for key, _expiry, _amount in counts]


def _window(session: Session, key: str) -> tuple[int, float]:
    row = session.execute(
        select(WINDOWS.c.hits, WINDOWS.c.expires_at).where(WINDOWS.c.key == key)
    ).first()
    now = time.time()
    if row is None or row.expires_at <= now:
        return 0, now
    return row.hits, row.expires_at


def _clear(session: Session, key: str | None) -> int:
    statement = delete(WINDOWS)
    if key is not None:
        statement = statement.where(WINDOWS.c.key == key)
    removed = session.execute(statement).rowcount
    session.commit()
    return removed


class DatabaseStorage(Storage):
    """Fixed-window counters in the ``rate_limit_window`` table of ``database``."""

    STORAGE_SCHEME = ["redline-database"]

    def __init__(self, database: Database) -> None:
        super().__init__()
        self.database = database

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        # The driver's own errors too: PostgreSQL's count runs on the DB-API connection.
        return (sa_exc.SQLAlchemyError, Busy, *DRIVER_ERRORS)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to the counter ``key`` (a new window of ``expiry`` s if it ended)."""
        return self.database.write_call(_increment, [(key, int(expiry), amount)])[0]

    def incr_many(
        self, counts: list[tuple[str, int, int]], session: Session | None = None
    ) -> list[int]:
        """``incr`` for several (key, expiry, amount) counters in one transaction.

        Not part of the ``limits`` interface: one request counts against a person and an
        address, and one commit instead of two is what keeps a vote fast on SQLite,
        where each commit waits for the disk. On PostgreSQL, ``session`` is a write
        session of the caller that has run nothing yet: the counts are committed on its
        connection, in a transaction of their own (saving a pool checkout), so that they
        stand whatever becomes of the caller's transaction and no counter stays locked
        while it runs. Elsewhere the counts take a session of their own.
        """
        if session is not None and session.get_bind().dialect.name == "postgresql":
            return _increment(session, counts)
        return self.database.write_call(_increment, counts)

    def get(self, key: str) -> int:
        """Hits so far in the current window of ``key`` (0 when none)."""
        return self.database.call(_window, key)[0]

    def get_expiry(self, key: str) -> float:
        """When the current window of ``key`` ends (Unix time; now when there is none)."""
        return self.database.call(_window, key)[1]

    def check(self) -> bool:
        """True when the database answers."""
        try:
            self.database.call(lambda session: session.execute(select(1)).scalar_one())
        except self.base_exceptions:
            return False
        return True

    def reset(self) -> int | None:
        """Forget every counter; returns how many there were."""
        return self.database.write_call(_clear, None)

    def clear(self, key: str) -> None:
        """Forget the counter ``key``."""
        self.database.write_call(_clear, key)


class MemoryStorage(Storage):
    """Fixed-window counters in this process's memory, for the embedded default.

    Why not ``limits``' own memory storage: it expires counters from a timer thread
    that it starts again 10 ms after the previous one ended, and that walks every
    counter each time. Measured with 20,000 people's counters (one a minute each, as
    at 330 votes a second), that cost 1.5 ms of CPU per vote, more than the rest of
    the rate limit and about a quarter of the vote. Here a counter whose window has
    ended starts again when it is next counted, and ended windows are swept inline,
    about one count in ``SWEEP_ONE_IN``, as in the database storage.
    """

    STORAGE_SCHEME = ["redline-memory"]

    def __init__(self) -> None:
        super().__init__()
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (hits, expires at)
        self._lock = threading.Lock()

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add ``amount`` to the counter ``key`` (a new window of ``expiry`` s if it ended)."""
        now = time.time()
        with self._lock:
            hits, expires_at = self._windows.get(key, (0, now))
            if expires_at <= now:
                hits, expires_at = 0, now + expiry
            self._windows[key] = (hits + amount, expires_at)
            if random.randrange(SWEEP_ONE_IN) == 0:
                ended = [k for k, (_, end) in self._windows.items() if end <= now]
                for k in ended:
                    del self._windows[k]
            return hits + amount

    def _window(self, key: str) -> tuple[int, float]:
        now = time.time()
        hits, expires_at = self._windows.get(key, (0, now))
        return (0, now) if expires_at <= now else (hits, expires_at)

    def get(self, key: str) -> int:
        """Hits so far in the current window of ``key`` (0 when none)."""
        return self._window(key)[0]

    def get_expiry(self, key: str) -> float:
        """When the current window of ``key`` ends (Unix time; now when there is none)."""
        return self._window(key)[1]

    def check(self) -> bool:
        """Always True: memory always answers."""
        return True

    def reset(self) -> int | None:
        """Forget every counter; returns how many there were."""
        with self._lock:
            removed = len(self._windows)
            self._windows.clear()
        return removed

    def clear(self, key: str) -> None:
        """Forget the counter ``key``."""
        with self._lock:
            self._windows.pop(key, None)
