"""OpenID Connect sign-in through Authlib: authorization code flow with PKCE, state and nonce.

Authlib keeps state, nonce and the PKCE verifier in the (signed) session between
the redirect and the callback, consumes them on the first callback, and verifies
the ID token against the provider's JWKS: signature, ``iss``, ``aud``, ``exp`` and
``nonce``. On top of that:

- The issuer is the configured ``REDLINE_OIDC_<NAME>_ISSUER``, never what a provider
  advertises: its discovery document must name the same issuer (OpenID Connect
  Discovery 1.0, 4.3), checked when a sign-in starts and again at the callback,
  and every ID token's ``iss`` must equal it. Users are keyed by the configured
  issuer. Discovery is fetched lazily, at the first sign-in, so that a provider
  that is down (or misconfigured) does not stop Redline starting or its other
  providers working; the person who tries it gets a page naming the variable, and
  the operator a logged error.
- A sign-in that fails against a provider forgets its metadata and keys, so the
  next sign-in reads them afresh (a provider that moved or rotated keys recovers
  without a restart).
- Each ``state`` is single-use on the server too (app.sign_in_states).
- A provider's ``error`` text is never shown (any text can be placed there), only
  logged in a bounded, printable form.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx2
from authlib.integrations.starlette_client import OAuth, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import Response

from app.errors import RedlineError
from app.settings import OidcProvider, Settings, SettingsError

log = logging.getLogger("redline.oidc")


class SignInFailed(RedlineError):
    """Sign-in did not complete; the message tells the person what happened and what to do."""

    status = 400
    title = "You have not been signed in"


class ProviderUnavailable(SignInFailed):
    status = 502
    title = "Sign-in is not working at the moment"


class ProviderMisconfigured(ProviderUnavailable):
    """The provider and Redline's configuration disagree: only an operator can fix it."""


def issuer_variable(provider: OidcProvider) -> str:
    """The environment variable that configures this provider's issuer."""
    return f"REDLINE_OIDC_{provider.name.upper()}_ISSUER"


def forget_metadata(client) -> None:
    """Make Authlib fetch the discovery document and signing keys again at next use."""
    client.server_metadata.pop("_loaded_at", None)
    client.server_metadata.pop("jwks", None)


def printable(value: str | None, limit: int = 80) -> str:
    """A provider's text made safe for one log line: bounded, no control characters."""
    text = "".join(ch if ch.isprintable() else "?" for ch in (value or ""))
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def issuer_matches(provider: OidcProvider, issuer: object) -> bool:
    """True when ``issuer`` is the configured one (a trailing "/" is no difference).

    The one rule for the discovery document at start-up and at each sign-in, and for
    every ID token's ``iss`` (OpenID Connect Discovery 1.0, 4.3; Core 3.1.3.7).
    """
    return str(issuer or "").rstrip("/") == provider.issuer


async def checked_metadata(client, provider: OidcProvider) -> dict:
    """The provider's discovery document, refused unless it names the configured issuer."""
    metadata = await client.load_server_metadata()
    advertised = str(metadata.get("issuer") or "")
    if not issuer_matches(provider, advertised):
        forget_metadata(client)
        log.error(
            "sign-in with %s refused: its discovery document names issuer %s, "
            "but %s is %r (OpenID Connect Discovery 1.0, 4.3)",
            provider.name,
            printable(advertised, 200),
            issuer_variable(provider),
            provider.issuer,
        )
        raise ProviderMisconfigured(
            f"Signing in with {provider.label} is not set up correctly: the provider names a "
            f"different issuer from the one in {issuer_variable(provider)}, so Redline does not "
            "trust it. Tell the people who run this service."
        )
    return metadata


def check_issuers_at_start(settings: Settings) -> None:
    """Refuse to start when a provider's discovery document names another issuer.

    OpenID Connect Discovery 1.0, 4.3: the issuer a provider advertises must equal the
    one it was configured with. Each discovery document is read once here, and the
    SettingsError names the variable to fix. A provider that cannot be reached now is
    logged and left to ``checked_metadata``, which checks again at every sign-in: one
    provider being down must not stop Redline or its other providers.
    """
    for provider in settings.oidc_providers:
        try:
            answer = httpx2.get(provider.metadata_url, timeout=settings.oidc_timeout)
            answer.raise_for_status()
            advertised = str(answer.json().get("issuer") or "")
        except (httpx2.HTTPError, ValueError, AttributeError) as error:
            log.warning(
                "identity provider %s not checked at start-up (%s): its issuer is checked "
                "at each sign-in instead",
                provider.name,
                type(error).__name__,
            )
            continue
        if not issuer_matches(provider, advertised):
            raise SettingsError(
                f"{issuer_variable(provider)} is {provider.issuer!r}, but that provider's "
                f"discovery document names the issuer {printable(advertised, 200)}: they "
                "must be equal (OpenID Connect Discovery 1.0, 4.3)"
            )


@dataclass(frozen=True)
class Identity:
    """What Redline keeps from a verified sign-in."""

    issuer: str
    subject: str
    email: str
    email_verified: bool
    name: str | None


def make_registry(settings: Settings) -> OAuth:
    """An Authlib registry with one client per configured provider."""
    oauth = OAuth()
    for provider in settings.oidc_providers:
        client_kwargs = {
            "scope": "openid email profile",
            "code_challenge_method": "S256",
            "timeout": settings.oidc_timeout,
        }
        extra = {}
        if provider.private_key_jwt:
            # GOV.UK One Login (and others) take no shared secret: the token request is
            # authenticated by a JWT signed with our private key.
            client_kwargs["token_endpoint_auth_method"] = "private_key_jwt"
            extra["client_auth_methods"] = [PrivateKeyJWT()]
        oauth.register(
            name=provider.name,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            server_metadata_url=provider.metadata_url,
            client_kwargs=client_kwargs,
            **extra,
        )
    return oauth


