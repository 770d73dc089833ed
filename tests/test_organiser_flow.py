"""The organiser's flow on SQLite and PostgreSQL: confirmation pages, the task list,
participation figures and the GOV.UK date input (app.views.organise, app.dashboard)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from app.db import Database
from app.main import create_app
from app.models import AuditEntry, Consultation, User, utcnow
from app.reporting import turnout
from tests.conftest import settings_for
from tests.utils.forms import closing_fields
from tests.utils.sessions import force_login

SLUG = "social-media-guidance"
ORGANISER = "dan.price@cabinetoffice.gov.uk"
TITLE = "Social media guidance for public-sector workers"


@pytest.fixture
def organiser(seeded: Database):
    app = create_app(settings_for(seeded.url, organisers=frozenset({ORGANISER})))
    with TestClient(app, follow_redirects=False) as client:
        user = seeded.call(lambda s: s.exec(select(User.id).where(User.email == ORGANISER)).one())
        client.csrf = force_login(client, user)
        yield client


def post(client, path, **data):
    return client.post(path, data={"csrf_token": client.csrf, **data})


def stored(database: Database) -> Consultation:
    return database.call(
        lambda s: s.exec(select(Consultation).where(Consultation.slug == SLUG)).one()
    )


def set_voting_close(database: Database, moment: datetime) -> None:
    def write(session):
        consultation = session.exec(select(Consultation).where(Consultation.slug == SLUG)).one()
        consultation.voting_close_at = moment
        session.add(consultation)
        session.commit()

    database.write_call(write)


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_one_press_no_longer_closes_the_confirmation_page_does(organiser, seeded):
    set_voting_close(seeded, utcnow() + timedelta(weeks=4, hours=1))
    pressed = post(organiser, f"/organise/{SLUG}/status", action="close")
    assert pressed.status_code == 303
    assert pressed.headers["location"] == f"/organise/{SLUG}/close"
    assert stored(seeded).status == "open"
    page = organiser.get(f"/organise/{SLUG}/close")
    assert page.status_code == 200
    words = text_of(page.text)
    assert (
        f"Are you sure you want to close {TITLE} now, 4 weeks before the advertised closing time?"
        in words
    )
    assert "People will no longer be able to propose amendments, vote" in words
    assert 'name="confirm" value="yes"' in page.text
    assert f'href="/organise/{SLUG}"' in page.text  # the way back
    done = post(organiser, f"/organise/{SLUG}/status", action="close", confirm="yes")
    assert done.status_code == 303 and stored(seeded).status == "closed"
    # The audit log says how early it closed.
    audit = text_of(organiser.get(f"/organise/{SLUG}/audit").text)
    assert "Status : open → changed to closed" in audit
    assert "4 weeks before the advertised time" in audit


def test_a_refused_step_shows_the_task_list_not_a_dead_end(organiser, seeded):
    post(organiser, f"/organise/{SLUG}/status", action="close", confirm="yes")
    page = organiser.get(f"/organise/{SLUG}/publish")
    assert page.status_code == 409
    assert page.text.count("govuk-task-list__item") >= 9
    assert 'href="#tasks"' in page.text and "<title>Error:" in page.text
    words = text_of(page.text)
    assert "Publishing needs every amendment decided" in words
    undecided = re.search(r"(\d+) of (\d+) still to decide", words)
    assert undecided and undecided[1] == undecided[2] and int(undecided[1]) > 0
    assert f'href="/organise/{SLUG}/decisions"' in page.text
    # Publishing from the form is refused the same way, showing what is still to do.
    refused = post(organiser, f"/organise/{SLUG}/status", action="publish", confirm="yes")
    assert refused.status_code == 409
    assert "Decide on every amendment" in refused.text and "still to decide" in refused.text
    assert stored(seeded).status == "closed"
    # A step that is not next (opening a closed consultation) shows the same page.
    wrong = post(organiser, f"/organise/{SLUG}/status", action="open")
    assert wrong.status_code == 409 and "govuk-task-list" in wrong.text


def test_the_dashboard_shows_participation_from_the_kept_counts(organiser, seeded):
    page = organiser.get(f"/organise/{SLUG}")
    assert page.status_code == 200
    totals, rows = seeded.call(lambda s: turnout(s, stored(seeded).id, frozen=False))
    words = text_of(page.text)
    assert f"People who took part {totals['participants']}" in words
    # Any per-organisation figure below 5 is suppressed, on the dashboard as in the report,
    # and totals that would reveal one are withheld (app.disclosure): the seed has some.
    assert any(isinstance(r.participants, str) for r in rows)
    assert totals["proposers"] is None and totals["voters"] is None
    withheld = "Not shown: it would reveal a count below 5 from one organisation"
    assert f"People who proposed amendments {withheld}" in words
    assert f"People who voted {withheld}" in words
    assert "fewer than 5" in words
    for row in rows:
        assert row.organisation in words
    assert "Amendments and votes by status" in words
    assert "Close the consultation" in words and f"/organise/{SLUG}/close" in page.text


@pytest.mark.parametrize(
    ("typed", "expected_utc"),
    [
        # British Summer Time: UK time is an hour ahead of UTC.
        (("15", "7", "2099", "5pm"), datetime(2099, 7, 15, 16, 0, tzinfo=UTC)),
        # Greenwich Mean Time: UK time is UTC.
        (("15", "Dec", "2099", "17:00"), datetime(2099, 12, 15, 17, 0, tzinfo=UTC)),
    ],
)
def test_dates_are_entered_in_uk_time_and_stored_in_utc(organiser, seeded, typed, expected_utc):
    fields = dict(zip(("day", "month", "year", "time"), typed, strict=True))
    saved = post(
        organiser,
        f"/organise/{SLUG}/details",
        title=TITLE,
        summary="",
        eligible_domains="*.gov.uk",
        **{
            **closing_fields(),
            **{f"voting_close_at-{part}": value for part, value in fields.items()},
        },
    )
    assert saved.status_code == 303, text_of(saved.text)[:2000]
    voting = stored(seeded).voting_close_at
    assert voting.replace(tzinfo=voting.tzinfo or UTC) == expected_utc
    page = organiser.get(f"/organise/{SLUG}").text
    month = "7" if expected_utc.month == 7 else "12"
    assert f'name="voting_close_at-month" type="text" value="{month}"' in page
    assert 'name="voting_close_at-time" type="text" value="17:00"' in page
    edits = seeded.call(
        lambda s: s.exec(select(AuditEntry).where(AuditEntry.action == "edit")).all()
    )
    assert len(edits) == 1


def test_a_wrong_date_part_is_named_and_highlighted_and_nothing_is_saved(organiser, seeded):
    before = stored(seeded).voting_close_at
    response = post(
        organiser,
        f"/organise/{SLUG}/details",
        title=TITLE,
        summary="",
        eligible_domains="*.gov.uk",
        **{
            **closing_fields(),
            **{"voting_close_at-day": "12", "voting_close_at-month": "14"},
            **{"voting_close_at-year": "2099", "voting_close_at-time": "5pm"},
        },
    )
    assert response.status_code == 422
    assert "Voting closes must be a real date" in response.text
    assert 'href="#voting_close_at-month"' in response.text
    inputs = re.findall(r'class="([^"]*)" id="voting_close_at-(\w+)"', response.text)
    highlighted = {part for classes, part in inputs if "govuk-input--error" in classes}
    assert highlighted == {"month"}
    # What was typed is kept, so nothing needs typing again.
    assert 'name="voting_close_at-month" type="text" value="14"' in response.text
    assert stored(seeded).voting_close_at == before


def test_the_audit_log_says_what_each_edit_changed(organiser, seeded):
    saved = post(
        organiser,
        f"/organise/{SLUG}/details",
        title="Social media guidance",
        summary="",
        eligible_domains="*.gov.uk",
        **{
            **closing_fields(),
            **{"voting_close_at-day": "15", "voting_close_at-month": "1"},
            **{"voting_close_at-year": "2099", "voting_close_at-time": "midday"},
        },
    )
    assert saved.status_code == 303
    revised = post(
        organiser,
        f"/organise/{SLUG}/clauses/1/revise",
        heading="Scope",
        text="This guidance applies to everyone who works in the public sector.",
        reason="Plainer.",
    )
    assert revised.status_code == 303, text_of(revised.text)[:1000]
    page = organiser.get(f"/organise/{SLUG}/audit")
    words = text_of(page.text)
    assert f"Title : {TITLE} → changed to Social media guidance" in words
    assert "→ changed to 15 January 2099 at midday" in words
    assert "Who may take part :" in words
    assert "Wording (tracked changes)" in words and "added:" in words
    download = organiser.get(f"/organise/{SLUG}/audit.csv").text
    assert f"Title: {TITLE} → Social media guidance" in download


def test_a_draft_can_be_created_with_its_closing_times_in_uk_time(organiser, seeded):
    document = "# Live streaming\n\n## 1. Notice\nGive notice before streaming.\n"
    bad = post(
        organiser,
        "/organise/new",
        document_text=document,
        **{
            **closing_fields(voting="2099-06-31T17:00"),
            "amendments_close_at-day": "3",
        },
    )
    assert bad.status_code == 422
    text = text_of(bad.text)
    # In page order: the amendment date (incomplete), then the voting date (not real).
    assert text.index("Amendments close must include a month, a year and a time") < text.index(
        "Voting closes must be a real date"
    )
    assert 'href="#amendments_close_at-month"' in bad.text
    assert 'href="#voting_close_at-day"' in bad.text
    assert document.splitlines()[0] in bad.text  # what was typed is kept
    created = post(
        organiser,
        "/organise/new",
        document_text=document,
        **closing_fields(amendments="2099-06-01T09:30", voting="2099-06-30T17:00"),
    )
    assert created.status_code == 303
    draft = seeded.call(
        lambda s: s.exec(select(Consultation).where(Consultation.slug == "live-streaming")).one()
    )
    stored_times = [
        t.replace(tzinfo=t.tzinfo or UTC)
        for t in (draft.amendments_close_at, draft.voting_close_at)
    ]
    assert stored_times == [
        datetime(2099, 6, 1, 8, 30, tzinfo=UTC),
        datetime(2099, 6, 30, 16, 0, tzinfo=UTC),
    ]
