"""The participation loop in headless Debian Chromium, with and without JavaScript.

A real uvicorn server runs the demo (SQLite file, demo mode); Playwright drives
/usr/bin/chromium. axe-core checks every page visited at WCAG 2.2 AA.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.conftest import IN_CI, ROOT

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("REDLINE_TEST_CHROMIUM", "/usr/bin/chromium")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# axe-core goes in as an inline script, which the Content-Security-Policy rightly refuses;
# test_csp_browser.py checks the policy with it enforced.
NO_CSP = {"bypass_csp": True}
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
CLAUSE = "/consultations/social-media-guidance/clauses"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chromium_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (install Debian's: apt-get install chromium)"
    if not AXE.exists():
        return "axe-core is not installed (run make install)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = chromium_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"browser tests are mandatory under CI=true, but {reason}")
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@contextmanager
def serve(port: int, env: dict[str, str], demo: bool) -> Iterator[str]:
    """`redline migrate`, `seed` and `serve`, as `make run` does; yields the base URL."""
    env = {**os.environ, **env}
    redline = [str(Path(sys.executable).parent / "redline")]
    for command in (["migrate"], ["seed", "--demo"] if demo else ["seed"]):
        subprocess.run([*redline, *command], env=env, cwd=ROOT, check=True, capture_output=True)
    # The server's log goes to a file, not a pipe: nobody reads a pipe while tests run,
    # and a full pipe (one access line per request) would stall the server.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [*redline, "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(base + "/", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            else:
                process.kill()
                log.seek(0)
                pytest.fail(f"the server did not start: {log.read().decode()[-2000:]}")
            yield base
        finally:
            process.terminate()
            process.wait(timeout=40)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo on a fresh SQLite file."""
    database = tmp_path_factory.mktemp("browser") / "redline.db"
    env = {
        "REDLINE_DATABASE_URL": f"sqlite:///{database}",
        "REDLINE_DEMO": "1",
        "REDLINE_SECRET_KEY": "",
    }
    with serve(free_port(), env, demo=True) as base:
        yield base


def assert_accessible(page, html: str | None = None, base: str | None = None) -> None:
    """Run axe-core on the page (or on a no-JavaScript page's HTML, scripts removed)."""
    target = page
    if html is not None:
        # With JavaScript off axe cannot run in the page itself, so the exact HTML it was
        # served is checked in a scripted page, with its scripts stripped and styles kept.
        html = re.sub(r"<script.*?</script>", "", html, flags=re.S)
        html = html.replace("<head>", f'<head><base href="{base}/">', 1)
        target = page.context.browser.new_page()
        target.set_content(html, wait_until="load")
    target.add_script_tag(path=str(AXE))
    # One known exception, node by node: GOV.UK Frontend keeps aria-expanded on a radio
    # that reveals a conditional field, on purpose (screen readers announce it; see
    # alphagov/govuk-frontend#979), and axe reports it as aria-allowed-attr.
    violations = target.evaluate(
        """async (tags) => {
            const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
            const conditional = /^<input class="govuk-radios__input"[^>]*aria-controls="cond/;
            const govukConditional = (v, n) => v.id === 'aria-allowed-attr'
                && conditional.test(n.html);
            return result.violations
                .map(v => ({...v, nodes: v.nodes.filter(n => !govukConditional(v, n))}))
                .filter(v => v.nodes.length > 0)
                .map(v => `${v.id}: ${v.help} (${v.nodes[0].html})`);
        }""",
        WCAG_22_AA,
    )
    if html is not None:
        target.close()
    assert violations == [], f"{page.url}: {violations}"


