"""Requests fired at once at a real server process, on SQLite and on PostgreSQL.

Each test starts `redline serve` (uvicorn) on a fresh database seeded with the demo
data, and simulated people, each with an HTTP client of their own, send it votes
from many threads at once: one person's identical and alternating votes, many
people voting, an organiser closing while people vote, an author withdrawing while
people vote on the amendment. What must hold (issue 8, DESIGN.md "The record"):
no 5xx and no dropped connection, exactly one vote row per person and amendment,
every acknowledged vote stored, nothing acknowledged after a close or withdrawal,
and the ballot file downloaded after closing hashing to the SHA-256 the report states.

On SQLite demo personas sign in through the demo form; everyone else (and everyone
on PostgreSQL, where demo sign-in is refused) carries a session cookie signed with
the server's secret, as the server's own sign-in would have set it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import random
import re
import shutil
import sqlite3
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import col, func, select
from starlette.testclient import TestClient

import app.db as app_db
from app.ballots import voter_pseudonym
from app.db import Database
from app.main import create_app
from app.models import Amendment, Consultation, User, Vote, Voter, VoteTally
from app.seeding import seed
from app.settings import Settings, demo_secret_path
from tests.conftest import (
    SEED_DIR,
    Templates,
    database_copy,
    postgres_url_of,
    settings_for,
)
from tests.utils.servers import REDLINE, ROOT, Outcome, Person, Server, server_env
from tests.utils.sessions import force_login

SLUG = "social-media-guidance"
VOTERS = 20
RACE_SECONDS = 1.5
# Voting goes on at least this long after a close or withdrawal was answered.
AFTER_SECONDS = 0.3


@dataclass
class Live:
    """A server on a fresh seeded database, and what the tests need to know about it."""

    engine: str
    label: str
    server: Server
    database: Database
    users: dict[str, int]
    # Open amendments of the seed consultation: id -> author's user id.
    amendments: dict[int, int]
    people: list[Person] = field(default_factory=list)

    def persona(self, key: str, email: str, connections: int = 20) -> Person:
        """A demo persona: through the demo sign-in on SQLite, by signed cookie on PostgreSQL."""
        if self.engine == "sqlite":
            person = Person.demo(self.server.base, key, connections)
        else:
            person = Person.with_cookie(
                self.server.base, self.users[email], connections=connections
            )
        self.people.append(person)
        return person

    def voter(self, email: str, connections: int = 20) -> Person:
        """A crowd voter (no persona to pick on the demo sign-in page): by signed cookie."""
        person = Person.with_cookie(self.server.base, self.users[email], connections=connections)
        self.people.append(person)
        return person

    def crowd(self) -> list[str]:
        """E-mail addresses of the first VOTERS seeded crowd voters (all eligible)."""
        emails = sorted(e for e in self.users if e.startswith("demo.voter"))
        assert len(emails) >= VOTERS
        return emails[:VOTERS]

    def assert_counts_kept(self) -> None:
        """The counts kept with every vote equal a recount, after any number of races."""

        def read(session):
            votes = session.exec(
                select(Vote.amendment_id, Voter.organisation_id, Vote.stance)
                .join(Amendment, col(Amendment.id) == Vote.amendment_id)
                .join(
                    Voter,
                    (col(Voter.user_id) == Vote.user_id)
                    & (col(Voter.consultation_id) == Amendment.consultation_id),
                )
            ).all()
            total = session.exec(select(func.count()).select_from(Vote)).one()
            kept = session.exec(
                select(
                    VoteTally.amendment_id,
                    VoteTally.organisation_id,
                    VoteTally.supports,
                    VoteTally.opposes,
                )
            ).all()
            return votes, total, kept

        votes, total, kept = self.database.call(read)
        # Every vote has its voter row, which fixes the organisation it counts for.
        assert len(votes) == total
        recount: dict[tuple[int, int], list[int]] = {}
        for amendment, organisation, stance in votes:
            counts = recount.setdefault((amendment, organisation or 0), [0, 0])
            counts[stance == "oppose"] += 1
        kept_counts = {(a, o): [s, p] for a, o, s, p in kept if s or p}
        assert kept_counts == recount

    def stored(self) -> dict[tuple[int, int], str]:
        """Every vote row: (user id, amendment id) -> stance; fails on a duplicate pair."""

        def read(session):
            return session.exec(select(Vote.user_id, Vote.amendment_id, Vote.stance)).all()

        rows = self.database.call(read)
        votes = {(user, amendment): stance for user, amendment, stance in rows}
        assert len(votes) == len(rows), "more than one vote row for a person and amendment"
        return votes


# SQLite twice: one worker, as `make run` serves it, and two, where writers in different
# processes queue for the write lock on SQLite's busy timeout rather than in one pool.
SERVERS = [
    pytest.param(("sqlite", 1), id="sqlite"),
    pytest.param(("sqlite", 2), id="sqlite-2-workers"),
    pytest.param(("postgresql", 1), id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def demo_databases(
    migrated: Templates, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], str]:
    """The demo data seeded once per engine per session; each test serves a copy of it."""
    made: dict[str, str] = {}
    directory = tmp_path_factory.mktemp("demo")

    def source(engine: str) -> str:
        if engine not in made:
            if engine == "sqlite":
                path = directory / "demo.db"
                shutil.copyfile(migrated.sqlite_template(), path)
                url = f"sqlite:///{path}"
                # As `make run` does it.
                subprocess.run(
                    [REDLINE, "seed", "--demo"],
                    env=server_env(url, demo=True),
                    cwd=ROOT,
                    check=True,
                    capture_output=True,
                )
            else:
                name = migrated.new_postgres_database(template=migrated.postgres_template())
                url = postgres_url_of(name)
                # The CLI refuses demo data on PostgreSQL; the tests need the same people.
                database = Database(url)
                database.write_call(seed, SEED_DIR, True)
                database.dispose()
            made[engine] = url
        return made[engine]

    return source


@pytest.fixture(params=SERVERS)
def live(
    request: pytest.FixtureRequest, demo_databases: Callable[[str], str], tmp_path: Path
) -> Iterator[Live]:
    """The demo, served by a real uvicorn process, on a fresh copy of the seeded database."""
    engine, workers = request.param
    with database_copy(demo_databases(engine), tmp_path) as url:
        # One person votes 400 times and a crowd votes from one address within a minute:
        # a load far beyond the default vote limits (tests/test_rate_limits.py tests those).
        env = server_env(
            url,
            demo=engine == "sqlite",
            REDLINE_RATE_LIMIT_VOTES="off",
            REDLINE_RATE_LIMIT_VOTES_PER_ADDRESS="off",
        )
        database = Database(url)
        users, amendments = database.call(_people_and_amendments)
        server = Server(env, tmp_path / "server.log", workers).start()
        label = engine if workers == 1 else f"{engine}, {workers} workers"
        live = Live(engine, label, server, database, users, amendments)
        try:
            yield live
        finally:
            for person in live.people:
                person.close()
            server.stop()
            database.dispose()


def _people_and_amendments(session) -> tuple[dict[str, int], dict[int, int]]:
    users = dict(session.exec(select(User.email, User.id)).all())
    consultation = session.exec(select(Consultation).where(Consultation.slug == SLUG)).one()
    amendments = dict(
        session.exec(
            select(Amendment.id, Amendment.author_id).where(
                Amendment.consultation_id == consultation.id, Amendment.status == "open"
            )
        ).all()
    )
    return users, amendments


def at_once(tasks: list[Callable[[], Outcome]]) -> list[Outcome]:
    """Run every task in its own thread, all released together by a barrier."""
    barrier = threading.Barrier(len(tasks))

    def run(task: Callable[[], Outcome]) -> Outcome:
        barrier.wait()
        return task()

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        return list(pool.map(run, tasks))


def summary(outcomes: list[Outcome]) -> str:
    """Counts by status, for the test report (and the assertion messages)."""
    counts: dict[int, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return ", ".join(f"{status or 'dropped'}: {n}" for status, n in sorted(counts.items()))


def assert_no_server_errors(outcomes: list[Outcome], server: Server) -> None:
    failed = [o for o in outcomes if o.server_error]
    assert not failed, f"{len(failed)} of {len(outcomes)} failed ({summary(outcomes)})\n" + (
        server.log_tail()
    )


def vote_path(amendment_id: int) -> str:
    return f"/amendments/{amendment_id}/vote"


# a. One person, the same vote 200 times at once, then support and oppose alternately.


def test_one_persons_simultaneous_votes_leave_one_row(live: Live) -> None:
    amendment = min(live.amendments)
    dan_id = live.users["dan.price@cabinetoffice.gov.uk"]
    dan = live.persona("dan", "dan.price@cabinetoffice.gov.uk", connections=200)

    identical = at_once([lambda: dan.post(vote_path(amendment), {"stance": "support"})] * 200)
    print(f"\n[{live.label}] 200 identical votes at once: {summary(identical)}")
    assert_no_server_errors(identical, live.server)
    assert all(o.acknowledged for o in identical), summary(identical)
    mine = {k: v for k, v in live.stored().items() if k == (dan_id, amendment)}
    assert mine == {(dan_id, amendment): "support"}

    stances = ["support", "oppose"] * 100
    alternating = at_once(
        [lambda s=stance: dan.post(vote_path(amendment), {"stance": s}) for stance in stances]
    )
    print(f"[{live.label}] 200 alternating votes at once: {summary(alternating)}")
    assert_no_server_errors(alternating, live.server)
    acknowledged = {s for s, o in zip(stances, alternating, strict=True) if o.acknowledged}
    final = live.stored()[(dan_id, amendment)]
    assert final in acknowledged
    live.assert_counts_kept()


# b. Many people voting on every amendment at once.


def test_many_people_voting_at_once_are_all_counted(live: Live) -> None:
    rng = random.Random(8)
    voters = {email: live.voter(email) for email in live.crowd()}
    ballots = [
        (email, amendment, rng.choice(("support", "oppose")))
        for email in voters
        for amendment in sorted(live.amendments)
    ]
    outcomes = at_once(
        [
            lambda e=email, a=amendment, s=stance: voters[e].post(vote_path(a), {"stance": s})
            for email, amendment, stance in ballots
        ]
    )
    print(
        f"\n[{live.label}] {len(ballots)} votes by {len(voters)} people at once: "
        f"{summary(outcomes)}"
    )
    assert_no_server_errors(outcomes, live.server)
    assert all(o.acknowledged for o in outcomes), summary(outcomes)
    stored = live.stored()
    for (email, amendment, stance), outcome in zip(ballots, outcomes, strict=True):
        assert outcome.acknowledged
        assert stored[(live.users[email], amendment)] == stance, (email, amendment)
    live.assert_counts_kept()


@dataclass(frozen=True)
class Cast:
    """One vote a racing voter sent, and what became of it."""

    user_id: int
    amendment_id: int
    stance: str
    outcome: Outcome


def race(
    live: Live,
    amendments: list[int],
    action: Callable[[], Outcome],
    action_at: float,
    seconds: float = RACE_SECONDS,
) -> tuple[list[Cast], Outcome]:
    """VOTERS people vote on ``amendments``; ``action`` runs ``action_at`` seconds in.

    Each voter votes one vote at a time (their own votes are in order), on a random
    amendment with a random stance, with a short random pause in between, for
    ``seconds`` and at least until ``AFTER_SECONDS`` after the action was answered.
    """
    voters = [(live.users[email], live.voter(email)) for email in live.crowd()]
    start = threading.Barrier(len(voters) + 1)
    answered: list[float] = []

    def keep_voting(started: float) -> bool:
        now = time.monotonic()
        if now > started + 60:
            return False  # the action hangs: stop, and let the assertions say so
        return now < started + seconds or not answered or now < answered[0] + AFTER_SECONDS

    def vote(index: int, user_id: int, person: Person) -> list[Cast]:
        rng = random.Random(index)
        start.wait()
        started = time.monotonic()
        casts = []
        while keep_voting(started):
            amendment = rng.choice(amendments)
            stance = rng.choice(("support", "oppose"))
            outcome = person.post(vote_path(amendment), {"stance": stance})
            casts.append(Cast(user_id, amendment, stance, outcome))
            time.sleep(rng.uniform(0, 0.02))
        return casts

    def act() -> Outcome:
        start.wait()
        time.sleep(action_at)
        outcome = action()
        answered.append(time.monotonic())
        return outcome

    with ThreadPoolExecutor(max_workers=len(voters) + 1) as pool:
        futures = [pool.submit(vote, i, uid, p) for i, (uid, p) in enumerate(voters)]
        acted = pool.submit(act)
        casts = [cast for future in futures for cast in future.result()]
        return casts, acted.result()


def last_acknowledged(casts: list[Cast]) -> dict[tuple[int, int], str]:
    """(user, amendment) -> the stance of the voter's last acknowledged vote on it."""
    final: dict[tuple[int, int], str] = {}
    for cast in sorted(casts, key=lambda c: c.outcome.sent):
        if cast.outcome.acknowledged:
            final[(cast.user_id, cast.amendment_id)] = cast.stance
    return final


