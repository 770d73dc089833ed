"""`make bench`: how long the report takes against the SQL it rests on, and export memory.

For each engine (SQLite always; PostgreSQL when reachable at REDLINE_BENCH_POSTGRES_URL,
default the local server) it builds a consultation of 10,000 amendments and 50,000
voters twice, with 10,000 and with 1,000,000 votes, and prints:

- the bare SQL aggregation the ranking rests on (the two GROUP BY queries, rows fetched),
- the whole report (ranking, decisions, turnout, consolidated text), and their ratio,
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
from app.queries import (
    consultation_by_slug,
    organisation_recoding,
    votes_by_amendment_and_group,
)
from app.reporting import build_report
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
    """The two GROUP BY queries the ranking rests on, every row fetched, nothing else."""
    with database.session() as session:
        recode, _ = organisation_recoding(session, consultation_id)
        kept = sorted({group for group in recode.values() if group != "other"})
        session.exec(votes_by_amendment_and_group(consultation_id, kept)).all()


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
                report_time = best_of(lambda db=database: report(db))
                print(f"\n[{engine_name}] {votes:,} votes (built in {built:.1f} s)")
                print(f"  bare SQL aggregation   {aggregation * 1000:9.0f} ms")
                print(
                    f"  report                 {report_time * 1000:9.0f} ms   "
                    f"({report_time / aggregation:.2f}x the aggregation; aim <= 1.5x)"
                )
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
