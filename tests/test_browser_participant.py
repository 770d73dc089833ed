"""The participant's side of issue 10 in headless Chromium: desktop and 375 px, JavaScript
on and off. Readable tracked changes and their views, GOV.UK error handling on the page
and on the htmx path (focus, title, position), conditional reveal and character counts,
success banners in view, focus after withdrawing a vote, changing an amendment, the
header, and no sideways scrolling. axe-core checks every page state visited; screenshots
go to /tmp/redline-screenshots for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# server: the demo on a fresh SQLite file, one for this module (a module-scoped fixture).
from tests.test_browser import CLAUSE, NO_CSP, Journey, browser, server  # noqa: F401

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/redline-screenshots")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
SIZES = [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="375px")]
RATIONALE = "Two hours is what people expect online, and teams can meet it."
WORDING = "Answer within two working hours, or say when the answer will come."


class Person(Journey):
    """A journey that also checks nothing scrolls sideways and can take screenshots."""

    def check(self) -> None:
        super().check()
        widths = self.page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1], f"{self.page.url} scrolls sideways: {widths}"

    def shot(self, name: str) -> None:
        SHOTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)

    def focused(self) -> str:
        """Id and classes of the element that has focus."""
        return self.page.evaluate(
            "(() => { const e = document.activeElement; return `${e.id} ${e.className}`; })()"
        )

    def in_view(self, selector: str) -> bool:
        return self.page.evaluate(
            """(selector) => { const r = document.querySelector(selector).getBoundingClientRect();
                return r.top >= 0 && r.top < window.innerHeight; }""",
            selector,
        )


def person(browser, server: str, size: dict, javascript: bool) -> Person:  # noqa: F811
    context = browser.new_context(viewport=size, java_script_enabled=javascript, **NO_CSP)
    return Person(context.new_page(), server, javascript)


def first_in_main(page) -> str:
    """Class of the first element in <main> with content (wrappers skipped)."""
    return page.evaluate(
        """(() => { let e = document.querySelector('main').firstElementChild;
            while (e && !e.className.includes('govuk-error-summary') && e.firstElementChild
                   && !e.matches('h1, p, .govuk-caption-l, .govuk-notification-banner'))
                e = e.firstElementChild;
            return e ? e.className : ''; })()"""
    )


@pytest.mark.parametrize("size", SIZES)
def test_propose_with_javascript(browser, server, size):  # noqa: F811
    name = "desktop" if size is DESKTOP else "375"
    clause = "9" if size is DESKTOP else "10"
    who = person(browser, server, size, True)
    page = who.page
    who.sign_in_as("Carys Llewellyn" if size is DESKTOP else "Olive Grant", f"{CLAUSE}/{clause}")
    who.goto(f"{CLAUSE}/{clause}/amend")

    # Conditional reveal: the heading of a new clause only when adding one.
    assert not page.locator("#heading").is_visible()
    page.get_by_label("Add a new clause after this one").check()
    assert page.locator("#heading").is_visible()
    page.get_by_label("Change the wording of this clause").check()
    assert not page.locator("#heading").is_visible()
    # Character counts for the 5,000 and 2,000 limits.
    page.get_by_label("Why do you propose this?").fill("Short")
    counts = page.locator(".govuk-character-count__status")
    counts.filter(has_text="You have 1,995 characters remaining").wait_for()
    assert re.search(r"You have [\d,]+ characters remaining", counts.first.inner_text())
    page.get_by_label("Why do you propose this?").fill("")
    page.get_by_label("Proposed wording").fill(WORDING)

    # A rejected proposal through htmx: summary first in <main>, focused, in view, and the
    # title says "Error:"; the page did not reload.
    page.evaluate("window.__notReloaded = true")
    page.get_by_role("button", name="Publish amendment").click()
    page.locator(".govuk-error-summary").wait_for()
    page.wait_for_function("document.activeElement.classList.contains('govuk-error-summary')")
    assert page.evaluate("window.__notReloaded") is True
    assert page.title().startswith("Error: Propose an amendment to clause")
    assert "govuk-error-summary" in first_in_main(page)
    assert who.in_view(".govuk-error-summary")
    assert "Enter why you propose this change" in page.locator(".govuk-error-summary").inner_text()
    who.check()
    who.shot(f"propose-error-htmx-{name}")

    page.get_by_label("Why do you propose this?").fill(RATIONALE)
    page.get_by_role("button", name="Publish amendment").click()
    page.wait_for_url(re.compile(r"proposed=\d+$"))
    banner = page.locator(".govuk-notification-banner--success")
    banner.wait_for()
    # GOV.UK Frontend focuses a role="alert" banner; it is at the top, in view.
    page.wait_for_function("document.activeElement.classList.contains('govuk-notification-banner')")
    assert who.in_view(".govuk-notification-banner--success")
    assert not page.title().startswith("Error")
    who.check()
    who.shot(f"proposed-banner-{name}")
    page.context.close()


@pytest.mark.parametrize("size", SIZES)
def test_propose_without_javascript(browser, server, size):  # noqa: F811
    name = "desktop" if size is DESKTOP else "375"
    clause = "11" if size is DESKTOP else "12"
    who = person(browser, server, size, False)
    page = who.page
    who.sign_in_as("Dan Price" if size is DESKTOP else "Amira Shah", f"{CLAUSE}/{clause}")
    who.goto(f"{CLAUSE}/{clause}/amend")
    # Without JavaScript the conditional field is simply shown, under its radio.
    assert page.locator("#heading").is_visible()
    page.get_by_label("Proposed wording").fill(WORDING)
    page.get_by_role("button", name="Publish amendment").click()
    page.wait_for_load_state()
    assert page.title().startswith("Error: Propose an amendment to clause")
    assert "govuk-error-summary" in first_in_main(page)
    assert who.in_view(".govuk-error-summary")
    who.check()
    who.shot(f"propose-error-nojs-{name}")
    page.get_by_label("Why do you propose this?").fill(RATIONALE)
    page.get_by_role("button", name="Publish amendment").click()
    page.wait_for_url(re.compile(r"proposed=\d+$"))
    assert page.evaluate("window.scrollY") == 0
    assert who.in_view(".govuk-notification-banner--success")
    amendment = page.url.rsplit("proposed=", 1)[1]
    page.get_by_role("link", name=f"Go to amendment {amendment}").click()
    assert page.url.endswith(f"#amendment-{amendment}")
    who.check()
    page.context.close()


def test_withdrawing_a_vote_leaves_focus_on_the_vote_status(browser, server):  # noqa: F811
    who = person(browser, server, PHONE, True)
    page = who.page
    who.sign_in_as("Dan Price", f"{CLAUSE}/7")
    card = page.locator(".app-amendment").first
    amendment = card.get_attribute("id").split("-")[1]
    card.get_by_role("button", name=re.compile("^Support")).click()
    page.locator(f"#vote-{amendment}-mine").filter(has_text="support").wait_for()
    # htmx keeps focus on the pressed button, which is still there.
    assert who.focused().startswith(f"vote-{amendment}-support")
    card.get_by_role("button", name=re.compile("^Withdraw my vote")).click()
    page.locator(f"#vote-{amendment}-mine").filter(has_text="not voted").wait_for()
    page.wait_for_function(f"document.activeElement.id === 'vote-{amendment}-mine'")
    assert who.in_view(f"#vote-{amendment}-mine")
    assert "was withdrawn" in page.locator(f"#vote-{amendment}-status").inner_text()
    who.check()
    who.shot("vote-withdrawn-375")
    page.context.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
def test_an_author_changes_their_amendment(browser, server, javascript):  # noqa: F811
    clause = "4" if javascript else "5"
    who = person(browser, server, DESKTOP, javascript)
    page = who.page
    who.sign_in_as("Carys Llewellyn", f"{CLAUSE}/{clause}")
    who.goto(f"{CLAUSE}/{clause}/amend")
    page.get_by_label("Delete this clause").check()
    page.get_by_label("Why do you propose this?").fill("This clause says nothing new.")
    page.get_by_role("button", name="Publish amendment").click()
    page.wait_for_url(re.compile(r"proposed=\d+$"))
    amendment = page.url.rsplit("proposed=", 1)[1]
    page.get_by_role("link", name=f"Change my amendment {amendment}").click()
    assert page.get_by_label("Delete this clause").is_checked()
    who.check()
    page.get_by_label("Why do you propose this?").fill("")
    page.get_by_role("button", name="Save changes").click()
    page.locator(".govuk-error-summary").wait_for()
    assert page.title().startswith(f"Error: Change amendment {amendment}")
    if javascript:
        page.wait_for_function("document.activeElement.classList.contains('govuk-error-summary')")
    who.check()
    page.get_by_label("Change the wording of this clause").check()
    page.get_by_label("Proposed wording").fill("Keep it short: one sentence.")
    page.get_by_label("Why do you propose this?").fill("Better shorter than gone.")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(re.compile(rf"edited={amendment}$"))
    assert "Your amendment has been changed." in page.inner_text("body")
    assert who.in_view(".govuk-notification-banner--success")
    card = page.locator(f"#amendment-{amendment}")
    assert "Keep it short" in card.inner_text()
    who.check()
    page.context.close()


def test_report_form_errors_and_banner(browser, server):  # noqa: F811
    who = person(browser, server, PHONE, True)
    page = who.page
    who.sign_in_as("Dan Price", f"{CLAUSE}/7")
    card = page.locator(".app-amendment").last
    amendment = card.get_attribute("id").split("-")[1]
    card.get_by_text("Report this amendment").click()
    card.get_by_role("button", name=re.compile("^Send report")).click()
    page.wait_for_load_state()
    assert page.title().startswith("Error: ")
    assert "govuk-error-summary" in first_in_main(page)
    summary = page.locator(".govuk-error-summary").inner_text()
    assert "Enter why a moderator should look at this amendment" in summary
    page.wait_for_function("document.activeElement.classList.contains('govuk-error-summary')")
    who.check()
    page.locator(f"#flag-{amendment}").fill("It names a colleague.")
    page.get_by_role("button", name=re.compile(f"^Send report on amendment {amendment}")).click()
    page.wait_for_url(re.compile(rf"reported={amendment}$"))
    assert who.in_view(".govuk-notification-banner--success")
    who.check()
    page.context.close()


@pytest.mark.parametrize("size", SIZES)
def test_tracked_changes_views(browser, server, size):  # noqa: F811
    name = "desktop" if size is DESKTOP else "375"
    who = person(browser, server, size, False)
    page = who.page
    who.goto(f"{CLAUSE}/7")
    diff = page.locator(".app-diff").first
    font = diff.evaluate("e => getComputedStyle(e).fontFamily")
    assert font.startswith('"GDS Transport"'), font
    # A removed phrase and its replacement are set apart by a space.
    gaps = page.evaluate(
        """[...document.querySelectorAll('.app-diff del')]
            .filter(d => d.nextElementSibling && d.nextElementSibling.tagName === 'INS')
            .map(d => d.nextSibling.nodeType === Node.TEXT_NODE ? d.nextSibling.textContent : '')"""
    )
    assert gaps and set(gaps) == {" "}, gaps
    who.shot(f"clause-changes-{name}")
    page.get_by_role("link", name="Proposed text only").click()
    assert page.locator(".app-amendment del").count() == 0
    who.check()
    page.get_by_role("link", name="Current and proposed side by side").click()
    who.check()
    sides = page.locator(".app-diff-sides").first.locator(".app-diff-sides__side")
    first, second = sides.nth(0).bounding_box(), sides.nth(1).bounding_box()
    if size is DESKTOP:
        assert abs(first["y"] - second["y"]) < 1 and second["x"] > first["x"]
    else:
        assert second["y"] >= first["y"] + first["height"]
    sides.nth(0).scroll_into_view_if_needed()
    who.shot(f"clause-side-by-side-{name}")
    page.context.close()


@pytest.mark.parametrize("width", [320, 375])
@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
def test_header_and_no_sideways_scrolling(browser, server, width, javascript):  # noqa: F811
    who = person(browser, server, {"width": width, "height": 740}, javascript)
    page = who.page
    who.sign_in_as("Dan Price", "/")
    header = page.locator("header")
    # Sign-out and the name are service navigation items in the header landmark, and so
    # is the phase banner.
    assert (
        header.locator(".govuk-service-navigation").get_by_role("button", name="Sign out").count()
        == 1
    )
    assert "Signed in as" in header.inner_text()
    assert header.locator(".govuk-phase-banner").count() == 1
    for path in (
        "/",
        "/consultations/social-media-guidance",
        f"{CLAUSE}/7",
        f"{CLAUSE}/7?view=side-by-side",
        f"{CLAUSE}/7/amend",
        "/consultations/social-media-guidance/results",
    ):
        who.goto(path)  # axe-core and the scroll width are checked on each
    who.shot(f"results-{width}-{'js' if javascript else 'nojs'}")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    assert page.get_by_role("link", name="Sign in").count() >= 1
    page.context.close()


def test_a_vote_on_wording_changed_since_the_page_loaded_is_refused(browser, server):  # noqa: F811
    author = person(browser, server, DESKTOP, True)
    author.sign_in_as("Amira Shah", f"{CLAUSE}/2")
    author.goto(f"{CLAUSE}/2/amend")
    author.page.get_by_label("Proposed wording").fill("Keep work and personal accounts apart.")
    author.page.get_by_label("Why do you propose this?").fill("Shorter, and it says the same.")
    author.page.get_by_role("button", name="Publish amendment").click()
    author.page.wait_for_url(re.compile(r"proposed=\d+$"))
    amendment = author.page.url.rsplit("proposed=", 1)[1]

    voter = person(browser, server, PHONE, True)
    voter.sign_in_as("Dan Price", f"{CLAUSE}/2")
    # The author changes the wording while the voter reads the old one.
    author.page.get_by_role("link", name=f"Change my amendment {amendment}").click()
    author.page.get_by_label("Proposed wording").fill(
        "Keep work and personal accounts apart, always."
    )
    author.page.get_by_role("button", name="Save changes").click()
    author.page.wait_for_url(re.compile(rf"edited={amendment}$"))

    card = voter.page.locator(f"#amendment-{amendment}")
    card.get_by_role("button", name=re.compile("^Support")).click()
    summary = card.locator(".govuk-error-summary")
    summary.wait_for()
    assert "changed this amendment" in summary.inner_text()
    # The refusal is announced and focused, not left for the reader to find.
    voter.page.wait_for_function("document.activeElement.classList.contains('govuk-error-summary')")
    voter.check()
    voter.shot("vote-refused-after-edit-375")
    voter.page.reload()
    assert "always" in voter.page.locator(f"#amendment-{amendment}").inner_text()
    author.page.context.close()
    voter.page.context.close()
