"""Signing in and out: OpenID Connect providers, and demo personas in demo mode only."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from app import oidc
from app.auth import csrf_protected, current_user, end_session, safe_next, start_session
from app.errors import NotAllowed, NotFound
from app.rate_limiting import enforce, rate_limited
from app.roles import end_sessions
from app.seeding import demo_personas, demo_user
from app.services import record_sign_in
from app.sign_in_states import issue_state, use_state
from app.web import form_fields, redirect, render

SESSION_NEXT = "next_after_sign_in"


def _require_demo(request: Request) -> None:
    if not request.app.state.settings.demo_sign_in_allowed:
        raise NotAllowed(
            "Demo sign-in is only available when Redline runs in demo mode "
            "on its embedded database."
        )


async def sign_in(request: Request) -> Response:
    """The sign-in page: each configured identity provider, and demo personas in demo mode."""
    settings = request.app.state.settings
    personas = demo_personas(settings.seed_dir) if settings.demo_sign_in_allowed else []
    return await render(
        request,
        "auth/sign_in.html",
        {
            "personas": personas,
            "providers": settings.oidc_providers,
            "next": safe_next(request.query_params.get("next")),
        },
    )


def _provider(request: Request):
    provider = request.app.state.settings.provider(request.path_params["provider"])
    if provider is None:
        raise NotFound("There is no such way to sign in.")
    return provider


async def provider_sign_in(request: Request) -> Response:
    """Send the person to their identity provider."""
    await enforce(request, "sign_in")
    provider = _provider(request)
    next_path = safe_next(request.query_params.get("next"))
    response = await oidc.start(
        request, request.app.state.oauth, request.app.state.settings, provider
    )
    state = parse_qs(urlsplit(response.headers["location"]).query).get("state", [""])[0]
    await request.app.state.database.write(issue_state, state, provider.name)
    request.session[SESSION_NEXT] = next_path
    return response


async def provider_callback(request: Request) -> Response:
    """The provider sends the person back here; verify, record, and start a fresh session."""
    provider = _provider(request)
    oidc.refuse_provider_error(request, provider)
    state = request.query_params.get("state", "")
    if not await request.app.state.database.write(use_state, state, provider.name):
        # Never issued, expired, or used before (a replayed pre-callback cookie).
        oidc.log.info("sign-in with %s: state unknown, expired or used", provider.name)
        raise oidc.SignInFailed(
            "This sign-in link has expired or has already been used. Start signing in again."
        )
    identity = await oidc.finish(request, request.app.state.oauth, provider)
    next_path = safe_next(request.session.get(SESSION_NEXT))
    user = await request.app.state.database.write(
        record_sign_in,
        issuer=identity.issuer,
        subject=identity.subject,
        email=identity.email,
        email_verified=identity.email_verified,
        name=identity.name,
    )
    start_session(request, user)
    return redirect(next_path)


@rate_limited("sign_in")
@csrf_protected
async def demo_sign_in(request: Request) -> Response:
    """Sign in as a demo persona."""
    _require_demo(request)
    fields = await form_fields(request, "persona", "next")
    personas = {p.key: p for p in demo_personas(request.app.state.settings.seed_dir)}
    persona = personas.get(fields["persona"])
    if persona is None:
        raise NotAllowed("Choose one of the demo personas listed on the sign-in page.")
    # Per account too: the address was counted by the decorator.
    await enforce(request, "sign_in", f"persona:{persona.key}", per_address=False)
    user = await request.app.state.database.write(demo_user, persona)
    start_session(request, user)
    return redirect(safe_next(fields["next"]))


@csrf_protected
async def sign_out(request: Request) -> Response:
    """Sign out and go home: the session ends on the server, so no copy of the cookie works.

    It ends every session of the person (all their browsers): the simplest rule that
    makes a copied cookie useless without a session table read on every request.
    """
    user = await current_user(request)
    if user is not None:
        await request.app.state.database.write(end_sessions, user.id)
    end_session(request)
    return redirect("/")
