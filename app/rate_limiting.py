"""Rate limits on sign-in, proposing, reporting and voting, per user and per client address.

The ``limits`` library counts (fixed windows). Where the counts live:

- Redis when REDLINE_REDIS_URL is set: shared by every process on every host.
- PostgreSQL otherwise (app.rate_limit_store, table ``rate_limit_window``): shared
  by every process on every host, one small upsert per counted request.
- On the embedded SQLite default, in each process's memory. Measured: a count in the
  database costs one more write transaction per vote, and SQLite has one writer at a
  time, so every vote would wait for another commit (about 7 ms each on the shared
  test machine, as long as the vote itself). The embedded engine serves one host;
  with ``--workers N`` each worker counts separately, so a limit allows up to N times
  as much. Set REDLINE_REDIS_URL to share counts there too.

A refused request is a 429 "Too many requests" page (a fragment for htmx) with
``Retry-After``.

If the storage itself fails (Redis down, the database busy), the request is let
through and a warning logged: rate limits protect the service, and refusing every
vote because a counter could not be read would be the outage they exist to prevent.

Web layer: reads the request (client address, session user) and raises a RedlineError.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from functools import wraps

import anyio
from limits import RateLimitItem
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from app.auth import session_user_id
from app.db import Database
from app.errors import RedlineError
from app.rate_limit_rules import ACTIONS, SCOPES, parse_limit, setting_key
from app.rate_limit_store import DatabaseStorage, MemoryStorage
from app.settings import Settings

log = logging.getLogger("redline.rate_limits")


class TooManyRequests(RedlineError):
    """A rate limit was reached; ``retry_after`` seconds until the window ends."""

    status = 429
    title = "Too many requests"

    def __init__(self, retry_after: int) -> None:
        minutes = "a minute" if retry_after <= 60 else f"{math.ceil(retry_after / 60)} minutes"
        super().__init__(
            f"You have done this too many times in a short time. Wait {minutes} and try "
            "again. Nothing from this request has been saved."
        )
        self.retry_after = retry_after


class RateLimiter:
    """The configured limits of one app over one shared storage."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.storage: Storage
        # Whether counting waits for a network or a database (then it runs in a worker
        # thread); counts in this process's memory take microseconds, less than a hop.
        self.blocking = True
        if settings.redis_url:
            self.storage = storage_from_string(settings.redis_url)
        elif settings.is_embedded_database:
            self.storage = MemoryStorage()
            self.blocking = False
        else:
            self.storage = DatabaseStorage(database)
        self.strategy = FixedWindowRateLimiter(self.storage)
        self.limits: dict[tuple[str, str], tuple[RateLimitItem, ...]] = {
            (action, scope): parse_limit(settings.rate_limits[setting_key(action, scope)])
            for action in ACTIONS
            for scope in SCOPES
        }

    @property
    def counts_in_database(self) -> bool:
        """Whether counts are kept in the app's database (then a write can make them)."""
        return isinstance(self.storage, DatabaseStorage)

    def hit(
        self, action: str, user: str | None, address: str | None, session: Session | None = None
    ) -> int | None:
        """Count one ``action``; None when allowed, else seconds until it is allowed again.

        ``session``: see ``DatabaseStorage.incr_many`` (the other storages ignore it).
        """
        counted = [
            (item, (action, scope, identity))
            for scope, identity in (("user", user), ("address", address))
            if identity is not None
            for item in self.limits[(action, scope)]
        ]
        if not counted:
            return None
        if self.counts_in_database:
            # The fixed-window rule of limits' FixedWindowRateLimiter.hit, over one commit.
            hits = self.storage.incr_many(
                [(item.key_for(*ids), item.get_expiry(), 1) for item, ids in counted], session
            )
            refused = [
                (item, ids) for (item, ids), n in zip(counted, hits, strict=True) if n > item.amount
            ]
        else:
            refused = [(item, ids) for item, ids in counted if not self.strategy.hit(item, *ids)]
        waits = [
            max(1, math.ceil(self.strategy.get_window_stats(item, *ids).reset_time - time.time()))
            for item, ids in refused
        ]
        return max(waits) if waits else None


def _subject(
    request: Request, user: str | None, per_address: bool
) -> tuple[RateLimiter, str | None, str | None]:
    if user is None:
        user_id = session_user_id(request)
        user = str(user_id) if user_id is not None else None
    address = request.client.host if request.client and per_address else None
    return request.app.state.rate_limiter, user, address


def _count(
    limiter: RateLimiter,
    action: str,
    user: str | None,
    address: str | None,
    session: Session | None = None,
) -> None:
    """Count ``action``; TooManyRequests if over a limit (blocking with a blocking storage)."""
    try:
        wait = limiter.hit(action, user, address, session)
    except Exception as error:  # any storage failure: let the request through (see above)
        log.warning("rate limit storage failed for %s; request allowed: %r", action, error)
        return
    if wait is not None:
        # The user id only: client addresses are personal data the logs do not keep.
        log.info("rate limit reached: %s (user %s)", action, user or "-")
        raise TooManyRequests(wait)


async def enforce(
    request: Request, action: str, user: str | None = None, per_address: bool = True
) -> None:
    """Count ``action`` for this client (and ``user``, default the session's); 429 if over."""
    limiter, user, address = _subject(request, user, per_address)
    if limiter.blocking:
        await run_in_threadpool(_count, limiter, action, user, address)
    else:
        _count(limiter, action, user, address)


def rate_limited(
    action: str, *, in_write: bool = False
) -> Callable[[Callable[[Request], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]]:
    """Decorate a form handler so that every post counts, before even its CSRF check.

    With ``in_write``, for a handler whose work is one ``Database.write`` that calls
    ``count_in_write`` before anything else: a count kept in the database is made in
    that write, on its connection, instead of a thread hop and a pool checkout of its
    own. A count kept elsewhere (Redis) is made first, in a worker thread: the write may
    run on the event loop (app.db), where a blocking call to Redis must not. What the
    client sees is the
    same: over a limit, 429 and nothing written; a handler that fails before its write
    (a bad security token, say) has written nothing, so it is counted then, and 429
    replaces its answer if over a limit, as if counted first.
    """

    def decorate(
        endpoint: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        @wraps(endpoint)
        async def limited(request: Request) -> Response:
            limiter, user, address = _subject(request, None, True)
            if not (in_write and limiter.counts_in_database):
                await enforce(request, action)
                return await endpoint(request)
            request.state.rate_count = functools.partial(_count, limiter, action, user, address)
            try:
                return await endpoint(request)
            finally:
                pending = request.state.rate_count
                if pending is not None:
                    request.state.rate_count = None
                    # Shielded: a client that hangs up must not skip the count of its post.
                    with anyio.CancelScope(shield=True):
                        await run_in_threadpool(pending)

        return limited

    return decorate


def count_in_write(request: Request, session: Session) -> None:
    """Make the count ``rate_limited(..., in_write=True)`` left to this write, if any.

    Call it first in the write's function, before any statement of its own: over a
    limit it raises TooManyRequests and nothing is written.
    """
    pending = getattr(request.state, "rate_count", None)
    if pending is not None:
        request.state.rate_count = None
        pending(session)
