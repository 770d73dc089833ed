"""Security headers on every kind of response, on SQLite and PostgreSQL (issue 12)."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select
from starlette.routing import Route
from starlette.testclient import TestClient

from app.db import Database
from app.main import create_app
from app.models import Amendment, User
from tests.conftest import settings_for
from tests.utils.sessions import force_login

SLUG = "social-media-guidance"
ORGANISER = "dan.price@cabinetoffice.gov.uk"
EXPECTED = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
}


def user_id(database: Database, email: str) -> int:
    return database.call(lambda s: s.exec(select(User.id).where(User.email == email)).one())


def assert_secured(response, hsts: bool = False) -> str:
    """Every header is there; returns the CSP nonce (checked against the page's scripts)."""
    headers = response.headers
    for name, value in EXPECTED.items():
        assert headers.get(name) == value, (name, response.request.url)
    assert "camera=()" in headers["permissions-policy"]
    policy = headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    nonce = re.fullmatch(r"'self' 'nonce-([A-Za-z0-9_-]{20,})'", directives["script-src"])
    assert nonce, directives["script-src"]
    assert ("strict-transport-security" in headers) is hsts
    if hsts:
        assert headers["strict-transport-security"].startswith("max-age=63072000")
    return nonce.group(1)


@pytest.fixture
def app(seeded: Database):
    app = create_app(settings_for(seeded.url, organisers=frozenset({ORGANISER})))

    async def boom(request):
        raise RuntimeError("an unexpected failure, as a bug would cause")

    # The only way to reach the 500 page once hostile input is refused: a failing route.
    app.router.routes.append(Route("/test-only/boom", boom))
    return app


@pytest.fixture
def organiser(app, seeded):
    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
        client.csrf = force_login(client, user_id(seeded, ORGANISER))
        yield client


def test_a_page_has_every_header_and_its_inline_script_carries_the_nonce(organiser):
    response = organiser.get(f"/consultations/{SLUG}/clauses/1")
    assert response.status_code == 200
    nonce = assert_secured(response)
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", response.text)
    assert inline, "GOV.UK Frontend's js-enabled script is expected inline"
    assert all(f'nonce="{nonce}"' in attributes for attributes in inline)
    assert " style=" not in response.text
    # A fresh nonce per response, also on the same page (the page around it is kept).
    assert assert_secured(organiser.get("/")) != nonce
    again = organiser.get(f"/consultations/{SLUG}/clauses/1")
    fresh = assert_secured(again)
    assert fresh != nonce and f'nonce="{fresh}"' in again.text and nonce not in again.text


def test_an_htmx_fragment_has_every_header(organiser, seeded):
    amendment = seeded.call(lambda s: s.exec(select(Amendment.id)).first())
    response = organiser.post(
        f"/amendments/{amendment}/vote",
        data={"stance": "support"},
        headers={"HX-Request": "true", "X-CSRF-Token": organiser.csrf},
    )
    assert response.status_code == 200 and "<html" not in response.text
    assert_secured(response)


def test_every_download_has_every_header(organiser):
    closed = organiser.post(
        f"/organise/{SLUG}/status",
        data={"action": "close", "confirm": "yes", "csrf_token": organiser.csrf},
    )
    assert closed.status_code == 303
    for path in (
        f"/organise/{SLUG}/audit.csv",
        f"/consultations/{SLUG}/report.csv",
        f"/consultations/{SLUG}/report.xlsx",
        f"/consultations/{SLUG}/ballots.csv",
    ):
        response = organiser.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-disposition"].startswith("attachment")
        assert_secured(response)


@pytest.mark.parametrize(
    "path", ["/static/app/redline.css", "/static/htmx/htmx.min.js", "/static/app/redline.js"]
)
def test_a_static_asset_has_every_header(organiser, path):
    response = organiser.get(path)
    assert response.status_code == 200
    assert_secured(response)


def test_a_404_has_every_header(organiser):
    for path in ("/no-such-page", "/consultations/no-such-consultation", "/static/app/nothing"):
        response = organiser.get(path)
        assert response.status_code == 404
        assert_secured(response)


def test_a_500_has_every_header_and_a_matching_nonce(organiser):
    response = organiser.get("/test-only/boom")
    assert response.status_code == 500
    assert "Sorry, there is a problem with the service" in response.text
    nonce = assert_secured(response)
    assert f'nonce="{nonce}"' in response.text


@pytest.mark.parametrize("base_url,hsts", [("https://redline.example", True), ("", False)])
def test_hsts_only_when_the_base_url_is_https(seeded, base_url, hsts):
    overrides = {"base_url": base_url} if base_url else {}
    app = create_app(settings_for(seeded.url, **overrides))
    with TestClient(app, base_url=base_url or "http://testserver") as client:
        assert_secured(client.get("/"), hsts=hsts)
        assert_secured(client.get("/static/app/redline.css"), hsts=hsts)
        assert_secured(client.get("/nothing-here"), hsts=hsts)
