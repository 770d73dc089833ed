"""Public pages after closing and after publication, the report's plain-English summary
and the decisions page, on SQLite and PostgreSQL (app.published, app.plain_summary)."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from app.db import Database
from app.main import create_app
from app.models import Amendment, Consultation
from app.reporting import build_report
from app.views.report import summary_of
from tests.conftest import settings_for
from tests.test_organising import ORGANISER, close_and_decide, user_id
from tests.utils.sessions import force_login

SLUG = "social-media-guidance"


@pytest.fixture
def app(seeded: Database):
    return create_app(settings_for(seeded.url, organisers=frozenset({ORGANISER})))


@pytest.fixture
def organiser(app, seeded):
    with TestClient(app, follow_redirects=False) as client:
        client.csrf = force_login(client, user_id(seeded, ORGANISER))
        yield client


@pytest.fixture
def public(app):
    with TestClient(app, follow_redirects=False) as client:
        yield client


def post(client, path, **data):
    return client.post(path, data={"csrf_token": client.csrf, **data})


def words(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def main_of(html: str) -> str:
    """The words of the page's main content (not the header's own "Sign in")."""
    return words(html.split("<main", 1)[1].split("</main>", 1)[0])


def consultation(database: Database) -> Consultation:
    return database.call(lambda s: s.exec(select(Consultation)).one())


def test_after_closing_pages_say_closed_outcome_to_be_published(organiser, public, seeded):
    post(organiser, f"/organise/{SLUG}/status", action="close", confirm="yes")
    home = words(public.get("/").text)
    assert "Closed" in home and "Outcome published Not yet" in home
    assert "Voting closes" not in home
    page = main_of(public.get(f"/consultations/{SLUG}").text)
    assert "outcome to be published" in page
    assert "Sign in" not in page and "not open for amendments" not in page
    clause = words(public.get(f"/consultations/{SLUG}/clauses/3").text)
    assert "outcome to be published" in clause
    # Before publication, nothing of the outcome is public.
    assert "Adopted wording" not in clause


def test_after_publication_pages_point_to_the_outcome(organiser, public, seeded):
    close_and_decide(organiser, seeded)
    assert (
        post(organiser, f"/organise/{SLUG}/status", action="publish", confirm="yes").status_code
        == 303
    )
    stored = consultation(seeded)
    home = words(public.get("/").text)
    assert "Outcome published" in home and "Read the outcome" in home
    assert "Voting closes" not in home and "Amendments close" not in home
    page = public.get(f"/consultations/{SLUG}")
    assert "not open for amendments" not in page.text and "Sign in" not in main_of(page.text)
    assert f'href="/consultations/{SLUG}/report"' in page.text
    assert "Outcome published" in words(page.text)
    report = seeded.call(lambda s: build_report(s, stored))
    changed = next(r for r in report.outcome.clauses if r.applied and not r.final_wording)
    adopted = changed.consolidated[0]
    clause = public.get(f"/consultations/{SLUG}/clauses/{changed.clause.number}").text
    text = words(clause)
    assert f"Adopted wording of clause {changed.clause.number}" in text
    assert adopted.text.split("\n\n")[0][:60] in clause
    assert f"/consultations/{SLUG}/report#clause-{changed.clause.number}" in clause
    assert text.index("Adopted wording") < text.index("The wording people were asked about")


def test_the_report_leads_with_a_plain_english_summary(organiser, public, seeded):
    close_and_decide(organiser, seeded)
    post(organiser, f"/organise/{SLUG}/status", action="publish", confirm="yes")
    stored = consultation(seeded)
    report = seeded.call(lambda s: build_report(s, stored))
    summary = summary_of(report)
    amendments = len(report.rows)
    proposers = report.turnout["proposers"]
    if proposers is None:
        # The seed has organisations with fewer than 5 people, so exact totals of people
        # are withheld (app.disclosure); amendments are still counted as amendments.
        assert f"They proposed {amendments} amendments and cast" in summary.said
        assert "How many people proposed and how many voted is not shown" in summary.said
    else:
        assert proposers < amendments  # so people and amendments must not be confused
        assert f"{proposers} people proposed {amendments} amendments between them" in summary.said
    assert len(summary.changed) + len(summary.unchanged) == len(report.outcome.clauses)
    assert summary.changed and summary.unchanged
    page = words(public.get(f"/consultations/{SLUG}/report").text)
    assert page.index("We asked") < page.index("You said") < page.index("We did")
    assert page.index("We did") < page.index("SHA-256") and page.index("We did") < page.index(
        "redline tally"
    )
    assert summary.said in page
    # What changed says why, with the organisers' published reason.
    assert "Why: Decision" in page
    rejected_leader = [line for line in summary.unchanged if "rejected amendment" in line.detail]
    for line in rejected_leader:
        assert "which led the vote" in line.detail


def test_the_decisions_page_groups_competing_amendments_as_tracked_changes(organiser, seeded):
    post(organiser, f"/organise/{SLUG}/status", action="close", confirm="yes")
    page = organiser.get(f"/organise/{SLUG}/decisions").text
    stored = consultation(seeded)
    report = seeded.call(lambda s: build_report(s, stored))
    by_clause: dict[str, int] = {}
    for row in report.rows:
        by_clause[row.ranked.clause_ref] = by_clause.get(row.ranked.clause_ref, 0) + 1
    groups = re.findall(r'class="app-competing app-competing--(\d)"', page)
    assert len(groups) == len(by_clause)
    assert "2" in groups  # at least one clause has competing amendments side by side
    assert page.count('class="app-amendment"') == len(report.rows)
    assert "app-del" in page and "app-ins" in page and "95% interval" in page
    text = words(page)
    for row in report.rows:
        assert f"{row.ranked.supports} support, {row.ranked.opposes} oppose" in text
    counted = seeded.call(
        lambda s: len(s.exec(select(Amendment).where(Amendment.status == "open")).all())
    )
    assert f"{counted} still to decide" in text
