"""What operators rely on, through the real app on both engines: probes, request ids, logs,
metrics, the error page's reference, and the start-up refusals (app.views.operations,
app.observability, app.metrics, app.startup)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator

import anyio
import psycopg
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import select
from starlette.testclient import TestClient

from app.cli import main
from app.db import (
    WRITE_THREADS,
    Database,
    ReadOnlySession,
    alembic_config,
    code_heads,
    migrate,
    read_beside,
    schema_revisions,
)
from app.errors import Busy
from app.main import create_app
from app.models import Amendment, Consultation, User
from app.observability import accepted_request_id, configure_logging
from app.settings import Settings, SettingsError
from tests.conftest import (
    ENGINES,
    PLACEHOLDER_PROVIDER,
    postgres_admin,
    require_postgres,
    settings_for,
)
from tests.utils.sessions import force_login

TOKEN = "metrics-token-long-enough-0123456789"
CLAUSE = "/consultations/social-media-guidance/clauses/7"


@pytest.fixture
def ops_client(seeded: Database) -> Iterator[TestClient]:
    """The app with metrics on (a bearer token), on each engine, seeded."""
    app = create_app(settings_for(seeded.url, metrics_token=TOKEN))
    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
        yield client


def scrape(client: TestClient) -> dict[tuple[str, tuple], float]:
    """Every sample /metrics shows: (name, sorted labels) -> value."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def user_id(database: Database, email: str) -> int:
    return database.call(lambda s: s.exec(select(User.id).where(User.email == email)).one())


def an_amendment(database: Database, author_email: str) -> int:
    def find(session):
        author = session.exec(select(User).where(User.email == author_email)).one()
        return session.exec(
            select(Amendment.id).where(Amendment.author_id == author.id, Amendment.status == "open")
        ).first()

    return database.call(find)


# Health and readiness


def test_healthz_and_readyz_answer_when_all_is_well(ops_client):
    health = ops_client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = ops_client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}
    assert ready.headers["cache-control"] == "no-store"


def test_readyz_is_503_with_the_reason_when_the_schema_is_behind(ops_client, seeded):
    head = next(iter(code_heads()))
    from alembic import command

    command.downgrade(alembic_config(seeded.url), "0004")
    try:
        ready = ops_client.get("/readyz")
        assert ready.status_code == 503
        assert "0004" in ready.json()["reason"] and head in ready.json()["reason"]
        assert "redline migrate" in ready.json()["reason"]
        # Alive all the same: restarting the process would not help.
        assert ops_client.get("/healthz").status_code == 200
        # And a new process refuses to start, telling the operator what to run.
        with pytest.raises(SettingsError, match=r"REDLINE_DATABASE_URL: .*redline migrate"):
            create_app(settings_for(seeded.url))
    finally:
        migrate(seeded.url)
    assert ops_client.get("/readyz").status_code == 200


@pytest.mark.postgres
def test_readyz_is_503_when_the_database_is_gone_and_healthz_still_200(migrated, tmp_path):
    require_postgres()
    from tests.conftest import database_copy

    with database_copy(migrated.url("postgresql"), tmp_path) as url:
        app = create_app(settings_for(url))
        with TestClient(app) as client:
            assert client.get("/readyz").status_code == 200
            name = url.rsplit("/", 1)[1]
            with postgres_admin() as admin:
                admin.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["reason"].startswith("database unreachable")
            assert client.get("/healthz").status_code == 200


# Request ids and the access log


def test_request_ids_are_taken_when_sane_and_made_otherwise():
    assert accepted_request_id("4bf92f3577b34da6a3ce929d0e0e4736") == (
        "4bf92f3577b34da6a3ce929d0e0e4736"
    )
    assert accepted_request_id("Root=1-5759e988-bd862e3fe1be46a994272793") == (
        "Root=1-5759e988-bd862e3fe1be46a994272793"
    )
    for insane in (None, "", "x" * 129, "two words", 'quote"d', "new\nline", "é"):
        made = accepted_request_id(insane)
        assert re.fullmatch(r"[0-9a-f]{32}", made), insane


