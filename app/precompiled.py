"""Core SELECTs compiled once per dialect and run on the DB-API cursor of a session.

Why: the clause page, the most read page, runs three statements per view, and profiled
on PostgreSQL SQLAlchemy's execution of them (cache-key lookup, parameter processing,
result metadata, Row objects, ORM loading) cost more CPU than the driver and the
database together. The statements stay SQLAlchemy Core selects, the one place their SQL
is written; this compiles each once per dialect (and per length of its one expanding
IN list), runs the SQL on the cursor of the connection the session holds, and converts
the values that SQLAlchemy's column types convert (aware datetimes, SQLite's booleans
and datetimes) with those same types' processors, so that what is read here is what
SQLAlchemy would have read, as plain tuples. On PostgreSQL the statements are psycopg
prepared statements (app.db: reads outside a transaction keep them).

Parameters are plain integers and strings, bound as the driver binds them (no column
type here processes a bound value).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Select
from sqlmodel import Session

from app.driver import driver_connection

# (position, converter) of each column of a row whose values SQLAlchemy converts as read.
Converting = tuple[tuple[int, Callable[[Any], Any]], ...]


def converting(columns: Iterable[ColumnElement], dialect: Dialect) -> Converting:
    """Where in a row of these columns SQLAlchemy converts values as read, and with what."""
    processors = (
        column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
    )
    return tuple((at, convert) for at, convert in enumerate(processors) if convert is not None)


def converted(row: Sequence[Any], how: Converting) -> tuple:
    """``row`` with its values converted as ``how`` says (``converting``)."""
    if not how:
        return tuple(row)
    values = list(row)
    for at, convert in how:
        values[at] = convert(values[at])
    return tuple(values)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # The statement's own parameters (literal values it was built with, such as the
    # statuses of an IN list), under the names the SQL uses.
    fixed: Mapping[str, Any]
    # The order of the SQL's placeholders (a positional dialect), or None (named).
    order: tuple[str, ...] | None
    width: int  # columns per row
    converting: Converting
    prepare: bool


class Precompiled:
    """One Core SELECT, run as ``rows(session, parameters)``.

    ``expanding`` names its bind parameter that takes a list (``IN``), if it has one.
    """

    def __init__(self, statement: Select, expanding: str | None = None) -> None:
        self.statement = statement
        self.expanding = expanding
        self._compiled: dict[tuple[str, int], _Compiled] = {}

    def rows(self, session: Session, parameters: Mapping[str, Any]) -> list[tuple]:
        """The statement's rows for these parameters, converted as SQLAlchemy converts them."""
        connection = session.connection()
        dialect = connection.dialect
        size = len(parameters[self.expanding]) if self.expanding else 0
        compiled = self._compiled.get((dialect.name, size))
        if compiled is None:
            compiled = self._compiled[dialect.name, size] = self._compile(dialect, parameters, size)
        values = self._values(compiled, parameters)
        cursor = driver_connection(connection).cursor()
        try:
            if compiled.prepare:
                cursor.execute(compiled.sql, values, prepare=True)
            else:
                cursor.execute(compiled.sql, values)
            rows = cursor.fetchall()
        finally:
            cursor.close()
        if rows and len(rows[0]) != compiled.width:  # the converters' places would be wrong
            raise RuntimeError(f"expected {compiled.width} columns: {compiled.sql!r}")
        if not compiled.converting:
            return rows
        return [converted(row, compiled.converting) for row in rows]

    def _values(
        self, compiled: _Compiled, parameters: Mapping[str, Any]
    ) -> dict[str, Any] | Sequence[Any]:
        values = dict(compiled.fixed)
        for name, value in parameters.items():
            if name == self.expanding:
                # SQLAlchemy's names for an expanded list: ids -> ids_1, ids_2, ...
                values.update({f"{name}_{n}": item for n, item in enumerate(value, start=1)})
            else:
                values[name] = value
        if compiled.order is None:
            return values
        return [values[name] for name in compiled.order]

    def _compile(self, dialect: Dialect, parameters: Mapping[str, Any], size: int) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        state = compiled.construct_expanded_state(dict(parameters))
        given = set(parameters) - {self.expanding}
        expanded = {f"{self.expanding}_{n}" for n in range(1, size + 1)}
        fixed = {
            name: value
            for name, value in state.parameters.items()
            if name not in given and name not in expanded
        }
        made = _Compiled(
            sql=state.statement,
            fixed=fixed,
            order=tuple(state.positiontup) if state.positiontup is not None else None,
            width=len(self.statement.selected_columns),
            converting=converting(self.statement.selected_columns, dialect),
            prepare=dialect.name == "postgresql",
        )
        # The parameters made here must be the ones SQLAlchemy makes (its naming of an
        # expanded list is not a documented promise): checked once per shape.
        expected = state.parameters
        if made.order is not None:
            expected = [state.parameters[name] for name in state.positiontup]
        if self._values(made, parameters) != expected:
            raise RuntimeError(f"cannot run this statement on the cursor: {state.statement!r}")
        return made


def models_of(row: Sequence[Any], models: Sequence[type]) -> list[Any]:
    """The table models whose columns (all, in table order) follow each other in ``row``
    from its start: each built from its values without validation, as the ORM builds what
    it loads (what was read is what was stored); None where the id is NULL (an outer join
    found nothing)."""
    made, start = [], 0
    for model in models:
        names = _column_names(model)
        values = dict(zip(names, row[start : start + len(names)], strict=True))
        start += len(names)
        made.append(None if values["id"] is None else model.model_construct(**values))
    return made


@cache
def _column_names(model: type) -> tuple[str, ...]:
    return tuple(column.name for column in model.__table__.columns)  # type: ignore[attr-defined]
