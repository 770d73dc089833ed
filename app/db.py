"""Database engines, sessions, the migrations runner, and how lock contention is reported.

Reads and writes go through different doors. ``call``/``session`` begin a deferred
transaction: right for reads, which in SQLite's WAL mode never wait for a writer.
``run``, the web's road to a read, goes further (``read_session``): on PostgreSQL it
reads outside any transaction, and it can never write. ``write``/``write_call``/
``write_session`` are for transactions that will write: on SQLite they begin with
``BEGIN IMMEDIATE``, taking the single write lock before the first read, so that two
writers queue (within the busy timeout) instead of both reading and then one being
refused the upgrade to a write lock, which SQLite does at once whatever the timeout.
On PostgreSQL both doors are the same engine; services serialise on rows
(``SELECT ... FOR SHARE / FOR UPDATE``) instead.

On PostgreSQL the web's ``run`` and ``write`` run on the event loop, with psycopg's
asyncio connection under SQLAlchemy's AsyncSession (see ``Database.open_on_loop``):
the same synchronous functions of a session, each statement awaited in SQLAlchemy's
greenlet, so that a request waiting for PostgreSQL costs no thread switch.
``run_in_thread``/``write_in_thread`` keep long computations (reports, closing) in
worker threads, where they cannot hold up every other request. SQLite, an in-process
library, is always run in worker threads.

A lock that cannot be had within the timeout becomes ``Busy`` (503, try again),
never a 500.
"""

from __future__ import annotations

import asyncio
import functools
import select
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import anyio.to_thread
import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from anyio.lowlevel import RunVar
from sqlalchemy import Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlmodel import Session, create_engine

from app.errors import Busy

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

# How long a transaction waits for a lock before the request is answered 503. Long
# enough for a queue of a few hundred short vote transactions to drain, short enough
# that nobody stares at a spinner: the SQLite busy timeout and PostgreSQL lock_timeout.
LOCK_TIMEOUT_SECONDS = 5.0

# Connections each process keeps to PostgreSQL, and worker threads it gives to reads at
# once. Reads are a few short statements between stretches of Python that hold the GIL:
# more threads than this only take turns at the GIL (measured: 40 threads served the
# clause page a fifth slower than 4 and spent half the CPU in the kernel switching them).
POOL_SIZE = 15
READ_THREADS = 6
# Worker threads per process for write transactions at once. Writes had anyio's default
# 40: with more threads than pooled connections the rest only queued for one, and every
# thread that woke took its turn at the GIL. Measured with 64 connections voting at once
# on the million-vote data, old and new code alternated (docs/performance.md, sixth
# pass): PostgreSQL 374-412 votes/s against 214-380, p99 340-375 ms against 383-593.
WRITE_THREADS = 6
# Reads at once on an event loop's engine (Database.open_on_loop), which has a pool of
# its own of POOL_SIZE: with WRITE_THREADS writes beside them, no request ever waits
# inside the pool, whose queue is not first come, first served; this limiter's is.
LOOP_READS = POOL_SIZE - WRITE_THREADS
# Threads per process for reads run beside a request's own (``read_beside``): each holds
# a second pooled connection for a moment, so few.
BESIDE_THREADS = 2

# The drivers' own errors, raised by statements run on the DB-API connection directly.
DRIVER_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error)

# SQLite result codes (the low byte of an extended code): SQLITE_BUSY, SQLITE_LOCKED.
_SQLITE_BUSY_CODES = {5, 6}
# PostgreSQL SQLSTATEs that mean "retry": lock_not_available (lock_timeout),
# serialization_failure, deadlock_detected.
_POSTGRES_RETRY_STATES = {"55P03", "40001", "40P01"}


def _sqlite_engine(url: str, begin: str, timeout: float, **pool: Any) -> Engine:
    """An SQLite engine whose transactions start with ``begin`` (BEGIN or BEGIN IMMEDIATE)."""
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": timeout}, **pool
    )

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin, so
        # that DDL is transactional too: a failed migration leaves nothing half-done.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        if not _in_memory(url):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


def _in_memory(url: str) -> bool:
    database = make_url(url).database
    return not database or database == ":memory:" or "mode=memory" in url


