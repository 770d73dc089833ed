"""Settings read once from ``REDLINE_*`` environment variables and validated at start-up."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATABASE_URL = "sqlite:///redline.db"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false (1/0, yes/no), not {raw!r}")


def _emails(env: Mapping[str, str], name: str) -> frozenset[str]:
    raw = env.get(name, "")
    addresses = [part.strip().lower() for part in raw.split(",") if part.strip()]
    for address in addresses:
        if "@" not in address:
            raise SettingsError(f"{name} must list e-mail addresses; {address!r} is not one")
    return frozenset(addresses)


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to know about its environment."""

    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    demo: bool = False
    base_url: str = "http://127.0.0.1:8000"
    organisers: frozenset[str] = frozenset()
    admins: frozenset[str] = frozenset()
    seed_dir: Path = Path(__file__).resolve().parent.parent / "seed"

    @property
    def is_embedded_database(self) -> bool:
        """True when the database is the embedded SQLite engine."""
        return self.database_url.startswith("sqlite")

    @property
    def demo_sign_in_allowed(self) -> bool:
        """Demo personas exist only in demo mode on the embedded database (DESIGN.md)."""
        return self.demo and self.is_embedded_database

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate settings; raise SettingsError naming the bad variable."""
        env = os.environ if env is None else env
        database_url = env.get("REDLINE_DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
        if database_url.startswith("postgres://"):
            database_url = "postgresql://" + database_url[len("postgres://") :]
        if database_url.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; plain URLs would ask for psycopg2.
            database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
        if not database_url.startswith(("sqlite", "postgresql")):
            raise SettingsError(
                "REDLINE_DATABASE_URL must be an SQLite or PostgreSQL SQLAlchemy URL, "
                f"not {database_url.split(':', 1)[0]!r}"
            )
        demo = _flag(env, "REDLINE_DEMO")
        secret_key = env.get("REDLINE_SECRET_KEY", "").strip()
        if not secret_key:
            if not demo:
                raise SettingsError(
                    "REDLINE_SECRET_KEY is not set: outside demo mode Redline needs a long "
                    "random secret to sign sessions (for example: "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
            secret_key = secrets.token_urlsafe(32)
        elif len(secret_key) < 16:
            raise SettingsError("REDLINE_SECRET_KEY is too short: use at least 16 characters")
        base_url = env.get("REDLINE_BASE_URL", "").strip().rstrip("/") or cls.base_url
        if not base_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"REDLINE_BASE_URL must start with http:// or https://, not {base_url!r}"
            )
        seed_dir = Path(env.get("REDLINE_SEED_DIR", "") or cls.seed_dir)
        return cls(
            database_url=database_url,
            secret_key=secret_key,
            demo=demo,
            base_url=base_url,
            organisers=_emails(env, "REDLINE_ORGANISERS"),
            admins=_emails(env, "REDLINE_ADMINS"),
            seed_dir=seed_dir,
        )