def test_every_answer_carries_its_request_id_and_one_access_line(ops_client, caplog):
    caplog.set_level(logging.INFO, logger="redline.access")
    sent = ops_client.get(CLAUSE + "?private=query", headers={"X-Request-ID": "abc-123"})
    assert sent.headers["x-request-id"] == "abc-123"
    made = ops_client.get("/no-such-page", headers={"X-Request-ID": "bad id with spaces"})
    assert made.status_code == 404
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    ops_client.get("/healthz")
    ops_client.get("/readyz")

    lines = [r for r in caplog.records if r.name == "redline.access"]
    assert [(r.request_id, r.method, r.path, r.status) for r in lines] == [
        ("abc-123", "GET", CLAUSE, 200),
        (made.headers["x-request-id"], "GET", "/no-such-page", 404),
    ]
    # The query string can hold sign-in codes and states: never logged.
    assert all("private" not in r.getMessage() for r in lines)
    assert lines[0].duration_ms > 0
    assert lines[0].route == "/consultations/{slug}/clauses/{number}"


def test_json_log_lines_carry_the_request_id(seeded, capsys):
    app = create_app(settings_for(seeded.url, log_format="json"))
    try:
        with TestClient(app) as client:
            capsys.readouterr()
            client.get("/", headers={"X-Request-ID": "json-test-1"})
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    finally:
        configure_logging("text")
    access = [line for line in lines if line.get("logger") == "redline.access"]
    assert len(access) == 1
    assert access[0]["request_id"] == "json-test-1"
    assert (access[0]["method"], access[0]["path"], access[0]["status"]) == ("GET", "/", 200)
    assert access[0]["level"] == "INFO" and "time" in access[0]


def test_lifecycle_and_sign_out_events_are_logged_with_the_user_id_only(seeded, caplog):
    caplog.set_level(logging.INFO, logger="redline")
    olive = user_id(seeded, "olive.grant@cabinetoffice.gov.uk")
    app = create_app(
        settings_for(seeded.url, organisers=frozenset({"olive.grant@cabinetoffice.gov.uk"}))
    )
    with TestClient(app, follow_redirects=False) as client:
        csrf = force_login(client, olive)
        closed = client.post(
            "/organise/social-media-guidance/status",
            data={"csrf_token": csrf, "action": "close", "confirm": "yes"},
        )
        assert closed.status_code == 303, closed.text
        client.post("/sign-out", data={"csrf_token": csrf})
    events = [r for r in caplog.records if getattr(r, "event", None)]
    assert [(r.event, r.user_id) for r in events] == [("close", olive), ("sign-out", olive)]
    text_of_logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "olive" not in text_of_logs.lower() and "@" not in text_of_logs


def test_cli_role_changes_are_logged_without_the_email(seeded, caplog):
    caplog.set_level(logging.INFO, logger="redline")
    dan = user_id(seeded, "dan.price@cabinetoffice.gov.uk")
    env = {"REDLINE_DATABASE_URL": seeded.url, "REDLINE_SECRET_KEY": ""}
    result = CliRunner().invoke(
        main, ["grant", "dan.price@cabinetoffice.gov.uk", "organiser"], env=env
    )
    assert result.exit_code == 0, result.output
    roles = [r for r in caplog.records if getattr(r, "event", None) == "role"]
    assert [(r.user_id, r.getMessage()) for r in roles] == [
        (dan, f"role of user {dan} set to organiser")
    ]


# The error page


