"""Sign-in refuses what a hostile or broken provider (or a replayed cookie) sends.

Against the real oidc-provider process behind the tampering proxy (tests/oidc/):
a provider advertising another issuer, a callback without a code, a provider error
with hostile text, a wrong client secret and a replayed pre-callback cookie each
give a clear page and a logged reason, never a 500. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, quote, urlsplit

from starlette.testclient import TestClient

from app.main import SESSION_COOKIE, create_app
from tests import test_oidc
from tests.oidc.fixtures import OTHER_ISSUER, ProviderBrowser
from tests.test_oidc import (
    BASE,
    assert_no_session,
    oidc_settings,
    signed_in_name,
    start_sign_in,
    user_count,
)

# The same provider process, app and provider-side browser as tests/test_oidc.py.
provider = test_oidc.provider
app_client = test_oidc.app_client
browser = test_oidc.browser

HOSTILE = '<script>alert("x")</script>Call 0800 000 000 to fix your account'


def state_of(authorize_url: str) -> str:
    return parse_qs(urlsplit(authorize_url).query)["state"][0]


def logged(caplog, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


def test_a_provider_advertising_another_issuer_cannot_start_a_sign_in(app_client, provider, caplog):
    caplog.set_level(logging.INFO, logger="redline.oidc")
    provider.misbehave("advertise-other-issuer")
    refused = app_client.get("/auth/work/login")
    assert refused.status_code == 502
    assert "REDLINE_OIDC_WORK_ISSUER" in refused.text
    assert "not set up correctly" in refused.text
    assert logged(caplog, OTHER_ISSUER) and logged(caplog, "REDLINE_OIDC_WORK_ISSUER")
    assert_no_session(app_client)
    # Fixed at the provider: the next sign-in reads its metadata afresh and starts.
    provider.misbehave("pass")
    assert app_client.get("/auth/work/login").status_code == 302


def test_a_callback_with_a_valid_state_and_no_code_is_a_page(app_client, caplog):
    caplog.set_level(logging.INFO, logger="redline.oidc")
    state = state_of(start_sign_in(app_client))
    response = app_client.get(f"/auth/work/callback?state={state}")
    assert response.status_code == 400
    assert "sent you back without signing you in" in response.text
    assert logged(caplog, "callback without a code")
    assert_no_session(app_client)


def test_a_provider_error_is_logged_and_never_echoed(app_client, caplog):
    caplog.set_level(logging.INFO, logger="redline.oidc")
    state = state_of(start_sign_in(app_client))
    response = app_client.get(
        f"/auth/work/callback?state={state}&error={quote(HOSTILE)}"
        f"&error_description={quote(HOSTILE)}"
    )
    assert response.status_code == 400
    assert "did not sign you in" in response.text
    for shown in ("0800", "alert", "&lt;script"):
        assert shown not in response.text
    assert logged(caplog, "the provider answered error=")
    assert_no_session(app_client)


def test_a_wrong_client_secret_is_a_page_and_a_logged_reason(seeded, provider, browser, caplog):
    from dataclasses import replace

    caplog.set_level(logging.INFO, logger="redline.oidc")
    provider.misbehave("pass")
    settings = oidc_settings(seeded, provider)
    wrong = replace(settings.oidc_providers[0], client_secret="not-the-client-secret")
    app = create_app(replace(settings, oidc_providers=(wrong,)))
    with TestClient(app, base_url=BASE, follow_redirects=False) as client:
        callback = browser.sign_in(start_sign_in(client), "wes@hmrc.gov.uk", BASE)
        response = client.get(callback.removeprefix(BASE))
        assert response.status_code == 502
        assert "not set up correctly" in response.text
        assert logged(caplog, "invalid_client")
        assert logged(caplog, "does not accept Redline's client credentials")
        assert_no_session(client)


def test_a_replayed_pre_callback_cookie_cannot_use_its_state_twice(app_client, browser, seeded):
    authorize = start_sign_in(app_client)
    copied = app_client.cookies.get(SESSION_COOKIE)
    callback = browser.sign_in(authorize, "amira@hmrc.gov.uk", BASE)
    assert app_client.get(callback.removeprefix(BASE)).status_code == 303
    before = user_count(seeded)
    # Someone with the cookie from before the callback asks the provider again with the
    # same authorisation request: a fresh, valid code for the same state.
    other = ProviderBrowser()
    try:
        second = other.sign_in(authorize, "mallory@hmrc.gov.uk", BASE)
    finally:
        other.close()
    assert state_of(second) == state_of(callback) and second != callback
    with TestClient(app_client.app, base_url=BASE, follow_redirects=False) as replayer:
        replayer.cookies.set(SESSION_COOKIE, copied)
        response = replayer.get(second.removeprefix(BASE))
        assert response.status_code == 400
        assert "expired or has already been used" in response.text
        assert signed_in_name(replayer) is None
    assert user_count(seeded) == before


def test_serve_refuses_to_start_when_a_provider_advertises_another_issuer(seeded, provider):
    """`redline serve` reads each discovery document once and names the variable to fix."""
    from click.testing import CliRunner

    from app.cli import main
    from app.oidc import check_issuers_at_start

    env = {
        "REDLINE_DATABASE_URL": seeded.url,
        "REDLINE_SECRET_KEY": "a-secret-key-that-is-long-enough",
        "REDLINE_BASE_URL": "http://127.0.0.1:8000",
        "REDLINE_DEMO": "",
        "REDLINE_OIDC_PROVIDERS": "work",
        "REDLINE_OIDC_WORK_ISSUER": provider.issuer,
        "REDLINE_OIDC_WORK_CLIENT_ID": "redline",
        "REDLINE_OIDC_WORK_CLIENT_SECRET": "a-client-secret",
        "REDLINE_OIDC_WORK_LABEL": "your work account",
    }
    provider.misbehave("advertise-other-issuer")
    try:
        refused = CliRunner().invoke(main, ["serve", "--port", "9"], env=env)
    finally:
        provider.misbehave("pass")
    assert refused.exit_code != 0
    assert "REDLINE_OIDC_WORK_ISSUER" in refused.output and OTHER_ISSUER in refused.output
    # The same check passes once the provider names its configured issuer.
    check_issuers_at_start(oidc_settings(seeded, provider))


def test_an_unreachable_provider_does_not_stop_start_up(seeded, provider, caplog):
    from app.oidc import check_issuers_at_start
    from app.settings import OidcProvider

    caplog.set_level(logging.WARNING, logger="redline.oidc")
    gone = OidcProvider(
        name="gone",
        issuer="http://127.0.0.1:9/nobody-here",
        client_id="redline",
        client_secret="a-client-secret",
        label="a provider that is down",
    )
    check_issuers_at_start(oidc_settings(seeded, provider, oidc_providers=(gone,)))
    assert logged(caplog, "not checked at start-up")