def make_engine(url: str, lock_timeout: float | None = None) -> Engine:
    """An engine for SQLite (foreign keys on, WAL for concurrent readers) or PostgreSQL.

    Transactions begin deferred: see ``make_write_engine`` for SQLite writers. With
    ``lock_timeout`` (seconds) a lock that cannot be had in that time fails the
    statement; without it (migrations, commands) SQLite waits 30 s and PostgreSQL
    as long as it takes.
    """
    if url.startswith("sqlite"):
        return _sqlite_engine(url, "BEGIN", lock_timeout or 30.0)
    engine = create_engine(url, **_postgres_options(lock_timeout))
    # Instead of pool_pre_ping, which costs a round trip at every checkout (every request).
    event.listen(engine, "checkout", _refuse_if_ended_by_server)
    return engine


def make_loop_engine(url: str, lock_timeout: float) -> AsyncEngine:
    """A PostgreSQL engine on psycopg's asyncio connections, for one event loop's
    requests (``Database.open_on_loop``); pooled and timed out as ``make_engine``'s."""
    engine = create_async_engine(url, **_postgres_options(lock_timeout))
    event.listen(engine.sync_engine, "checkout", _refuse_if_ended_by_server)
    return engine


def _postgres_options(lock_timeout: float | None) -> dict[str, Any]:
    # Modest: several web processes, the CLI and the test suite share max_connections.
    # No overflow: an overflow connection is closed whenever the pool already has
    # pool_size idle ones, which under a steady load happened every few requests, each
    # time starting a new PostgreSQL backend (milliseconds of its CPU) for a moment's use.
    options: dict[str, Any] = {"pool_size": POOL_SIZE, "max_overflow": 0}
    if lock_timeout is not None:
        # A row lock that cannot be had in time fails the statement (55P03 -> Busy)
        # instead of holding the request, and its pooled connection, indefinitely.
        options["connect_args"] = {"options": f"-c lock_timeout={int(lock_timeout * 1000)}"}
        options["pool_timeout"] = lock_timeout
    return options


def _refuse_if_ended_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Refuse a pooled PostgreSQL connection that the server ended while it sat idle.

    An idle connection has nothing to read: if its socket has, the server wrote to it
    unasked, which is its notice that it ended the session (a restart, a failover,
    pg_terminate_backend), or the end of the stream. A poll with no timeout sees that
    without a round trip; SQLAlchemy then replaces the connection (DisconnectionError),
    so no request fails on it (tests/test_operations.py). Like a ping would, a
    connection cut silently by the network is found only by the request that uses it.
    Anything else the server sends an idle connection unasked (a NOTICE, a parameter
    change after a configuration reload) also retires it: a new connection, nothing failed.
    """
    # An asyncio engine's DB-API connection is SQLAlchemy's adapter around psycopg's.
    connection = getattr(dbapi_connection, "driver_connection", dbapi_connection)
    try:
        socket = connection.pgconn.socket
    except psycopg.OperationalError:  # closed or broken on this side already
        raise sa_exc.DisconnectionError("the connection was closed") from None
    poll = select.poll()
    poll.register(socket, select.POLLIN)
    if poll.poll(0):
        raise sa_exc.DisconnectionError("the server ended the connection while it was idle")


def make_write_engine(url: str, lock_timeout: float | None = None) -> Engine:
    """An SQLite engine whose transactions take the write lock up front (BEGIN IMMEDIATE).

    One pooled connection per process: SQLite has one writer at a time anyway, and
    the pool queues this process's writers first come, first served, where SQLite's
    busy handler would have them poll. Other processes (``--workers``) queue on the
    busy timeout. A writer that waits longer than ``lock_timeout`` for either gets Busy.
    """
    timeout = LOCK_TIMEOUT_SECONDS if lock_timeout is None else lock_timeout
    return _sqlite_engine(
        url, "BEGIN IMMEDIATE", timeout, pool_size=1, max_overflow=0, pool_timeout=timeout
    )


def is_busy(error: BaseException) -> bool:
    """True when ``error`` means "the lock could not be had in time": worth a retry, not a 500.

    ``error`` is SQLAlchemy's, or the driver's own from statements run on the DB-API
    connection directly (app.vote_sql).
    """
    if isinstance(error, sa_exc.TimeoutError):
        # The connection pool stayed exhausted for the whole timeout.
        return True
    if isinstance(error, sa_exc.DBAPIError):
        original = error.orig
    elif isinstance(error, DRIVER_ERRORS):
        original = error
    else:
        return False
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _POSTGRES_RETRY_STATES
    code = getattr(original, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _SQLITE_BUSY_CODES
    message = str(original).lower()
    return "database is locked" in message or "database table is locked" in message


def alembic_config(url: str) -> Config:
    """Alembic's configuration for this project, pointed at ``url``."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    # ConfigParser interpolation would eat a literal % in a password.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# The key of the PostgreSQL advisory lock `redline migrate` holds (any fixed 64-bit number;
