"""Who may propose and vote, and organisations from e-mail domains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.eligibility import (
    Participant,
    Window,
    domain_eligible,
    domain_matches,
    email_domain,
    organisation_for_domain,
    parse_domain_patterns,
    proposal_refusal,
    vote_refusal,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
OPEN = Window("open", ("*.gov.uk", "nhs.net"), NOW + timedelta(days=1), NOW + timedelta(days=2))
CIVIL_SERVANT = Participant("amira@hmrc.gov.uk", True)


@pytest.mark.parametrize(
    ("domain", "pattern", "expected"),
    [
        ("hmrc.gov.uk", "*.gov.uk", True),
        ("digital.cabinet-office.gov.uk", "*.gov.uk", True),
        ("gov.uk", "*.gov.uk", False),
        ("evilgov.uk", "*.gov.uk", False),
        ("gov.uk.example.com", "*.gov.uk", False),
        ("nhs.net", "nhs.net", True),
        ("mail.nhs.net", "nhs.net", False),
        ("NHS.NET", "nhs.net", True),
    ],
)
def test_domain_patterns(domain, pattern, expected):
    assert domain_matches(domain, pattern) is expected


def test_email_domain_and_patterns():
    assert email_domain(" Amira.Shah@HMRC.gov.uk ") == "hmrc.gov.uk"
    assert email_domain("not-an-address") == ""
    assert parse_domain_patterns("*.gov.uk, *.nhs.uk\nnhs.net") == [
        "*.gov.uk",
        "*.nhs.uk",
        "nhs.net",
    ]
    assert not domain_eligible("", ["*.gov.uk"])


def test_organisation_is_the_nearest_known_parent_domain_or_the_domain_itself():
    known = {"hmrc.gov.uk": "HM Revenue and Customs"}
    assert organisation_for_domain("hmrc.gov.uk", known) == "HM Revenue and Customs"
    assert organisation_for_domain("digital.hmrc.gov.uk", known) == "HM Revenue and Customs"
    assert organisation_for_domain("leeds.gov.uk", known) == "leeds.gov.uk"


def test_an_eligible_participant_may_propose_and_vote_while_open():
    assert proposal_refusal(CIVIL_SERVANT, OPEN, NOW) is None
    assert vote_refusal(CIVIL_SERVANT, OPEN, "open", NOW) is None


def test_signed_out_people_unverified_and_other_domains_may_only_read():
    assert "Sign in" in proposal_refusal(None, OPEN, NOW)
    assert "not confirmed" in vote_refusal(Participant("a@hmrc.gov.uk", False), OPEN, "open", NOW)
    refusal = vote_refusal(Participant("a@example.com", True), OPEN, "open", NOW)
    assert "*.gov.uk" in refusal


def test_the_amendment_window_can_close_before_voting():
    later = NOW + timedelta(days=1, hours=1)
    assert "amendment window has closed" in proposal_refusal(CIVIL_SERVANT, OPEN, later)
    assert vote_refusal(CIVIL_SERVANT, OPEN, "open", later) is None


def test_no_votes_after_voting_closes_or_outside_the_open_state():
    after = NOW + timedelta(days=3)
    assert (
        vote_refusal(CIVIL_SERVANT, OPEN, "open", after)
        == "Voting is closed for this consultation."
    )
    for status in ("draft", "closed", "published"):
        window = Window(status, OPEN.eligible_domains, None, None)
        assert vote_refusal(CIVIL_SERVANT, window, "open", NOW) is not None
        assert proposal_refusal(CIVIL_SERVANT, window, NOW) is not None


def test_no_votes_on_withdrawn_or_hidden_amendments():
    assert "withdrawn" in vote_refusal(CIVIL_SERVANT, OPEN, "withdrawn", NOW)
    assert "hidden" in vote_refusal(CIVIL_SERVANT, OPEN, "hidden", NOW)
