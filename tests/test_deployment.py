"""Redline deployed as docs/production.md describes, with real processes: hosts migrating
together, a server stopped mid-request, two servers sharing one PostgreSQL, several workers
sharing their metrics, and a backup restored into a fresh database."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlmodel import select
from starlette.testclient import TestClient

from app.cli import main
from app.db import MIGRATION_LOCK_KEY, Database, code_heads, schema_revisions
from app.main import SESSION_COOKIE, create_app
from app.models import Amendment, Consultation, User, Vote, VoteTally
from app.organising import change_status
from tests.conftest import (
    IN_CI,
    Templates,
    database_copy,
    postgres_admin,
    postgres_url_of,
    require_postgres,
    settings_for,
)
from tests.oidc.fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    ProviderBrowser,
    node_unavailable_reason,
)
from tests.utils.servers import REDLINE, ROOT, SECRET_KEY, Server, server_env
from tests.utils.sessions import signed_session

SLUG = "social-media-guidance"
CLAUSE = f"/consultations/{SLUG}/clauses/7"
TOKEN = "deployment-metrics-token-0123456789"
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL as pg_dump and pg_restore take it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def open_amendment(database: Database, not_by: str | None = None) -> int:
    def find(session):
        query = select(Amendment.id).join(User, User.id == Amendment.author_id)
        query = query.where(Amendment.status == "open")
        if not_by:
            query = query.where(User.email != not_by)
        return session.exec(query.order_by(Amendment.id)).first()

    return database.call(find)


def user_id(database: Database, email: str) -> int:
    return database.call(lambda s: s.exec(select(User.id).where(User.email == email)).one())


# Migrations


@pytest.mark.postgres
def test_two_hosts_migrating_at_once_migrate_once(migrated: Templates):
    require_postgres()
    name = migrated.new_postgres_database()
    url = postgres_url_of(name)
    env = server_env(url, demo=False)
    waiting = text(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
        "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = :name"
    )
    engine = create_engine(url)
    try:
        with engine.connect() as holder:
            # Hold the migration lock until both hosts are queued on it: they start together.
            holder.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
            processes = [
                subprocess.Popen(
                    [REDLINE, "migrate"],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                for _ in range(2)
            ]
            deadline = time.monotonic() + 60
            while holder.execute(waiting, {"name": name}).scalar_one() < 2:
                assert time.monotonic() < deadline, "the hosts never queued on the lock"
                assert all(p.poll() is None for p in processes), "a host did not wait"
                time.sleep(0.1)
            holder.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
            holder.commit()
    finally:
        engine.dispose()
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    applied = [o for o in outputs if "Applied migrations" in o]
    # One migrated everything; the other waited for the lock and found nothing to do.
    assert len(applied) == 1, outputs
    assert "Applied migrations 0001, " in applied[0]
    assert all("Database is up to date" in o for o in outputs)
    assert schema_revisions(url) == code_heads()


# Graceful shutdown


@pytest.mark.parametrize(
    "engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_sigterm_lets_a_request_in_flight_finish(engine, migrated: Templates, tmp_path: Path):
    if engine == "postgresql":
        require_postgres()
    with database_copy(migrated.seeded_url(engine), tmp_path) as url:
        database = Database(url)
        dan = user_id(database, "dan.price@cabinetoffice.gov.uk")
        amendment = open_amendment(database, not_by="dan.price@cabinetoffice.gov.uk")
        server = Server(server_env(url, demo=engine == "sqlite"), tmp_path / "server.log").start()
        try:
            cookie, csrf = signed_session(SECRET_KEY, dan)
            body = b"stance=support"
            # A slow client: the request has arrived, its body is still on the way.
            connection = socket.create_connection(("127.0.0.1", server.port), timeout=20)
            connection.sendall(
                (
                    f"POST /amendments/{amendment}/vote HTTP/1.1\r\n"
                    f"Host: 127.0.0.1:{server.port}\r\n"
                    f"Cookie: {SESSION_COOKIE}={cookie}\r\n"
                    f"X-CSRF-Token: {csrf}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    "X-Request-ID: in-flight-vote\r\n\r\n"
                ).encode()
                + body[:6]
            )
            time.sleep(0.5)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            # Still running for the request in flight, but taking no new ones.
            assert server.process.poll() is None, server.log_tail()
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
            connection.sendall(body[6:])
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
            connection.close()
            assert answer.startswith(b"HTTP/1.1 303"), answer[:300]
            assert b"x-request-id: in-flight-vote" in answer.lower()
            # uvicorn re-raises the signal once it has shut down cleanly.
            assert server.process.wait(timeout=20) in (0, -signal.SIGTERM)
            log = server.log_tail(20000)
            assert "shut down: database connections closed" in log
            stored = database.call(
                lambda s: s.exec(
                    select(Vote.stance).where(Vote.user_id == dan, Vote.amendment_id == amendment)
                ).all()
            )
            assert stored == ["support"]
        finally:
            server.stop()
            database.dispose()


# Several workers: one set of metrics, JSON logs, one access line per request


def test_workers_share_their_metrics_and_log_json_lines(migrated: Templates, tmp_path: Path):
    with database_copy(migrated.seeded_url("sqlite"), tmp_path) as url:
        env = server_env(url, demo=True, REDLINE_LOG_FORMAT="json", REDLINE_METRICS_TOKEN=TOKEN)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with Server(env, tmp_path / "server.log", workers=2) as server:

            def get(number: int) -> int:
                # A connection each, so that both workers take some.
                with httpx.Client(base_url=server.base) as fresh:
                    headers = {"X-Request-ID": f"worker-test-{number}"}
                    return fresh.get("/how-ranking-works", headers=headers).status_code

            def access_lines() -> list[dict]:
                return [
                    line
                    for line in map(json.loads, _json_lines(server.log))
                    if line["logger"] == "redline.access" and line["path"] == "/how-ranking-works"
                ]

            sent = 0
            # Until both workers have answered some (the kernel picks who accepts).
            while sent < 200 and len({line["pid"] for line in access_lines()}) < 2:
                with ThreadPoolExecutor(max_workers=8) as pool:
                    assert set(pool.map(get, range(sent, sent + 40))) == {200}
                sent += 40
                time.sleep(0.3)
            for _ in range(4):
                scraped = httpx.get(
                    f"{server.base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
                )
                assert scraped.status_code == 200
                counts = {
                    (s.labels.get("route"), s.labels.get("status")): s.value
                    for family in text_string_to_metric_families(scraped.text)
                    for s in family.samples
                    if s.name == "redline_http_requests_total"
                }
                # Whichever worker answers the scrape, it reports both workers' requests.
                assert counts[("/how-ranking-works", "200")] == sent
            access = access_lines()
        assert sorted(line["request_id"] for line in access) == sorted(
            f"worker-test-{n}" for n in range(sent)
        )
        assert len({line["pid"] for line in access}) == 2
        # uvicorn's own access log is off: one line per request, ours.
        assert '"GET /how-ranking-works HTTP/1.1" 200' not in server.log.read_text()


# Two hosts, one PostgreSQL (and Redis): one person's requests alternate between them


def _json_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("{")]


def shared_redis_url() -> str:
    """An emptied Redis database for the two servers' shared rate limits.

    Mandatory under CI=true, like PostgreSQL; elsewhere the test skips and says why.
    Emptied first: counters from an earlier run (same user ids) would still be counting.
    """
    import redis

    from tests.test_rate_limits import REDIS_URL, redis_unavailable_reason

    reason = redis_unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"Redis is mandatory under CI=true, but {reason}")
        pytest.skip(f"two-server test skipped: {reason}")
    url = REDIS_URL.rsplit("/", 1)[0] + "/15"
    redis.Redis.from_url(url).flushdb()
    return url


# The two servers share the per-person vote limit; the test uses 6 of it (a forged post
# counts too: limits apply before the CSRF check) and finds the 7th refused.
VOTES_A_MINUTE = 6


@pytest.fixture
def provider_and_two_servers(
    migrated: Templates, tmp_path: Path
) -> Iterator[tuple[Server, Server, Provider, Database]]:
    require_postgres()
    reason = node_unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"sign-in tests are mandatory under CI=true, but {reason}")
        pytest.skip(f"sign-in tests skipped: {reason}")
    with database_copy(migrated.seeded_url("postgresql"), tmp_path) as url:
        first = Server({}, tmp_path / "first.log")
        second = Server({}, tmp_path / "second.log")
        # Both answer for one address (a load balancer's); the provider knows that one.
        provider = Provider([f"{first.base}/auth/work/callback"])
        extra = {
            "REDLINE_BASE_URL": first.base,
            "REDLINE_OIDC_PROVIDERS": "work",
            "REDLINE_OIDC_WORK_ISSUER": provider.issuer,
            "REDLINE_OIDC_WORK_CLIENT_ID": CLIENT_ID,
            "REDLINE_OIDC_WORK_CLIENT_SECRET": CLIENT_SECRET,
            "REDLINE_OIDC_WORK_LABEL": "your work account",
            "REDLINE_REDIS_URL": shared_redis_url(),
            "REDLINE_RATE_LIMIT_VOTES": f"{VOTES_A_MINUTE}/minute",
        }
        database = Database(url)
        try:
            for server in (first, second):
                server.env = server_env(url, demo=False, **extra)
                server.start()
            yield first, second, provider, database
        finally:
            first.stop()
            second.stop()
            provider.close()
            database.dispose()


@pytest.mark.postgres
def test_one_person_alternating_between_two_servers(provider_and_two_servers):
    first, second, provider, database = provider_and_two_servers
    person = httpx.Client(follow_redirects=False, timeout=30)
    browser = ProviderBrowser()
    try:
        # Sign-in starts on the first server and comes back to the second.
        start = person.get(f"{first.base}/auth/work/login?next={CLAUSE}")
        assert start.status_code == 302, start.text
        callback = browser.sign_in(start.headers["location"], "amira@hmrc.gov.uk", first.base)
        back = person.get(second.base + callback.removeprefix(first.base))
        assert back.status_code == 303, back.text
        assert back.headers["location"] == CLAUSE

        page = person.get(first.base + CLAUSE).text
        assert "Signed in as" in page
        amendment = int(re.search(r'action="/amendments/(\d+)/vote"', page).group(1))
        vote = f"/amendments/{amendment}/vote"
        csrf = _CSRF_META.search(page).group(1)

        # The CSRF token of a page from one server is good on the other; a forged one is not.
        forged = person.post(second.base + vote, data={"csrf_token": "x" * 43, "stance": "oppose"})
        assert forged.status_code == 403
        for server, stance in [(second, "support"), (first, "oppose"), (second, "support")]:
            answer = person.post(server.base + vote, data={"csrf_token": csrf, "stance": stance})
            assert answer.status_code == 303, answer.text
            other = first if server is second else second
            shown = person.get(other.base + CLAUSE).text
            assert f"Your vote: <strong>{stance}</strong>" in shown
            csrf = _CSRF_META.search(shown).group(1)

        amira = user_id(database, "amira@hmrc.gov.uk")
        # The sign-in is logged where it finished, by user id; no e-mail address in any log.
        assert f"sign-in: user {amira}" in second.log_tail(100_000)
        assert not any("amira@" in s.log_tail(100_000) for s in (first, second))

        def stored(session):
            votes = session.exec(select(Vote).where(Vote.amendment_id == amendment)).all()
            tallies = session.exec(
                select(VoteTally).where(VoteTally.amendment_id == amendment)
            ).all()
            return votes, tallies

        votes, tallies = database.call(stored)
        assert [(v.user_id, v.stance) for v in votes if v.user_id == amira] == [(amira, "support")]
        supports = sum(v.stance == "support" for v in votes)
        opposes = sum(v.stance == "oppose" for v in votes)
        assert (sum(t.supports for t in tallies), sum(t.opposes for t in tallies)) == (
            supports,
            opposes,
        )
        # Both servers show the same counts, which are the stored ones.
        for server in (first, second):
            shown = person.get(server.base + CLAUSE).text
            assert f'id="vote-{amendment}-supports">{supports}</strong>' in shown
            assert f'id="vote-{amendment}-opposes">{opposes}</strong>' in shown

        # The vote limit is one limit across both servers (kept in Redis): 4 posts so far,
        # 2 more are let through whichever server takes them, the next is refused.
        answers = [
            person.post(server.base + vote, data={"csrf_token": csrf, "stance": "support"})
            for server in (first, second, first)
        ]
        assert [a.status_code for a in answers] == [303, 303, 429]
        assert "Retry-After" in answers[-1].headers

        # Signing out on one signs out on both (the session version is in the database).
        person.post(f"{first.base}/sign-out", data={"csrf_token": csrf})
        assert "Signed in as" not in person.get(second.base + CLAUSE).text
    finally:
        person.close()
        browser.close()


# Backups


@pytest.mark.postgres
def test_a_backup_restored_into_a_fresh_database_keeps_the_ballot_hash(
    migrated: Templates, tmp_path: Path
):
    require_postgres()
    with database_copy(migrated.seeded_url("postgresql"), tmp_path) as url:
        database = Database(url)
        olive = user_id(database, "olive.grant@cabinetoffice.gov.uk")
        closed = database.write_call(change_status, olive, SLUG, "close")
        database.dispose()
        assert closed.ballots_sha256
        dump = tmp_path / "redline.dump"
        subprocess.run(
            ["pg_dump", "--format=custom", f"--file={dump}", libpq_url(url)],
            check=True,
            capture_output=True,
        )

    restored_name = f"redline_restored_{uuid.uuid4().hex[:10]}"
    with postgres_admin() as admin:
        admin.execute(text(f'CREATE DATABASE "{restored_name}"'))
    restored = postgres_url_of(restored_name)
    try:
        subprocess.run(
            ["pg_restore", "--no-owner", f"--dbname={libpq_url(restored)}", str(dump)],
            check=True,
            capture_output=True,
        )
        env = {"REDLINE_DATABASE_URL": restored, "REDLINE_SECRET_KEY": ""}
        ballots = tmp_path / "ballots.csv"
        result = CliRunner().invoke(
            main, ["export", SLUG, "--format", "ballots", "-o", str(ballots)], env=env
        )
        assert result.exit_code == 0, result.output
        assert hashlib.sha256(ballots.read_bytes()).hexdigest() == closed.ballots_sha256
        report = tmp_path / "report.json"
        result = CliRunner().invoke(
            main, ["export", SLUG, "--format", "json", "-o", str(report)], env=env
        )
        assert result.exit_code == 0, result.output
        assert closed.ballots_sha256 in report.read_text()

        # The restored database is ready to serve, and its audit log is still append-only.
        app = create_app(settings_for(restored))
        with TestClient(app) as client:
            assert client.get("/readyz").status_code == 200
        engine = create_engine(restored)
        try:
            with pytest.raises(sa_exc.DBAPIError), engine.begin() as connection:
                connection.execute(text("UPDATE audit_entry SET reason = 'rewritten'"))
            with engine.connect() as connection:
                status = connection.execute(
                    select(Consultation.status).where(Consultation.slug == SLUG)
                ).scalar_one()
            assert status == "closed"
        finally:
            engine.dispose()
    finally:
        with postgres_admin() as admin:
            admin.execute(text(f'DROP DATABASE IF EXISTS "{restored_name}" WITH (FORCE)'))
