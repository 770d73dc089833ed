"""`make bench`: how long the report takes against the SQL it rests on, and export memory.

For each engine (SQLite always; PostgreSQL when reachable at REDLINE_BENCH_POSTGRES_URL,
default the local server) it builds a consultation of 10,000 amendments and 50,000
voters twice, with 10,000 and with 1,000,000 votes, and prints:

- the bare SQL aggregation the ranking rests on (votes per amendment, organisation and
  stance: one GROUP BY, rows fetched),
- the whole report while open (live counts) and once closed (from the frozen ballots),
  each with its ratio to the aggregation, and the time closing takes (freezing),
- the peak memory of each export in a fresh process (above its memory at start), and its
  growth from the small to the large dataset.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.db import Database, migrate
from app.models import Consultation
from app.queries import consultation_by_slug
from app.reporting import build_report
from app.tallies import freeze_ballots
from bench.dataset import build

ROOT = Path(__file__).resolve().parent.parent
AMENDMENTS, VOTERS = 10_000, 50_000
SIZES = (10_000, 1_000_000)
FORMATS = ("csv", "xlsx", "ods", "json", "ballots")
POSTGRES = os.environ.get(
    "REDLINE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def best_of(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def bare_aggregation(database: Database, consultation_id: int) -> None:
    """Votes per amendment, organisation and stance: the raw GROUP BY, every row fetched."""
    with database.session() as session:
        session.execute(
            text(
                "SELECT v.amendment_id, u.organisation_id, v.stance, count(*) FROM vote v"
                " JOIN amendment a ON a.id = v.amendment_id"
                " JOIN user_account u ON u.id = v.user_id"
                " WHERE a.consultation_id = :c"
                " GROUP BY v.amendment_id, u.organisation_id, v.stance"
            ),
            {"c": consultation_id},
        ).all()


def close(database: Database) -> float:
    """Close the benchmark consultation the way an organiser does: freeze the ballots."""
    started = time.perf_counter()
    with database.write_session() as session:
        consultation = session.get(Consultation, 1)
        consultation.status = "closed"
        consultation.ballots_sha256 = freeze_ballots(session, consultation)
        session.add(consultation)
        session.commit()
    return time.perf_counter() - started


def report(database: Database) -> int:
    with database.session() as session:
        consultation = consultation_by_slug(session, "bench", include_drafts=True)
        return len(build_report(session, consultation).rows)


def export_peak_mb(url: str, fmt: str) -> tuple[float, int]:
    result = subprocess.run(
        [sys.executable, "-m", "bench.export_memory", url, fmt],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    start_kb, peak_kb, written = result.stdout.split()
    return (int(peak_kb) - int(start_kb)) / 1024, int(written)


def databases():
    sqlite_path = Path("/tmp") / f"redline-bench-{os.getpid()}.db"
    yield "sqlite", lambda: _fresh_sqlite(sqlite_path), lambda: sqlite_path.unlink(missing_ok=True)
    try:
        admin = create_engine(
            POSTGRES, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
        )
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        print(f"\nPostgreSQL skipped: not reachable at {POSTGRES} ({error.__class__.__name__})")
        return
    name = f"redline_bench_{uuid.uuid4().hex[:8]}"

    def fresh():
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        return make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)

    def drop():
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    yield "postgresql", fresh, drop


def _fresh_sqlite(path: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return f"sqlite:///{path}"


def main() -> None:
    print(f"Redline benchmark: {AMENDMENTS:,} amendments, {VOTERS:,} voters")
    for engine_name, fresh, cleanup in databases():
        peaks: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
        try:
            for votes in SIZES:
                url = fresh()
                migrate(url)
                database = Database(url)
                built = build(database.engine, AMENDMENTS, VOTERS, votes)
                aggregation = best_of(lambda db=database: bare_aggregation(db, 1))
                live = best_of(lambda db=database: report(db))
                closing = close(database)
                frozen = best_of(lambda db=database: report(db))
                print(f"\n[{engine_name}] {votes:,} votes (built in {built:.1f} s)")
                print(f"  bare SQL aggregation   {aggregation * 1000:9.0f} ms")
                for label, seconds in (("report while open", live), ("report once closed", frozen)):
                    print(
                        f"  {label:<22} {seconds * 1000:9.0f} ms   "
                        f"({seconds / aggregation:.2f}x the aggregation)"
                    )
                print(f"  closing (freeze)       {closing * 1000:9.0f} ms")
                for fmt in FORMATS:
                    peak, written = export_peak_mb(url, fmt)
                    peaks[fmt].append(peak)
                    print(
                        f"  export {fmt:<8} peak memory above start {peak:7.1f} MB, "
                        f"{written / 1e6:8.1f} MB written"
                    )
                database.dispose()
        finally:
            cleanup()
        print(
            f"\n[{engine_name}] export memory growth from {SIZES[0]:,} to {SIZES[1]:,} votes"
            " (aim < 50 MB):"
        )
        for fmt, (small, large) in peaks.items():
            print(f"  {fmt:<8} {large - small:+7.1f} MB")
    print()


if __name__ == "__main__":
    main()
