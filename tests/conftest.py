"""Fixtures: real databases (an SQLite file and PostgreSQL), the real app, seeded data.

PostgreSQL tests run against REDLINE_TEST_POSTGRES_URL (default: the local server
at 127.0.0.1:5432). Where none is reachable they skip and say why, unless CI=true,
where they fail: CI must prove both engines.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, SQLModel
from starlette.testclient import TestClient

from app.db import Database, migrate
from app.main import create_app
from app.seeding import seed
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SEED_DIR = ROOT / "seed"
POSTGRES_ADMIN_URL = os.environ.get(
    "REDLINE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def postgres_unavailable_reason() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when they can."""
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # any failure to connect means: not available here
        return f"no PostgreSQL at {make_url(POSTGRES_ADMIN_URL).render_as_string()}: {error}"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped afterwards."""
    reason = postgres_unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"PostgreSQL is mandatory under CI=true, but {reason}")
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    name = f"redline_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'redline-test.db'}"


@pytest.fixture(scope="session")
def migrated(request: pytest.FixtureRequest) -> dict[str, str]:
    """Engines whose schema has been migrated once per session, by name."""
    return {}


ENGINES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, migrated: dict[str, str]) -> str:
    """A migrated database on each engine, emptied before every test."""
    engine_name = request.param
    url = request.getfixturevalue("sqlite_url" if engine_name == "sqlite" else "postgres_url")
    if engine_name not in migrated:
        migrate(url)
        migrated[engine_name] = url
    empty_database(url)
    return url


def empty_database(url: str) -> None:
    """Delete every row, children first, keeping the migrated schema."""
    database = Database(url)
    with Session(database.engine) as session:
        for table in reversed(SQLModel.metadata.sorted_tables):
            session.execute(table.delete())
        session.commit()
    database.dispose()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def seeded(database: Database) -> Database:
    """The seed consultation with the demo personas, amendments and votes."""
    database.call(seed, SEED_DIR, True)
    return database


def settings_for(url: str, **overrides) -> Settings:
    values = {
        "database_url": url,
        "secret_key": "test-secret-key-long-enough-for-signing",
        "demo": url.startswith("sqlite"),
        "seed_dir": SEED_DIR,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def sqlite_seeded(sqlite_url: str, migrated: dict[str, str]) -> Iterator[Database]:
    """The seeded SQLite database alone, for what exists only on the embedded engine."""
    if "sqlite" not in migrated:
        migrate(sqlite_url)
        migrated["sqlite"] = sqlite_url
    empty_database(sqlite_url)
    database = Database(sqlite_url)
    database.call(seed, SEED_DIR, True)
    yield database
    database.dispose()


@pytest.fixture
def client(seeded: Database) -> Iterator[TestClient]:
    """The real app on the seeded database, through Starlette's test client."""
    app = create_app(settings_for(seeded.url))
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client
