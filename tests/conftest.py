"""Fixtures: real databases (an SQLite file and PostgreSQL), the real app, seeded data.

Every test gets a database of its own, freshly migrated, rather than a shared one
emptied between tests: the audit log refuses DELETE, as it must. Migrating once per
session into a template keeps that cheap: on SQLite each test copies the migrated
file; on PostgreSQL each test's database is ``CREATE DATABASE ... TEMPLATE`` of the
migrated one, dropped afterwards. Tests that start from the seed (``seeded``,
``client``, ``sqlite_seeded``) copy a template that was seeded once, the same way.

PostgreSQL tests run against REDLINE_TEST_POSTGRES_URL (default: the local server
at 127.0.0.1:5432). Where none is reachable they skip and say why, unless CI=true,
where they fail: CI must prove both engines.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from app.db import Database, migrate
from app.main import create_app
from app.seeding import seed
from app.settings import OidcProvider, Settings

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


_POSTGRES_REASON: list[str | None] = []


def require_postgres() -> None:
    """Skip the test (fail it under CI=true) when there is no PostgreSQL to run it on."""
    if not _POSTGRES_REASON:
        # Asked once per session: an unreachable host costs a connect timeout each time.
        _POSTGRES_REASON.append(postgres_unavailable_reason())
    reason = _POSTGRES_REASON[0]
    if reason:
        if IN_CI:
            pytest.fail(f"PostgreSQL is mandatory under CI=true, but {reason}")
        pytest.skip(f"PostgreSQL tests skipped: {reason}")


def postgres_url_of(name: str) -> str:
    """The URL of database ``name`` on the test PostgreSQL server."""
    return make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


@contextmanager
def postgres_admin() -> Iterator:
    """A connection to the server's maintenance database, outside any transaction."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            yield connection
    finally:
        admin.dispose()


class Templates:
    """Migrated-once databases that each test's fresh database is copied from.

    ``migrate`` runs once per engine per test session, the first time a test needs
    that engine, so a migration added since the last session is always applied.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.sqlite: Path | None = None
        self.postgres: str | None = None
        self.seeded: dict[str, str] = {}
        self.made: list[str] = []

    def sqlite_template(self) -> Path:
        """The migrated SQLite file."""
        if self.sqlite is None:
            path = self.directory / "template.db"
            migrate(f"sqlite:///{path}")
            self.sqlite = path
        return self.sqlite

    def postgres_template(self) -> str:
        """The name of the migrated PostgreSQL template database."""
        if self.postgres is None:
            self.postgres = self.new_postgres_database()
            migrate(postgres_url_of(self.postgres))
        return self.postgres

    def url(self, engine_name: str) -> str:
        """The URL of the migrated template of ``engine_name``."""
        if engine_name == "sqlite":
            return f"sqlite:///{self.sqlite_template()}"
        return postgres_url_of(self.postgres_template())

    def seeded_url(self, engine_name: str) -> str:
        """The URL of a copy of the migrated template with the seed and demo data loaded.

        Seeding takes longer than copying a database, and most tests start from the
        seed: it is loaded once per engine per session and copied like the template.
        """
        if engine_name not in self.seeded:
            if engine_name == "sqlite":
                path = self.directory / "seeded.db"
                shutil.copyfile(self.sqlite_template(), path)
                url = f"sqlite:///{path}"
            else:
                url = postgres_url_of(self.new_postgres_database(self.postgres_template()))
            database = Database(url)
            database.write_call(seed, SEED_DIR, True)
            database.dispose()
            self.seeded[engine_name] = url
        return self.seeded[engine_name]

    def new_postgres_database(self, template: str | None = None) -> str:
        """Create an empty database (or a copy of ``template``) dropped at the session's end."""
        require_postgres()
        name = f"redline_template_{uuid.uuid4().hex[:10]}"
        clause = f' TEMPLATE "{template}"' if template else ""
        with postgres_admin() as admin:
            admin.execute(text(f'CREATE DATABASE "{name}"{clause}'))
        # Recorded before anything else can fail, so that it is always dropped.
        self.made.append(name)
        return name

    def drop(self) -> None:
        """Drop every PostgreSQL database made for the session."""
        if self.made:
            with postgres_admin() as admin:
                for name in self.made:
                    admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            self.made.clear()


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    """The session's migrated templates (see ``Templates``); dropped at the end."""
    templates = Templates(tmp_path_factory.mktemp("templates"))
    yield templates
    templates.drop()


