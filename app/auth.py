"""Who is asking: the session user, demo sign-in, CSRF tokens, and the guards views use."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from functools import wraps
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
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
IDLE_EXPIRY_SECONDS = 2 * 60 * 60
ABSOLUTE_EXPIRY_SECONDS = 12 * 60 * 60


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
    request.session[SESSION_CSRF] = secrets.token_urlsafe(32)


def end_session(request: Request) -> None:
    """Sign out: nothing of the session survives."""
    request.session.clear()


def session_user_id(request: Request) -> int | None:
    """The signed-in user's id, or None when there is none or the session has expired."""
    user_id = request.session.get(SESSION_USER)
    if user_id is None:
        return None
    now = int(time.time())
    signed_in_at = request.session.get(SESSION_SIGNED_IN_AT, 0)
    seen_at = request.session.get(SESSION_SEEN_AT, 0)
    if now - signed_in_at > ABSOLUTE_EXPIRY_SECONDS or now - seen_at > IDLE_EXPIRY_SECONDS:
        end_session(request)
        return None
    if now - seen_at > 60:
        # Refreshing at most once a minute keeps most responses from re-setting the cookie.
        request.session[SESSION_SEEN_AT] = now
    return int(user_id)


async def current_user(request: Request) -> User | None:
    """The signed-in user, loaded once per request."""
    if "user" not in request.state._state:
        user_id = session_user_id(request)
        user = await request.app.state.database.run(get_user, user_id) if user_id else None
        if user_id and user is None:
            end_session(request)
        request.state.user = user
    return request.state.user


ROLE_RANK = {"participant": 0, "organiser": 1, "admin": 2}


def role_of(user: User | None, settings: Settings) -> str | None:
    """The stronger of the stored role (granted by an administrator) and the configured one.

    Only a verified e-mail address can pick up a role from REDLINE_ORGANISERS or REDLINE_ADMINS.
    """
    if user is None:
        return None
    configured = settings.role_for_email(user.email) if user.email_verified else None
    if configured and ROLE_RANK[configured] > ROLE_RANK.get(user.role, 0):
        return configured
    return user.role


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
