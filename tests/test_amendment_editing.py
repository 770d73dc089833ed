"""Authors change their own amendment until its first vote; on SQLite and PostgreSQL.

The rule (issue 10): voters are never moved to words they did not read. An edit is
refused once any vote stands on the amendment, and a vote cast from a page showing
the wording before an edit is refused after it. The two race tests hold one
transaction open at its commit (a SQLAlchemy ``before_commit`` hook, not a stand-in
for our code) and show the other waiting for it, then refused.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlmodel import Session, select

from app.db import Database
from app.errors import AmendmentHasVotes, Conflict, InvalidInput, NotAllowed
from app.models import Amendment, Vote, utcnow
from app.proposals import ProposalInput, wording_fingerprint
from app.services import cast_vote, edit_amendment, propose_amendment, withdraw_amendment
from tests.test_pages import CLAUSE, SLUG, set_consultation, sign_in, user_id

NEW = ProposalInput(
    kind="change",
    text="Reply to every comment within two working hours.",
    rationale="A day is far too slow for social media.",
)
EDITED = ProposalInput(
    kind="change",
    text="Reply to every comment within four working hours.",
    rationale="Two hours cannot be done by a small team.",
)


def propose(database: Database, email: str, clause: str = "6") -> Amendment:
    return database.write_call(propose_amendment, user_id(database, email), SLUG, clause, NEW)


def fingerprint(amendment: Amendment) -> str:
    return wording_fingerprint(amendment.kind, amendment.proposed_heading, amendment.proposed_text)


def stored(database: Database, amendment_id: int) -> Amendment:
    return database.call(lambda s: s.get(Amendment, amendment_id))


def votes_on(database: Database, amendment_id: int) -> int:
    return len(
        database.call(lambda s: s.exec(select(Vote).where(Vote.amendment_id == amendment_id)).all())
    )


AUTHOR = "ben.okafor@dwp.gov.uk"
VOTER = "amira.shah@hmrc.gov.uk"


def test_the_author_edits_until_the_first_vote(seeded):
    amendment = propose(seeded, AUTHOR)
    author = user_id(seeded, AUTHOR)
    edited = seeded.write_call(edit_amendment, author, amendment.id, EDITED)
    assert edited.proposed_text == EDITED.text
    assert stored(seeded, amendment.id).rationale == EDITED.rationale
    # Someone else may not.
    with pytest.raises(NotAllowed):
        seeded.write_call(edit_amendment, user_id(seeded, VOTER), amendment.id, NEW)
    # Bad input: field errors, nothing stored.
    with pytest.raises(InvalidInput) as failed:
        seeded.write_call(edit_amendment, author, amendment.id, ProposalInput(kind="change"))
    assert set(failed.value.errors) == {"text", "rationale"}
    assert stored(seeded, amendment.id).proposed_text == EDITED.text
    # The first vote ends editing, whatever the stance.
    seeded.write_call(
        cast_vote, user_id(seeded, VOTER), amendment.id, "oppose", wording=fingerprint(edited)
    )
    with pytest.raises(AmendmentHasVotes):
        seeded.write_call(edit_amendment, author, amendment.id, NEW)
    assert stored(seeded, amendment.id).proposed_text == EDITED.text


def test_a_vote_from_a_page_showing_the_old_wording_is_refused(seeded):
    amendment = propose(seeded, AUTHOR)
    read = fingerprint(amendment)
    seeded.write_call(edit_amendment, user_id(seeded, AUTHOR), amendment.id, EDITED)
    with pytest.raises(Conflict, match="changed this amendment"):
        seeded.write_call(cast_vote, user_id(seeded, VOTER), amendment.id, "support", wording=read)
    assert votes_on(seeded, amendment.id) == 0
    # Read again, the vote counts.
    seeded.write_call(
        cast_vote,
        user_id(seeded, VOTER),
        amendment.id,
        "support",
        wording=fingerprint(stored(seeded, amendment.id)),
    )
    assert votes_on(seeded, amendment.id) == 1


class HeldAtCommit:
    """Holds the transactions run in one thread at their commit until released."""

    def __init__(self) -> None:
        self.holding, self.release = threading.Event(), threading.Event()
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _hook(self, _session) -> None:
        if threading.current_thread() is self.thread:
            self.holding.set()
            assert self.release.wait(10)

    def run(self, work) -> HeldAtCommit:
        def target():
            try:
                work()
            except BaseException as error:  # reported to the test
                self.error = error

        event.listen(Session, "before_commit", self._hook)
        self.thread = threading.Thread(target=target)
        self.thread.start()
        assert self.holding.wait(10), "the first transaction never reached its commit"
        return self

    def finish(self) -> None:
        self.release.set()
        self.thread.join(10)
        event.remove(Session, "before_commit", self._hook)


def waiting(work) -> tuple[threading.Thread, list]:
    """Run ``work`` in a thread of its own; the list receives its result or error."""
    outcome: list = []

    def target():
        try:
            outcome.append(work())
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def test_a_vote_racing_an_edit_waits_for_it_and_is_then_refused(seeded):
    amendment = propose(seeded, AUTHOR)
    read = fingerprint(amendment)
    author, voter = user_id(seeded, AUTHOR), user_id(seeded, VOTER)
    edit = HeldAtCommit().run(
        lambda: seeded.write_call(edit_amendment, author, amendment.id, EDITED)
    )
    try:
        vote, outcome = waiting(
            lambda: seeded.write_call(cast_vote, voter, amendment.id, "support", wording=read)
        )
        time.sleep(0.5)
        assert vote.is_alive(), "the vote did not wait for the edit's locks"
    finally:
        edit.finish()
    vote.join(10)
    assert edit.error is None
    assert isinstance(outcome[0], Conflict) and "changed this amendment" in outcome[0].message
    assert votes_on(seeded, amendment.id) == 0


def test_an_edit_racing_a_vote_waits_for_it_and_is_then_refused(seeded):
    amendment = propose(seeded, AUTHOR)
    author, voter = user_id(seeded, AUTHOR), user_id(seeded, VOTER)
    read = fingerprint(amendment)
    vote = HeldAtCommit().run(
        lambda: seeded.write_call(cast_vote, voter, amendment.id, "support", wording=read)
    )
    try:
        edit, outcome = waiting(
            lambda: seeded.write_call(edit_amendment, author, amendment.id, EDITED)
        )
        time.sleep(0.5)
        assert edit.is_alive(), "the edit did not wait for the vote's locks"
    finally:
        vote.finish()
    edit.join(10)
    assert vote.error is None
    assert isinstance(outcome[0], AmendmentHasVotes)
    assert stored(seeded, amendment.id).proposed_text == NEW.text
    assert votes_on(seeded, amendment.id) == 1


# Through the web


def test_edit_pages_with_and_without_htmx(client, seeded):
    amendment = propose(seeded, AUTHOR, clause="6")
    csrf = sign_in(client, seeded, AUTHOR)
    clause_page = client.get(f"{CLAUSE}/6").text
    assert f'href="/amendments/{amendment.id}/edit">Change my amendment' in clause_page
    form = client.get(f"/amendments/{amendment.id}/edit")
    assert form.status_code == 200
    assert f"Change amendment {amendment.id}" in form.text
    assert NEW.text in form.text and "Save changes" in form.text

    bad = client.post(
        f"/amendments/{amendment.id}/edit",
        data={"csrf_token": csrf, "kind": "change", "text": "Kept words", "rationale": ""},
        headers={"HX-Request": "true"},
    )
    assert bad.status_code == 422
    assert bad.text.lstrip().startswith(f"<title>Error: Change amendment {amendment.id}")
    assert "Enter why you propose this change" in bad.text and "Kept words</textarea>" in bad.text

    saved = client.post(
        f"/amendments/{amendment.id}/edit",
        data={
            "csrf_token": csrf,
            "kind": "change",
            "text": EDITED.text,
            "rationale": EDITED.rationale,
        },
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"{CLAUSE}/6?edited={amendment.id}"
    page = client.get(saved.headers["location"]).text
    assert "Your amendment has been changed." in page and "four" in page

    # Someone votes: the author is told a change needs a new amendment, and what they
    # type is kept on a form that proposes it as one.
    seeded.write_call(cast_vote, user_id(seeded, VOTER), amendment.id, "support")
    assert "can no longer be changed" in client.get(f"{CLAUSE}/6").text
    refused = client.post(
        f"/amendments/{amendment.id}/edit",
        data={
            "csrf_token": csrf,
            "kind": "change",
            "text": "Third try",
            "rationale": "Reason enough",
        },
    )
    assert refused.status_code == 409
    assert "Third try</textarea>" in refused.text
    assert f'action="{CLAUSE}/6/amend"' in refused.text
    assert f"People have voted on amendment {amendment.id}" in refused.text
    # Others cannot open the author's form.
    sign_in(client, seeded, VOTER)
    assert client.get(f"/amendments/{amendment.id}/edit").status_code == 403


def test_the_vote_form_carries_the_wording_it_shows(client, seeded):
    amendment = propose(seeded, AUTHOR, clause="6")
    csrf = sign_in(client, seeded, VOTER)
    page = client.get(f"{CLAUSE}/6").text
    assert f'name="wording" value="{fingerprint(amendment)}"' in page
    seeded.write_call(edit_amendment, user_id(seeded, AUTHOR), amendment.id, EDITED)
    stale = client.post(
        f"/amendments/{amendment.id}/vote",
        data={"csrf_token": csrf, "stance": "support", "wording": fingerprint(amendment)},
        headers={"HX-Request": "true"},
    )
    assert stale.status_code == 409
    assert 'data-module="govuk-error-summary"' in stale.text
    assert votes_on(seeded, amendment.id) == 0


def test_no_changes_once_amendments_close_or_after_withdrawal(client, seeded):
    amendment = propose(seeded, AUTHOR, clause="6")
    author = user_id(seeded, AUTHOR)
    sign_in(client, seeded, AUTHOR)
    set_consultation(seeded, amendments_close_at=utcnow() - timedelta(minutes=1))
    assert "Change my amendment" not in client.get(f"{CLAUSE}/6").text
    assert client.get(f"/amendments/{amendment.id}/edit").status_code == 403
    with pytest.raises(Conflict):
        seeded.write_call(edit_amendment, author, amendment.id, EDITED)
    set_consultation(seeded, amendments_close_at=None)
    seeded.write_call(withdraw_amendment, author, amendment.id)
    assert client.get(f"/amendments/{amendment.id}/edit").status_code == 409
    with pytest.raises(Conflict):
        seeded.write_call(edit_amendment, author, amendment.id, EDITED)
    assert stored(seeded, amendment.id).proposed_text == NEW.text


def test_without_javascript_a_stale_vote_shows_the_new_wording_with_the_refusal(client, seeded):
    amendment = propose(seeded, AUTHOR, clause="6")
    csrf = sign_in(client, seeded, VOTER)
    seeded.write_call(edit_amendment, user_id(seeded, AUTHOR), amendment.id, EDITED)
    page = client.post(
        f"/amendments/{amendment.id}/vote",
        data={"csrf_token": csrf, "stance": "support", "wording": fingerprint(amendment)},
    )
    assert page.status_code == 422
    assert page.text.startswith("<!DOCTYPE html>") and "<title>Error: " in page.text
    assert f'href="#vote-{amendment.id}"' in page.text and "changed this amendment" in page.text
    assert "four" in page.text
    assert votes_on(seeded, amendment.id) == 0
