"""Prometheus metrics: what the app counts, and the text a scrape of ``/metrics`` returns.

Labels are bounded: requests are counted by route *template* (``/amendments/{amendment_id}``,
never ``/amendments/123``), method and status, so a crawler cannot grow the number of
series. Votes and proposals are counted as accepted (2xx/3xx), refused (4xx: closed,
ineligible, invalid) or failed (5xx, including 503 busy).

Several worker processes (``redline serve --workers N``) each count their own requests.
A scrape reaches one of them, so with more than one worker the metrics live in
prometheus_client's multiprocess mode: every process writes its values to memory-mapped
files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape of any worker sums them all.
``redline serve`` sets that directory up (see ``app.cli``); it must be set before
prometheus_client is first imported, which is why it is an environment variable and
not a setting.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from sqlalchemy import Engine, event

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "redline_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "redline_http_request_duration_seconds",
    "Time from a request's arrival until its response was sent, by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
VOTES = Counter(
    "redline_votes_total",
    "Votes sent (support, oppose or withdraw): accepted, refused (4xx) or failed (5xx).",
    ["outcome"],
)
PROPOSALS = Counter(
    "redline_proposals_total",
    "Amendments proposed: accepted, refused (4xx, e.g. invalid or ineligible) or failed (5xx).",
    ["outcome"],
)
DB_CHECKED_OUT = Gauge(
    "redline_db_connections_checked_out",
    "Database connections in use (checked out of the pool), summed over live processes.",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_POOL_LIMIT = Gauge(
    "redline_db_pool_limit",
    "Most connections the pool will open (pool size plus overflow), summed over live processes.",
    ["pool"],
    multiprocess_mode="livesum",
)

# The form posts whose outcome is counted, by route name.
_ACTIONS = {"vote": VOTES, "propose": PROPOSALS}


def outcome_of(status: int) -> str:
    """accepted, refused or failed, from the status the person got."""
    if status < 400:
        return "accepted"
    return "refused" if status < 500 else "failed"


def observe_request(method: str, route: str, route_name: str | None, status: int, seconds: float):
    """Count one answered request (and, for votes and proposals, its outcome)."""
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)
    action = _ACTIONS.get(route_name or "")
    if action is not None and method == "POST":
        action.labels(outcome_of(status)).inc()


def watch_pool(engine: Engine, pool_name: str) -> None:
    """Keep ``redline_db_connections_checked_out`` exact with the pool's own events."""
    pool = engine.pool
    size = getattr(pool, "size", None)
    if callable(size):
        DB_POOL_LIMIT.labels(pool_name).inc(size() + max(getattr(pool, "_max_overflow", 0), 0))
    gauge = DB_CHECKED_OUT.labels(pool_name)
    event.listen(engine, "checkout", lambda *_: gauge.inc())
    event.listen(engine, "checkin", lambda *_: gauge.dec())


def unwatch_pool(engine: Engine, pool_name: str) -> None:
    """The pool is closing: it no longer adds to the limit."""
    size = getattr(engine.pool, "size", None)
    if callable(size):
        DB_POOL_LIMIT.labels(pool_name).dec(
            size() + max(getattr(engine.pool, "_max_overflow", 0), 0)
        )


def multiprocess() -> bool:
    """True when metrics are shared between worker processes through files."""
    return bool(os.environ.get(MULTIPROC_DIR_VARIABLE))


def exposition() -> tuple[bytes, str]:
    """The body and content type of a scrape: this process, or every worker's files summed."""
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def process_exiting() -> None:
    """Drop this process's live gauges from the shared files (a worker is shutting down)."""
    if multiprocess():
        mark_process_dead(os.getpid())
