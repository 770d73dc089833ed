"""The "Your details" page: a participant chooses how they are shown, on both engines.

Through the real app: the choice is validated with a GOV.UK error summary and a
message next to the field, stored, and then used wherever the person's name
appears (the header, amendment cards, the report and its exports). One axe-core
check of the page in headless Chromium.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from app.db import Database
from app.main import create_app
from app.models import Amendment, Organisation, User
from app.people import author_label, validate_details
from tests.conftest import settings_for
from tests.test_report_agreement import DEMO, close, organiser_client
from tests.utils.sessions import force_login

NAME = "Priya, policy adviser"


def first_author(database: Database) -> User:
    """The author of one of the demo's amendments."""
    return database.call(
        lambda s: s.exec(
            select(User).join(Amendment, Amendment.author_id == User.id).order_by(Amendment.id)
        ).first()
    )


@pytest.fixture
def author(seeded: Database) -> Iterator[TestClient]:
    app = create_app(settings_for(seeded.url))
    with TestClient(app, follow_redirects=False) as client:
        client.user = first_author(seeded)
        client.csrf = force_login(client, client.user.id)
        yield client


def save(client: TestClient, **fields: str):
    return client.post("/your-details", data={"csrf_token": client.csrf, **fields})


def test_signed_out_people_are_sent_to_sign_in(client):
    response = client.get("/your-details")
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=/your-details"


def test_the_header_links_to_the_page_which_offers_both_choices(author):
    home = author.get("/").text
    assert 'href="/your-details">Your details</a>' in home
    page = author.get("/your-details").text
    assert f"By my pseudonym, {author.user.pseudonym}" in page
    assert "By a name I choose" in page and "Show your organisation on what you write?" in page


def test_a_chosen_name_and_organisation_appear_on_what_they_wrote(author, seeded):
    saved = save(
        author, name_choice="display_name", display_name=f"  {NAME} ", show_organisation="yes"
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/your-details?saved=1"
    assert "Your details have been saved" in author.get(saved.headers["location"]).text
    user = seeded.call(lambda s: s.get(User, author.user.id))
    assert (user.display_name, user.show_organisation) == (NAME, True)
    assert f"Signed in as <strong>{NAME}</strong>" in author.get("/").text
    amendment = seeded.call(
        lambda s: s.exec(select(Amendment).where(Amendment.author_id == user.id)).first()
    )
    from app.models import Clause, Organisation

    number = seeded.call(lambda s: s.get(Clause, amendment.clause_id).number)
    organisation = seeded.call(lambda s: s.get(Organisation, user.organisation_id).name)
    card = author.get(f"/consultations/{DEMO}/clauses/{number}").text
    assert NAME in card and organisation in card

    # Back to the pseudonym, organisation hidden: the pages follow.
    assert (
        save(author, name_choice="pseudonym", display_name="", show_organisation="no").status_code
        == 303
    )
    user = seeded.call(lambda s: s.get(User, author.user.id))
    assert (user.display_name, user.show_organisation) == (None, False)
    card = author.get(f"/consultations/{DEMO}/clauses/{number}").text
    assert NAME not in card and user.pseudonym in card


def test_the_report_export_uses_the_chosen_name(author, seeded):
    assert (
        save(
            author, name_choice="display_name", display_name=NAME, show_organisation="no"
        ).status_code
        == 303
    )
    with organiser_client(seeded) as organiser:
        close(organiser, DEMO)
        body = organiser.get(f"/consultations/{DEMO}/report.csv").text
    authors = {row["author"] for row in csv.DictReader(io.StringIO(body))}
    assert NAME in authors
    assert author.user.pseudonym not in authors


def test_the_chosen_organisation_shows_on_the_report_and_its_exports(author, seeded):
    assert (
        save(
            author, name_choice="display_name", display_name=NAME, show_organisation="yes"
        ).status_code
        == 303
    )
    user = seeded.call(lambda s: s.get(User, author.user.id))
    organisation = seeded.call(lambda s: s.get(Organisation, user.organisation_id).name)
    with organiser_client(seeded) as organiser:
        close(organiser, DEMO)
        page = organiser.get(f"/consultations/{DEMO}/report").text
        body = organiser.get(f"/consultations/{DEMO}/report.csv").text
    assert f"by {NAME}, {organisation}" in page
    assert f"{NAME}, {organisation}" in {row["author"] for row in csv.DictReader(io.StringIO(body))}


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"display_name": "", "show_organisation": "no"},
            "name_choice",
            "Select how you want to be shown",
        ),
        (
            {"name_choice": "display_name", "display_name": " ", "show_organisation": "no"},
            "display_name",
            "Enter the name you want to be shown by",
        ),
        (
            {
                "name_choice": "display_name",
                "display_name": "me@hmrc.gov.uk",
                "show_organisation": "no",
            },
            "display_name",
            "Enter a name, not an e-mail address",
        ),
        (
            {
                "name_choice": "display_name",
                "display_name": "Ann\u202eExec",
                "show_organisation": "no",
            },
            "display_name",
            "Name must only use letters",
        ),
        (
            {"name_choice": "display_name", "display_name": "x" * 81, "show_organisation": "no"},
            "display_name",
            "Name must be 80 characters or fewer",
        ),
        (
            {
                "name_choice": "display_name",
                "display_name": "Oak Wren 123",
                "show_organisation": "no",
            },
            "display_name",
            "Enter a name that does not look like a pseudonym",
        ),
        (
            {"name_choice": "pseudonym", "display_name": ""},
            "show_organisation",
            "Select whether to show your organisation",
        ),
    ],
)
def test_bad_input_gets_a_message_next_to_the_field_and_nothing_is_stored(
    author, seeded, fields, field, message
):
    before = seeded.call(lambda s: s.get(User, author.user.id))
    response = save(author, **fields)
    assert response.status_code == 422
    page = response.text
    assert "<title>Error: Your details" in page
    assert re.search(r'class="govuk-error-summary', page)
    assert f'href="#{field}">{message}' in page
    assert f'id="{field}-error"' in page
    after = seeded.call(lambda s: s.get(User, author.user.id))
    assert (after.display_name, after.show_organisation) == (
        before.display_name,
        before.show_organisation,
    )
    if fields.get("display_name", "").strip() and "@" not in fields["display_name"]:
        # What they typed is kept in the field for them to correct (escaped).
        assert 'name="display_name"' in page


