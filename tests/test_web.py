"""Shared web plumbing (app.web): partials kept for as long as what they show."""

from __future__ import annotations

import gc
from types import SimpleNamespace

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
