"""Statements run on the DB-API cursor (app.precompiled) read what SQLAlchemy reads."""

from __future__ import annotations

from datetime import datetime

import anyio
from sqlmodel import select

from app import queries, shuffle
from app.db import Database
from app.models import Amendment, Clause, Consultation
from app.precompiled import models_of


def through_sqlalchemy(session, statement, parameters) -> list[tuple]:
    return [tuple(row) for row in session.connection().execute(statement, parameters).all()]


def on_the_loop(database: Database, fn):
    """``fn`` run as the web runs it: on PostgreSQL, on the event loop's asyncio connection."""

    async def main():
        await database.open_on_loop()
        try:
            return await database.run(fn)
        finally:
            await database.close_on_loop()

    return anyio.run(main)


def test_the_clause_page_statements_read_what_sqlalchemy_reads(seeded: Database):
    with seeded.session() as session:
        amendments = session.exec(select(Amendment).order_by(Amendment.id)).all()
        clause = session.get(Clause, amendments[0].clause_id)
        consultation = session.get(Consultation, clause.consultation_id)
    ids = [a.id for a in amendments]
    viewer = amendments[0].author_id
    cases = [
        (queries._IDS[False, "all"], {"clause_id": clause.id}),
        (queries._IDS[True, "newest"], {"clause_id": clause.id, "viewer_id": viewer, "offset": 0}),
        (
            queries._IDS[False, "shuffled"],
            {"clause_id": clause.id, "offset": 0, **shuffle.coefficients("a visitor")._asdict()},
        ),
        (queries._CLAUSE_AND_NEIGHBOURS, {"slug": consultation.slug, "number": clause.number}),
        (queries._CLAUSE_AND_NEIGHBOURS, {"slug": consultation.slug, "number": "999"}),
    ]
    # Lists of several lengths: each is compiled apart (one placeholder per id).
    for size in (1, 2, len(ids)):
        cases.append((queries._ROWS[False], {"ids": ids[:size]}))
        cases.append((queries._ROWS[True], {"ids": ids[-size:], "viewer_id": viewer}))

    def loop_read(fn):
        return on_the_loop(seeded, fn)

    for reads in (seeded.read_call, seeded.call, loop_read):
        for precompiled, parameters in cases:

            def both(session, precompiled=precompiled, parameters=parameters):
                return (
                    precompiled.rows(session, parameters),
                    through_sqlalchemy(session, precompiled.statement, parameters),
                )

            ours, theirs = reads(both)
            assert ours == theirs, precompiled.statement
            assert ours or parameters.get("number") == "999"
    # Times come back as SQLAlchemy gives them (aware, on SQLite too), as do booleans.
    row = seeded.read_call(lambda s: queries._ROWS[False].rows(s, {"ids": ids[:1]}))[0]
    created = row[[c.name for c in Amendment.__table__.columns].index("created_at")]
    assert isinstance(created, datetime) and created.tzinfo is not None


def test_models_are_built_from_their_columns_and_none_for_a_missing_one(seeded: Database):
    with seeded.session() as session:
        clause = session.exec(select(Clause)).first()
        consultation = session.get(Consultation, clause.consultation_id)
        slug = consultation.slug
    rows = seeded.read_call(
        lambda s: queries._CLAUSE_AND_NEIGHBOURS.rows(s, {"slug": slug, "number": clause.number})
    )
    read, found, _version = models_of(rows[0], queries._CLAUSE_ENTITIES)
    assert read == consultation and found == clause
    rows = seeded.read_call(
        lambda s: queries._CLAUSE_AND_NEIGHBOURS.rows(s, {"slug": slug, "number": "999"})
    )
    assert models_of(rows[0], queries._CLAUSE_ENTITIES)[1:] == [None, None]