def test_an_unexpected_error_shows_the_request_id_and_logs_it(ops_client, seeded, caplog):
    # A real fault the code does not expect: a table gone from under the app.
    def break_schema(session):
        session.exec(text("ALTER TABLE consultation RENAME TO consultation_gone"))
        session.commit()

    seeded.write_call(break_schema)
    caplog.set_level(logging.INFO, logger="redline")
    response = ops_client.get("/", headers={"X-Request-ID": "quote-me-42"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "quote-me-42"
    assert "quote this reference: <strong" in response.text and "quote-me-42" in response.text
    assert "Traceback" not in response.text
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and errors[0].request_id == "quote-me-42" and errors[0].exc_info
    access = [r for r in caplog.records if r.name == "redline.access"]
    assert [(r.status, r.request_id) for r in access] == [(500, "quote-me-42")]


# Metrics


def test_metrics_are_404_without_a_token_configured(client):
    assert client.get("/metrics").status_code == 404


def test_metrics_need_the_bearer_token(ops_client):
    assert ops_client.get("/metrics").status_code == 401
    wrong = ops_client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    assert ops_client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 401
    assert (
        "redline_http_requests_total"
        in ops_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    )


def test_metrics_count_requests_by_route_template_and_votes_by_outcome(ops_client, seeded):
    before = scrape(ops_client)
    route = "/consultations/{slug}/clauses/{number}"
    for number in ("3", "7", "7"):
        ops_client.get(f"/consultations/social-media-guidance/clauses/{number}")
    ops_client.get("/consultations/social-media-guidance/clauses/99")  # 404, same template

    amendment = an_amendment(seeded, "amira.shah@hmrc.gov.uk")
    csrf = force_login(ops_client, user_id(seeded, "dan.price@cabinetoffice.gov.uk"))
    vote = f"/amendments/{amendment}/vote"
    assert ops_client.post(vote, data={"csrf_token": csrf, "stance": "support"}).status_code == 303
    assert ops_client.post(vote, data={"csrf_token": csrf, "stance": "maybe"}).status_code == 400
    assert (
        ops_client.post(vote, data={"csrf_token": "forged", "stance": "oppose"}).status_code == 403
    )
    proposal = ops_client.post(
        CLAUSE + "/amend", data={"csrf_token": csrf, "wording": "", "rationale": ""}
    )
    assert 400 <= proposal.status_code < 500

    after = scrape(ops_client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("redline_http_requests_total", method="GET", route=route, status="200") == 3
    assert delta("redline_http_requests_total", method="GET", route=route, status="404") == 1
    # Raw paths never become labels.
    assert not any("social-media-guidance" in str(labels) for _, labels in after)
    count = delta("redline_http_request_duration_seconds_count", method="GET", route=route)
    assert count == 4
    assert delta("redline_votes_total", outcome="accepted") == 1
    assert delta("redline_votes_total", outcome="refused") == 2
    assert delta("redline_proposals_total", outcome="refused") == 1
    assert delta("redline_proposals_total", outcome="accepted") == 0


def test_metrics_show_database_connections_in_use(ops_client):
    database = ops_client.app.state.database
    idle = value(scrape(ops_client), "redline_db_connections_checked_out", pool="read")
    with database.session() as session:
        session.exec(text("SELECT 1"))
        busy = value(scrape(ops_client), "redline_db_connections_checked_out", pool="read")
    assert busy == idle + 1
    assert value(scrape(ops_client), "redline_db_connections_checked_out", pool="read") == idle
    assert value(scrape(ops_client), "redline_db_pool_limit", pool="read") > 0


# Start-up refusals


def production_env(url: str, **changes: str) -> dict[str, str]:
    env = {
        "REDLINE_DATABASE_URL": url,
        "REDLINE_SECRET_KEY": "a-long-enough-secret-for-the-tests",
        "REDLINE_BASE_URL": "https://redline.example.gov.uk",
        "REDLINE_OIDC_PROVIDERS": "work",
        "REDLINE_OIDC_WORK_ISSUER": PLACEHOLDER_PROVIDER.issuer,
        "REDLINE_OIDC_WORK_CLIENT_ID": "redline",
        "REDLINE_OIDC_WORK_CLIENT_SECRET": "secret",
        "REDLINE_OIDC_WORK_LABEL": "your work account",
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v != ""}


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"REDLINE_BASE_URL": "http://redline.example.gov.uk"}, "REDLINE_BASE_URL"),
        ({"REDLINE_BASE_URL": "http://10.0.0.5:8000"}, "REDLINE_BASE_URL"),
        ({"REDLINE_OIDC_PROVIDERS": ""}, "REDLINE_OIDC_PROVIDERS"),
    ],
)
def test_start_up_refuses_demo_only_settings_outside_demo_mode(database_url, changes, variable):
    settings = Settings.from_env(production_env(database_url, **changes))
    with pytest.raises(SettingsError, match=variable):
        create_app(settings)
    # `redline serve` says the same and exits before listening.
    result = CliRunner().invoke(main, ["serve"], env=production_env(database_url, **changes))
    assert result.exit_code == 2 and variable in result.output