def test_saving_needs_the_csrf_token(author):
    response = author.post(
        "/your-details",
        data={"name_choice": "display_name", "display_name": NAME, "show_organisation": "yes"},
    )
    assert response.status_code == 403


def test_the_one_label_rule():
    assert author_label(None, "Oak Wren 123", True, "HMRC").name == "Oak Wren 123"
    assert author_label("Priya", "Oak Wren 123", False, "HMRC").organisation is None
    assert author_label("Priya", "Oak Wren 123", True, "HMRC").organisation == "HMRC"
    assert str(author_label("Priya", "Oak Wren 123", True, "HMRC")) == "Priya, HMRC"
    assert str(author_label("Priya", "Oak Wren 123", False, "HMRC")) == "Priya"
    details, errors = validate_details("display_name", "  Priya   Shah ", "yes")
    assert errors == {} and details.display_name == "Priya Shah" and details.show_organisation


@pytest.mark.browser
def test_your_details_page_is_accessible_in_chromium(tmp_path):
    from tests.test_browser import (
        CHROMIUM_ARGS,
        NO_CSP,
        assert_accessible,
        chromium_reason,
        free_port,
        serve,
    )

    reason = chromium_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    env = {
        "REDLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'redline.db'}",
        "REDLINE_DEMO": "1",
        "REDLINE_SECRET_KEY": "",
    }
    with serve(free_port(), env, demo=True) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(**NO_CSP)
            page.goto(base + "/sign-in?next=/your-details")
            page.get_by_role("button", name=re.compile("^Sign in as ")).first.click()
            page.wait_for_url(re.compile(r"/your-details$"))
            assert_accessible(page)
            # The error state too: a chosen name left empty.
            page.get_by_label("By a name I choose").check()
            page.get_by_label("Name to show").fill("")
            page.get_by_role("button", name="Save your details").click()
            page.locator(".govuk-error-summary").wait_for()
            assert_accessible(page)
            page.get_by_label("Name to show").fill(NAME)
            page.get_by_role("button", name="Save your details").click()
            page.wait_for_url(re.compile(r"saved=1$"))
            assert f"Signed in as {NAME}" in page.inner_text("body")
            assert_accessible(page)
        finally:
            browser.close()
