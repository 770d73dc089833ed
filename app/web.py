"""Shared web plumbing: templates, rendering, redirects, htmx detection."""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
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


def _kept_partial(env: jinja2.Environment, template: str, maxsize: int) -> Callable[..., Markup]:
    """``template`` rendered from keyword values, each rendering kept (a bounded LRU).

    Only for partials that show nothing but the values passed (never who is looking, a
    CSRF token or the time): the same values always give the same markup.
    """

    @functools.lru_cache(maxsize=maxsize)
    def rendered(**values: Any) -> Markup:
        # Autoescaped by the template, so its output is markup.
        return Markup(env.get_template(template).render(**values))

    return rendered


def _diff_html(env: jinja2.Environment) -> Callable[..., Markup]:
    """amendments/_diff.html rendered from its values, each rendering kept.

    An amendment's diff depends only on its kind, heading and wording, the clause version's
    wording, the clause number and the chosen view; an edit or a revision is a new key, so a
    kept rendering is never stale. A clause page shows twenty, again and again.
    """
    # Bounded by count, and an entry holds two wordings of up to 5,000 characters and their
    # markup: 1,024 keeps a clause page's worth in every view without risking 100 MB.
    kept = _kept_partial(env, "amendments/_diff.html", 1024)

    def diff_html(
        view: str,
        kind: str,
        proposed_heading: str | None,
        proposed_text: str,
        current_text: str,
        clause_number: str,
    ) -> Markup:
        return kept(
            view=view,
            kind=kind,
            proposed_heading=proposed_heading,
            proposed_text=proposed_text,
            current_text=current_text,
            clause_number=clause_number,
        )

    diff_html.cache_info = kept.cache_info  # type: ignore[attr-defined]  (what tests count)
    return diff_html


def _text_values(row: Any, view: str, clause_number: str, current_version: int) -> dict:
    """Everything amendments/_amendment_text.html shows of ``row`` (a queries.AmendmentRow)."""
    a = row.amendment
    return {
        "view": view,
        "clause_number": clause_number,
        "current_version": current_version,
        "amendment_id": a.id,
        "author": str(row.author),
        "status": a.status,
        "status_reason": a.status_reason,
        "withheld": bool(a.withheld),
        "kind": a.kind,
        "proposed_heading": a.proposed_heading,
        "proposed_text": a.proposed_text,
        "rationale": a.rationale,
        "target_version": row.target.version,
        "target_text": row.target.text,
    }


def _amendment_text(env: jinja2.Environment) -> Callable[..., Markup]:
    """amendments/_amendment_text.html of a clause page's row, each rendering kept.

    An amendment's heading, author label, status, diff and reasons show nothing of who is
    looking: they depend only on the values below, so a kept rendering is right for every
    viewer, and a change to any of them (an edit, a decision, a new display name, a
    revised clause) is a new key. A clause page shows twenty, to everyone, again and again.
    """
    # Each entry holds an amendment's markup (with its diff, up to two wordings of 5,000
    # characters): 2,048 keeps a busy clause's pages in every view, within a few tens of MB.
    kept = _kept_partial(env, "amendments/_amendment_text.html", 2048)

    def amendment_text(row: Any, view: str, clause_number: str, current_version: int) -> Markup:
        """The text of ``row`` (a queries.AmendmentRow) as the clause page shows it."""
        return kept(**_text_values(row, view, clause_number, current_version))

    amendment_text.cache_info = kept.cache_info  # type: ignore[attr-defined]
    return amendment_text


def _signed_out_amendment(env: jinja2.Environment) -> Callable[..., Markup]:
    """amendments/_amendment.html as someone not signed in sees it, each rendering kept.

    Signed out, an amendment shows its text (amendment_text's values), its counts when
    results are visible, and no form: nothing of who is looking, no CSRF token. So a
    rendering is kept under those values and the counts, and a vote (new counts), an
    edit or a decision is a new key. Most of a clause page's readers are not signed in.
    """
    template = env.get_template("amendments/_amendment.html")
    kept: OrderedDict[tuple, Markup] = OrderedDict()
    lock = threading.Lock()
    # As amendment_text's entries, with the markup around them.
    maxsize = 2048

    def signed_out_amendment(
        row: Any, view: str, clause_number: str, current_version: int, consultation: Any
    ) -> Markup:
        """``row`` (a queries.AmendmentRow) as _amendment.html shows it to no one signed in."""
        visible = results_visible(consultation.status, consultation.live_results)
        values = _text_values(row, view, clause_number, current_version)
        key = (
            *values.values(),
            visible,
            row.supports if visible else 0,
            row.opposes if visible else 0,
        )
        with lock:
            markup = kept.get(key)
            if markup is not None:
                kept.move_to_end(key)
                return markup
        # refusal: _amendment.html shows a refusal only to someone signed in, and the
        # form only to someone without one; signed out, there is always one (sign in).
        markup = Markup(
            template.render(
                row=row,
                view=view,
                clause_number=clause_number,
                current_version=current_version,
                consultation=consultation,
                user=None,
                refusal="signed out",
            )
        )
        with lock:
            kept[key] = markup
            while len(kept) > maxsize:
                kept.popitem(last=False)
        return markup

    return signed_out_amendment


