"""Sessions end on the server: a copy of a cookie stops working at sign-out and revocation.

On SQLite and PostgreSQL, through the real app: an organiser's cookie is copied,
then the organiser signs out (or an administrator revokes their role), and the copy
is refused on an organiser page, a report download and a consultation edit POST; a
participant's copied cookie casts no vote.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlmodel import select
from starlette.testclient import TestClient

from app.cli import main
from app.db import Database
from app.main import SESSION_COOKIE, create_app
from app.models import User
from tests.conftest import settings_for
from tests.test_report_agreement import DEMO, close
from tests.utils.sessions import force_login

GRANTED = "grace@cabinetoffice.gov.uk"


def add_granted_organiser(database: Database) -> int:
    """An organiser by `redline grant` (not by configuration), so that revoking applies."""

    def add(session) -> int:
        user = User(
            issuer="https://idp.test",
            subject="grace",
            email=GRANTED,
            email_verified=True,
            pseudonym="Grace 1",
        )
        session.add(user)
        session.commit()
        return user.id

    user_id = database.write_call(add)
    result = CliRunner().invoke(
        main, ["grant", GRANTED, "organiser"], env={"REDLINE_DATABASE_URL": database.url}
    )
    assert result.exit_code == 0, result.output
    return user_id


@pytest.fixture
def organiser(seeded: Database) -> Iterator[TestClient]:
    """The real app, with a granted organiser signed in; the consultation is closed."""
    user_id = add_granted_organiser(seeded)
    app = create_app(settings_for(seeded.url))
    with TestClient(app, follow_redirects=False) as client:
        client.csrf = force_login(client, user_id)
        close(client, DEMO)
        yield client


def copy_of(client: TestClient) -> TestClient:
    """A second browser holding a copy of ``client``'s session cookie (and CSRF token)."""
    thief = TestClient(client.app, follow_redirects=False)
    thief.cookies.set(SESSION_COOKIE, client.cookies.get(SESSION_COOKIE))
    thief.csrf = client.csrf
    return thief


def organiser_requests(client: TestClient) -> dict[str, int]:
    """Status of an organiser page, a report download and an edit POST for ``client``."""
    return {
        "dashboard": client.get(f"/organise/{DEMO}").status_code,
        "download": client.get(f"/consultations/{DEMO}/report.csv").status_code,
        "edit": client.post(
            f"/organise/{DEMO}/details",
            data={
                "csrf_token": client.csrf,
                "title": "Changed by a stolen cookie",
                "summary": "",
                "eligible_domains": "*.gov.uk",
                "amendments_close_at": "",
                "voting_close_at": "",
                "live_results": "yes",
                "min_votes": "5",
                "min_organisations": "2",
            },
        ).status_code,
    }


def title_of(database: Database) -> str:
    from app.models import Consultation

    return database.call(
        lambda s: s.exec(select(Consultation.title).where(Consultation.slug == DEMO)).one()
    )


def test_the_copy_works_before_sign_out(organiser):
    thief = copy_of(organiser)
    seen = organiser_requests(thief)
    assert seen["dashboard"] == 200 and seen["download"] == 200
    # The POST reached the form's own rules (a closed consultation refuses new details),
    # not a refusal for who is asking.
    assert seen["edit"] in (303, 400, 409)


def test_signing_out_ends_the_session_for_every_copy(organiser, seeded):
    thief = copy_of(organiser)
    title = title_of(seeded)
    response = organiser.post("/sign-out", data={"csrf_token": organiser.csrf})
    assert response.status_code == 303
    seen = organiser_requests(thief)
    assert seen["dashboard"] == 403
    assert seen["download"] == 403
    assert seen["edit"] == 403
    assert title_of(seeded) == title
    # The copy is not signed in anywhere.
    assert "Sign out" not in thief.get("/").text


def test_revoking_a_role_ends_the_session_for_every_copy(organiser, seeded):
    thief = copy_of(organiser)
    revoked = CliRunner().invoke(
        main, ["revoke", GRANTED], env={"REDLINE_DATABASE_URL": seeded.url}
    )
    assert revoked.exit_code == 0, revoked.output
    assert "subject=grace" in revoked.output and "issuer=https://idp.test" in revoked.output
    seen = organiser_requests(thief)
    assert seen == {"dashboard": 403, "download": 403, "edit": 403}
    assert "Sign out" not in thief.get("/").text


def test_a_session_past_its_absolute_limit_is_refused_however_recently_used(organiser, seeded):
    user_id = seeded.call(lambda s: s.exec(select(User.id).where(User.email == GRANTED)).one())
    now = int(time.time())
    organiser.csrf = force_login(organiser, user_id, signed_in_at=now - 13 * 3600, seen_at=now)
    assert organiser_requests(organiser) == {"dashboard": 403, "download": 403, "edit": 403}


def test_the_idle_limit_is_a_setting_enforced_on_the_server(seeded):
    from app.settings import Settings, SettingsError

    assert Settings.from_env({"REDLINE_DEMO": "1"}).session_idle_seconds == 2 * 60 * 60
    env = {"REDLINE_DEMO": "1", "REDLINE_SESSION_IDLE_MINUTES": "30"}
    assert Settings.from_env(env).session_idle_seconds == 30 * 60
    with pytest.raises(
        SettingsError, match="REDLINE_SESSION_IDLE_MINUTES must be a number of minutes"
    ):
        Settings.from_env({"REDLINE_DEMO": "1", "REDLINE_SESSION_IDLE_MINUTES": "soon"})
    user_id = add_granted_organiser(seeded)
    app = create_app(settings_for(seeded.url, session_idle_seconds=30 * 60))
    now = int(time.time())
    with TestClient(app, follow_redirects=False) as client:
        force_login(client, user_id, signed_in_at=now - 3600, seen_at=now - 29 * 60)
        assert client.get(f"/organise/{DEMO}").status_code == 200
        force_login(client, user_id, signed_in_at=now - 3600, seen_at=now - 31 * 60)
        assert client.get(f"/organise/{DEMO}").status_code == 403


def test_a_copy_of_a_voters_cookie_casts_nothing_after_sign_out(seeded):
    """The vote checks the session inside its own write transaction (views/votes.py)."""
    from tests.test_pages import amendment_on, counts, user_id

    amendment = amendment_on(seeded, "7", "carys.llewellyn@england.nhs.uk")
    before = counts(seeded, amendment.id)
    app = create_app(settings_for(seeded.url))
    with TestClient(app, follow_redirects=False) as voter:
        voter.csrf = force_login(voter, user_id(seeded, "dan.price@cabinetoffice.gov.uk"))
        thief = copy_of(voter)
        url = f"/amendments/{amendment.id}/vote"
        htmx = {"HX-Request": "true", "X-CSRF-Token": thief.csrf}
        assert thief.post(url, data={"stance": "support"}, headers=htmx).status_code == 200
        assert counts(seeded, amendment.id) == (before[0] + 1, before[1])
        assert voter.post("/sign-out", data={"csrf_token": voter.csrf}).status_code == 303
        refused = thief.post(url, data={"stance": "oppose"}, headers=htmx)
        assert refused.status_code == 403 and "Sign in to vote" in refused.text
        # The refusal also forgot the session in that browser: no token, no session.
        assert thief.post(url, data={"stance": "withdraw"}, headers=htmx).status_code == 403
        assert counts(seeded, amendment.id) == (before[0] + 1, before[1])
