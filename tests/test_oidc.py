"""Sign-in through a real OpenID Connect provider process on loopback (tests/oidc/)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sqlmodel import func, select
from starlette.testclient import TestClient

from app.db import Database
from app.main import SESSION_COOKIE, create_app
from app.models import User
from app.settings import Settings, SettingsError
from tests.conftest import IN_CI, settings_for
from tests.oidc.fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    ProviderBrowser,
    free_port,
    node_unavailable_reason,
)
from tests.utils.sessions import force_login

# Loopback: outside demo mode Redline refuses a plain http address anywhere else.
BASE = "http://localhost"
CALLBACK = f"{BASE}/auth/work/callback"
BROWSER_PORT = free_port()
BROWSER_BASE = f"http://127.0.0.1:{BROWSER_PORT}"
CLAUSE = "/consultations/social-media-guidance/clauses/7"


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    reason = node_unavailable_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"sign-in tests are mandatory under CI=true, but {reason}")
        pytest.skip(f"sign-in tests skipped: {reason}")
    running = Provider([CALLBACK, f"{BROWSER_BASE}/auth/work/callback"])
    yield running
    running.close()


def oidc_settings(database: Database, provider: Provider, **overrides) -> Settings:
    from app.settings import OidcProvider

    values = {
        "demo": False,
        "base_url": BASE,
        "organisers": frozenset({"olive@cabinetoffice.gov.uk"}),
        "oidc_providers": (
            OidcProvider(
                name="work",
                issuer=provider.issuer,
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                label="your work account",
            ),
        ),
        "oidc_timeout": 2.0,
    }
    values.update(overrides)
    return settings_for(database.url, **values)


@pytest.fixture
def app_client(seeded: Database, provider: Provider) -> Iterator[TestClient]:
    provider.misbehave("pass")
    app = create_app(oidc_settings(seeded, provider))
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        yield client
    provider.misbehave("pass")


@pytest.fixture
def browser() -> Iterator[ProviderBrowser]:
    person = ProviderBrowser()
    yield person
    person.close()


def start_sign_in(client: TestClient, next_path: str = "/") -> str:
    response = client.get(f"/auth/work/login?next={next_path}")
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    query = urlsplit(location).query
    assert "code_challenge_method=S256" in query and "code_challenge=" in query
    assert "state=" in query and "nonce=" in query and "scope=openid+email+profile" in query
    return location


def sign_in(client, browser, login: str, next_path: str = "/"):
    callback = browser.sign_in(start_sign_in(client, next_path), login, BASE)
    return client.get(callback.removeprefix(BASE)), callback


def signed_in_name(client: TestClient) -> str | None:
    found = re.search(r"Signed in as <strong>([^<]+)</strong>", client.get("/").text)
    return found.group(1) if found else None


def user_count(database: Database) -> int:
    return database.call(lambda s: s.exec(select(func.count()).select_from(User)).one())


def csrf_of(client: TestClient, path: str = "/") -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).text).group(1)


# The journey


def test_a_new_user_signs_in_and_is_recognised_on_return(app_client, browser, seeded):
    before = user_count(seeded)
    anonymous_cookie = (app_client.get("/sign-in"), app_client.cookies.get(SESSION_COOKIE))[1]
    response, _ = sign_in(app_client, browser, "amira@hmrc.gov.uk", CLAUSE)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == CLAUSE
    # A fresh session at sign-in: the cookie from before is not the one after.
    assert app_client.cookies.get(SESSION_COOKIE) != anonymous_cookie
    user = seeded.call(
        lambda s: s.exec(select(User).where(User.subject == "amira@hmrc.gov.uk")).one()
    )
    assert user.issuer == app_client.app.state.settings.oidc_providers[0].issuer
    assert (user.email, user.email_verified, user.name) == ("amira@hmrc.gov.uk", True, "Test amira")
    assert user.display_name is None  # the provider's name is private until they choose one
    assert signed_in_name(app_client) == user.pseudonym
    assert user_count(seeded) == before + 1

    # An eligible participant can vote.
    page = app_client.get(CLAUSE).text
    amendment = re.search(r'action="/amendments/(\d+)/vote"', page).group(1)
    vote = app_client.post(
        f"/amendments/{amendment}/vote",
        data={"csrf_token": csrf_of(app_client), "stance": "support"},
    )
    assert vote.status_code == 303

    # Signing out clears the session; signing in again finds the same account.
    app_client.post("/sign-out", data={"csrf_token": csrf_of(app_client)})
    assert signed_in_name(app_client) is None
    second_browser = ProviderBrowser()
    try:
        sign_in(app_client, second_browser, "amira@hmrc.gov.uk")
    finally:
        second_browser.close()
    assert signed_in_name(app_client) == user.pseudonym
    assert user_count(seeded) == before + 1


def test_unverified_email_can_read_but_not_take_part(app_client, browser, seeded):
    response, _ = sign_in(app_client, browser, "unverified.ben@dwp.gov.uk", CLAUSE)
    assert response.status_code == 303
    page = app_client.get(CLAUSE).text
    assert "has not confirmed your e-mail address" in page
    amendment = re.search(r'id="amendment-(\d+)"', page).group(1)
    assert f'action="/amendments/{amendment}/vote"' not in page
    vote = app_client.post(
        f"/amendments/{amendment}/vote",
        data={"csrf_token": csrf_of(app_client), "stance": "support"},
    )
    assert vote.status_code == 403
    assert app_client.get(f"{CLAUSE}/amend").status_code == 403


def test_an_ineligible_domain_can_read_but_not_take_part(app_client, browser):
    sign_in(app_client, browser, "pat@example.com", CLAUSE)
    page = app_client.get(CLAUSE).text
    assert "open to work e-mail addresses ending *.gov.uk" in page
    amendment = re.search(r'id="amendment-(\d+)"', page).group(1)
    vote = app_client.post(
        f"/amendments/{amendment}/vote",
        data={"csrf_token": csrf_of(app_client), "stance": "oppose"},
    )
    assert vote.status_code == 403


def test_organisers_named_in_configuration_see_organiser_pages(app_client, browser):
    assert app_client.get("/organise").status_code == 403  # signed out
    sign_in(app_client, browser, "olive@cabinetoffice.gov.uk")
    page = app_client.get("/organise")
    assert page.status_code == 200
    assert "Organise consultations" in page.text
    assert 'href="/organise"' in app_client.get("/").text


def test_participants_get_403_on_organiser_pages(app_client, browser):
    sign_in(app_client, browser, "amira@hmrc.gov.uk")
    page = app_client.get("/organise")
    assert page.status_code == 403
    assert "for the organisers" in page.text


def test_the_sign_in_page_offers_each_provider_by_its_label(app_client):
    page = app_client.get("/sign-in?next=/consultations/x").text
    assert "Sign in with your work account" in page
    assert 'href="/auth/work/login?next=/consultations/x"' in page
    assert "Sign in as" not in page  # no demo personas outside demo mode


# Refusals: each leaves no session behind


def assert_no_session(client: TestClient) -> None:
    assert signed_in_name(client) is None
    assert "user_id" not in (client.cookies.get(SESSION_COOKIE) or "")


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("bad-signature", "could not be verified"),
        ("wrong-audience", "could not be verified"),
        ("wrong-issuer", "could not be verified"),
        ("expired", "could not be verified"),
        ("wrong-nonce", "could not be verified"),
        ("no-id-token", "did not send a verifiable ID token"),
    ],
)
def test_a_bad_id_token_is_refused(app_client, browser, provider, seeded, mode, message):
    before = user_count(seeded)
    provider.misbehave(mode)
    response, _ = sign_in(app_client, browser, f"mallory.{mode}@hmrc.gov.uk")
    assert response.status_code == 400
    assert message in response.text
    assert "Traceback" not in response.text
    provider.misbehave("pass")
    assert_no_session(app_client)
    assert user_count(seeded) == before


def test_a_token_resigned_by_a_published_key_is_accepted(app_client, browser, provider):
    # The control for the cases above: the proxy's re-signing alone does not cause refusals.
    provider.misbehave("resigned")
    response, _ = sign_in(app_client, browser, "rhys@hmrc.gov.uk")
    assert response.status_code == 303
    assert signed_in_name(app_client) is not None


def test_a_replayed_state_is_refused(app_client, browser, provider, seeded):
    response, callback = sign_in(app_client, browser, "amira@hmrc.gov.uk")
    assert response.status_code == 303
    before = user_count(seeded)
    with TestClient(app_client.app, base_url=BASE, follow_redirects=False) as attacker:
        replay = attacker.get(callback.removeprefix(BASE))
        assert replay.status_code == 400
        assert "expired or has already been used" in replay.text
        assert_no_session(attacker)
    # Replaying it in the same browser is refused too: the state was used up.
    app_client.post("/sign-out", data={"csrf_token": csrf_of(app_client)})
    again = app_client.get(callback.removeprefix(BASE))
    assert again.status_code == 400
    assert_no_session(app_client)
    assert user_count(seeded) == before


def test_a_state_from_another_sign_in_is_refused(app_client, browser):
    start_sign_in(app_client)  # this browser's own state
    other = ProviderBrowser()
    try:
        with TestClient(app_client.app, base_url=BASE, follow_redirects=False) as someone_else:
            callback = other.sign_in(start_sign_in(someone_else), "eve@hmrc.gov.uk", BASE)
    finally:
        other.close()
    response = app_client.get(callback.removeprefix(BASE))
    assert response.status_code == 400
    assert_no_session(app_client)


def test_cancelling_at_the_provider_is_a_page_not_a_traceback(app_client, browser):
    callback = browser.cancel(start_sign_in(app_client), BASE)
    response = app_client.get(callback.removeprefix(BASE))
    assert response.status_code == 400
    assert "You cancelled signing in" in response.text
    assert_no_session(app_client)


def test_an_unknown_provider_is_a_404(app_client):
    assert app_client.get("/auth/nobody/login").status_code == 404
    assert app_client.get("/auth/nobody/callback?code=x&state=y").status_code == 404


def test_an_unreachable_provider_is_a_page(seeded, provider):
    from app.settings import OidcProvider

    closed_port = "http://127.0.0.1:9"
    settings = oidc_settings(
        seeded,
        provider,
        oidc_providers=(OidcProvider("work", closed_port, CLIENT_ID, CLIENT_SECRET, "Work"),),
    )
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        response = client.get("/auth/work/login")
        assert response.status_code == 502
        assert "could not be reached" in response.text
        assert_no_session(client)


def test_a_slow_provider_times_out_with_a_page(seeded, provider):
    provider.misbehave("pass", delay=4)
    try:
        settings = oidc_settings(seeded, provider, oidc_timeout=1.0)
        with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
            started = time.monotonic()
            response = client.get("/auth/work/login")
            assert time.monotonic() - started < 4
            assert response.status_code == 502
            assert_no_session(client)
    finally:
        provider.misbehave("pass")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
        "https:%2F%2Fevil.example",
        "javascript:alert(1)",
        "/%0d%0aSet-Cookie:x=y",
    ],
)
def test_next_never_leads_off_site(app_client, browser, target):
    callback = browser.sign_in(
        app_client.get("/auth/work/login", params={"next": target}).headers["location"],
        "amira@hmrc.gov.uk",
        BASE,
    )
    response = app_client.get(callback.removeprefix(BASE))
    assert response.status_code == 303
    assert response.headers["location"] == "/"


# Sessions


def test_session_cookie_flags_follow_the_base_url(seeded, provider):
    for base, secure in (("http://localhost", False), ("https://redline.example", True)):
        settings = oidc_settings(seeded, provider, base_url=base)
        with TestClient(create_app(settings), base_url=BASE) as client:
            cookie = client.get("/sign-in").headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=lax" in cookie
            assert ("secure" in cookie) is secure


@pytest.mark.parametrize(
    ("signed_in_ago", "seen_ago", "signed_in"),
    [
        (60, 60, True),
        (3 * 60 * 60, 30 * 60, True),
        (3 * 60 * 60, 3 * 60 * 60, False),  # idle too long
        (13 * 60 * 60, 60, False),  # past the absolute limit
    ],
)
def test_sessions_expire_when_idle_and_absolutely(
    app_client, seeded, signed_in_ago, seen_ago, signed_in
):
    user_id = seeded.call(
        lambda s: s.exec(
            select(User.id).where(User.email == "dan.price@cabinetoffice.gov.uk")
        ).one()
    )
    now = int(time.time())
    force_login(app_client, user_id, signed_in_at=now - signed_in_ago, seen_at=now - seen_ago)
    assert (signed_in_name(app_client) is not None) is signed_in


# Configuration


def provider_env(**changes: str) -> dict[str, str]:
    env = {
        "REDLINE_SECRET_KEY": "a-secret-key-that-is-long-enough",
        "REDLINE_OIDC_PROVIDERS": "entra,google",
        "REDLINE_OIDC_ENTRA_ISSUER": "https://login.microsoftonline.com/tenant/v2.0",
        "REDLINE_OIDC_ENTRA_CLIENT_ID": "id",
        "REDLINE_OIDC_ENTRA_CLIENT_SECRET": "secret",
        "REDLINE_OIDC_ENTRA_LABEL": "Microsoft work account",
        "REDLINE_OIDC_GOOGLE_ISSUER": "https://accounts.google.com",
        "REDLINE_OIDC_GOOGLE_CLIENT_ID": "id",
        "REDLINE_OIDC_GOOGLE_CLIENT_SECRET": "secret",
        "REDLINE_OIDC_GOOGLE_LABEL": "Google Workspace",
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v != "<unset>"}


def test_several_providers_are_read_from_the_environment():
    settings = Settings.from_env(provider_env())
    assert [p.label for p in settings.oidc_providers] == [
        "Microsoft work account",
        "Google Workspace",
    ]
    assert settings.oidc_providers[1].metadata_url == (
        "https://accounts.google.com/.well-known/openid-configuration"
    )


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"REDLINE_OIDC_GOOGLE_CLIENT_SECRET": "<unset>"}, "REDLINE_OIDC_GOOGLE_CLIENT_SECRET"),
        ({"REDLINE_OIDC_ENTRA_ISSUER": "login.microsoftonline.com"}, "REDLINE_OIDC_ENTRA_ISSUER"),
        ({"REDLINE_OIDC_ENTRA_ISSUER": "http://idp.example.com"}, "REDLINE_OIDC_ENTRA_ISSUER"),
        ({"REDLINE_OIDC_PROVIDERS": "entra,Bad Name"}, "REDLINE_OIDC_PROVIDERS"),
        ({"REDLINE_SECRET_KEY": "<unset>"}, "REDLINE_SECRET_KEY"),
        ({"REDLINE_ORGANISERS": "not-an-address"}, "REDLINE_ORGANISERS"),
        ({"REDLINE_OIDC_TIMEOUT": "soon"}, "REDLINE_OIDC_TIMEOUT"),
    ],
)
def test_a_misconfigured_provider_stops_start_up_naming_the_variable(changes, variable):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(provider_env(**changes))


# In a real browser


@pytest.mark.browser
def test_sign_in_in_headless_chromium(provider, sqlite_url, tmp_path):
    from tests.test_browser import (
        CHROMIUM,
        CHROMIUM_ARGS,
        assert_accessible,
        chromium_reason,
        serve,
    )

    reason = chromium_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"browser tests are mandatory under CI=true, but {reason}")
        pytest.skip(f"browser sign-in test skipped: {reason}")
    provider.misbehave("pass")
    env = {
        "REDLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'oidc.db'}",
        "REDLINE_SECRET_KEY": "browser-test-secret-key-long-enough",
        "REDLINE_BASE_URL": BROWSER_BASE,
        "REDLINE_OIDC_PROVIDERS": "work",
        "REDLINE_OIDC_WORK_ISSUER": provider.issuer,
        "REDLINE_OIDC_WORK_CLIENT_ID": CLIENT_ID,
        "REDLINE_OIDC_WORK_CLIENT_SECRET": CLIENT_SECRET,
        "REDLINE_OIDC_WORK_LABEL": "your work account",
        "REDLINE_ORGANISERS": "olive@cabinetoffice.gov.uk",
    }
    from playwright.sync_api import sync_playwright

    with serve(BROWSER_PORT, env, demo=False) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # axe-core goes in as an inline script, which the Content-Security-Policy refuses.
        page = browser.new_page(bypass_csp=True)
        page.goto(f"{base}/consultations/social-media-guidance")
        page.get_by_role("link", name="Sign in").first.click()
        assert_accessible(page)
        page.get_by_role("button", name="Sign in with your work account").click()
        page.locator("input[name=login]").fill("olive@cabinetoffice.gov.uk")
        page.locator("input[name=password]").fill("any-password")
        page.locator("button[type=submit]").first.click()
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url(f"{base}/consultations/social-media-guidance")
        assert "Signed in as" in page.inner_text("body")
        assert_accessible(page)
        page.get_by_role("link", name="Organise").click()
        assert "Organise consultations" in page.inner_text("h1")
        assert_accessible(page)
        browser.close()


# private_key_jwt (GOV.UK One Login authenticates clients this way)


def test_sign_in_with_private_key_jwt_client_authentication(seeded, provider, browser, tmp_path):
    from app.settings import OidcProvider

    key_file = tmp_path / "redline-client.pem"
    key_file.write_bytes(provider.client_key.as_pem(private=True))
    settings = Settings.from_env(
        {
            "REDLINE_DATABASE_URL": seeded.url,
            "REDLINE_SECRET_KEY": "a-secret-key-that-is-long-enough",
            "REDLINE_BASE_URL": BASE,
            "REDLINE_OIDC_PROVIDERS": "work",
            "REDLINE_OIDC_WORK_ISSUER": provider.issuer,
            "REDLINE_OIDC_WORK_CLIENT_ID": f"{CLIENT_ID}-jwt",
            "REDLINE_OIDC_WORK_PRIVATE_KEY_FILE": str(key_file),
            "REDLINE_OIDC_WORK_LABEL": "GOV.UK One Login",
        }
    )
    assert isinstance(settings.oidc_providers[0], OidcProvider)
    assert settings.oidc_providers[0].private_key_jwt
    provider.misbehave("pass")
    with TestClient(create_app(settings), base_url=BASE, follow_redirects=False) as client:
        response, _ = sign_in(client, browser, "amira@hmrc.gov.uk")
        assert response.status_code == 303, response.text
        assert signed_in_name(client) is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"not a key", "is not a PEM RSA private key"),
    ],
)
def test_a_bad_private_key_file_stops_start_up(tmp_path, content, message):
    key_file = tmp_path / "key.pem"
    if content is not None:
        key_file.write_bytes(content)
    env = provider_env(
        REDLINE_OIDC_ENTRA_CLIENT_SECRET="<unset>",
        REDLINE_OIDC_ENTRA_PRIVATE_KEY_FILE=str(key_file),
    )
    with pytest.raises(SettingsError, match=f"REDLINE_OIDC_ENTRA_PRIVATE_KEY_FILE: .*{message}"):
        Settings.from_env(env)


def test_a_secret_and_a_key_file_together_are_refused(tmp_path):
    env = provider_env(REDLINE_OIDC_ENTRA_PRIVATE_KEY_FILE=str(tmp_path / "key.pem"))
    with pytest.raises(SettingsError, match="not both"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("claims", "verified"),
    [
        ({"email_verified": True}, True),
        ({"email_verified": "true"}, False),
        ({"email_verified": False, "xms_edov": True}, False),
        ({"xms_edov": True}, True),
        ({}, False),
    ],
)
def test_only_a_provider_that_vouches_for_the_email_makes_it_verified(claims, verified):
    from app.oidc import email_verified

    assert email_verified(claims) is verified