class Journey:
    """A person using the site; checks every page they land on."""

    def __init__(self, page, base: str, javascript: bool) -> None:
        self.page, self.base, self.javascript = page, base, javascript
        self.visited: list[str] = []

    def check(self) -> None:
        self.visited.append(self.page.url)
        if self.javascript:
            assert_accessible(self.page)
        else:
            assert_accessible(self.page, self.page.content(), self.base)

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.check()

    def sign_in_as(self, name: str, path: str) -> None:
        self.goto(path)
        self.page.get_by_role("link", name="Sign in").first.click()
        # A click only starts the navigation; reading the page before it lands gives ''.
        self.page.wait_for_url(re.compile(r"/sign-in\?"))
        self.check()
        self.page.get_by_role("button", name=f"Sign in as {name}").click()
        self.page.wait_for_url(re.compile(re.escape(path) + "$"))
        # In the header's navigation, which a phone with JavaScript folds behind "Menu".
        header = " ".join(self.page.locator("header").text_content().split())
        assert f"Signed in as {name}" in header
        self.check()

    def propose(self, clause: str, wording: str, rationale: str) -> str:
        self.page.get_by_role("button", name="Propose an amendment").click()
        self.page.wait_for_url(f"**{CLAUSE}/{clause}/amend")
        self.check()
        self.page.get_by_label("Proposed wording").fill(wording)
        self.page.get_by_role("button", name="Publish amendment").click()
        # Missing rationale: the error summary appears, the typed wording is kept.
        summary = self.page.locator(".govuk-error-summary")
        summary.wait_for()
        assert "Enter why you propose this change" in summary.inner_text()
        assert self.page.get_by_label("Proposed wording").input_value() == wording
        self.check()
        self.page.get_by_label("Why do you propose this?").fill(rationale)
        self.page.get_by_role("button", name="Publish amendment").click()
        self.page.wait_for_url(re.compile(r"proposed=\d+$"))
        assert "Your amendment has been published" in self.page.inner_text("body")
        self.check()
        return self.page.url.rsplit("proposed=", 1)[1]


def run_journey(browser, server: str, javascript: bool, clause: str, people: tuple[str, str]):
    author_context = browser.new_context(java_script_enabled=javascript, **NO_CSP)
    author = Journey(author_context.new_page(), server, javascript)
    author.sign_in_as(people[0], f"{CLAUSE}/{clause}")
    wording = "Do not post it yet. Ask your line manager or communications team first."
    amendment = author.propose(clause, wording, "Shorter and clearer for people in a hurry.")
    author_context.close()

    voter_context = browser.new_context(java_script_enabled=javascript, **NO_CSP)
    voter = Journey(voter_context.new_page(), server, javascript)
    voter.sign_in_as(people[1], f"{CLAUSE}/{clause}")
    page = voter.page
    card = page.locator(f"#amendment-{amendment}")
    assert card.locator(f"#vote-{amendment}-supports").inner_text() == "0"
    if javascript:
        page.evaluate("window.__notReloaded = true")
    card.get_by_role("button", name=re.compile("^Support")).click()
    supports = card.locator(f"#vote-{amendment}-supports")
    supports.filter(has_text="1").wait_for()
    assert (
        card.get_by_role("button", name=re.compile("^Support")).get_attribute("aria-pressed")
        == "true"
    )
    if javascript:
        assert page.evaluate("window.__notReloaded") is True, "the page reloaded"
        status = page.locator(f"#vote-{amendment}-status")
        assert "is now support" in status.inner_text()
    else:
        assert page.url.endswith(f"#amendment-{amendment}")
    voter.check()

    card.get_by_role("button", name=re.compile("^Oppose")).click()
    card.locator(f"#vote-{amendment}-opposes").filter(has_text="1").wait_for()
    assert card.locator(f"#vote-{amendment}-supports").inner_text() == "0"
    if javascript:
        assert page.evaluate("window.__notReloaded") is True
    voter.goto("/consultations/social-media-guidance/results")
    assert f"#amendment-{amendment}" in page.content()
    page.get_by_role("link", name="How the ranking works").first.click()
    page.wait_for_url("**/how-ranking-works")
    assert "How the ranking works" in page.inner_text("h1")
    voter.check()
    voter.goto("/")
    voter_context.close()
    return author.visited + voter.visited


