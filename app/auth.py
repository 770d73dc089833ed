"""Who is asking: the session user, demo sign-in, CSRF tokens, and the guards views use."""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from app.errors import NotAllowed
from app.models import User
from app.services import get_user
from app.settings import Settings

SESSION_USER = "user_id"
SESSION_CSRF = "csrf"
SESSION_SIGNED_IN_AT = "signed_in_at"
SESSION_SEEN_AT = "seen_at"
# The user's session version when the session began; a different one in the database
# means the session was ended on the server (sign-out, role revoked): see current_user.
SESSION_VERSION = "session_version"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
log = logging.getLogger("redline.auth")
# The idle limit is a setting (REDLINE_SESSION_IDLE_MINUTES); the absolute one is not.
ABSOLUTE_EXPIRY_SECONDS = 12 * 60 * 60
T = TypeVar("T")


class CsrfFailed(NotAllowed):
    title = "Your form has expired"


def csrf_token(request: Request) -> str:
    """This session's CSRF token, created on first use."""
    token = request.session.get(SESSION_CSRF)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_CSRF] = token
    return token


def csrf_protected(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Refuse a state-changing request without this session's CSRF token (field or header)."""

    @wraps(endpoint)
    async def checked(request: Request) -> Response:
        expected = request.session.get(SESSION_CSRF)
        sent = request.headers.get(CSRF_HEADER)
        if not sent:
            form = await request.form()
            sent = form.get(CSRF_FIELD)
        # Compared as bytes: compare_digest raises TypeError on non-ASCII str (a 500).
        if (
            not expected
            or not isinstance(sent, str)
            or not hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode("utf-8"))
        ):
            raise CsrfFailed(
                "This form was sent without a valid security token, so nothing was changed. "
                "Go back, reload the page and try again."
            )
        return await endpoint(request)

    checked.csrf_protected = True  # type: ignore[attr-defined]
    return checked


def start_session(request: Request, user: User) -> None:
    """Begin a signed-in session, dropping everything from before (no session fixation)."""
    request.session.clear()
    now = int(time.time())
    request.session[SESSION_USER] = user.id
    request.session[SESSION_SIGNED_IN_AT] = now
    request.session[SESSION_SEEN_AT] = now
    request.session[SESSION_VERSION] = user.session_version
    request.session[SESSION_CSRF] = secrets.token_urlsafe(32)
    log.info("sign-in: user %s", user.id, extra={"event": "sign-in", "user_id": user.id})


def end_session(request: Request) -> None:
    """Forget the session in this browser: nothing of it survives in the cookie.

    This alone does not stop a copy of the cookie; signing out also ends the session
    on the server (``app.roles.end_sessions``).
    """
    user_id = request.session.get(SESSION_USER)
    request.session.clear()
    if user_id is not None:
        log.info("sign-out: user %s", user_id, extra={"event": "sign-out", "user_id": user_id})


def session_user_id(request: Request) -> int | None:
    """The signed-in user's id, or None when there is none or the session has expired.

    Both limits are checked here, on the server, against times the server signed into
    the cookie: a copy of the cookie expires with it and cannot be made younger.
    """
    user_id = request.session.get(SESSION_USER)
    if user_id is None:
        return None
    now = int(time.time())
    signed_in_at = request.session.get(SESSION_SIGNED_IN_AT, 0)
    seen_at = request.session.get(SESSION_SEEN_AT, 0)
    idle_limit = request.app.state.settings.session_idle_seconds
    if now - signed_in_at > ABSOLUTE_EXPIRY_SECONDS or now - seen_at > idle_limit:
        end_session(request)
        return None
    if now - seen_at > 60:
        # Refreshing at most once a minute keeps most responses from re-setting the cookie.
        request.session[SESSION_SEEN_AT] = now
    return int(user_id)


