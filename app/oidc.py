"""OpenID Connect sign-in through Authlib: authorization code flow with PKCE, state and nonce.

Authlib keeps state, nonce and the PKCE verifier in the (signed) session between
the redirect and the callback, consumes them on the first callback (so a replayed
``state`` fails), and verifies the ID token against the provider's JWKS:
signature, ``iss``, ``aud``, ``exp`` and ``nonce``.
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
from app.settings import OidcProvider, Settings

log = logging.getLogger("redline.oidc")


class SignInFailed(RedlineError):
    """Sign-in did not complete; the message tells the person what happened and what to do."""

    status = 400
    title = "You have not been signed in"


class ProviderUnavailable(SignInFailed):
    status = 502
    title = "Sign-in is not working at the moment"


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
        return await client.authorize_redirect(request, redirect_uri(settings, provider))
    except (httpx2.HTTPError, OAuthError, ValueError, KeyError) as error:
        log.warning("cannot start sign-in with %s: %r", provider.name, error)
        raise ProviderUnavailable(
            f"{provider.label} could not be reached, so you cannot sign in with it just now. "
            "Try again in a few minutes."
        ) from None


async def finish(request: Request, oauth: OAuth, provider: OidcProvider) -> Identity:
    """Check the provider's answer and return the verified identity, or raise SignInFailed."""
    client = oauth.create_client(provider.name)
    if request.query_params.get("error"):
        error = request.query_params["error"]
        if error == "access_denied":
            raise SignInFailed(
                f"You cancelled signing in with {provider.label}. Nothing has changed."
            )
        raise SignInFailed(f"{provider.label} did not sign you in ({error}). Try again.")
    try:
        token = await client.authorize_access_token(request)
        id_claims = token.get("userinfo")
        if not token.get("id_token") or id_claims is None:
            # Authlib skips ID token checks when there is no ID token; we refuse instead.
            raise SignInFailed(f"{provider.label} did not send a verifiable ID token.")
        claims = dict(id_claims)
        if "email" not in claims or "email_verified" not in claims:
            # Many providers put only "sub" in the ID token; the rest comes from userinfo,
            # which must describe the same subject (OpenID Connect Core 5.3.2).
            userinfo = await client.userinfo(token=token)
            if userinfo.get("sub") != id_claims["sub"]:
                raise ValueError("userinfo describes a different subject")
            claims.update(userinfo)
    except httpx2.HTTPError as error:
        log.warning("sign-in with %s failed to reach it: %r", provider.name, error)
        raise ProviderUnavailable(
            f"{provider.label} did not answer in time, so you have not been signed in. "
            "Try again in a few minutes."
        ) from None
    except OAuthError as error:
        log.info("sign-in with %s refused: %s", provider.name, error.error)
        if error.error == "mismatching_state":
            raise SignInFailed(
                "This sign-in link has expired or has already been used. Start signing in again."
            ) from None
        raise SignInFailed(f"{provider.label} did not sign you in. Try again.") from None
    except (JoseError, ValueError, KeyError) as error:
        log.warning("sign-in with %s: ID token rejected: %r", provider.name, error)
        raise SignInFailed(
            f"The answer from {provider.label} could not be verified, so you have not been "
            "signed in. Try again; if it keeps happening, tell the people who run this service."
        ) from None
    return Identity(
        issuer=str(id_claims["iss"]),
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
