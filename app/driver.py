"""The DB-API connection under a session, one interface for blocking and asyncio drivers.

A few hot statements (app.vote_sql, app.precompiled, the rate-limit counts) run on the
driver's own connection, below SQLAlchemy. On PostgreSQL the web's requests run on the
event loop (app.db): their session's driver connection is psycopg's AsyncConnection,
whose methods are coroutines, while the code that uses it is synchronous and runs in
SQLAlchemy's greenlet (``AsyncSession.run_sync``). ``driver_connection`` hides the
difference: on the event loop each call awaits the coroutine through that greenlet, as
SQLAlchemy's own adapter does for every statement it runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.util import await_


class AwaitingCursor:
    """A psycopg AsyncCursor driven from synchronous code in SQLAlchemy's greenlet."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: psycopg.AsyncCursor) -> None:
        self._cursor = cursor

    def execute(self, statement: str, parameters: Any = None, **options: Any) -> AwaitingCursor:
        await_(self._cursor.execute(statement, parameters, **options))
        return self

    def fetchone(self) -> tuple | None:
        return await_(self._cursor.fetchone())

    def fetchall(self) -> list[tuple]:
        return await_(self._cursor.fetchall())

    def close(self) -> None:
        await_(self._cursor.close())


class AwaitingConnection:
    """A psycopg AsyncConnection with the blocking Connection's methods that Redline uses."""

    __slots__ = ("_connection",)

    def __init__(self, connection: psycopg.AsyncConnection) -> None:
        self._connection = connection

    def cursor(self) -> AwaitingCursor:
        return AwaitingCursor(self._connection.cursor())

    def commit(self) -> None:
        await_(self._connection.commit())

    def rollback(self) -> None:
        await_(self._connection.rollback())

    @contextmanager
    def pipeline(self) -> Iterator[Any]:
        """Statements run inside are sent together (psycopg's pipeline mode), as on the
        blocking connection: their rows can be read once the block is left."""
        manager = self._connection.pipeline()
        pipeline = await_(manager.__aenter__())
        try:
            yield pipeline
        except BaseException as error:
            if not await_(manager.__aexit__(type(error), error, error.__traceback__)):
                raise
        else:
            await_(manager.__aexit__(None, None, None))


def driver_connection(connection: Connection) -> Any:
    """The driver's connection under ``connection`` (a session's: ``session.connection()``,
    which begins its transaction), with blocking methods whichever driver it is: sqlite3's
    or psycopg's Connection as they are, psycopg's AsyncConnection wrapped."""
    driver = connection.connection.driver_connection
    if isinstance(driver, psycopg.AsyncConnection):
        return AwaitingConnection(driver)
    return driver
