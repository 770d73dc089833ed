"""Rate limits on sign-in, proposing, reporting and voting, per user and per client address.

The ``limits`` library counts (fixed windows); its storage is Redis when
REDLINE_REDIS_URL is set, otherwise Redline's own database (app.rate_limit_store), so
that every web process shares one count either way. A refused request is a 429
"Too many requests" page (a fragment for htmx) with ``Retry-After``.

If the storage itself fails (Redis down, the database busy), the request is let
through and a warning logged: rate limits protect the service, and refusing every
vote because a counter could not be read would be the outage they exist to prevent.

Web layer: reads the request (client address, session user) and raises a RedlineError.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from functools import wraps

from limits import RateLimitItem
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from app.auth import session_user_id
from app.db import Database
from app.errors import RedlineError
from app.rate_limit_rules import ACTIONS, SCOPES, parse_limit, setting_key
from app.rate_limit_store import DatabaseStorage
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
        self.storage: Storage = (
            storage_from_string(settings.redis_url)
            if settings.redis_url
            else DatabaseStorage(database)
        )
        self.strategy = FixedWindowRateLimiter(self.storage)
        self.limits: dict[tuple[str, str], tuple[RateLimitItem, ...]] = {
            (action, scope): parse_limit(settings.rate_limits[setting_key(action, scope)])
            for action in ACTIONS
            for scope in SCOPES
        }

    def hit(self, action: str, user: str | None, address: str | None) -> int | None:
        """Count one ``action``; None when allowed, else seconds until it is allowed again."""
        waits = []
        for scope, identity in (("user", user), ("address", address)):
            if identity is None:
                continue
            for item in self.limits[(action, scope)]:
                if not self.strategy.hit(item, action, scope, identity):
                    reset = self.strategy.get_window_stats(item, action, scope, identity)[0]
                    waits.append(max(1, math.ceil(reset - time.time())))
        return max(waits) if waits else None


async def enforce(
    request: Request, action: str, user: str | None = None, per_address: bool = True
) -> None:
    """Count ``action`` for this client (and ``user``, default the session's); 429 if over."""
    if user is None:
        user_id = session_user_id(request)
        user = str(user_id) if user_id is not None else None
    address = request.client.host if request.client and per_address else None
    limiter: RateLimiter = request.app.state.rate_limiter
    try:
        wait = await run_in_threadpool(limiter.hit, action, user, address)
    except Exception as error:  # any storage failure: let the request through (see above)
        log.warning("rate limit storage failed for %s; request allowed: %r", action, error)
        return
    if wait is not None:
        log.info("rate limit reached: %s from %s (user %s)", action, address, user)
        raise TooManyRequests(wait)


def rate_limited(
    action: str,
) -> Callable[[Callable[[Request], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]]:
    """Decorate a form handler so that every post counts, before even its CSRF check."""

    def decorate(
        endpoint: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        @wraps(endpoint)
        async def limited(request: Request) -> Response:
            await enforce(request, action)
            return await endpoint(request)

        return limited

    return decorate
