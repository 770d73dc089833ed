"""The organiser takes the seeded consultation from open to published in headless Chromium.

Desktop with JavaScript and a 375 px phone without it each run the whole journey on a
fresh demo server: close through the confirmation page, a refused publish that shows
the task list (no dead end), a decision on every amendment, publish through its
confirmation page, then the public pages after publication. The other two combinations
(desktop without JavaScript, phone with it) then read every page of the finished
consultation. axe-core checks every page visited at WCAG 2.2 AA; the report, the audit
log and the organiser index must not scroll sideways at 320 and 375 px. Screenshots go
to /tmp/redline-ui2/ for a person to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_browser import NO_CSP, Journey, browser, free_port, serve  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser

SLUG = "social-media-guidance"
SHOTS = Path("/tmp/redline-ui2")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
NARROW = {"width": 320, "height": 640}


@pytest.fixture
def organiser_server(tmp_path: Path) -> Iterator[str]:
    """A fresh demo (each journey uses the consultation up) with Dan Price as organiser."""
    env = {
        "REDLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'redline.db'}",
        "REDLINE_DEMO": "1",
        "REDLINE_SECRET_KEY": "",
        "REDLINE_ORGANISERS": "dan.price@cabinetoffice.gov.uk",
    }
    with serve(free_port(), env, demo=True) as base:
        yield base


class Organiser(Journey):
    """A journey that also photographs pages and refuses sideways scrolling."""

    def __init__(self, page, base: str, javascript: bool, label: str) -> None:
        super().__init__(page, base, javascript)
        self.label = label

    def shot(self, name: str, full_page: bool = True) -> None:
        SHOTS.mkdir(exist_ok=True)
        path = SHOTS / f"{self.label}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)

    def no_sideways_scroll(self) -> None:
        wide = self.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        if wide > 0:
            culprits = self.page.evaluate(
                """() => [...document.querySelectorAll('main *')]
                    .filter(e => e.getBoundingClientRect().right
                                 > document.documentElement.clientWidth + 1)
                    .slice(0, 5).map(e => e.outerHTML.slice(0, 160))"""
            )
            pytest.fail(f"{self.page.url} scrolls sideways by {wide}px: {culprits}")

    def text(self) -> str:
        return self.page.inner_text("main")


def decide_everything(journey: Organiser) -> None:
    """Accept the top-ranked amendment of each clause, reject the others, with reasons."""
    page = journey.page
    firsts = page.evaluate(
        """() => [...document.querySelectorAll('.app-amendment')].map(
            e => e.parentElement.firstElementChild === e)"""
    )
    assert firsts.count(True) >= 4
    for index, first in enumerate(firsts):
        form = page.locator(".app-amendment form").nth(index)
        form.get_by_label("Reason for the decision").fill(f"Reason {index}: weighed the votes.")
        form.get_by_role("button", name=re.compile("^Accept" if first else "^Reject")).click()
        page.wait_for_load_state()
        assert "There is a problem" not in page.inner_text("body")
    assert "0 still to decide" in journey.text()


def open_to_published(journey: Organiser) -> None:
    page = journey.page
    journey.sign_in_as("Dan Price", "/")
    page.get_by_role("link", name="Organise").click()
    journey.check()
    journey.no_sideways_scroll()
    journey.shot("1-organise-index")
    page.get_by_role("link", name="Social media guidance for public-sector workers").click()
    journey.check()
    assert "What is done and what remains" in journey.text()
    assert "People who took part" in journey.text()
    journey.shot("2-dashboard-open")

    # One press does not close: it asks first, saying how early this is.
    page.get_by_role("button", name="Close the consultation").click()
    heading = page.inner_text("h1")
    assert re.search(r"now, .* before the advertised closing time\?$", heading), heading
    journey.check()
    journey.shot("3-confirm-close")
    page.get_by_role("button", name="Yes, close it now").click()
    assert "The consultation is closed" in journey.text()
    journey.check()

    # Publishing too early is refused with the task list: no dead end.
    page.get_by_role("button", name="Publish the outcome").click()
    assert "There is a problem" in journey.text()
    assert re.search(r"\d+ of \d+ still to decide", journey.text())
    journey.check()
    journey.shot("4-publish-refused")
    page.get_by_role("link", name="Accept or reject each amendment").click()
    assert "Accept or reject amendments" in page.inner_text("h1")
    journey.check()
    journey.shot("5-decisions")
    decide_everything(journey)
    journey.check()

    journey.goto(f"/organise/{SLUG}")
    page.get_by_role("link", name="Publish the outcome").first.click()
    assert "Are you sure you want to publish the outcome" in page.inner_text("h1")
    journey.check()
    journey.shot("6-confirm-publish")
    page.get_by_role("button", name="Yes, publish the outcome").click()
    assert "The outcome is published" in journey.text()
    journey.check()
    journey.shot("7-dashboard-published")
    journey.goto(f"/organise/{SLUG}/audit")
    journey.no_sideways_scroll()
    assert "Reason 0: weighed the votes." in journey.text()
    journey.shot("8-audit")


def read_finished(journey: Organiser, signed_in: bool) -> None:
    """The public and organiser pages of the published consultation."""
    page = journey.page
    journey.goto("/")
    assert "Outcome published" in journey.text() and "Voting closes" not in journey.text()
    journey.shot("9-home")
    page.get_by_role(
        "link", name="Social media guidance for public-sector workers", exact=True
    ).click()
    journey.check()
    assert "Outcome published" in journey.text()
    assert "not open for amendments" not in journey.text()
    page.get_by_role("link", name="Read the outcome", exact=True).click()
    journey.check()
    journey.no_sideways_scroll()
    text = journey.text()
    assert text.index("We asked") < text.index("We did") < text.index("SHA-256")
    # People and amendments are counted apart; the seed's exact totals of people are
    # withheld (small organisations, app.disclosure), so the page says so.
    assert "amendments between them" in text or (
        "They proposed" in text and "How many people proposed" in text
    )
    journey.shot("10-report")
    journey.shot("10-report-top", full_page=False)
    journey.goto(f"/consultations/{SLUG}/clauses/3")
    assert "Read the outcome for every clause" in journey.text()
    journey.shot("11-clause")
    journey.shot("11-clause-top", full_page=False)
    if signed_in:
        for path in ("/organise", f"/organise/{SLUG}/audit", f"/organise/{SLUG}"):
            journey.goto(path)
            journey.no_sideways_scroll()
        journey.goto(f"/organise/{SLUG}/decisions")


@pytest.mark.parametrize(
    ("label", "viewport", "javascript", "other_viewport", "other_javascript"),
    [
        pytest.param("desktop-js", DESKTOP, True, PHONE, True, id="desktop-js-then-phone-js"),
        pytest.param("phone-nojs", PHONE, False, DESKTOP, False, id="phone-nojs-then-desktop"),
    ],
)
def test_open_to_published_without_a_dead_end(
    browser,  # noqa: F811  (the fixture imported above)
    organiser_server,
    label,
    viewport,
    javascript,
    other_viewport,
    other_javascript,
):
    context = browser.new_context(viewport=viewport, java_script_enabled=javascript, **NO_CSP)
    journey = Organiser(context.new_page(), organiser_server, javascript, label)
    open_to_published(journey)
    read_finished(journey, signed_in=True)
    context.close()

    other_label = ("phone" if other_viewport is PHONE else "desktop") + (
        "-js" if other_javascript else "-nojs"
    )
    reader = browser.new_context(
        viewport=other_viewport, java_script_enabled=other_javascript, **NO_CSP
    )
    public = Organiser(reader.new_page(), organiser_server, other_javascript, other_label)
    read_finished(public, signed_in=False)
    reader.close()

    narrow = browser.new_context(viewport=NARROW, java_script_enabled=javascript, **NO_CSP)
    smallest = Organiser(narrow.new_page(), organiser_server, javascript, f"{label}-320")
    smallest.goto(f"/consultations/{SLUG}/report")
    smallest.no_sideways_scroll()
    smallest.shot("report")
    narrow.close()
