"""Signing in and out. Demo personas exist only in demo mode on the embedded database."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.auth import csrf_protected, end_session, safe_next, start_session
from app.errors import NotAllowed
from app.seeding import demo_personas, demo_user
from app.web import form_fields, redirect, render


def _require_demo(request: Request) -> None:
    if not request.app.state.settings.demo_sign_in_allowed:
        raise NotAllowed(
            "Demo sign-in is only available when Redline runs in demo mode "
            "on its embedded database."
        )


async def sign_in(request: Request) -> Response:
    """The sign-in page: in demo mode, a list of personas to pick from."""
    settings = request.app.state.settings
    personas = demo_personas(settings.seed_dir) if settings.demo_sign_in_allowed else []
    return await render(
        request,
        "auth/sign_in.html",
        {"personas": personas, "next": safe_next(request.query_params.get("next"))},
    )


@csrf_protected
async def demo_sign_in(request: Request) -> Response:
    """Sign in as a demo persona."""
    _require_demo(request)
    fields = await form_fields(request, "persona", "next")
    personas = {p.key: p for p in demo_personas(request.app.state.settings.seed_dir)}
    persona = personas.get(fields["persona"])
    if persona is None:
        raise NotAllowed("Choose one of the demo personas listed on the sign-in page.")
    user = await request.app.state.database.run(demo_user, persona)
    start_session(request, user)
    return redirect(safe_next(fields["next"]))


@csrf_protected
async def sign_out(request: Request) -> Response:
    """Sign out and go home."""
    end_session(request)
    return redirect("/")