# this one spells "redline" in ASCII). Hosts starting together migrate one after another.
MIGRATION_LOCK_KEY = 0x7265646C696E65


def migrate(url: str, revision: str = "head") -> list[str]:
    """Bring the schema of the database at ``url`` up to ``revision``; the revisions applied.

    On PostgreSQL a session advisory lock is held throughout, so that when several hosts
    run this at once one migrates and the others wait, then find nothing left to do.
    (An SQLite file is served from one host, where it is migrated once: no lock.)
    """
    config = alembic_config(url)
    if url.startswith("sqlite"):
        before = schema_revisions(url)
        command.upgrade(config, revision)
        return _applied(before, schema_revisions(url))
    engine = make_engine(url)
    try:
        # Autocommit: the lock belongs to the session, and no transaction sits idle
        # (and open to idle_in_transaction_session_timeout) while Alembic works.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
            lock.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")
            try:
                before = schema_revisions(url)
                command.upgrade(config, revision)
                return _applied(before, schema_revisions(url))
            finally:
                lock.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})")
    finally:
        engine.dispose()


def _applied(before: frozenset[str], after: frozenset[str]) -> list[str]:
    """The revisions applied to go from ``before`` to ``after``, oldest first."""
    if before == after:
        return []
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))

    def lineage(heads: frozenset[str]) -> list[str]:
        return [r.revision for r in script.iterate_revisions(tuple(heads), "base")]

    already = set(lineage(before)) if before else set()
    return [r for r in reversed(lineage(after)) if r not in already]


def schema_revisions(url_or_engine: str | Engine) -> frozenset[str]:
    """The Alembic revisions the database is at (empty: no schema at all)."""
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.connect() as connection:
            return frozenset(MigrationContext.configure(connection).get_current_heads())
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()