def check_around(casts: list[Cast], event: Outcome, what: str) -> tuple[int, int, int]:
    """Nothing sent after ``event`` was answered is acknowledged; everything answered before
    ``event`` was sent is. Returns (before, during, after) counts of acknowledged votes."""
    before = during = after = 0
    for cast in casts:
        outcome = cast.outcome
        if outcome.sent > event.received:
            assert not outcome.acknowledged, f"a vote sent after the {what} was acknowledged"
            assert outcome.status == 409, outcome
            after += 1
        elif outcome.received < event.sent:
            assert outcome.acknowledged, f"a vote before the {what} was refused: {outcome}"
            before += 1
        else:
            during += outcome.acknowledged
    return before, during, after


# c. Many people voting while an organiser closes the consultation.


def test_closing_while_people_vote_freezes_exactly_what_was_acknowledged(live: Live) -> None:
    olive = live.persona("olive", "olive.grant@cabinetoffice.gov.uk")
    amendments = sorted(live.amendments)
    casts, close = race(
        live,
        amendments,
        lambda: olive.post(f"/organise/{SLUG}/status", {"action": "close", "confirm": "yes"}),
        action_at=RACE_SECONDS / 3,
    )
    outcomes = [c.outcome for c in casts]
    before, during, after = check_around(casts, close, "close")
    print(
        f"\n[{live.label}] {len(casts)} votes racing a close ({summary(outcomes)}); close "
        f"answered {close.status} in {close.received - close.sent:.3f}s; acknowledged "
        f"before it: {before}, while it ran: {during}; refused after it: {after}"
    )
    assert_no_server_errors([*outcomes, close], live.server)
    assert close.status == 303, close
    assert before > 0 and after > 0, "the close did not land in the middle of the voting"

    # Every acknowledged vote is stored as last acknowledged, and nothing else changed.
    stored = live.stored()
    expected = last_acknowledged(casts)
    for pair, stance in expected.items():
        assert stored[pair] == stance, pair

    # The ballot file downloaded afterwards holds exactly the stored votes on listed
    # amendments, and hashes to what the report states.
    ballots = olive.get(f"/consultations/{SLUG}/ballots.csv")
    assert ballots.status_code == 200, ballots.text[:500]
    report = olive.get(f"/consultations/{SLUG}/report")
    assert report.status_code == 200, report.text[:500]
    stated = re.search(r'<code class="app-hash">([0-9a-f]{64})</code>', report.text)
    assert stated, "the report states no SHA-256"
    assert hashlib.sha256(ballots.content).hexdigest() == stated.group(1)

    key = live.database.call(
        lambda s: s.exec(select(Consultation.ballot_key).where(Consultation.slug == SLUG)).one()
    )
    in_file = {
        (row["amendment"], row["voter"]): row["stance"]
        for row in csv.DictReader(io.StringIO(ballots.text))
        if row["voter"]
    }
    listed = set(live.database.call(_listed_amendments))
    voters = {
        (f"A{amendment}", voter_pseudonym(key, amendment, user)): (user, amendment)
        for user, amendment in stored
        if amendment in listed
    }
    from_database = {ref: stored[pair] for ref, pair in voters.items()}
    assert in_file == from_database, explain(in_file, from_database, voters, casts, close)
    for (user, amendment), stance in expected.items():
        assert in_file[(f"A{amendment}", voter_pseudonym(key, amendment, user))] == stance
    live.assert_counts_kept()


