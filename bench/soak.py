"""`make soak`: votes under load, the server killed with SIGKILL mid-load, nothing lost.

For each engine (an SQLite file; then a throw-away PostgreSQL database at
REDLINE_SOAK_POSTGRES_URL, default the local server, when one is reachable) it
migrates and seeds the demo, starts `redline serve`, and has many people vote from
threads of their own (each an HTTP client, one vote at a time, random amendment
and stance). While they vote it kills the server with SIGKILL, restarts it, and
does so again, ``--kills`` times. Then it compares what the server acknowledged
with what the vote table holds.

A vote is acknowledged when the server answered it 2xx/3xx. For each person and
amendment, the stored stance must be that of their last acknowledged vote, or of
a later one that was in flight when the server died (it may or may not have
committed: in doubt, not lost). Anything else is a lost vote. Prints the counts
and "lost: N" per engine; exits non-zero if any acknowledged vote was lost.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from app.db import Database, migrate
from app.models import Amendment, Consultation, User, Vote
from app.seeding import seed
from app.services import record_sign_in
from tests.utils.servers import REDLINE, ROOT, Outcome, Person, Server, server_env

POSTGRES = os.environ.get(
    "REDLINE_SOAK_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SLUG = "social-media-guidance"


@dataclass(frozen=True)
class Cast:
    """One vote request and its outcome."""

    user_id: int
    amendment_id: int
    stance: str
    outcome: Outcome


@dataclass
class Result:
    """What one engine's soak found."""

    engine: str
    sent: int
    statuses: Counter
    pairs: int
    stored: int
    in_doubt: int
    lost: int
    kills: int
    not_connected: int
    # Seconds from sending to the answer, over answered requests: median, 99th centile, max.
    latency: tuple[float, float, float] = (0.0, 0.0, 0.0)


