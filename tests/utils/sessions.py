"""Sign a test client in as a user, the way Django's force_login does.

The cookie is signed with the app's own secret by the same scheme as Starlette's
SessionMiddleware, so the app under test reads it exactly as it reads its own.
Used where the sign-in route under test is not the point (and on PostgreSQL,
where demo sign-in is refused by design).
"""

from __future__ import annotations

import json
import secrets
import time
from base64 import b64encode

import itsdangerous
from starlette.testclient import TestClient

from app.main import SESSION_COOKIE
from app.services import get_user


def signed_session(
    secret_key: str,
    user_id: int,
    signed_in_at: int | None = None,
    seen_at: int | None = None,
    session_version: int = 0,
) -> tuple[str, str]:
    """A session cookie value for ``user_id`` signed with ``secret_key``, and its CSRF token.

    For clients of a real server process as much as for the test client: whoever
    holds the server's secret can make the cookie its sign-in would have set.
    """
    now = int(time.time())
    csrf = secrets.token_urlsafe(16)
    data = {
        "user_id": user_id,
        "signed_in_at": now if signed_in_at is None else signed_in_at,
        "seen_at": now if seen_at is None else seen_at,
        "csrf": csrf,
        # The user's session version now (0 until they first sign out): see app.auth.
        "session_version": session_version,
    }
    signer = itsdangerous.TimestampSigner(str(secret_key))
    return signer.sign(b64encode(json.dumps(data).encode())).decode(), csrf


def force_login(
    client: TestClient, user_id: int, signed_in_at: int | None = None, seen_at: int | None = None
) -> str:
    """Give ``client`` a signed-in session for ``user_id``; returns the session's CSRF token."""
    user = client.app.state.database.call(get_user, user_id)
    cookie, csrf = signed_session(
        client.app.state.settings.secret_key,
        user_id,
        signed_in_at,
        seen_at,
        user.session_version if user else 0,
    )
    # Replace any session the client already has, whatever domain its cookie was set for.
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, cookie)
    return csrf