def explain(
    in_file: dict, from_database: dict, voters: dict, casts: list[Cast], close: Outcome
) -> str:
    """Which votes the ballot file and the vote table disagree on, and their history."""
    lines = []
    for ref in sorted(
        set(in_file) ^ set(from_database)
        | {r for r in in_file.keys() & from_database.keys() if in_file[r] != from_database[r]}
    ):
        user, amendment = voters.get(ref, (None, None))
        lines.append(f"{ref}: file {in_file.get(ref)}, table {from_database.get(ref)}")
        for cast in casts:
            if (cast.user_id, cast.amendment_id) == (user, amendment):
                sent = cast.outcome.sent - close.sent
                took = cast.outcome.received - cast.outcome.sent
                lines.append(
                    f"  {cast.stance} sent {sent:+.3f}s from the close, "
                    f"answered {cast.outcome.status} after {took:.3f}s"
                )
    lines.append(f"close took {close.received - close.sent:.3f}s")
    return "\n".join(lines)


def _listed_amendments(session) -> list[int]:
    consultation = session.exec(select(Consultation).where(Consultation.slug == SLUG)).one()
    return list(
        session.exec(
            select(Amendment.id).where(
                Amendment.consultation_id == consultation.id,
                col(Amendment.status).in_(("open", "accepted", "rejected")),
            )
        ).all()
    )