@dataclass(frozen=True)
class PageShell:
    """The GOV.UK page around a page, as the markup between its holes (see base.html)."""

    before_title: Markup
    before_csrf_token: Markup
    before_nonce: Markup
    before_account_items: Markup
    before_breadcrumbs: Markup
    before_content: Markup
    end: Markup


# The holes of templates/_layout.html, in the order they appear in its markup.
SHELL_HOLES = ("title", "csrf_token", "nonce", "account_items", "breadcrumbs", "content")


def _hole(name: str) -> str:
    # Nothing on a page looks like this, and escaping leaves it as it is.
    return f"@@redline-shell-hole:{name}@@"


def _page_shell(env: jinja2.Environment) -> Callable[[bool, str, bool, str], PageShell]:
    """templates/_layout.html rendered once per kind of page and split at its holes.

    GOV.UK Frontend's template (its header and footer macros, the service navigation,
    attributes macros, and a header and a footer each rendered twice to see whether they
    are empty) cost most of a simple page's time, yet it differs only by who is signed in
    (organiser or not, for the navigation), which section is current, demo mode and
    whether there is a CSP nonce. Each kind is rendered once per process, with a marker
    in every hole, and base.html fills the holes of each page in the same places.
    """

    @functools.lru_cache(maxsize=64)
    def shell(
        is_organiser: bool, nav_home: bool, nav_organise: bool, demo: bool, has_nonce: bool
    ) -> PageShell:
        holes = {name: Markup(_hole(name)) for name in SHELL_HOLES}
        markup = env.get_template("_layout.html").render(
            holes=holes,
            is_organiser=is_organiser,
            nav_home=nav_home,
            nav_organise=nav_organise,
            demo=demo,
            # GOV.UK Frontend's template leaves the nonce attribute out when there is none.
            cspNonce=holes["nonce"] if has_nonce else "",
        )
        pieces = []
        for name in SHELL_HOLES:
            if name == "nonce" and not has_nonce:
                pieces.append(Markup(""))
                continue
            before, found, markup = markup.partition(_hole(name))
            if not found or _hole(name) in markup:
                raise RuntimeError(f"_layout.html must show the hole {name!r} once, in order")
            pieces.append(Markup(before))
        return PageShell(*pieces, Markup(markup))

    def page_shell(is_organiser: bool, path: str, demo: bool, nonce: str) -> PageShell:
        return shell(
            bool(is_organiser), path == "/", path.startswith("/organise"), bool(demo), bool(nonce)
        )

    return page_shell


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
    # Templates ship with the code and change only with a deployment, like the .py files, so
    # they are compiled once per process: auto_reload would stat every template file (a
    # page includes a dozen, some once per amendment) on every render to see if it changed.
    env = jinja2.Environment(loader=loader, autoescape=True, auto_reload=False)
    env.filters["london_time"] = london_time
    env.filters["paragraphs"] = paragraphs
    # Pages show the same few diffs again and again; the wording of a stored amendment and
    # of a clause version never changes, so a diff computed once stays right.
    env.globals["word_diff"] = functools.lru_cache(maxsize=4096)(textdiff.word_diff)
    env.globals["change_summary"] = textdiff.change_summary
    env.globals["side_by_side"] = textdiff.side_by_side
    env.globals["diff_html"] = _diff_html(env)
    env.globals["page_shell"] = _page_shell(env)
    env.globals["amendment_text"] = _amendment_text(env)
    env.globals["signed_out_amendment"] = _signed_out_amendment(env)
    env.globals["wording_fingerprint"] = wording_fingerprint
    env.globals["CSRF_FIELD"] = CSRF_FIELD
    env.globals["results_visible"] = results_visible
    # The one rule for a person's public name (app.people), for templates as for exports.
    env.globals["public_name"] = lambda user: people.public_name(user.display_name, user.pseudonym)
    return Jinja2Templates(env=env)


# Partials rendered once per large object that another module keeps for a while (the live
# report, which app.reporting.live_report serves to every viewer for some seconds), keyed by
# the object's identity and the template, and dropped when the object is freed.
_RENDERED_ONCE: dict[tuple[int, str], Markup] = {}


def render_once(request: Request, template: str, kept: object, **context: Any) -> Markup:
    """``template`` rendered with ``kept`` and ``context``, once for as long as ``kept`` lives.

    Only for partials that show nothing but ``kept`` and values fixed with it (never who is
    looking, a CSRF token or the time): the same object always gives the same markup, and a
    new object (a fresh count) a new rendering, so this is never staler than ``kept``.
    """
    key = (id(kept), template)
    rendered = _RENDERED_ONCE.get(key)
    if rendered is None:
        env = request.app.state.templates.env
        rendered = Markup(env.get_template(template).render(**context))
        # The id of a freed object may be reused: the entry goes with its object.
        weakref.finalize(kept, _RENDERED_ONCE.pop, key, None)
        _RENDERED_ONCE[key] = rendered
    return rendered


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