@contextmanager
def database_copy(source_url: str, directory: Path) -> Iterator[str]:
    """A copy of the database at ``source_url``; yields its URL.

    SQLite: the file (checkpointed first, so that it holds everything) copied into
    ``directory`` under a new name, left for pytest to clean up with the directory.
    PostgreSQL: ``CREATE DATABASE ... TEMPLATE``, dropped afterwards even if a server
    still holds connections. Nothing may be connected to the source.
    """
    if source_url.startswith("sqlite"):
        source = Path(make_url(source_url).database or "")
        connection = sqlite3.connect(source)
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()
        # A name of its own: one test may hold several (say sqlite_seeded and database_url).
        path = directory / f"redline-test-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(source, path)
        yield f"sqlite:///{path}"
        return
    template = make_url(source_url).database
    name = f"redline_test_{uuid.uuid4().hex[:10]}"
    with postgres_admin() as admin:
        admin.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield postgres_url_of(name)
    finally:
        with postgres_admin() as admin:
            admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def fresh_database(engine_name: str, migrated: Templates, directory: Path) -> Iterator[str]:
    """A new, migrated, empty database on ``engine_name``; yields its URL, then removes it."""
    with database_copy(migrated.url(engine_name), directory) as url:
        yield url


ENGINES = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


# URLs of this session's test databases that were copied from the seeded template.
_SEEDED_COPIES: set[str] = set()


@pytest.fixture(params=ENGINES)
def database_url(
    request: pytest.FixtureRequest, migrated: Templates, tmp_path: Path
) -> Iterator[str]:
    """A fresh migrated database of this test's own, on each engine.

    For a test that uses ``seeded`` (or ``client``) it is a copy of the seeded template,
    so that ``seeded`` need not load the seed again.
    """
    wants_seed = "seeded" in request.fixturenames
    source = migrated.seeded_url(request.param) if wants_seed else migrated.url(request.param)
    with database_copy(source, tmp_path) as url:
        if wants_seed:
            _SEEDED_COPIES.add(url)
        try:
            yield url
        finally:
            _SEEDED_COPIES.discard(url)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An address for an SQLite file (not created) that a test may use as it likes."""
    return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'redline-test.db'}"


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """The app's Database handle on this test's fresh database."""
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def seeded(database: Database) -> Database:
    """The seed consultation with the demo personas, amendments and votes."""
    if database.url not in _SEEDED_COPIES:
        # Asked for late (request.getfixturevalue): the database is still empty.
        database.write_call(seed, SEED_DIR, True)
    return database


# Outside demo mode Redline refuses to start without an identity provider (app.startup).
# Tests that sign people in by cookie name this one, which is never contacted.
PLACEHOLDER_PROVIDER = OidcProvider(
    name="work",
    issuer="https://login.example.invalid",
    client_id="redline-test",
    client_secret="never-used",
    label="a test identity provider",
)


def settings_for(url: str, **overrides) -> Settings:
    """Settings for an app under test on ``url`` (demo mode on SQLite, a fixed secret).

    Outside demo mode, with no provider given, the placeholder provider is configured.
    """
    values = {
        "database_url": url,
        "secret_key": "test-secret-key-long-enough-for-signing",
        "demo": url.startswith("sqlite"),
        "seed_dir": SEED_DIR,
    }
    values.update(overrides)
    if not (values["demo"] and url.startswith("sqlite")) and not values.get("oidc_providers"):
        values["oidc_providers"] = (PLACEHOLDER_PROVIDER,)
    return Settings(**values)


@pytest.fixture
def sqlite_seeded(migrated: Templates, tmp_path: Path) -> Iterator[Database]:
    """A seeded SQLite database alone, for what exists only on the embedded engine."""
    with database_copy(migrated.seeded_url("sqlite"), tmp_path) as url:
        database = Database(url)
        yield database
        database.dispose()


@pytest.fixture
def client(seeded: Database) -> Iterator[TestClient]:
    """The real app on the seeded database, through Starlette's test client."""
    app = create_app(settings_for(seeded.url))
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client