def test_propose_and_vote_with_javascript(browser, server):
    visited = run_journey(browser, server, True, "13", ("Dan Price", "Amira Shah"))
    assert len(visited) >= 10


def test_propose_and_vote_without_javascript(browser, server):
    visited = run_journey(browser, server, False, "11", ("Carys Llewellyn", "Dan Price"))
    assert len(visited) >= 10


def test_error_pages_are_accessible(browser, server):
    page = browser.new_page(**NO_CSP)
    for path in ("/no-such-page", f"{CLAUSE}/99", f"{CLAUSE}/3/amend"):
        response = page.goto(server + path)
        assert response.status in (403, 404)
        assert_accessible(page)
    page.close()


@pytest.fixture(scope="module")
def organiser_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo with Dan Price named as an organiser."""
    database = tmp_path_factory.mktemp("organiser") / "redline.db"
    env = {
        "REDLINE_DATABASE_URL": f"sqlite:///{database}",
        "REDLINE_DEMO": "1",
        "REDLINE_SECRET_KEY": "",
        "REDLINE_ORGANISERS": "dan.price@cabinetoffice.gov.uk",
    }
    with serve(free_port(), env, demo=True) as base:
        yield base


def test_organiser_closes_decides_publishes_and_downloads(browser, organiser_server, tmp_path):
    context = browser.new_context(accept_downloads=True, **NO_CSP)
    journey = Journey(context.new_page(), organiser_server, True)
    page = journey.page
    journey.sign_in_as("Dan Price", "/")
    page.get_by_role("link", name="Organise").click()
    journey.check()
    page.get_by_role("link", name="Social media guidance for public-sector workers").click()
    journey.check()
    page.get_by_role("button", name="Close the consultation").click()
    assert "Are you sure you want to close" in page.inner_text("h1")
    journey.check()
    page.get_by_role("button", name="Yes, close it now").click()
    assert "The consultation is closed" in page.inner_text("body")
    journey.check()
    page.get_by_role("link", name="Accept or reject amendments").click()
    journey.check()
    # Accept the top-ranked amendment of each clause and reject the others: a second
    # accepted change to one clause would be refused (see tests/test_decisions.py).
    first_of_clause = page.evaluate(
        """() => [...document.querySelectorAll('.app-amendment')].map(
            e => e.parentElement.firstElementChild === e)"""
    )
    assert first_of_clause.count(True) >= 4
    for index, first in enumerate(first_of_clause):
        form = page.locator(".app-amendment form").nth(index)
        form.get_by_label("Reason for the decision").fill(f"Reason {index}: weighed the votes.")
        form.get_by_role("button", name=re.compile("^Accept" if first else "^Reject")).click()
        page.wait_for_load_state()
        assert "There is a problem" not in page.inner_text("body")
    assert "0 still to decide" in page.inner_text("body")
    journey.check()
    page.get_by_role("link", name="Write the final wording of clause 7").first.click()
    assert "Final wording of clause 7" in page.inner_text("h1")
    journey.check()
    journey.goto("/organise/social-media-guidance")
    page.get_by_role("button", name="Publish the outcome").click()
    page.get_by_role("button", name="Yes, publish the outcome").click()
    assert "The outcome is published" in page.inner_text("body")
    journey.goto("/consultations/social-media-guidance/report")
    assert "Outcome of the consultation" in page.inner_text("h1")
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV", exact=True).click()
    saved = tmp_path / "report.csv"
    download.value.save_as(saved)
    assert saved.read_text(encoding="utf-8-sig").startswith("rank,amendment,clause")
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Download the ballots")).click()
    assert download.value.suggested_filename == "social-media-guidance-ballots.csv"
    journey.goto("/organise/social-media-guidance/audit")
    assert "Reason 0: weighed the votes." in page.inner_text("body")
    context.close()
