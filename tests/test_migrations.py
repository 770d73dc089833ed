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