def redirect_uri(settings: Settings, provider: OidcProvider) -> str:
    """Where the provider sends people back: {REDLINE_BASE_URL}/auth/NAME/callback."""
    return f"{settings.base_url}/auth/{provider.name}/callback"


async def start(
    request: Request, oauth: OAuth, settings: Settings, provider: OidcProvider
) -> Response:
    """Redirect to the provider's sign-in page (state, nonce and PKCE challenge included)."""
    client = oauth.create_client(provider.name)
    try:
        await checked_metadata(client, provider)
        return await client.authorize_redirect(request, redirect_uri(settings, provider))
    except (httpx2.HTTPError, OAuthError, ValueError, KeyError) as error:
        forget_metadata(client)
        log.warning("cannot start sign-in with %s: %r", provider.name, error)
        raise ProviderUnavailable(
            f"{provider.label} could not be reached, so you cannot sign in with it just now. "
            "Try again in a few minutes."
        ) from None


def refuse_provider_error(request: Request, provider: OidcProvider) -> None:
    """If the provider sent back an ``error``, refuse with our own words and log its code."""
    error = request.query_params.get("error")
    if error is None:
        return
    log.info(
        "sign-in with %s: the provider answered error=%s description=%s",
        provider.name,
        printable(error, 40),
        printable(request.query_params.get("error_description")),
    )
    if error == "access_denied":
        raise SignInFailed(f"You cancelled signing in with {provider.label}. Nothing has changed.")
    raise SignInFailed(
        f"{provider.label} did not sign you in. Start signing in again; if it keeps happening, "
        "tell the people who run this service."
    )


async def finish(request: Request, oauth: OAuth, provider: OidcProvider) -> Identity:
    """Check the provider's answer and return the verified identity, or raise SignInFailed.

    The caller has already refused a provider ``error`` and used up the ``state``.
    """
    client = oauth.create_client(provider.name)
    if not request.query_params.get("code"):
        log.info("sign-in with %s: callback without a code", provider.name)
        raise SignInFailed(
            f"{provider.label} sent you back without signing you in. Start signing in again."
        )
    try:
        metadata = await checked_metadata(client, provider)
        token = await client.authorize_access_token(
            request,
            # Only the configured issuer, as the discovery document spells it.
            claims_options={"iss": {"essential": True, "values": [metadata["issuer"]]}},
        )
        id_claims = token.get("userinfo")
        if not token.get("id_token") or id_claims is None:
            # Authlib skips ID token checks when there is no ID token; we refuse instead.
            raise SignInFailed(f"{provider.label} did not send a verifiable ID token.")
        if not issuer_matches(provider, id_claims["iss"]):
            raise ValueError(f"ID token issuer is not {issuer_variable(provider)}")
        claims = dict(id_claims)
        if "email" not in claims or "email_verified" not in claims:
            # Many providers put only "sub" in the ID token; the rest comes from userinfo,
            # which must describe the same subject (OpenID Connect Core 5.3.2).
            userinfo = await client.userinfo(token=token)
            if userinfo.get("sub") != id_claims["sub"]:
                raise ValueError("userinfo describes a different subject")
            claims.update(userinfo)
    except ProviderMisconfigured:
        raise
    except SignInFailed:
        forget_metadata(client)
        raise
    except httpx2.HTTPError as error:
        forget_metadata(client)
        log.warning("sign-in with %s failed to reach it: %r", provider.name, error)
        raise ProviderUnavailable(
            f"{provider.label} did not answer in time, so you have not been signed in. "
            "Try again in a few minutes."
        ) from None
    except OAuthError as error:
        forget_metadata(client)
        log.warning(
            "sign-in with %s refused: %s %s",
            provider.name,
            printable(error.error, 40),
            printable(error.description),
        )
        if error.error == "mismatching_state":
            raise SignInFailed(
                "This sign-in link has expired or has already been used. Start signing in again."
            ) from None
        if error.error in ("invalid_client", "unauthorized_client"):
            log.error(
                "sign-in with %s: the provider does not accept Redline's client credentials; "
                "check REDLINE_OIDC_%s_CLIENT_ID and its secret or key",
                provider.name,
                provider.name.upper(),
            )
            raise ProviderMisconfigured(
                f"Signing in with {provider.label} is not set up correctly, so you have not been "
                "signed in. Tell the people who run this service."
            ) from None
        raise SignInFailed(f"{provider.label} did not sign you in. Try again.") from None
    except (JoseError, ValueError, KeyError) as error:
        forget_metadata(client)
        log.warning("sign-in with %s: ID token rejected: %r", provider.name, error)
        raise SignInFailed(
            f"The answer from {provider.label} could not be verified, so you have not been "
            "signed in. Try again; if it keeps happening, tell the people who run this service."
        ) from None
    return Identity(
        # The configured issuer: users are never keyed by what a provider advertises.
        issuer=provider.issuer,
        subject=str(claims["sub"]),
        email=str(claims.get("email") or ""),
        email_verified=email_verified(claims),
        name=claims.get("name"),
    )


def email_verified(claims: dict) -> bool:
    """Whether the provider vouches for the e-mail address.

    ``email_verified`` must be JSON true (not the string "true"). Microsoft Entra ID sends
    no ``email_verified``; its optional ``xms_edov`` claim says the tenant owns the
    e-mail's domain, which is the same assurance for a work account.
    """
    if "email_verified" in claims:
        return claims["email_verified"] is True
    return claims.get("xms_edov") is True
