"""Shared web plumbing: templates, rendering, redirects, htmx detection."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from app import people, textdiff
from app.auth import CSRF_FIELD, csrf_token, current_user, role_of
from app.dates import london_time
from app.lifecycle import results_visible
from app.proposals import wording_fingerprint
from app.security_headers import NONCE_KEY

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


def paragraphs(text: str) -> list[str]:
    """Split stored wording into its paragraphs."""
    return [p for p in text.split("\n\n") if p.strip()]


def make_templates() -> Jinja2Templates:
    """Our templates first, then GOV.UK Frontend's macros under their package prefix."""
    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(TEMPLATES_DIR),
            jinja2.PrefixLoader(
                {"govuk_frontend_jinja": jinja2.PackageLoader("govuk_frontend_jinja")}
            ),
        ]
    )
    # Templates change only with the code, and a deploy restarts the processes: no need
    # to check every template file's modification time on every render (auto_reload).
    env = jinja2.Environment(loader=loader, autoescape=True, auto_reload=False)
    env.filters["london_time"] = london_time
    env.filters["paragraphs"] = paragraphs
    # Pages show the same few diffs again and again; the wording of a stored amendment and
    # of a clause version never changes, so a diff computed once stays right.
    env.globals["word_diff"] = functools.lru_cache(maxsize=4096)(textdiff.word_diff)
    env.globals["change_summary"] = textdiff.change_summary
    env.globals["side_by_side"] = textdiff.side_by_side
    env.globals["wording_fingerprint"] = wording_fingerprint
    env.globals["CSRF_FIELD"] = CSRF_FIELD
    env.globals["results_visible"] = results_visible
    # The one rule for a person's public name (app.people), for templates as for exports.
    env.globals["public_name"] = lambda user: people.public_name(user.display_name, user.pseudonym)
    return Jinja2Templates(env=env)


def is_htmx(request: Request) -> bool:
    """True for requests htmx made (it swaps a fragment instead of loading a page)."""
    return request.headers.get("hx-request") == "true"


async def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    """Render a page or fragment with the context every template can rely on."""
    context = dict(context or {})
    # Errors caught outside the session middleware (500s) render without a session.
    has_session = "session" in request.scope
    context.setdefault("user", await current_user(request) if has_session else None)
    context["request"] = request
    context["csrf_token"] = csrf_token(request) if has_session else ""
    # GOV.UK Frontend's template puts it on its inline script (see app.security_headers).
    context["cspNonce"] = request.scope.get(NONCE_KEY, "")
    context["demo"] = request.app.state.settings.demo_sign_in_allowed
    context["is_organiser"] = role_of(context["user"], request.app.state.settings) in (
        "organiser",
        "admin",
    )
    return request.app.state.templates.TemplateResponse(
        request, template, context, status_code=status_code
    )


def redirect(url: str) -> Response:
    """After a form post: see the result with a GET (303), so a reload never posts twice."""
    return RedirectResponse(url, status_code=303)


async def form_fields(request: Request, *names: str) -> dict[str, str]:
    """String values of these form fields ('' when absent)."""
    form = await request.form()
    values = {}
    for name in names:
        value = form.get(name)
        values[name] = value if isinstance(value, str) else ""
    return values
