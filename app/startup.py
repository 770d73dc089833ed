"""What `redline serve` and ``create_app`` refuse to start with, naming what to fix.

Outside demo mode (demo personas on the embedded database) Redline serves real people:
its address must be https (cookies are ``Secure`` only then) unless it is this machine,
someone must be able to sign in (an identity provider), and the database schema must be
the one this code was written for (older: the operator has not run `redline migrate`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from app.db import Database, schema_behind
from app.settings import _LOOPBACK, Settings, SettingsError


def check_settings(settings: Settings) -> None:
    """Refuse settings that are only acceptable for a demo; SettingsError names the variable."""
    if settings.demo_sign_in_allowed:
        return
    address = urlsplit(settings.base_url)
    if address.scheme != "https" and address.hostname not in _LOOPBACK:
        raise SettingsError(
            f"REDLINE_BASE_URL must be an https:// address outside demo mode, not "
            f"{settings.base_url!r} (plain http is only for localhost, 127.0.0.1 and ::1)"
        )
    if not settings.oidc_providers:
        raise SettingsError(
            "REDLINE_OIDC_PROVIDERS is not set: outside demo mode people sign in through an "
            "identity provider, so configure at least one (see docs/sign-in.md), or set "
            "REDLINE_DEMO=1 on the embedded SQLite database for a demo"
        )


def check_schema(database: Database) -> None:
    """Refuse a database that cannot be reached or whose schema is older than this code."""
    where = make_url(database.url).render_as_string(hide_password=True)
    try:
        behind = schema_behind(database.engine)
    except sa_exc.SQLAlchemyError as error:
        raise SettingsError(
            f"REDLINE_DATABASE_URL: cannot reach the database at {where}: "
            f"{type(getattr(error, 'orig', None) or error).__name__}"
        ) from None
    if behind:
        raise SettingsError(
            f"REDLINE_DATABASE_URL: {behind} at {where}. Run `redline migrate` first."
        )
