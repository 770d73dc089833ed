"""The Alembic migrations and the SQLModel tables agree, on both engines."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select

from app.db import Database
from app.models import Vote
from app.seeding import seed
from tests.conftest import SEED_DIR


def test_no_pending_autogenerate_diff(database: Database):
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_one_vote_per_user_per_amendment_is_a_database_constraint(database: Database):
    database.call(seed, SEED_DIR, True)
    with Session(database.engine) as session:
        existing = session.exec(select(Vote)).first()
        session.add(
            Vote(amendment_id=existing.amendment_id, user_id=existing.user_id, stance="oppose")
        )
        with pytest.raises(IntegrityError):
            session.commit()


def test_a_stance_other_than_support_or_oppose_is_refused_by_the_database(database: Database):
    database.call(seed, SEED_DIR, True)
    with Session(database.engine) as session:
        existing = session.exec(select(Vote)).first()
        existing.stance = "maybe"
        with pytest.raises(IntegrityError):
            session.commit()


def test_seeding_twice_adds_nothing(database: Database):
    first = database.call(seed, SEED_DIR, True)
    second = database.call(seed, SEED_DIR, True)
    assert first.consultations == 1 and first.amendments > 0 and first.votes > 0
    assert (second.organisations, second.consultations, second.amendments, second.votes) == (
        0,
        0,
        0,
        0,
    )


def test_upgrading_a_database_with_data_keeps_it(database_url):
    # From the schema before the organiser workflow, with a consultation in it.
    from sqlalchemy import text

    from app.db import make_engine, migrate
    from tests.conftest import empty_database

    engine = make_engine(database_url)
    with engine.begin() as connection:
        for table in ("audit_entry", "amendment_flag"):
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
        if connection.dialect.name == "postgresql":
            connection.execute(text("DROP FUNCTION IF EXISTS audit_entry_append_only() CASCADE"))
        for column in ("ballot_key", "closed_at", "published_at", "ballots_sha256"):
            connection.execute(text(f"ALTER TABLE consultation DROP COLUMN {column}"))
        connection.execute(text("UPDATE alembic_version SET version_num = '0002'"))
        connection.execute(
            text(
                "INSERT INTO consultation"
                " (slug, title, summary, status, eligible_domains, created_at)"
                " VALUES ('old', 'Old', '', 'open', '*.gov.uk', CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
    migrate(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        keys = connection.execute(text("SELECT slug, ballot_key FROM consultation")).all()
    engine.dispose()
    assert [(slug, len(key)) for slug, key in keys] == [("old", 64)]
    empty_database(database_url)