def test_demo_mode_on_postgresql_does_not_excuse_demo_only_settings(migrated, tmp_path):
    require_postgres()
    from tests.conftest import database_copy

    with database_copy(migrated.url("postgresql"), tmp_path) as url:
        env = production_env(url, REDLINE_DEMO="1", REDLINE_OIDC_PROVIDERS="")
        with pytest.raises(SettingsError, match="REDLINE_OIDC_PROVIDERS"):
            create_app(Settings.from_env(env))


def test_start_up_accepts_production_settings_and_loopback_http(database_url):
    for base in ("https://redline.example.gov.uk", "http://localhost:8000", "http://[::1]:8000"):
        app = create_app(Settings.from_env(production_env(database_url, REDLINE_BASE_URL=base)))
        app.state.database.dispose()
    # The demo needs neither https nor a provider (on the embedded database only).
    if database_url.startswith("sqlite"):
        demo = Settings.from_env(
            {
                "REDLINE_DATABASE_URL": database_url,
                "REDLINE_DEMO": "1",
                "REDLINE_BASE_URL": "http://demo.example:8000",
            }
        )
        create_app(demo).state.database.dispose()


def test_start_up_refuses_a_database_without_the_schema(tmp_path):
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(SettingsError, match=r"no schema yet.*Run `redline migrate`"):
        create_app(settings_for(empty))
    result = CliRunner().invoke(main, ["serve"], env=production_env(empty))
    assert result.exit_code == 2 and "redline migrate" in result.output
    assert schema_revisions(empty) == frozenset()


def test_start_up_refuses_an_unreachable_database():
    url = "postgresql+psycopg://nobody@127.0.0.1:1/nothing"
    with pytest.raises(SettingsError, match="REDLINE_DATABASE_URL: cannot reach the database"):
        create_app(settings_for(url))


def test_a_schema_newer_than_the_code_is_not_behind(database_url):
    # A rolling upgrade migrates first: the old processes must stay ready meanwhile.
    def stamp(session, revision):
        session.exec(text(f"UPDATE alembic_version SET version_num = '{revision}'"))
        session.commit()

    database = Database(database_url)
    database.write_call(stamp, "9999_from_newer_code")
    try:
        app = create_app(settings_for(database_url))
        with TestClient(app) as client:
            assert client.get("/readyz").status_code == 200
    finally:
        database.write_call(stamp, next(iter(code_heads())))
        database.dispose()


def test_settings_read_the_new_variables():
    base = {"REDLINE_DEMO": "1", "REDLINE_DATABASE_URL": "sqlite://"}
    settings = Settings.from_env(
        {**base, "REDLINE_LOG_FORMAT": "JSON", "REDLINE_METRICS_TOKEN": TOKEN}
    )
    assert (settings.log_format, settings.metrics_token) == ("json", TOKEN)
    assert TOKEN not in repr(settings)
    with pytest.raises(SettingsError, match="REDLINE_LOG_FORMAT"):
        Settings.from_env({**base, "REDLINE_LOG_FORMAT": "xml"})
    with pytest.raises(SettingsError, match="REDLINE_METRICS_TOKEN"):
        Settings.from_env({**base, "REDLINE_METRICS_TOKEN": "short"})


# Connections