# d. An author withdrawing an amendment while people vote on it.


def test_withdrawing_while_people_vote_accepts_nothing_after(live: Live) -> None:
    amira_id = live.users["amira.shah@hmrc.gov.uk"]
    target = min(a for a, author in live.amendments.items() if author == amira_id)
    amira = live.persona("amira", "amira.shah@hmrc.gov.uk")
    casts, withdrawal = race(
        live,
        [target],
        lambda: amira.post(f"/amendments/{target}/withdraw", {}),
        action_at=RACE_SECONDS / 3,
    )
    outcomes = [c.outcome for c in casts]
    before, during, after = check_around(casts, withdrawal, "withdrawal")
    print(
        f"\n[{live.label}] {len(casts)} votes racing a withdrawal ({summary(outcomes)}); "
        f"withdrawal answered {withdrawal.status} in {withdrawal.received - withdrawal.sent:.3f}s; "
        f"acknowledged before it: {before}, "
        f"while it ran: {during}; refused after it: {after}"
    )
    assert_no_server_errors([*outcomes, withdrawal], live.server)
    assert withdrawal.status == 303, withdrawal
    assert before > 0 and after > 0, "the withdrawal did not land in the middle of the voting"

    stored = live.stored()
    for pair, stance in last_acknowledged(casts).items():
        assert stored[pair] == stance, pair

    # In the database too: every vote on it was written before the withdrawal was.
    def times(session):
        withdrawn = session.get(Amendment, target)
        latest = session.exec(
            select(Vote.updated_at)
            .where(Vote.amendment_id == target)
            .order_by(col(Vote.updated_at).desc())
        ).first()
        return withdrawn.status, withdrawn.updated_at, latest

    status, withdrawn_at, last_vote_at = live.database.call(times)
    assert status == "withdrawn"
    assert last_vote_at <= withdrawn_at
    live.assert_counts_kept()


