"""Shared web plumbing (app.web): partials kept for as long as what they show."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest
from markupsafe import Markup

from app import web


class Kept:
    """Something another module keeps for a while (as app.reporting keeps a live report)."""

    def __init__(self, rows: list[str]) -> None:
        self.rows = rows


def request_with_templates():
    """As much of a request as render_once reads: the app's templates."""
    app = SimpleNamespace(state=SimpleNamespace(templates=web.make_templates()))
    return SimpleNamespace(app=app)


def test_a_partial_is_rendered_once_per_object_and_goes_with_it(monkeypatch):
    request = request_with_templates()
    env = request.app.state.templates.env
    renders = []
    original = env.get_template

    def counting(name, *args, **kwargs):
        renders.append(name)
        return original(name, *args, **kwargs)

    monkeypatch.setattr(env, "get_template", counting)
    monkeypatch.setattr(web, "_RENDERED_ONCE", {})
    kept = Kept(["one"])
    first = web.render_once(request, "_breadcrumbs.html", kept, crumbs=[("/a", "One")])
    again = web.render_once(request, "_breadcrumbs.html", kept, crumbs=[("/a", "One")])
    assert first == again and len(renders) == 1
    assert "One" in first

    fresh = Kept(["two"])
    other = web.render_once(request, "_breadcrumbs.html", fresh, crumbs=[("/b", "Two")])
    assert "Two" in other and len(renders) == 2

    del kept, fresh
    gc.collect()
    assert web._RENDERED_ONCE == {}


PAGE = (
    '{% extends "base.html" %}{% block title %}{{ name }}{% endblock %}'
    "{% block breadcrumbs %}<nav>crumbs</nav>{% endblock %}"
    "{% block content %}<p>C & D</p>{% endblock %}"
)


@pytest.mark.parametrize("signed_in", [False, True])
@pytest.mark.parametrize("is_organiser", [False, True])
@pytest.mark.parametrize("path", ["/", "/organise/x", "/consultations/x"])
@pytest.mark.parametrize("demo", [False, True])
@pytest.mark.parametrize("nonce", ["", "n0nce"])
def test_the_kept_page_around_a_page_is_the_layout_with_this_pages_values(
    signed_in, is_organiser, path, demo, nonce
):
    env = web.make_templates().env
    context = {
        "request": SimpleNamespace(url=SimpleNamespace(path=path)),
        "user": SimpleNamespace(id=7, display_name="Ann <Lee>", pseudonym="P7")
        if signed_in
        else None,
        "csrf_token": "t&k",
        "cspNonce": nonce,
        "demo": demo,
        "is_organiser": is_organiser,
        "errors": {"x": "y"} if demo else {},
        "name": "A <title>",
    }
    page = env.from_string(PAGE).render(context)
    account_items = env.get_template("base.html").make_module(context).account_items()
    title = ("Error: " if demo else "") + "A &lt;title&gt; – Redline"
    holes = {
        "title": Markup(title),
        "csrf_token": "t&k",
        "account_items": account_items,
        "breadcrumbs": Markup("<nav>crumbs</nav>"),
        "content": Markup("<p>C & D</p>"),
    }
    unkept = env.get_template("_layout.html").render(
        holes=holes,
        is_organiser=is_organiser,
        nav_home=path == "/",
        nav_organise=path.startswith("/organise"),
        demo=demo,
        cspNonce=nonce,
    )
    assert page == unkept
    assert ("Signed in as" in page) == signed_in and ('href="/organise"' in page) == is_organiser
    assert (f'nonce="{nonce}"' in page) == bool(nonce) and "@@redline" not in page