@functools.cache
def code_heads() -> frozenset[str]:
    """The latest revisions this code's migrations define (read once per process)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def schema_behind(engine: Engine) -> str | None:
    """Why the database's schema is older than this code needs, or None when it is not.

    A revision this code does not know is newer code's migration (a rolling upgrade
    migrates before it replaces the old processes): not "behind", so old processes keep
    serving. Raises the driver's error when the database cannot be reached.
    """
    current = schema_revisions(engine)
    heads = code_heads()
    if current == heads:
        return None
    if not current:
        return "the database has no schema yet"
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    try:
        for revision in current:
            script.get_revision(revision)
    except (CommandError, RevisionError):
        # Alembic wraps its ResolutionError (an unknown revision) in a CommandError.
        return None
    return (
        f"the database schema is at revision {', '.join(sorted(current))}; "
        f"this code needs {', '.join(sorted(heads))}"
    )


class Database:
    """The app's handle on its database: sessions, and blocking work kept off the event loop.

    ``run``/``call``/``session`` are for reading; ``write``/``write_call``/``write_session``
    for any transaction that writes (see the module docstring for why they differ).
    """

    def __init__(self, url: str, lock_timeout: float | None = None) -> None:
        self.url = url
        lock_timeout = LOCK_TIMEOUT_SECONDS if lock_timeout is None else lock_timeout
        self.lock_timeout = lock_timeout
        self.engine = make_engine(url, lock_timeout=lock_timeout)
        # PostgreSQL needs no second engine: row locks, not BEGIN, serialise its writers.
        # Nor does an in-memory SQLite database, which a second engine would not share.
        separate = url.startswith("sqlite") and not _in_memory(url)
        self.write_engine = make_write_engine(url, lock_timeout) if separate else self.engine
        # PostgreSQL reads need no transaction: at READ COMMITTED each statement takes its
        # own snapshot in or out of one, so a read-only BEGIN ... ROLLBACK bought nothing
        # but two round trips, and psycopg forgets its prepared statements at every
        # ROLLBACK, so each page's statements were parsed and planned afresh every time
        # (about 3 ms of PostgreSQL's CPU for a clause page). Same pool, same connections.
        postgres = url.startswith("postgresql")
        self.read_engine = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT") if postgres else self.engine
        )
        self.postgres = postgres
        # The asyncio engines of the event loops serving requests (open_on_loop): asyncio
        # connections and their pool belong to the loop that made them.
        self._on_loops: dict[asyncio.AbstractEventLoop, _LoopEngines] = {}

    def session(self) -> Session:
        """A new session (deferred BEGIN); objects stay readable after commit."""
        return Session(self.engine, expire_on_commit=False)

    def read_session(self) -> Session:
        """A new session for reading only: out of any transaction on PostgreSQL (see
        ``__init__``), a deferred one on SQLite (a consistent snapshot for free). It
        refuses to write (ReadOnlySession), since on PostgreSQL a write would be
        committed at once, statement by statement."""
        return ReadOnlySession(self.read_engine, expire_on_commit=False)

    def write_session(self) -> Session:
        """A new session whose transactions hold the write lock from their first statement."""
        return Session(self.write_engine, expire_on_commit=False)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(session, *args, **kwargs)`` in a fresh (deferred) session.

        Raises Busy when a lock could not be had in time.
        """
        return _guarded(self.session, fn, args, kwargs)

    def write_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(session, *args, **kwargs)`` in a fresh write session; Busy on lock timeout."""
        return _guarded(self.write_session, fn, args, kwargs)

    def read_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(session, *args, **kwargs)`` in a fresh read session (``read_session``)."""
        return _guarded(self.read_session, fn, args, kwargs)

    async def open_on_loop(self) -> AsyncEngine | None:
        """On PostgreSQL, serve ``run`` and ``write`` on the running event loop from now
        on (the app's lifespan calls this at start-up); the loop's engine, or None.

        Why: a request's few statements each wait a fraction of a millisecond for
        PostgreSQL. In a worker thread every wait was a thread switch and a hand-over of
        the GIL, and under load the kernel's switching took a fifth of the process's CPU
        (perf, docs/performance.md). On the loop a wait is a coroutine giving way.
        """
        if not self.postgres:
            return None
        loop = asyncio.get_running_loop()
        if loop not in self._on_loops:
            engine = make_loop_engine(self.url, self.lock_timeout)
            self._on_loops[loop] = _LoopEngines(
                engine, engine.execution_options(isolation_level="AUTOCOMMIT")
            )
        return self._on_loops[loop].writes

    async def close_on_loop(self) -> None:
        """Close the running loop's engine and its connections (the lifespan's end)."""
        engines = self._on_loops.pop(asyncio.get_running_loop(), None)
        if engines is not None:
            await engines.writes.dispose()

    def _loop_engines(self) -> _LoopEngines | None:
        if not self._on_loops:
            return None
        return self._on_loops.get(asyncio.get_running_loop())

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like ``read_call``, never blocking the event loop: on it when the loop has an
        engine (``open_on_loop``), else in a worker thread (``run_in_thread``). For short
        reads: a function that computes for long belongs in ``run_in_thread``."""
        engines = self._loop_engines()
        if engines is None:
            return await self.run_in_thread(fn, *args, **kwargs)
        async with _loop_reads():
            return await _guarded_on_loop(engines.reads, ReadOnlySession, fn, args, kwargs)

    async def run_in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like ``read_call``, in a worker thread so that neither the database nor a long
        computation (a report) blocks the event loop; at most READ_THREADS at once per
        process (see there why)."""
        call = functools.partial(self.read_call, fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=_read_threads())

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like ``write_call``, never blocking the event loop: on it when the loop has an
        engine (``open_on_loop``), else in a worker thread (``write_in_thread``); at most
        WRITE_THREADS at once per process either way (see there why). For short
        transactions: one that computes for long belongs in ``write_in_thread``."""
        engines = self._loop_engines()
        if engines is None:
            return await self.write_in_thread(fn, *args, **kwargs)
        async with self._write_turn():
            return await _guarded_on_loop(engines.writes, Session, fn, args, kwargs)

    async def write_in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like ``write_call``, in a worker thread so that neither waiting for a lock nor a
        long computation (closing) blocks the event loop."""
        async with self._write_turn():
            call = functools.partial(self.write_call, fn, *args, **kwargs)
            return await anyio.to_thread.run_sync(call)

    @asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        """One of WRITE_THREADS places for a write, in either road."""
        threads = _write_threads()
        # A wait for a place is bounded like the waits for a connection and a lock: a
        # queue of writes longer than this is answered 503 (Busy), never left to grow.
        acquired = False
        with anyio.move_on_after(self.lock_timeout):
            await threads.acquire()
            acquired = True
        if not acquired:
            raise Busy()
        try:
            yield
        finally:
            threads.release()

    def dispose(self) -> None:
        """Close every pooled connection (the app's lifespan ends, or a test is done)."""
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()