# Demo mode with several workers shares one session secret.


def test_demo_secret_is_made_once_beside_the_database(tmp_path: Path) -> None:
    env = {"REDLINE_DEMO": "1", "REDLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    first, second = Settings.from_env(env), Settings.from_env(env)
    assert first.secret_key == second.secret_key
    path = demo_secret_path(env["REDLINE_DATABASE_URL"])
    assert path == tmp_path / "demo.db.secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.db.secret"]  # no temporaries
    # Racing starts agree too.
    other = {**env, "REDLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}"}
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: Settings.from_env(other).secret_key, range(8)))
    assert len(keys) == 1
    # With a secret of its own, or outside demo mode, nothing is written.
    plain = f"sqlite:///{tmp_path / 'plain.db'}"
    Settings.from_env({"REDLINE_DATABASE_URL": plain, "REDLINE_SECRET_KEY": "x" * 32})
    Settings.from_env({**env, "REDLINE_DATABASE_URL": plain, "REDLINE_SECRET_KEY": "x" * 32})
    assert not (tmp_path / "plain.db.secret").exists()


def test_demo_sign_in_works_with_two_workers(
    demo_databases: Callable[[str], str], tmp_path: Path
) -> None:
    with database_copy(demo_databases("sqlite"), tmp_path) as url:
        # No REDLINE_SECRET_KEY: each worker reads the demo secret kept beside the database.
        env = server_env(url, demo=True, REDLINE_SECRET_KEY="")
        failed = 0
        with Server(env, tmp_path / "server.log", workers=2) as server:
            for _ in range(10):
                # A new connection for every request, so that either worker may answer each:
                # the form from one, the sign-in at another, the next page at either.
                person = Person(server.base)
                person.client.headers["connection"] = "close"
                try:
                    page = person.client.get("/sign-in")
                    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
                    assert token, page.text[:500]
                    answer = person.client.post(
                        "/sign-in/demo",
                        data={"persona": "amira", "next": "/", "csrf_token": token.group(1)},
                    )
                    home = person.client.get("/")
                    if (
                        answer.status_code != 303
                        or "Signed in as <strong>Amira Shah" not in home.text
                    ):
                        failed += 1
                finally:
                    person.close()
        assert failed == 0, f"{failed} of 10 demo sign-ins failed across two workers"