# PostgreSQL only: SQLite has no server that could end a connection.
@pytest.mark.parametrize("database_url", [ENGINES[1]], indirect=True)
def test_connections_postgresql_ended_between_requests_fail_no_request(seeded):
    """A pooled connection the server ended while it sat idle (a restart, a failover, an
    administrator's pg_terminate_backend) is replaced at checkout: no request fails."""
    app = create_app(settings_for(seeded.url))
    voter = user_id(seeded, "amira.shah@hmrc.gov.uk")
    amendment = seeded.call(
        lambda s: s.exec(
            select(Amendment.id)
            .join(Consultation, Consultation.id == Amendment.consultation_id)
            .where(
                Consultation.status == "open",
                Amendment.status == "open",
                Amendment.author_id != voter,
            )
        ).first()
    )
    with TestClient(app, follow_redirects=False) as client:
        csrf = force_login(client, voter)

        def vote(stance: str) -> int:
            headers = {"HX-Request": "true", "X-CSRF-Token": csrf}
            return client.post(
                f"/amendments/{amendment}/vote", data={"stance": stance}, headers=headers
            ).status_code

        assert vote("support") == 200
        assert client.get(CLAUSE).status_code == 200
        with postgres_admin() as admin:
            database = make_url(seeded.url).database
            ended = admin.execute(
                text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": database},
            ).all()
            assert ended, "the app's pool holds no connection to end"
            for (pid,) in ended:
                admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            pids = [pid for (pid,) in ended]
            for _ in range(100):  # until the ended backends have exited
                alive = admin.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"),
                    {"pids": pids},
                ).scalar_one()
                if not alive:
                    break
                time.sleep(0.05)
        assert vote("oppose") == 200
        assert client.get(CLAUSE).status_code == 200
        assert vote("withdraw") == 200


def test_connections_a_read_session_refuses_to_write(seeded):
    """The web's reads (``Database.run``) cannot write, even by an autoflush: on
    PostgreSQL they run outside a transaction, where a write would stay."""

    def rename(session):
        consultation = session.exec(select(Consultation)).first()
        consultation.title = "Changed while reading"
        session.exec(select(Consultation.id)).all()  # autoflush

    with pytest.raises(RuntimeError, match="read session was asked to write"):
        seeded.read_call(rename)
    titles = seeded.call(lambda s: s.exec(select(Consultation.title)).all())
    assert "Changed while reading" not in titles


def test_connections_reads_run_beside_only_where_they_see_what_the_caller_would(seeded):
    """``read_beside`` runs on a second connection only for a PostgreSQL read session
    (each statement its own snapshot there); a session that may have written, and any
    SQLite session (one snapshot per transaction), runs it itself."""
    postgres = seeded.url.startswith("postgresql")

    def where(session):
        connection = session.connection()
        if postgres:
            return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        return id(connection.connection.dbapi_connection)

    def both(session):
        later = read_beside(session, where)
        return where(session), later()

    own, beside = seeded.read_call(both)
    assert (own != beside) if postgres else (own == beside)
    own, beside = seeded.call(both)
    assert own == beside

    def failing(session):
        session.exec(text("SELECT no_such_column FROM consultation")).all()

    # A read beside that fails raises where its result is asked for, as it would inline.
    with pytest.raises(Exception, match="no_such_column"):
        seeded.read_call(lambda session: read_beside(session, failing)())


# PostgreSQL only: prepared statements and transactions on the server are what is tested.
@pytest.mark.parametrize("database_url", [ENGINES[1]], indirect=True)
def test_connections_postgresql_reads_keep_their_statements_prepared(seeded):
    """A read opens no transaction, and a statement read often enough stays prepared on
    its connection from one read to the next (psycopg drops them all at a ROLLBACK)."""
    statement = select(Consultation.slug).where(Consultation.status == "open")

    def read(session):
        session.exec(statement).all()
        connection = session.connection()
        idle = connection.connection.dbapi_connection.info.transaction_status
        prepared = connection.execute(
            text(
                "SELECT count(*) FROM pg_prepared_statements"
                " WHERE strpos(statement, 'consultation.slug') > 0"
                " AND strpos(statement, 'pg_prepared_statements') = 0"
            )
        ).scalar_one()
        return idle == psycopg.pq.TransactionStatus.IDLE, prepared

    # The pool hands the same idle connection back each time: one connection's counts.
    seen = [tuple(seeded.read_call(read)) for _ in range(8)]
    assert all(outside for outside, _ in seen), "a read began a transaction"
    assert seen[-1][1] == 1 and seen[-2][1] == 1, seen


