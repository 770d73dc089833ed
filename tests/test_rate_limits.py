"""Rate limits on sign-in, proposing, reporting and voting (issue 12), on both engines.

Limits are counted in PostgreSQL (shared by every process on it), in each process's
memory on the embedded SQLite default, and in Redis when REDLINE_REDIS_URL is set;
PostgreSQL and Redis are shown shared by two app instances, and the database storage
itself is tested on both engines (the memory storage on its own).
Redis tests use 127.0.0.1:6379 (REDLINE_TEST_REDIS_URL) and skip where there is none,
unless CI=true, where they fail.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from app.db import Database
from app.main import create_app
from app.models import Amendment, AmendmentFlag, Clause, User, Vote
from app.rate_limit_rules import DEFAULT_RATE_LIMITS
from app.rate_limit_store import DatabaseStorage, MemoryStorage
from app.settings import Settings, SettingsError
from tests.conftest import IN_CI, Templates, database_copy, settings_for
from tests.utils.sessions import force_login

SLUG = "social-media-guidance"
VOTER = "amira.shah@hmrc.gov.uk"
OTHER = "dan.price@cabinetoffice.gov.uk"
REDIS_URL = os.environ.get("REDLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
OFF = dict.fromkeys(DEFAULT_RATE_LIMITS, "off")


def limits(**chosen: str) -> dict[str, str]:
    """Every limit off except those chosen (so that each test sees one limit at work)."""
    return {**OFF, **chosen}


def user_id(database: Database, email: str) -> int:
    return database.call(lambda s: s.exec(select(User.id).where(User.email == email)).one())


def open_amendments(database: Database) -> list[int]:
    """Open amendments that neither VOTER nor OTHER wrote, on clauses of the open consultation."""
    authors = [user_id(database, VOTER), user_id(database, OTHER)]

    def find(session):
        return session.exec(
            select(Amendment.id)
            .join(Clause, Clause.id == Amendment.clause_id)
            .where(Amendment.status == "open", Amendment.author_id.not_in(authors))
            .order_by(Amendment.id)
        ).all()

    return database.call(find)


def votes_of(database: Database, email: str) -> dict[int, str]:
    voter = user_id(database, email)
    rows = database.call(
        lambda s: s.exec(select(Vote.amendment_id, Vote.stance).where(Vote.user_id == voter)).all()
    )
    return dict(rows)


def client_for(app, database: Database, email: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    client.csrf = force_login(client, user_id(database, email))
    return client


def vote(client: TestClient, amendment: int, htmx: bool = False):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(
        f"/amendments/{amendment}/vote",
        data={"stance": "support", "csrf_token": client.csrf},
        headers=headers,
    )


def assert_too_many(response, htmx: bool = False) -> None:
    assert response.status_code == 429, response.text[:300]
    assert 1 <= int(response.headers["retry-after"]) <= 3600
    assert "Too many requests" in response.text
    assert "Nothing from this request has been saved" in response.text
    assert ("<html" in response.text) is not htmx


# Settings


def test_limits_come_from_the_environment_with_generous_defaults():
    base = {"REDLINE_DEMO": "1", "REDLINE_DATABASE_URL": "sqlite://"}
    settings = Settings.from_env(base)
    assert settings.rate_limits == DEFAULT_RATE_LIMITS
    assert settings.redis_url == ""
    chosen = Settings.from_env(
        {
            **base,
            "REDLINE_RATE_LIMIT_VOTES": "5/minute",
            "REDLINE_RATE_LIMIT_SIGN_IN_PER_ADDRESS": "off",
            "REDLINE_REDIS_URL": "redis://cache.internal:6379/2",
        }
    )
    assert chosen.rate_limits["votes"] == "5/minute"
    assert chosen.rate_limits["sign_in_per_address"] == "off"
    assert chosen.redis_url == "redis://cache.internal:6379/2"


@pytest.mark.parametrize(
    "variable,value",
    [
        ("REDLINE_RATE_LIMIT_VOTES", "lots"),
        ("REDLINE_RATE_LIMIT_PROPOSALS_PER_ADDRESS", "10 per fortnight"),
        ("REDLINE_REDIS_URL", "http://cache.internal"),
    ],
)
def test_a_bad_limit_setting_fails_at_start_naming_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(
            {"REDLINE_DEMO": "1", "REDLINE_DATABASE_URL": "sqlite://", variable: value}
        )


# Each limited action, counted in the database (both engines)


def test_votes_over_the_per_person_limit_get_429_and_change_nothing(seeded):
    app = create_app(settings_for(seeded.url, rate_limits=limits(votes="3/minute")))
    amendments = open_amendments(seeded)
    voter = client_for(app, seeded, VOTER)
    for amendment in amendments[:3]:
        assert vote(voter, amendment).status_code == 303
    before = votes_of(seeded, VOTER)
    assert_too_many(vote(voter, amendments[3]))
    assert_too_many(vote(voter, amendments[3], htmx=True), htmx=True)
    assert votes_of(seeded, VOTER) == before
    # The limit is per person: someone else still votes.
    assert vote(client_for(app, seeded, OTHER), amendments[3]).status_code == 303


def test_every_vote_post_counts_whatever_becomes_of_it(seeded):
    """On PostgreSQL a vote's count is made in the vote's own worker-thread call: posts that
    fail before it (a forged token, a bad stance) or in it (a refusal) count all the same,
    and over the limit any of them is a 429, as if counted first."""
    app = create_app(settings_for(seeded.url, rate_limits=limits(votes="4/minute")))
    amendments = open_amendments(seeded)
    voter = client_for(app, seeded, VOTER)
    path = f"/amendments/{amendments[0]}/vote"
    forged = voter.post(path, data={"stance": "support", "csrf_token": "forged"})
    assert forged.status_code == 403
    bad = voter.post(path, data={"stance": "maybe", "csrf_token": voter.csrf})
    assert bad.status_code == 400
    missing = voter.post(
        "/amendments/999999/vote", data={"stance": "support", "csrf_token": voter.csrf}
    )
    assert missing.status_code == 404
    assert vote(voter, amendments[0]).status_code == 303
    before = votes_of(seeded, VOTER)
    assert_too_many(voter.post(path, data={"stance": "oppose", "csrf_token": "forged"}))
    assert_too_many(vote(voter, amendments[1], htmx=True), htmx=True)
    assert votes_of(seeded, VOTER) == before


def test_votes_over_the_per_address_limit_are_refused_whoever_sends_them(seeded):
    app = create_app(settings_for(seeded.url, rate_limits=limits(votes_per_address="2/minute")))
    amendment = open_amendments(seeded)[0]
    assert vote(client_for(app, seeded, VOTER), amendment).status_code == 303
    assert vote(client_for(app, seeded, OTHER), amendment).status_code == 303
    third = client_for(app, seeded, "carys.llewellyn@england.nhs.uk")
    assert_too_many(vote(third, amendment))


def test_proposing_is_limited(seeded):
    app = create_app(settings_for(seeded.url, rate_limits=limits(proposals="1/minute")))
    author = client_for(app, seeded, VOTER)
    path = f"/consultations/{SLUG}/clauses/4/amend"
    form = {
        "kind": "change",
        "text": "Answer replies within two working days.",
        "rationale": "People expect a reply sooner than that.",
        "csrf_token": author.csrf,
    }
    assert author.post(path, data=form).status_code == 303
    count = seeded.call(lambda s: len(s.exec(select(Amendment.id)).all()))
    assert_too_many(author.post(path, data={**form, "text": "Another wording entirely."}))
    assert seeded.call(lambda s: len(s.exec(select(Amendment.id)).all())) == count


def test_reporting_is_limited_and_bad_security_tokens_count_too(seeded):
    app = create_app(settings_for(seeded.url, rate_limits=limits(reports="2/minute")))
    reporter = client_for(app, seeded, VOTER)
    amendment = open_amendments(seeded)[0]
    path = f"/amendments/{amendment}/flag"
    # A forged post is refused for its token, and still counts against the sender.
    assert reporter.post(path, data={"reason": "Spam", "csrf_token": "forged"}).status_code == 403
    assert (
        reporter.post(path, data={"reason": "It is spam.", "csrf_token": reporter.csrf}).status_code
        == 303
    )
    flags = seeded.call(lambda s: len(s.exec(select(AmendmentFlag.id)).all()))
    assert_too_many(reporter.post(path, data={"reason": "Again.", "csrf_token": reporter.csrf}))
    assert seeded.call(lambda s: len(s.exec(select(AmendmentFlag.id)).all())) == flags


def test_starting_a_provider_sign_in_is_limited_per_address(seeded):
    app = create_app(settings_for(seeded.url, rate_limits=limits(sign_in_per_address="2/minute")))
    with TestClient(app, follow_redirects=False) as client:
        # No provider is configured: a 404, counted all the same (an address probing).
        assert client.get("/auth/nowhere/login").status_code == 404
        assert client.get("/auth/nowhere/login").status_code == 404
        assert_too_many(client.get("/auth/nowhere/login"))


def test_demo_sign_in_is_limited_per_persona(sqlite_seeded):
    app = create_app(settings_for(sqlite_seeded.url, rate_limits=limits(sign_in="2/minute")))
    for attempt in range(3):
        with TestClient(app, follow_redirects=False) as client:
            page = client.get("/sign-in").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            response = client.post(
                "/sign-in/demo", data={"persona": "amira", "next": "/", "csrf_token": token}
            )
            if attempt < 2:
                assert response.status_code == 303
            else:
                assert_too_many(response)


def test_two_app_instances_share_the_count_on_postgresql_not_on_embedded_sqlite(seeded):
    settings = settings_for(seeded.url, rate_limits=limits(votes="2/minute"))
    first, second = create_app(settings), create_app(settings)
    amendments = open_amendments(seeded)
    assert vote(client_for(first, seeded, VOTER), amendments[0]).status_code == 303
    assert vote(client_for(second, seeded, VOTER), amendments[1]).status_code == 303
    if seeded.url.startswith("sqlite"):
        # Documented: the embedded default counts in each process (README, security.md).
        assert vote(client_for(first, seeded, VOTER), amendments[2]).status_code == 303
        assert_too_many(vote(client_for(first, seeded, VOTER), amendments[3]))
    else:
        assert_too_many(vote(client_for(first, seeded, VOTER), amendments[2]))
        assert_too_many(vote(client_for(second, seeded, VOTER), amendments[2]))


# The database storage itself, on both engines


def test_the_database_storage_counts_windows_and_forgets_them(database):
    storage = DatabaseStorage(database)
    assert storage.check()
    assert storage.get("votes/user/1") == 0
    assert [storage.incr("votes/user/1", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.get("votes/user/1") == 3
    assert 55 < storage.get_expiry("votes/user/1") - time.time() <= 60
    assert storage.incr_many([("votes/user/1", 60, 1), ("votes/address/a", 60, 1)]) == [4, 1]
    storage.clear("votes/user/1")
    assert storage.get("votes/user/1") == 0
    # A window that has ended starts again from the next hit.
    assert storage.incr("short", 1) == 1 and storage.incr("short", 1) == 2
    time.sleep(1.1)
    assert storage.get("short") == 0
    assert storage.incr("short", 1) == 1
    assert storage.reset() == 2


def test_the_memory_storage_counts_windows_and_forgets_them(monkeypatch):
    storage = MemoryStorage()
    assert storage.check()
    assert storage.get("votes/user/1") == 0
    assert [storage.incr("votes/user/1", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.get("votes/user/1") == 3
    assert 55 < storage.get_expiry("votes/user/1") - time.time() <= 60
    storage.clear("votes/user/1")
    assert storage.get("votes/user/1") == 0
    # A window that has ended starts again from the next hit, and is swept in passing.
    assert storage.incr("short", 1) == 1 and storage.incr("short", 1) == 2
    time.sleep(1.1)
    assert storage.get("short") == 0
    monkeypatch.setattr("app.rate_limit_store.SWEEP_ONE_IN", 1)
    assert storage.incr("other", 60) == 1
    assert storage.reset() == 1  # "short" was swept


def test_the_memory_storage_counts_every_hit_from_many_threads():
    storage = MemoryStorage()
    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(lambda _: storage.incr("burst", 60), range(160)))
    assert sorted(seen) == list(range(1, 161))


def test_the_database_storage_counts_every_hit_from_many_threads(database):
    storage = DatabaseStorage(database)

    def hit_ten_times():
        return [storage.incr_many([("burst", 60, 1)])[0] for _ in range(10)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = [n for hits in pool.map(lambda _: hit_ten_times(), range(16)) for n in hits]
    # Atomic upserts: every count from 1 to 160 handed out exactly once.
    assert sorted(seen) == list(range(1, 161))
    assert storage.get("burst") == 160


def test_defaults_let_a_person_vote_on_every_amendment_of_a_clause(seeded):
    app = create_app(settings_for(seeded.url))
    voter = client_for(app, seeded, VOTER)
    for amendment in open_amendments(seeded):
        assert vote(voter, amendment).status_code == 303


def test_a_storage_that_fails_lets_requests_through(seeded, caplog):
    # Nothing listens on port 1: every count fails, and voting must not.
    app = create_app(
        settings_for(
            seeded.url, rate_limits=limits(votes="1/minute"), redis_url="redis://127.0.0.1:1"
        )
    )
    voter = client_for(app, seeded, VOTER)
    for amendment in open_amendments(seeded)[:2]:
        assert vote(voter, amendment).status_code == 303
    assert "rate limit storage failed" in caplog.text


# Redis: several processes over different databases still share one count


def redis_unavailable_reason() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as error:  # any failure to connect means: not available here
        return f"no Redis at {REDIS_URL}: {error}"
    return None


@pytest.fixture
def two_sqlite_copies(migrated: Templates, tmp_path: Path) -> Iterator[tuple[str, str]]:
    reason = redis_unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"Redis is mandatory under CI=true, but {reason}")
        pytest.skip(f"Redis tests skipped: {reason}")
    source = migrated.seeded_url("sqlite")
    with database_copy(source, tmp_path) as one, database_copy(source, tmp_path) as two:
        yield one, two


def test_two_app_instances_share_the_limit_through_redis(two_sqlite_copies):
    # A limit name of its own, so that earlier runs and other suites never share its count.
    rate = f"2 per {60 + uuid.uuid4().int % 1000} seconds"
    apps = [
        create_app(settings_for(url, rate_limits=limits(votes=rate), redis_url=REDIS_URL))
        for url in two_sqlite_copies
    ]
    databases = [Database(url) for url in two_sqlite_copies]
    try:
        limiter = apps[0].state.rate_limiter
        voter = str(user_id(databases[0], VOTER))
        assert voter == str(user_id(databases[1], VOTER))
        for item in limiter.limits[("votes", "user")]:
            limiter.strategy.clear(item, "votes", "user", voter)
        amendment = open_amendments(databases[0])[0]
        assert vote(client_for(apps[0], databases[0], VOTER), amendment).status_code == 303
        assert vote(client_for(apps[1], databases[1], VOTER), amendment).status_code == 303
        # Each database saw one vote; Redis saw two, so both instances refuse the third.
        assert_too_many(vote(client_for(apps[0], databases[0], VOTER), amendment))
        assert_too_many(vote(client_for(apps[1], databases[1], VOTER), amendment))
    finally:
        for database in databases:
            database.dispose()
