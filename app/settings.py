"""Settings read once from ``REDLINE_*`` environment variables and validated at start-up."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from app.rate_limit_rules import DEFAULT_RATE_LIMITS, rate_limits_from_env

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
class OidcProvider:
    """One OpenID Connect provider, from REDLINE_OIDC_<NAME>_* variables."""

    name: str
    issuer: str
    client_id: str
    # A shared secret (client_secret_basic), or with private_key_jwt the PEM private key.
    client_secret: str = field(repr=False)
    label: str
    private_key_jwt: bool = False

    @property
    def metadata_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


_PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _providers(env: Mapping[str, str]) -> tuple[OidcProvider, ...]:
    names = [
        n.strip().lower() for n in env.get("REDLINE_OIDC_PROVIDERS", "").split(",") if n.strip()
    ]
    providers = []
    for name in names:
        if not _PROVIDER_NAME.match(name):
            raise SettingsError(
                f"REDLINE_OIDC_PROVIDERS: {name!r} is not a valid provider name "
                "(lower-case letters, digits and underscores, starting with a letter)"
            )
        prefix = f"REDLINE_OIDC_{name.upper()}_"
        values = {}
        key_file = env.get(prefix + "PRIVATE_KEY_FILE", "").strip()
        for part in ("ISSUER", "CLIENT_ID", "CLIENT_SECRET", "LABEL"):
            value = env.get(prefix + part, "").strip()
            if part == "CLIENT_SECRET" and key_file:
                if value:
                    raise SettingsError(
                        f"set {prefix}CLIENT_SECRET or {prefix}PRIVATE_KEY_FILE, not both"
                    )
                value = _private_key(prefix + "PRIVATE_KEY_FILE", key_file)
            if not value:
                raise SettingsError(
                    f"{prefix}{part} is not set "
                    f"(provider {name!r} is listed in REDLINE_OIDC_PROVIDERS)"
                )
            values[part] = value
        issuer = urlsplit(values["ISSUER"])
        if issuer.scheme not in ("https", "http") or not issuer.hostname:
            raise SettingsError(f"{prefix}ISSUER must be an https:// URL, not {values['ISSUER']!r}")
        if issuer.scheme == "http" and issuer.hostname not in _LOOPBACK:
            raise SettingsError(
                f"{prefix}ISSUER must use https:// (plain http is only for loopback test providers)"
            )
        providers.append(
            OidcProvider(
                name=name,
                issuer=values["ISSUER"].rstrip("/"),
                client_id=values["CLIENT_ID"],
                client_secret=values["CLIENT_SECRET"],
                label=values["LABEL"],
                private_key_jwt=bool(key_file),
            )
        )
    if len(set(names)) != len(names):
        raise SettingsError("REDLINE_OIDC_PROVIDERS lists the same provider twice")
    return tuple(providers)


def _private_key(variable: str, path: str) -> str:
    """The PEM text of an RSA private key file, checked now rather than at first sign-in."""
    from joserfc.jwk import RSAKey

    try:
        pem = Path(path).read_text(encoding="ascii")
        RSAKey.import_key(pem)
    except OSError as error:
        raise SettingsError(f"{variable}: cannot read {path}: {error.strerror}") from None
    except Exception:
        raise SettingsError(f"{variable}: {path} is not a PEM RSA private key") from None
    if "PRIVATE KEY" not in pem:
        raise SettingsError(f"{variable}: {path} holds a public key; it must be the private key")
    return pem


def _seconds(env: Mapping[str, str], name: str, default: float, unit: str = "seconds") -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of {unit}, not {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be more than 0 {unit}")
    return value


def demo_secret_path(database_url: str) -> Path | None:
    """Where the demo keeps its session secret: beside its SQLite file (None: no file)."""
    if not database_url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    database = make_url(database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).with_name(Path(database).name + ".secret")


def demo_secret_key(database_url: str) -> str:
    """The demo's session secret, made once and shared by every process serving it.

    Each uvicorn worker reads the settings itself, so a random key per process
    would make a session cookie signed by one worker invalid at the next. The key
    is kept in ``<database>.secret`` (mode 0600) beside the demo's SQLite file. Two
    workers starting together agree: each writes a complete candidate to a temporary
    file and hard-links it into place, which fails if the file exists; whoever lost
    reads the winner's. Where there is no file to keep it beside (in-memory SQLite,
    PostgreSQL, where demo sign-in is refused anyway) or it cannot be written, the
    key is random per process, as before.
    """
    path = demo_secret_path(database_url)
    if path is None:
        return secrets.token_urlsafe(32)
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    except OSError:
        return secrets.token_urlsafe(32)
    candidate = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # If another process got there first, its key is the one.
        with contextlib.suppress(FileExistsError):
            os.link(candidate, path)
        return _read_secret(path)
    except OSError:
        # A read-only directory, or a file system without hard links: the demo still
        # runs, with a key per process (one worker is then the only safe choice).
        return secrets.token_urlsafe(32)
    finally:
        candidate.unlink(missing_ok=True)


def _read_secret(path: Path) -> str:
    secret = path.read_text(encoding="ascii").strip()
    if len(secret) < 16:
        raise SettingsError(
            f"{path} does not hold a usable demo secret: delete it and start again, "
            "or set REDLINE_SECRET_KEY"
        )
    return secret


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
    oidc_providers: tuple[OidcProvider, ...] = ()
    # How long to wait for an identity provider before showing an error page.
    oidc_timeout: float = 10.0
    # Logs as plain text lines or JSON lines (app.observability).
    log_format: str = "text"
    # The bearer token a Prometheus scrape of /metrics must send; None: /metrics is 404.
    metrics_token: str | None = field(default=None, repr=False)
    # A session ends after this long without a request (REDLINE_SESSION_IDLE_MINUTES,
    # 120 by default; ASVS 4.0.3 V3.3.2 at level 2 asks for 30: docs/security.md).
    session_idle_seconds: float = 2 * 60 * 60
    # Rate limits by key (app.rate_limit_rules), kept in Redis when redis_url is set,
    # otherwise in PostgreSQL, or per process on SQLite (see app.rate_limiting).
    rate_limits: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    redis_url: str = field(default="", repr=False)

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

    def provider(self, name: str) -> OidcProvider | None:
        """The configured provider with this name, if any."""
        return next((p for p in self.oidc_providers if p.name == name), None)

    def role_for_email(self, email: str) -> str | None:
        """The role configuration gives this (verified) e-mail address, if any."""
        email = email.strip().lower()
        if email in self.admins:
            return "admin"
        if email in self.organisers:
            return "organiser"
        return None

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
            secret_key = demo_secret_key(database_url)
        elif len(secret_key) < 16:
            raise SettingsError("REDLINE_SECRET_KEY is too short: use at least 16 characters")
        base_url = env.get("REDLINE_BASE_URL", "").strip().rstrip("/") or cls.base_url
        if not base_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"REDLINE_BASE_URL must start with http:// or https://, not {base_url!r}"
            )
        seed_dir = Path(env.get("REDLINE_SEED_DIR", "") or cls.seed_dir)
        log_format = env.get("REDLINE_LOG_FORMAT", "").strip().lower() or "text"
        if log_format not in ("text", "json"):
            raise SettingsError(f"REDLINE_LOG_FORMAT must be text or json, not {log_format!r}")
        metrics_token = env.get("REDLINE_METRICS_TOKEN", "").strip() or None
        if metrics_token is not None and len(metrics_token) < 16:
            raise SettingsError("REDLINE_METRICS_TOKEN is too short: use at least 16 characters")
        try:
            rate_limits = rate_limits_from_env(env)
        except ValueError as error:
            raise SettingsError(str(error)) from None
        redis_url = env.get("REDLINE_REDIS_URL", "").strip()
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError("REDLINE_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        return cls(
            database_url=database_url,
            secret_key=secret_key,
            demo=demo,
            base_url=base_url,
            organisers=_emails(env, "REDLINE_ORGANISERS"),
            admins=_emails(env, "REDLINE_ADMINS"),
            seed_dir=seed_dir,
            oidc_providers=_providers(env),
            oidc_timeout=_seconds(env, "REDLINE_OIDC_TIMEOUT", 10.0),
            log_format=log_format,
            metrics_token=metrics_token,
            session_idle_seconds=60
            * _seconds(env, "REDLINE_SESSION_IDLE_MINUTES", 120, unit="minutes"),
            rate_limits=rate_limits,
            redis_url=redis_url,
        )