# PostgreSQL only: SQLite has no asyncio road.
@pytest.mark.parametrize("database_url", [ENGINES[1]], indirect=True)
def test_connections_postgresql_requests_run_on_the_event_loop_and_long_work_in_threads(seeded):
    """Once a loop is opened (the app's lifespan does it), run and write go through psycopg's
    asyncio connection on the loop's own thread, read-only and writing as their thread
    roads do; run_in_thread and write_in_thread stay in worker threads; a loop that was
    never opened, or was closed, is served from threads."""

    def where(session):
        driver = session.connection().connection.driver_connection
        return (
            threading.get_ident(),
            isinstance(driver, psycopg.AsyncConnection),
            isinstance(session, ReadOnlySession),
            session.exec(select(Consultation.slug)).first(),
        )

    async def main():
        before = await seeded.run(where)
        assert await seeded.open_on_loop() is not None
        try:
            seen = {
                "run": await seeded.run(where),
                "write": await seeded.write(where),
                "run_in_thread": await seeded.run_in_thread(where),
                "write_in_thread": await seeded.write_in_thread(where),
            }
        finally:
            await seeded.close_on_loop()
        seen["before"], seen["after"] = before, await seeded.run(where)
        return threading.get_ident(), seen

    loop_thread, seen = anyio.run(main)
    assert all(slug for *_, slug in seen.values())
    assert seen["run"][:3] == (loop_thread, True, True)
    assert seen["write"][:3] == (loop_thread, True, False)
    for road in ("run_in_thread", "write_in_thread", "before", "after"):
        thread, asynchronous, _read_only, _slug = seen[road]
        assert thread != loop_thread and not asynchronous, road
    assert seen["run_in_thread"][2] and not seen["write_in_thread"][2]


@pytest.mark.parametrize("database_url", [ENGINES[1]], indirect=True)
def test_connections_postgresql_a_lock_not_had_in_time_on_the_loop_is_busy(seeded):
    """A write on the event loop that cannot have a row lock within the lock timeout is
    refused as Busy (503), as in a thread, and its connection goes back to the pool clean."""
    impatient = Database(seeded.url, lock_timeout=0.2)
    held, done = threading.Event(), threading.Event()

    def hold_the_row():
        with seeded.write_session() as session:
            session.exec(text("SELECT id FROM consultation ORDER BY id LIMIT 1 FOR UPDATE"))
            held.set()
            done.wait(10)

    def lock_it(session):
        return session.exec(
            text("SELECT id FROM consultation ORDER BY id LIMIT 1 FOR UPDATE")
        ).scalar_one()

    async def main():
        await impatient.open_on_loop()
        try:
            with pytest.raises(Busy):
                await impatient.write(lock_it)
            done.set()
            return await impatient.write(lock_it)  # the same pool, once the row is free
        finally:
            await impatient.close_on_loop()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    try:
        assert held.wait(10)
        assert anyio.run(main)
    finally:
        done.set()
        holder.join()
        impatient.dispose()


def test_connections_writes_take_turns_in_a_few_threads_and_reads_pass_them(seeded):
    """More writes at once than WRITE_THREADS: at most that many run together (the rest
    wait their turn, then all finish), a read still runs while every write thread is
    taken, since reads have threads of their own, and a write that waits for a thread
    longer than the lock timeout is refused as Busy (503) without having run."""
    impatient = Database(seeded.url, lock_timeout=0.2)
    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()

    def write(session):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            release.wait(10)
            return session.exec(text("SELECT 1")).scalar_one()
        finally:
            with lock:
                running -= 1

    async def main():
        results = []

        async def one():
            results.append(await seeded.write(write))

        async with anyio.create_task_group() as tasks:
            for _ in range(WRITE_THREADS * 3):
                tasks.start_soon(one)
            with anyio.fail_after(10):
                while peak < WRITE_THREADS:
                    await anyio.sleep(0.01)
                # Every write thread is busy: a read is not queued behind them.
                title = await seeded.run(lambda s: s.exec(select(Consultation.title)).first())
                with pytest.raises(Busy):
                    await impatient.write(write)
            await anyio.sleep(0.1)  # time enough for any thread beyond the limit to start
            assert peak == WRITE_THREADS
            release.set()
        return title, results

    try:
        title, results = anyio.run(main)
    finally:
        impatient.dispose()
    assert title
    assert results == [1] * (WRITE_THREADS * 3)
