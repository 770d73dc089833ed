"""The Content-Security-Policy, enforced by real Chromium: nothing refused, htmx still votes.

Pages are loaded with JavaScript on and the policy enforced (no ``bypass_csp``);
every console message and every ``securitypolicyviolation`` event is recorded, and
the test fails on any. Voting through htmx must still swap the widget in place.
"""

from __future__ import annotations

import re

import pytest

from tests.test_browser import CLAUSE, browser, server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
    window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


def test_pages_load_and_htmx_votes_with_no_csp_violation(browser, server):  # noqa: F811
    context = browser.new_context()
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))

    def violations() -> list[str]:
        return page.evaluate("window.__cspViolations")

    page.goto(f"{server}{CLAUSE}/4")
    page.get_by_role("link", name="Sign in").first.click()
    assert violations() == []
    page.get_by_role("button", name="Sign in as Dan Price").click()
    page.wait_for_url(re.compile(re.escape(f"{CLAUSE}/4") + "$"))
    # GOV.UK Frontend's nonced inline script ran: the body is marked for its components.
    assert "govuk-frontend-supported" in page.get_attribute("body", "class")
    assert violations() == []

    page.evaluate("window.__notReloaded = true")
    card = page.locator("[id^=amendment-]").first
    amendment = card.get_attribute("id").rsplit("-", 1)[1]
    before = int(card.locator(f"#vote-{amendment}-supports").inner_text())
    pressed = card.get_by_role("button", name=re.compile("^Support")).get_attribute("aria-pressed")
    card.get_by_role("button", name=re.compile("^Support")).click()
    expected = before - 1 if pressed == "true" else before + 1
    card.locator(f"#vote-{amendment}-supports").filter(has_text=str(expected)).wait_for()
    assert page.evaluate("window.__notReloaded") is True, "htmx did not swap: the page reloaded"

    for path in ("/", "/consultations/social-media-guidance/results", "/how-ranking-works"):
        page.goto(server + path)
        assert violations() == [], path
    page.goto(server + "/no-such-page")
    assert violations() == []
    context.close()
    assert [m for m in console if "Content Security Policy" in m] == []