# One limiter each per event loop, as anyio keeps its default one (a limiter belongs to a
# loop). Reads and writes have their own, so that a queue of votes never holds up a page.
_READ_THREADS: RunVar[anyio.CapacityLimiter] = RunVar("redline_read_threads")
_WRITE_THREADS: RunVar[anyio.CapacityLimiter] = RunVar("redline_write_threads")
_LOOP_READS: RunVar[anyio.CapacityLimiter] = RunVar("redline_loop_reads")


def _limiter(variable: RunVar[anyio.CapacityLimiter], size: int) -> anyio.CapacityLimiter:
    try:
        return variable.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(size)
        variable.set(limiter)
        return limiter


def _read_threads() -> anyio.CapacityLimiter:
    return _limiter(_READ_THREADS, READ_THREADS)


def _write_threads() -> anyio.CapacityLimiter:
    return _limiter(_WRITE_THREADS, WRITE_THREADS)


def _loop_reads() -> anyio.CapacityLimiter:
    return _limiter(_LOOP_READS, LOOP_READS)


class ReadOnlySession(Session):
    """A session that refuses to flush: what ``Database.read_session`` gives.

    Reading code that changed a loaded object (to show it differently, say) would
    otherwise write it at the next query's autoflush, and on PostgreSQL, where reads run
    outside a transaction, that write would stay. Raising makes the mistake loud.
    """


@event.listens_for(ReadOnlySession, "before_flush")
def _refuse_to_write(session: Session, _context: Any, _instances: Any) -> None:
    raise RuntimeError("a read session was asked to write: use Database.write/write_call")


_BESIDE = ThreadPoolExecutor(max_workers=BESIDE_THREADS, thread_name_prefix="redline-beside")


def read_beside(session: Session, fn: Callable[[Session], T]) -> Callable[[], T]:
    """Start ``fn`` on a connection of its own while the caller goes on; call what this
    returns for its result (or its exception).

    A long read made of independent statements (the report) then has PostgreSQL work on
    one while Python works on another's rows, rather than each waiting for the other.
    Only for a PostgreSQL read session: its statements run outside any transaction, each
    seeing the database as it is when it starts, so a statement on another connection
    sees what it would have seen here. Anywhere else (SQLite, whose read transaction is
    one snapshot that another connection would not share; a session that may have
    written something not yet committed) ``fn`` runs in ``session`` itself, at once.
    """
    bind = session.get_bind()
    if (
        not isinstance(session, ReadOnlySession)
        or bind.dialect.name != "postgresql"
        # An asyncio engine's connections can only be used from its own event loop.
        or bind.dialect.is_async
    ):
        return _ready(fn(session))

    def read() -> T:
        with ReadOnlySession(bind, expire_on_commit=False) as own:
            return fn(own)

    try:
        return _BESIDE.submit(read).result
    except RuntimeError:  # the interpreter is shutting down: no new threads
        return _ready(fn(session))


def _ready(value: T) -> Callable[[], T]:
    return lambda: value


class _LoopEngines(NamedTuple):
    writes: AsyncEngine
    reads: AsyncEngine  # the same pool, out of any transaction (see Database.__init__)


async def _guarded_on_loop(
    engine: AsyncEngine,
    session_class: type[Session],
    fn: Callable[..., T],
    args: tuple,
    kwargs: dict,
) -> T:
    """``_guarded`` on the event loop: ``fn`` gets a synchronous session of
    ``session_class`` whose statements are awaited in SQLAlchemy's greenlet."""
    with _busy_when_locked():
        async with AsyncSession(
            engine, sync_session_class=session_class, expire_on_commit=False
        ) as session:
            return await session.run_sync(fn, *args, **kwargs)


def _guarded(
    make_session: Callable[[], Session], fn: Callable[..., T], args: tuple, kwargs: dict
) -> T:
    with _busy_when_locked(), make_session() as session:
        return fn(session, *args, **kwargs)


@contextmanager
def _busy_when_locked() -> Iterator[None]:
    """A lock or connection not had in time (``is_busy``) becomes Busy; other errors pass.

    Wrapped around the session's own context manager, so by the time Busy is raised the
    session has rolled everything back: nothing half-done.
    """
    try:
        yield
    except (sa_exc.DBAPIError, sa_exc.TimeoutError, *DRIVER_ERRORS) as error:
        if is_busy(error):
            raise Busy() from error
        raise
