"""Where a page's time goes: cProfile over requests to the app in this process.

The app is built as `redline serve` builds it and called through ASGI in this thread,
with the database calls it would send to worker threads run inline, so that one
profile sees the whole of each request: database, ranking and templates. The server
under load is CPU-bound, so this is what its time is spent on.

    REDLINE_DATABASE_URL=sqlite:////tmp/bench.db .venv/bin/python -m bench.profile --build
    REDLINE_DATABASE_URL=... .venv/bin/python -m bench.profile /consultations/bench/clauses/1
    REDLINE_DATABASE_URL=... .venv/bin/python -m bench.profile --vote -n 200
    REDLINE_DATABASE_URL=... .venv/bin/python -m bench.profile --report

``--build`` migrates the database and fills it with bench/dataset.py's consultation
(``--quick`` for the smaller one); the others profile the page at PATH, htmx votes
from signed-in voters, or the report as `make bench` times it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import time

import anyio.to_thread
import httpx2

from app import db
from app.auth import CSRF_HEADER
from app.main import SESSION_COOKIE, create_app
from app.settings import Settings
from bench import dataset
from tests.utils.servers import PLACEHOLDER_PROVIDER_ENV, ROOT, SECRET_KEY
from tests.utils.sessions import signed_session


async def _inline(fn, *args, limiter=None, abandon_on_cancel=False, cancellable=None):
    return fn(*args)


def _shorten(stats: pstats.Stats) -> pstats.Stats:
    """File names relative to the project or to site-packages, so the table stays readable."""
    root, shortened = str(ROOT) + os.sep, {}
    for (file, line, name), value in stats.stats.items():
        if "site-packages" in file:
            file = file.split("site-packages" + os.sep, 1)[1]
        elif file.startswith(root):
            file = file[len(root) :]
        shortened[(file, line, name)] = value
    stats.stats = shortened
    return stats


def by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time summed per top-level package (per module of the project), largest first."""
    totals: dict[str, float] = {}
    for (file, _line, name), (_cc, _nc, own, _cum, _callers) in stats.stats.items():
        if file.startswith("psycopg") and name.startswith("wait"):
            package = "psycopg: waiting for PostgreSQL (not CPU)"
        elif file == "~":
            package = "built-in: " + name.split(" of ")[0].strip("<>{}")[:40]
        elif file.startswith(("app/", "bench/", "tests/")):
            package = file.removesuffix(".py")
        elif "/" in file and not file.startswith("/"):
            package = file.split("/", 1)[0]
        else:
            package = "python: " + os.path.basename(file).removesuffix(".py")
        totals[package] = totals.get(package, 0.0) + own
    return sorted(totals.items(), key=lambda item: -item[1])


def show(profile: cProfile.Profile, rows: int, only: str | None = None) -> None:
    """Own time per package, then the top of the profile by cumulative and by own time."""
    stats = _shorten(pstats.Stats(profile, stream=io.StringIO()))
    packages = by_package(stats)
    whole = sum(seconds for _, seconds in packages) or 1.0
    print("--- own time per package ---")
    for package, seconds in packages[:15]:
        print(f"  {seconds:8.3f} s {seconds / whole:6.1%}  {package}")
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = _shorten(pstats.Stats(profile, stream=out))
        restrictions = (only, rows) if only else (rows,)
        stats.sort_stats(order).print_stats(*restrictions)
        text = out.getvalue()
        print(f"--- by {order}{f', matching {only!r}' if only else ''} ---")
        print(text[text.find("   ncalls") :].rstrip())


def profile_requests(
    path: str | None, votes: bool, count: int, rows: int, only: str | None
) -> None:
    env = {
        **os.environ,
        "REDLINE_SECRET_KEY": SECRET_KEY,
        "REDLINE_DEMO": "0",
        **PLACEHOLDER_PROVIDER_ENV,
    }
    app = create_app(Settings.from_env(env))
    # Every worker-thread call (the Database's, and Starlette's run_in_threadpool) in this
    # thread, so that the profile sees it.
    anyio.to_thread.run_sync = _inline
    rng = random.Random(9)
    size = _size(app.state.database)

    def next_request() -> tuple[str, str, dict[str, str], str]:
        if not votes:
            return "GET", path, {}, ""
        cookie, csrf = signed_session(SECRET_KEY, rng.randint(1, size.voters))
        headers = {
            "Cookie": f"{SESSION_COOKIE}={cookie}",
            CSRF_HEADER: csrf,
            "HX-Request": "true",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        stance = rng.choice(("support", "oppose"))
        return (
            "POST",
            f"/amendments/{rng.randint(1, size.amendments)}/vote",
            headers,
            f"stance={stance}",
        )

    async def go() -> None:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as client:
            method, url, headers, body = next_request()
            first = await client.request(method, url, headers=headers, content=body)
            print(f"{method} {url}: {first.status_code}, {len(first.content) / 1024:.1f} KB")
            requests = [next_request() for _ in range(count)]
            profile = cProfile.Profile()
            started = time.perf_counter()
            profile.enable()
            for method, url, headers, body in requests:
                answer = await client.request(method, url, headers=headers, content=body)
                if answer.status_code >= 400:
                    print(f"  {answer.status_code} for {method} {url}")
            profile.disable()
            took = time.perf_counter() - started
            print(f"{count} requests, {took / count * 1000:.1f} ms each (under the profiler)")
            show(profile, rows, only)

    asyncio.run(go())
    app.state.database.dispose()


def profile_report(rows: int, only: str | None) -> None:
    from bench.run import report

    database = db.Database(os.environ["REDLINE_DATABASE_URL"])
    report(database)
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    report(database)
    profile.disable()
    print(f"report: {time.perf_counter() - started:.3f} s (under the profiler)")
    show(profile, rows, only)
    database.dispose()


def _size(database: db.Database) -> dataset.Size:
    counts = dataset.counts(database.engine)
    return dataset.Size(counts["amendment"], counts["user_account"], counts["vote"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="a page to GET, e.g. /consultations/bench/results")
    parser.add_argument("--vote", action="store_true", help="htmx votes of signed-in voters")
    parser.add_argument("--report", action="store_true", help="the report, as make bench times it")
    parser.add_argument("--build", action="store_true", help="migrate and fill the database")
    parser.add_argument("--quick", action="store_true", help="with --build: the smaller dataset")
    parser.add_argument("-n", "--requests", type=int, default=20)
    parser.add_argument("--rows", type=int, default=30, help="rows of each profile table")
    parser.add_argument("--only", help="only rows whose file:line(function) matches, e.g. app/")
    args = parser.parse_args()
    if args.build:
        url = os.environ["REDLINE_DATABASE_URL"]
        db.migrate(url)
        database = db.Database(url)
        size = dataset.QUICK if args.quick else dataset.FULL
        seconds = dataset.build(database.engine, size.amendments, size.voters, size.votes)
        print(f"built {size} in {seconds:.1f} s")
        database.dispose()
    elif args.report:
        profile_report(args.rows, args.only)
    elif args.vote or args.path:
        profile_requests(args.path, args.vote, args.requests, args.rows, args.only)
    else:
        parser.error("give a PATH, --vote, --report or --build")


if __name__ == "__main__":
    main()