def soak(
    engine: str, url: str, workdir: Path, people: int, seconds: float, kills: int, workers: int
) -> Result:
    """Seed ``url``, serve it, vote on it while killing the server, and count what was kept."""
    env = server_env(url, demo=engine == "sqlite")
    migrate(url)
    database = Database(url)
    if engine == "sqlite":
        subprocess.run(
            [REDLINE, "seed", "--demo"], env=env, cwd=ROOT, check=True, capture_output=True
        )
    else:
        # `redline seed --demo` refuses PostgreSQL; the soak needs the same people.
        database.write_call(seed, ROOT / "seed", True)
    voters, amendments = database.write_call(_voters_and_amendments, people)

    server = Server(env, workdir / f"{engine}-server.log", workers).start()
    stop = threading.Event()
    casts: list[list[Cast]] = [[] for _ in voters]

    def vote(index: int, user_id: int) -> None:
        rng = random.Random(index)
        person = Person.with_cookie(server.base, user_id, connections=2)
        try:
            while not stop.is_set():
                amendment = rng.choice(amendments)
                stance = rng.choice(("support", "oppose"))
                outcome = person.post(f"/amendments/{amendment}/vote", {"stance": stance})
                casts[index].append(Cast(user_id, amendment, stance, outcome))
                if outcome.status == 0:
                    time.sleep(0.05)  # the server is down: do not spin while it restarts
        finally:
            person.close()

    threads = [
        threading.Thread(target=vote, args=(i, user_id), daemon=True)
        for i, user_id in enumerate(voters)
    ]
    for thread in threads:
        thread.start()
    try:
        # Load, then a kill at a random moment, restart, and so on; load to finish.
        rng = random.Random(engine)
        for _ in range(kills):
            time.sleep(rng.uniform(seconds / 2, seconds))
            server.kill()
            server.start()
        time.sleep(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        server.stop()

    # Attempts that found no server to connect to were never sent: leave them out.
    everything = [cast for per_person in casts for cast in per_person if cast.outcome.connected]
    not_connected = sum(1 for per_person in casts for c in per_person if not c.outcome.connected)
    stored = database.call(_stored_votes)
    database.dispose()
    return _compare(engine, everything, stored, kills, not_connected)


def _voters_and_amendments(session, people: int) -> tuple[list[int], list[int]]:
    consultation = session.exec(select(Consultation).where(Consultation.slug == SLUG)).one()
    amendments = session.exec(
        select(Amendment.id).where(
            Amendment.consultation_id == consultation.id, Amendment.status == "open"
        )
    ).all()
    # The demo crowd (all with eligible work addresses), and more like them if needed,
    # recorded as their sign-in would record them.
    voters = list(
        session.exec(
            select(User.id).where(col(User.email).startswith("demo.voter")).order_by(User.id)
        ).all()
    )
    for i in range(len(voters), people):
        user = record_sign_in(
            session,
            issuer="urn:redline:soak",
            subject=f"soak-{i}",
            email=f"soak.voter{i}@hmrc.gov.uk",
            email_verified=True,
        )
        voters.append(user.id)
    return voters[:people], list(amendments)


def _stored_votes(session) -> dict[tuple[int, int], str]:
    rows = session.exec(select(Vote.user_id, Vote.amendment_id, Vote.stance)).all()
    return {(user, amendment): stance for user, amendment, stance in rows}


def _compare(
    engine: str,
    casts: list[Cast],
    stored: dict[tuple[int, int], str],
    kills: int,
    not_connected: int,
) -> Result:
    """Per person and amendment: is the stored stance the last acknowledged (or in doubt)?"""
    by_pair: dict[tuple[int, int], list[Cast]] = {}
    for cast in sorted(casts, key=lambda c: c.outcome.sent):
        by_pair.setdefault((cast.user_id, cast.amendment_id), []).append(cast)
    pairs = kept = in_doubt = lost = 0
    for pair, sequence in by_pair.items():
        acknowledged = [i for i, c in enumerate(sequence) if c.outcome.acknowledged]
        if not acknowledged:
            continue
        pairs += 1
        last = acknowledged[-1]
        # Requests after the last acknowledged one that got no answer at all may have
        # committed before the server died.
        possible = {sequence[last].stance} | {
            c.stance for c in sequence[last + 1 :] if c.outcome.status == 0
        }
        if stored.get(pair) == sequence[last].stance:
            kept += 1
        elif stored.get(pair) in possible:
            in_doubt += 1
        else:
            lost += 1
    answered = sorted(c.outcome.received - c.outcome.sent for c in casts if c.outcome.status)
    latency = (
        (
            answered[len(answered) // 2],
            answered[min(len(answered) - 1, int(len(answered) * 0.99))],
            answered[-1],
        )
        if answered
        else (0.0, 0.0, 0.0)
    )
    return Result(
        latency=latency,
        engine=engine,
        sent=len(casts),
        statuses=Counter(c.outcome.status for c in casts),
        pairs=pairs,
        stored=kept,
        in_doubt=in_doubt,
        lost=lost,
        kills=kills,
        not_connected=not_connected,
    )


def report(result: Result) -> None:
    """Print one engine's figures."""
    acknowledged = sum(n for status, n in result.statuses.items() if 200 <= status < 400)
    statuses = ", ".join(
        f"{'dropped' if status == 0 else status}: {n}"
        for status, n in sorted(result.statuses.items())
    )
    errors = sum(n for status, n in result.statuses.items() if status >= 500)
    print(f"\n[{result.engine}] {result.kills} SIGKILLs during the load")
    print(f"  votes sent            {result.sent:7d}   ({statuses})")
    print(f"  (not sent: no server to connect to while it restarted: {result.not_connected})")
    print(f"  acknowledged          {acknowledged:7d}")
    median, p99, longest = result.latency
    print(f"  answer time           median {median:.3f} s, 99% {p99:.3f} s, max {longest:.3f} s")
    print(f"  5xx answers           {errors:7d}")
    print(f"  person+amendment pairs with an acknowledged vote: {result.pairs}")
    print(f"  stored as last acknowledged: {result.stored} of {result.pairs}")
    print(f"  stored as a later vote in flight at a kill (in doubt, not lost): {result.in_doubt}")
    print(f"  lost: {result.lost}")


def postgres_database() -> tuple[str, str] | None:
    """A new throw-away PostgreSQL database (url, name), or None when there is no server."""
    try:
        admin = create_engine(
            POSTGRES, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        name = f"redline_soak_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except Exception as error:
        print(f"\nPostgreSQL skipped: not reachable at {POSTGRES} ({error.__class__.__name__})")
        return None
    return make_url(POSTGRES).set(database=name).render_as_string(hide_password=False), name


def drop_postgres(name: str) -> None:
    """Drop the throw-away database."""
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    """Soak each engine and exit 1 if any acknowledged vote was lost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=64, help="simultaneous voters")
    parser.add_argument("--seconds", type=float, default=4.0, help="load between kills")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per engine")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()
    print(
        f"Redline soak: {args.people} people voting, {args.kills} SIGKILLs per engine, "
        f"about {args.seconds:g} s of load between kills, {args.workers} worker(s)"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="redline-soak-") as directory:
        workdir = Path(directory)
        url = f"sqlite:///{workdir / 'soak.db'}"
        results.append(
            soak("sqlite", url, workdir, args.people, args.seconds, args.kills, args.workers)
        )
        report(results[-1])
        created = postgres_database()
        if created is not None:
            url, name = created
            try:
                results.append(
                    soak(
                        "postgresql",
                        url,
                        workdir,
                        args.people,
                        args.seconds,
                        args.kills,
                        args.workers,
                    )
                )
                report(results[-1])
            finally:
                drop_postgres(name)
    lost = sum(r.lost for r in results)
    print(f"\nlost in total: {lost}")
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
