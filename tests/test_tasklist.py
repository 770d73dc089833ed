"""The organiser's task list and confirmation wording (app.tasklist), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.lifecycle import Readiness
from app.tasklist import (
    DONE,
    NOT_YET,
    TO_DO,
    Facts,
    blockers,
    close_confirmation,
    publish_confirmation,
    stages,
)

NOW = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
READY = Readiness(12, ("*.gov.uk",), None, NOW + timedelta(weeks=4))


def statuses(facts: Facts) -> dict[str, str]:
    return {task.title: task.status for stage in stages(facts) for task in stage.tasks}


def test_a_bare_draft_shows_what_remains_before_opening():
    facts = Facts("s", "draft", Readiness(0, (), None, None), NOW)
    remaining = [t.title for t in blockers(facts, "open")]
    assert remaining == [
        "Add clauses",
        "Say who may take part (eligible domains)",
        "Set the closing dates",
    ]
    assert statuses(facts)["Open the consultation"] == NOT_YET
    assert statuses(facts)["Close the consultation"] == NOT_YET


def test_a_ready_draft_can_be_opened_and_a_past_date_is_not_ready():
    assert statuses(Facts("s", "draft", READY, NOW))["Open the consultation"] == TO_DO
    past = Readiness(12, ("*.gov.uk",), None, NOW - timedelta(days=1))
    facts = Facts("s", "draft", past, NOW)
    assert statuses(facts)["Set the closing dates"] == TO_DO
    assert statuses(facts)["Open the consultation"] == NOT_YET


def test_an_open_consultation_links_to_the_close_confirmation():
    facts = Facts("s", "open", READY, NOW, queue_size=2)
    tasks = {t.title: t for stage in stages(facts) for t in stage.tasks}
    assert tasks["Open the consultation"].status == DONE
    assert tasks["Close the consultation"].href == "/organise/s/close"
    assert tasks["Review the moderation queue"].hint == "2 waiting"
    assert tasks["Publish the outcome"].status == NOT_YET


def test_publishing_waits_for_decisions_and_resolved_clauses():
    facts = Facts("s", "closed", READY, NOW, amendments=9, undecided=3, unresolved=("7",))
    remaining = {t.title: t.hint for t in blockers(facts, "publish")}
    assert remaining == {
        "Accept or reject each amendment": "3 of 9 still to decide",
        "Resolve clauses where accepted amendments conflict": "Clause 7",
    }
    assert statuses(facts)["Publish the outcome"] == NOT_YET
    undecided = Facts("s", "closed", READY, NOW, amendments=9, undecided=9)
    tasks = {t.title: t for stage in stages(undecided) for t in stage.tasks}
    # Not "completed" before any decision, and no link to a step that cannot start yet.
    assert tasks["Resolve clauses where accepted amendments conflict"].status == TO_DO
    assert tasks["Publish the outcome"].href is None
    ready = Facts("s", "closed", READY, NOW, amendments=9)
    assert blockers(ready, "publish") == []
    assert statuses(ready)["Publish the outcome"] == TO_DO
    done = statuses(Facts("s", "published", READY, NOW, amendments=9))
    assert set(done.values()) == {DONE}


def test_close_confirmation_states_the_honest_difference():
    early = close_confirmation("Guidance", NOW + timedelta(weeks=4), NOW)
    assert early.question == (
        "Are you sure you want to close Guidance now, 4 weeks before the advertised closing time?"
    )
    late = close_confirmation("Guidance", (NOW - timedelta(hours=2)).replace(tzinfo=None), NOW)
    assert "2 hours after the advertised closing time" in late.question
    assert "No closing date was advertised" in close_confirmation("G", None, NOW).question
    assert any("no longer be able to propose" in c for c in early.consequences)


def test_publish_confirmation_says_what_becomes_public():
    confirmation = publish_confirmation("Guidance", 9, 4)
    assert "publish the outcome of Guidance" in confirmation.question
    assert any("all 9 amendments (4 accepted)" in c for c in confirmation.consequences)
