"""The participation loop through the real app, on SQLite and PostgreSQL."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlmodel import select
from starlette.routing import Route
from starlette.testclient import TestClient

from app.db import Database
from app.main import create_app
from app.models import Amendment, Consultation, User, Vote, utcnow
from app.reporting import build_report
from tests.conftest import settings_for
from tests.utils.sessions import force_login

SLUG = "social-media-guidance"
CLAUSE = f"/consultations/{SLUG}/clauses"


def user_id(database: Database, email: str) -> int:
    return database.call(lambda s: s.exec(select(User.id).where(User.email == email)).one())


def sign_in(client: TestClient, database: Database, email: str) -> str:
    return force_login(client, user_id(database, email))


def amendment_on(database: Database, clause_number: str, author_email: str) -> Amendment:
    def find(session):
        author = session.exec(select(User).where(User.email == author_email)).one()
        return session.exec(select(Amendment).where(Amendment.author_id == author.id)).all()

    return next(
        a
        for a in database.call(find)
        if database.call(_clause_number, a.clause_id) == clause_number
    )


def _clause_number(session, clause_id):
    from app.models import Clause

    return session.get(Clause, clause_id).number


def counts(database: Database, amendment_id: int) -> tuple[int, int]:
    def count(session):
        votes = session.exec(select(Vote).where(Vote.amendment_id == amendment_id)).all()
        return (
            sum(v.stance == "support" for v in votes),
            sum(v.stance == "oppose" for v in votes),
        )

    return database.call(count)


def set_consultation(database: Database, **values) -> None:
    def update(session):
        consultation = session.exec(select(Consultation).where(Consultation.slug == SLUG)).one()
        for key, value in values.items():
            setattr(consultation, key, value)
        session.add(consultation)
        session.commit()

    database.call(update)


# Reading


def test_home_lists_consultations_with_status_and_closing_dates(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "Social media guidance for public-sector workers" in page.text
    assert "Open" in page.text
    assert "Amendments close" in page.text and "Voting closes" in page.text


def test_consultation_page_numbers_clauses_and_counts_amendments(client):
    page = client.get(f"/consultations/{SLUG}")
    assert page.status_code == 200
    assert page.text.count(f'href="{CLAUSE}/') == 13
    assert f"/consultations/{SLUG}/results" in page.text
    # Clause 7 has two demo amendments.
    row = re.search(r"How quickly to reply</a></td>\s*<td[^>]*>(\d+)</td>", page.text)
    assert row and row.group(1) == "2"


def test_clause_page_shows_tracked_changes_counts_and_no_email(client, seeded):
    page = client.get(f"{CLAUSE}/7")
    assert page.status_code == 200
    assert "<del" in page.text and "<ins" in page.text
    assert "removed: " in page.text and "added: " in page.text  # not colour alone
    assert "Amira Shah" in page.text and "HM Revenue and Customs" in page.text
    assert "@" not in re.sub(r"<script.*?</script>", "", page.text, flags=re.S)


def test_a_pseudonymous_author_is_shown_by_pseudonym(client, seeded):
    pseudonym = seeded.call(
        lambda s: s.exec(select(User.pseudonym).where(User.email == "ben.okafor@dwp.gov.uk")).one()
    )
    assert pseudonym in client.get(f"{CLAUSE}/4").text


@pytest.mark.parametrize(
    ("sort", "shown"),
    [
        ("shuffled", "Shuffled for you"),
        ("newest", "Newest"),
        ("supported", "Most supported"),
        ("ranked", "Ranking so far"),
        ("consensus", "Shuffled for you"),
        ("nonsense", "Shuffled for you"),
        (None, "Shuffled for you"),
    ],
)
def test_clause_page_sorts_and_shuffles_by_default(client, sort, shown):
    page = client.get(f"{CLAUSE}/7" + (f"?sort={sort}" if sort else ""))
    assert page.status_code == 200
    assert page.text.count('class="app-amendment"') == 2
    assert f'<strong aria-current="true">{shown}</strong>' in page.text


def test_sort_by_ranking_follows_the_live_ranking(client, seeded):
    page = client.get(f"{CLAUSE}/7?sort=ranked")
    ids = re.findall(r'id="amendment-(\d+)"', page.text)
    report = seeded.call(lambda s: build_report(s, s.get(Consultation, _consultation_id(seeded))))
    expected = [row.ranked.ref[1:] for row in report.rows if row.ranked.clause_ref == "7"]
    assert ids == expected


def test_sort_by_most_supported_puts_the_most_supported_first(client, seeded):
    page = client.get(f"{CLAUSE}/7?sort=supported")
    ids = re.findall(r'id="amendment-(\d+)"', page.text)
    supports = [counts(seeded, int(i))[0] for i in ids]
    assert supports == sorted(supports, reverse=True)


def test_reading_needs_no_sign_in_but_proposing_does(client):
    assert "Sign in with your work account to take part." in client.get(f"{CLAUSE}/3").text
    page = client.get(f"{CLAUSE}/3/amend")
    assert page.status_code == 403
    assert "Sign in" in page.text


@pytest.mark.parametrize(
    "path",
    [
        "/nowhere",
        "/consultations/no-such-thing",
        f"{CLAUSE}/99",
        f"{CLAUSE}/99/amend",
        f"/consultations/{SLUG}/clauses/../../etc",
    ],
)
def test_unknown_pages_are_proper_404_pages(client, path):
    page = client.get(path)
    assert page.status_code == 404
    assert "govuk-heading-l" in page.text and "Traceback" not in page.text


def test_a_draft_consultation_is_not_shown(client, seeded):
    set_consultation(seeded, status="draft")
    assert client.get(f"/consultations/{SLUG}").status_code == 404
    assert "Social media guidance" not in client.get("/").text


# Proposing


def test_propose_validates_and_keeps_the_typed_text(client, seeded):
    csrf = sign_in(client, seeded, "dan.price@cabinetoffice.gov.uk")
    form = client.get(f"{CLAUSE}/3/amend")
    assert form.status_code == 200
    assert "A line in your profile" in form.text  # pre-filled with the current wording
    page = client.post(
        f"{CLAUSE}/3/amend",
        data={"csrf_token": csrf, "kind": "change", "text": "My new words", "rationale": ""},
    )
    assert page.status_code == 422
    assert "govuk-error-summary" in page.text
    assert 'href="#rationale"' in page.text
    assert "Enter why you propose this change" in page.text
    assert "My new words</textarea>" in page.text
    assert page.text.startswith("<!DOCTYPE html>")
    assert "<title>Error: " in page.text


def test_propose_unchanged_wording_is_refused(client, seeded):
    csrf = sign_in(client, seeded, "dan.price@cabinetoffice.gov.uk")
    current = client.get(f"{CLAUSE}/13/amend").text
    text = html.unescape(
        re.search(r'<textarea[^>]*name="text"[^>]*>(.*?)</textarea>', current, re.S).group(1)
    )
    page = client.post(
        f"{CLAUSE}/13/amend",
        data={"csrf_token": csrf, "kind": "change", "text": text, "rationale": "No change really"},
    )
    assert page.status_code == 422
    assert "must be different from the current wording" in page.text


def test_propose_stores_the_amendment_and_shows_it(client, seeded):
    csrf = sign_in(client, seeded, "dan.price@cabinetoffice.gov.uk")
    response = client.post(
        f"{CLAUSE}/13/amend",
        data={
            "csrf_token": csrf,
            "kind": "change",
            "text": "If you are unsure whether a post is appropriate, do not post it.",
            "rationale": "Shorter, and the advice is the same.",
        },
    )
    assert response.status_code == 303
    location = response.headers["location"]
    # No #fragment: the page opens at its top, where the success banner is.
    assert location.startswith(f"{CLAUSE}/13?") and "#" not in location
    page = client.get(location)
    assert "Your amendment has been published" in page.text
    newcomer = location.rsplit("proposed=", 1)[1]
    assert f'href="#amendment-{newcomer}">Go to amendment {newcomer}</a>' in page.text
    assert "Shorter, and the advice is the same." in page.text
    assert "Dan Price" in page.text


def test_propose_with_htmx_swaps_errors_and_redirects_on_success(client, seeded):
    csrf = sign_in(client, seeded, "dan.price@cabinetoffice.gov.uk")
    headers = {"HX-Request": "true"}
    bad = client.post(
        f"{CLAUSE}/5/amend", data={"csrf_token": csrf, "kind": "insert"}, headers=headers
    )
    assert bad.status_code == 422
    # The part of <main> htmx swaps: its <title> (htmx sets the page's), then the error
    # summary first.
    assert bad.text.lstrip().startswith("<title>Error: Propose an amendment to clause 5")
    assert bad.text.index("govuk-error-summary") < bad.text.index("<h1")
    assert "Enter the heading of the new clause" in bad.text
    good = client.post(
        f"{CLAUSE}/5/amend",
        data={
            "csrf_token": csrf,
            "kind": "insert",
            "heading": "Live streams",
            "text": "Say in advance when a corporate account will stream live.",
            "rationale": "Nothing in the draft covers live video.",
        },
        headers=headers,
    )
    assert good.status_code == 204
    assert good.headers["HX-Redirect"].startswith(f"{CLAUSE}/5?")
    assert "Proposes a new clause after clause 5" in client.get(f"{CLAUSE}/5").text


def test_an_author_withdraws_their_amendment_and_no_one_else_can(client, seeded):
    amendment = amendment_on(seeded, "3", "amira.shah@hmrc.gov.uk")
    csrf = sign_in(client, seeded, "ben.okafor@dwp.gov.uk")
    assert (
        client.post(f"/amendments/{amendment.id}/withdraw", data={"csrf_token": csrf}).status_code
        == 403
    )
    csrf = sign_in(client, seeded, "amira.shah@hmrc.gov.uk")
    response = client.post(f"/amendments/{amendment.id}/withdraw", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert seeded.call(lambda s: s.get(Amendment, amendment.id).status) == "withdrawn"
    again = client.post(f"/amendments/{amendment.id}/withdraw", data={"csrf_token": csrf})
    assert again.status_code == 409
    # Its votes no longer count in the ranking.
    csrf = sign_in(client, seeded, "dan.price@cabinetoffice.gov.uk")
    assert (
        client.post(
            f"/amendments/{amendment.id}/vote", data={"csrf_token": csrf, "stance": "support"}
        ).status_code
        == 409
    )


# Voting


def test_vote_change_and_withdraw_without_javascript(client, seeded):
    amendment = amendment_on(seeded, "7", "carys.llewellyn@england.nhs.uk")
    before = counts(seeded, amendment.id)
    csrf = sign_in(client, seeded, "dan.price@cabinetoffice.gov.uk")
    url = f"/amendments/{amendment.id}/vote"

    response = client.post(url, data={"csrf_token": csrf, "stance": "support"})
    assert response.status_code == 303
    assert response.headers["location"].endswith(f"#amendment-{amendment.id}")
    assert counts(seeded, amendment.id) == (before[0] + 1, before[1])
    assert "Your vote: <strong>support</strong>" in client.get(response.headers["location"]).text

    client.post(url, data={"csrf_token": csrf, "stance": "oppose"})
    assert counts(seeded, amendment.id) == (before[0], before[1] + 1)

    client.post(url, data={"csrf_token": csrf, "stance": "withdraw"})
    assert counts(seeded, amendment.id) == before


def test_vote_with_htmx_returns_the_updated_widget(client, seeded):
    amendment = amendment_on(seeded, "10", "carys.llewellyn@england.nhs.uk")
    supports, opposes = counts(seeded, amendment.id)
    csrf = sign_in(client, seeded, "dan.price@cabinetoffice.gov.uk")
    response = client.post(
        f"/amendments/{amendment.id}/vote",
        data={"stance": "oppose"},
        headers={"HX-Request": "true", "X-CSRF-Token": csrf},
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    assert f'id="vote-{amendment.id}-opposes">{opposes + 1}</strong>' in response.text
    assert 'aria-pressed="true"' in response.text
    assert f'id="vote-{amendment.id}-status" hx-swap-oob="innerHTML"' in response.text
    assert "is now oppose" in response.text


def test_the_htmx_widget_shows_the_counts_after_each_change_of_vote(client, seeded):
    amendment = amendment_on(seeded, "10", "carys.llewellyn@england.nhs.uk")
    supports, opposes = counts(seeded, amendment.id)
    csrf = sign_in(client, seeded, "dan.price@cabinetoffice.gov.uk")
    for stance, expected in (
        ("support", (supports + 1, opposes)),
        ("oppose", (supports, opposes + 1)),
        ("oppose", (supports, opposes + 1)),
        ("withdraw", (supports, opposes)),
        ("oppose", (supports, opposes + 1)),
    ):
        response = client.post(
            f"/amendments/{amendment.id}/vote",
            data={"stance": stance},
            headers={"HX-Request": "true", "X-CSRF-Token": csrf},
        )
        assert response.status_code == 200
        assert counts(seeded, amendment.id) == expected
        assert f'id="vote-{amendment.id}-supports">{expected[0]}</strong>' in response.text
        assert f'id="vote-{amendment.id}-opposes">{expected[1]}</strong>' in response.text


def test_a_second_vote_updates_the_same_row(client, seeded):
    amendment = amendment_on(seeded, "7", "amira.shah@hmrc.gov.uk")
    dan = user_id(seeded, "dan.price@cabinetoffice.gov.uk")
    csrf = force_login(client, dan)
    for stance in ("support", "support", "oppose"):
        client.post(f"/amendments/{amendment.id}/vote", data={"csrf_token": csrf, "stance": stance})
    rows = seeded.call(
        lambda s: s.exec(
            select(Vote).where(Vote.amendment_id == amendment.id, Vote.user_id == dan)
        ).all()
    )
    assert [v.stance for v in rows] == ["oppose"]


def test_a_bad_stance_is_refused(client, seeded):
    amendment = amendment_on(seeded, "7", "amira.shah@hmrc.gov.uk")
    csrf = sign_in(client, seeded, "dan.price@cabinetoffice.gov.uk")
    response = client.post(
        f"/amendments/{amendment.id}/vote", data={"csrf_token": csrf, "stance": "maybe"}
    )
    assert response.status_code == 400
    assert "Choose support or oppose" in response.text


def test_people_outside_the_eligible_domains_can_read_but_not_vote(client, seeded):
    amendment = amendment_on(seeded, "7", "amira.shah@hmrc.gov.uk")
    csrf = sign_in(client, seeded, "erin.walsh@example.com")
    page = client.get(f"{CLAUSE}/7")
    assert "open to work e-mail addresses ending *.gov.uk" in page.text
    assert f'action="/amendments/{amendment.id}/vote"' not in page.text
    response = client.post(
        f"/amendments/{amendment.id}/vote", data={"csrf_token": csrf, "stance": "support"}
    )
    assert response.status_code == 403
    assert "open to work e-mail addresses" in response.text


def test_signed_out_votes_are_refused(client, seeded):
    amendment = amendment_on(seeded, "7", "amira.shah@hmrc.gov.uk")
    client.get("/")  # a session with a CSRF token but no user
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)
    response = client.post(
        f"/amendments/{amendment.id}/vote", data={"csrf_token": csrf, "stance": "support"}
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "change",
    [
        {"voting_close_at": "past"},
        {"status": "closed"},
        {"status": "published"},
    ],
)
def test_once_voting_closes_the_server_refuses_every_vote(client, seeded, change):
    amendment = amendment_on(seeded, "7", "amira.shah@hmrc.gov.uk")
    csrf = sign_in(client, seeded, "dan.price@cabinetoffice.gov.uk")
    values = {k: (utcnow() - timedelta(minutes=1) if v == "past" else v) for k, v in change.items()}
    set_consultation(seeded, **values)
    before = counts(seeded, amendment.id)
    for stance in ("support", "oppose", "withdraw"):
        response = client.post(
            f"/amendments/{amendment.id}/vote", data={"csrf_token": csrf, "stance": stance}
        )
        assert response.status_code == 409, stance
        assert "Voting is closed" in response.text
    assert counts(seeded, amendment.id) == before
    assert f'action="/amendments/{amendment.id}/vote"' not in client.get(f"{CLAUSE}/7").text


def test_after_the_amendment_window_closes_votes_still_count_but_proposals_do_not(client, seeded):
    set_consultation(seeded, amendments_close_at=utcnow() - timedelta(minutes=1))
    csrf = sign_in(client, seeded, "dan.price@cabinetoffice.gov.uk")
    response = client.post(
        f"{CLAUSE}/3/amend",
        data={"csrf_token": csrf, "kind": "delete", "rationale": "Not needed any more."},
    )
    assert response.status_code == 409
    assert "amendment window has closed" in response.text
    amendment = amendment_on(seeded, "7", "amira.shah@hmrc.gov.uk")
    vote = client.post(
        f"/amendments/{amendment.id}/vote", data={"csrf_token": csrf, "stance": "support"}
    )
    assert vote.status_code == 303


def test_voting_on_an_amendment_that_does_not_exist_is_a_404(client, seeded):
    csrf = sign_in(client, seeded, "dan.price@cabinetoffice.gov.uk")
    assert (
        client.post(
            "/amendments/999999/vote", data={"csrf_token": csrf, "stance": "support"}
        ).status_code
        == 404
    )
    assert client.post("/amendments/abc/vote", data={"csrf_token": csrf}).status_code == 404


# Results


def test_results_rank_as_the_ranking_module_does(client, seeded):
    page = client.get(f"/consultations/{SLUG}/results")
    assert page.status_code == 200
    report = seeded.call(lambda s: build_report(s, s.get(Consultation, _consultation_id(seeded))))
    expected = [row.ranked.ref[1:] for row in report.rows]
    ranked_table = page.text.split("All amendments, ranked")[1]
    shown = re.findall(
        r'<td class="govuk-table__cell">\s*<a class="govuk-link" href="[^"]+#amendment-(\d+)"',
        ranked_table,
    )
    assert shown == expected
    assert "Current wording stands" in page.text
    assert "Mostly from NHS England" in page.text
    assert "95% interval" in page.text


def _consultation_id(database):
    return database.call(
        lambda s: s.exec(select(Consultation.id).where(Consultation.slug == SLUG)).one()
    )


def test_results_move_when_someone_votes(client, seeded):
    amendment = amendment_on(seeded, "5", "ben.okafor@dwp.gov.uk")
    before = client.get(f"/consultations/{SLUG}/results").text
    csrf = sign_in(client, seeded, "dan.price@cabinetoffice.gov.uk")
    client.post(f"/amendments/{amendment.id}/vote", data={"csrf_token": csrf, "stance": "support"})
    after = client.get(f"/consultations/{SLUG}/results").text
    assert before != after


# Security


def post_routes(app):
    return [route for route in app.routes if isinstance(route, Route) and "POST" in route.methods]


def test_every_post_route_is_csrf_protected(client, seeded):
    routes = post_routes(client.app)
    assert len(routes) >= 5
    amendment = amendment_on(seeded, "7", "amira.shah@hmrc.gov.uk")
    sign_in(client, seeded, "amira.shah@hmrc.gov.uk")
    before = counts(seeded, amendment.id)
    values = {"slug": SLUG, "number": "7", "amendment_id": str(amendment.id)}
    for route in routes:
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], route.path)
        for token in (None, "wrong-token"):
            data = {
                "stance": "support",
                "persona": "amira",
                "kind": "delete",
                "rationale": "x" * 20,
            }
            if token:
                data["csrf_token"] = token
            response = client.post(path, data=data)
            assert response.status_code == 403, (route.path, token)
            assert "security token" in response.text
    assert counts(seeded, amendment.id) == before
    assert seeded.call(lambda s: s.get(Amendment, amendment.id).status) == "open"


def test_the_session_cookie_is_httponly_and_samesite_lax(client):
    response = client.get("/sign-in")
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


# Demo sign-in


def test_demo_sign_in_picks_a_persona_and_returns_to_the_page(sqlite_seeded):
    app = create_app(settings_for(sqlite_seeded.url, demo=True))
    with TestClient(app, follow_redirects=False) as client:
        page = client.get(f"/sign-in?next={CLAUSE}/7")
        assert "Sign in as Amira Shah" in page.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        response = client.post(
            "/sign-in/demo", data={"csrf_token": csrf, "persona": "amira", "next": f"{CLAUSE}/7"}
        )
        assert response.status_code == 303 and response.headers["location"] == f"{CLAUSE}/7"
        assert "Signed in as <strong>Amira Shah</strong>" in client.get(f"{CLAUSE}/7").text
        # The session was renewed at sign-in: the old CSRF token no longer works.
        stale = client.post("/sign-out", data={"csrf_token": csrf})
        assert stale.status_code == 403


@pytest.mark.parametrize(
    "target", ["https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)"]
)
def test_demo_sign_in_never_redirects_off_site(sqlite_seeded, target):
    app = create_app(settings_for(sqlite_seeded.url, demo=True))
    with TestClient(app, follow_redirects=False) as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
        response = client.post(
            "/sign-in/demo", data={"csrf_token": csrf, "persona": "amira", "next": target}
        )
        assert response.headers["location"] == "/"


def test_demo_sign_in_is_refused_outside_demo_mode_on_the_embedded_database(database_url, seeded):
    # On PostgreSQL even REDLINE_DEMO=1 does not allow it; on SQLite it needs demo mode.
    demo = not database_url.startswith("sqlite")
    app = create_app(settings_for(database_url, demo=demo))
    with TestClient(app, follow_redirects=False) as client:
        page = client.get("/sign-in")
        assert "Sign in as" not in page.text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        response = client.post("/sign-in/demo", data={"csrf_token": csrf, "persona": "amira"})
        assert response.status_code == 403
        assert "only available when Redline runs in demo mode" in response.text
        assert "Signed in as" not in client.get("/").text


def test_the_demo_organiser_persona_can_organise(sqlite_seeded):
    app = create_app(settings_for(sqlite_seeded.url, demo=True))
    with TestClient(app, follow_redirects=False) as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
        client.post("/sign-in/demo", data={"csrf_token": csrf, "persona": "olive", "next": "/"})
        assert client.get("/organise").status_code == 200
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)
        client.post("/sign-out", data={"csrf_token": csrf})
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
        client.post("/sign-in/demo", data={"csrf_token": csrf, "persona": "amira", "next": "/"})
        assert client.get("/organise").status_code == 403