def still_signed_in(request: Request, user: User | None) -> bool:
    """Whether ``user``, as just loaded, may act in this session: it has not been ended on
    the server (signed out, a role revoked) since the cookie was issued."""
    return user is not None and request.session.get(SESSION_VERSION, 0) == user.session_version


def remember_user(request: Request, user_id: int | None, user: User | None) -> User | None:
    """Settle this request's user, given the account loaded for the session's ``user_id``.

    Every copy of a cookie whose session was ended on the server lands here: the user is
    None and the session is forgotten in this browser. ``current_user`` returns what
    this remembered, without loading it again.
    """
    if not still_signed_in(request, user):
        user = None
    if user_id and user is None:
        end_session(request)
    request.state.user = user
    return user


async def current_user(request: Request) -> User | None:
    """The signed-in user, loaded once per request."""
    if "user" not in request.state._state:
        user_id = session_user_id(request)
        user = await request.app.state.database.run(get_user, user_id) if user_id else None
        remember_user(request, user_id, user)
    return request.state.user


async def run_as_session_user(
    request: Request, fn: Callable[..., T], *args: Any, in_thread: bool = False, **kwargs: Any
) -> T:
    """``fn(session, user, *args, **kwargs)`` in one read session, ``user`` loaded in it.

    A page that reads the database anyway loads the signed-in user in the same session:
    one session and one pooled connection instead of two. The user is settled as
    ``current_user`` settles it (None when the session was ended on the server), and
    ``current_user`` then returns it without loading it again. ``in_thread`` for a
    ``fn`` that computes for long (``Database.run_in_thread``).
    """
    database = request.app.state.database
    run = database.run_in_thread if in_thread else database.run
    if "user" in request.state._state:
        return await run(fn, request.state.user, *args, **kwargs)
    user_id = session_user_id(request)

    def as_session_user(session: Any) -> tuple[User | None, T]:
        user = get_user(session, user_id) if user_id else None
        signed_in = user if still_signed_in(request, user) else None
        return user, fn(session, signed_in, *args, **kwargs)

    user, result = await run(as_session_user)
    remember_user(request, user_id, user)
    return result


ROLE_RANK = {"participant": 0, "organiser": 1, "admin": 2}


def role_of(user: User | None, settings: Settings) -> str | None:
    """The stronger of the granted role and the configured one, for this one identity.

    Both need the identity's address to be verified by its provider now: a role from
    REDLINE_ORGANISERS or REDLINE_ADMINS applies while the verified address is listed
    there; a role granted with ``redline grant`` applies while the identity still has,
    verified, the address it was granted to (``User.role_address``).
    """
    if user is None:
        return None
    if not user.email_verified:
        return "participant"
    configured = settings.role_for_email(user.email)
    granted = user.role if user.role_address and user.role_address == user.email else None
    best = "participant"
    for role in (granted, configured):
        if role and ROLE_RANK[role] > ROLE_RANK[best]:
            best = role
    return best


async def require_organiser(request: Request) -> User:
    """The signed-in organiser (or administrator), or a 403 refusal."""
    user = await current_user(request)
    if user is None:
        raise NotAllowed("Sign in as an organiser to see this page.")
    if role_of(user, request.app.state.settings) not in ("organiser", "admin"):
        raise NotAllowed("This page is for the organisers of consultations.")
    return user


def safe_next(target: str | None, default: str = "/") -> str:
    """A path on this site to go to after sign-in; anything else becomes ``default``.

    Checked as sent and once decoded, so that encoded forms such as ``/%2F%2Fhost``
    or ``/%5Chost`` cannot turn into another site in a lenient browser.
    """
    if not target:
        return default
    for candidate in (target, unquote(target)):
        if not candidate.startswith("/") or candidate.startswith("//"):
            return default
        if "\\" in candidate or any(ord(ch) < 32 or ord(ch) == 127 for ch in candidate):
            return default
        parts = urlsplit(candidate)
        if parts.scheme or parts.netloc:
            return default
    return target