# A lock that cannot be had in time: 503 with Retry-After, never a 500.


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_a_lock_that_cannot_be_had_in_time_is_a_503_to_retry(
    seeded: Database, monkeypatch: pytest.MonkeyPatch, htmx: bool
) -> None:
    # A short wait keeps the test quick; what is under test is what happens after it.
    monkeypatch.setattr(app_db, "LOCK_TIMEOUT_SECONDS", 0.3)
    amendment = seeded.call(
        lambda s: s.exec(select(Amendment.id).where(Amendment.status == "open")).first()
    )
    dan = seeded.call(
        lambda s: s.exec(
            select(User.id).where(User.email == "dan.price@cabinetoffice.gov.uk")
        ).one()
    )
    app = create_app(settings_for(seeded.url))
    headers = {"hx-request": "true"} if htmx else {}
    with TestClient(app, follow_redirects=False) as client, holding_the_lock(seeded.url):
        csrf = force_login(client, dan)
        refused = client.post(
            vote_path(amendment), data={"stance": "support", "csrf_token": csrf}, headers=headers
        )
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert "Too many people are doing this at once; try again in a few seconds" in refused.text
    assert (
        seeded.call(
            lambda s: s.exec(
                select(Vote).where(Vote.amendment_id == amendment, Vote.user_id == dan)
            ).first()
        )
        is None
    )
    # Once the lock is free, the same vote goes through.
    with TestClient(app, follow_redirects=False) as client:
        csrf = force_login(client, dan)
        again = client.post(
            vote_path(amendment), data={"stance": "support", "csrf_token": csrf}, headers=headers
        )
    assert again.status_code == (200 if htmx else 303)


@contextmanager
def holding_the_lock(url: str) -> Iterator[None]:
    """Another transaction holding what a vote needs: SQLite's write lock, or (PostgreSQL)
    the consultation row FOR UPDATE, as a close does while it freezes the ballots."""
    if url.startswith("sqlite"):
        connection = sqlite3.connect(make_url(url).database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            connection.rollback()
            connection.close()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(
                text("SELECT id FROM consultation WHERE slug = :slug FOR UPDATE"), {"slug": SLUG}
            )
            yield
            connection.rollback()
    finally:
        engine.dispose()
