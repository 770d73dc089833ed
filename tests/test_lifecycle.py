"""Lifecycle rules, consolidation and the ballot file's reader (pure modules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.ballots import BallotFileError, csv_lines, read_ballots, tally_file, voter_pseudonym
from app.consolidation import Change, ClauseText, consolidate, suppress_small
from app.lifecycle import Readiness, available_actions, transition_refusal
from app.ranking import Counts

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
READY = Readiness(3, ("*.gov.uk",), NOW + timedelta(days=1), NOW + timedelta(days=2))


@pytest.mark.parametrize(
    ("action", "status", "allowed"),
    [
        ("open", "draft", True),
        ("close", "open", True),
        ("publish", "closed", True),
        ("publish", "draft", False),
        ("publish", "open", False),
        ("close", "draft", False),
        ("open", "closed", False),
        ("open", "published", False),
        ("close", "published", False),
    ],
)
def test_only_the_next_step_is_allowed(action, status, allowed):
    assert (transition_refusal(action, status, READY, NOW) is None) is allowed


def test_opening_needs_clauses_domains_and_a_future_voting_close():
    assert "at least one clause" in transition_refusal(
        "open", "draft", Readiness(0, ("x",), None, NOW), NOW
    )
    assert "eligible domains" in transition_refusal(
        "open", "draft", Readiness(1, (), None, NOW), NOW
    )
    assert "Set when voting closes" in transition_refusal(
        "open", "draft", Readiness(1, ("x",), None, None), NOW
    )
    past = Readiness(1, ("x",), None, NOW - timedelta(hours=1))
    assert "already passed" in transition_refusal("open", "draft", past, NOW)
    late = Readiness(1, ("x",), NOW + timedelta(days=3), NOW + timedelta(days=2))
    assert "must close before" in transition_refusal("open", "draft", late, NOW)


def test_available_actions():
    assert available_actions("draft") == ["open"]
    assert available_actions("published") == []


def test_consolidation_applies_changes_deletions_and_insertions():
    clauses = [
        ClauseText("1", "Scope", "Everyone."),
        ClauseText("2", "Accounts", "Keep them apart."),
    ]
    result = consolidate(
        clauses,
        {
            "1": Change("A1", "change", None, "Everyone at work."),
            "2": Change("A2", "change", None, ""),
        },
        {"2": [Change("A3", "insert", "Live streams", "Give notice.")]},
    )
    assert [(c.number, c.text, c.deleted, c.inserted) for c in result] == [
        ("1", "Everyone at work.", False, False),
        ("2", "", True, False),
        ("2.A", "Give notice.", False, True),
    ]
    assert [s.op for s in result[0].segments] == ["delete", "insert"]


def test_small_numbers_are_suppressed():
    assert [suppress_small(n) for n in (0, 4, 5, 12)] == ["fewer than 5", "fewer than 5", 5, 12]


def test_voter_pseudonyms_are_keyed_and_stable():
    assert voter_pseudonym("key-a", 7) == voter_pseudonym("key-a", 7)
    assert voter_pseudonym("key-a", 7) != voter_pseudonym("key-b", 7)
    assert voter_pseudonym("key-a", 7)[2:] != "7"


def test_the_ballot_reader_recounts_and_recodes():
    rows = [("A1", "3", f"V-{i}", "Org A", "support") for i in range(5)]
    rows += [("A1", "3", "V-x", "Tiny org", "oppose"), ("A2", "4", "", "", "")]
    lines = b"".join(csv_lines(rows)).decode().splitlines()
    tallies, groups = read_ballots(lines)
    assert groups == {"Org A", "other"}
    by_ref = {t.ref: t for t in tallies}
    assert by_ref["A1"].by_group == {"Org A": Counts(5, 0), "other": Counts(0, 1)}
    assert by_ref["A2"].by_group == {}
    assert [a.ref for a in tally_file(lines)] == ["A1", "A2"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["a,b,c"], "line 1: the header"),
        (["amendment,clause,voter,organisation,stance", "A1,3,V-1,Org,maybe"], "line 2: stance"),
        (["amendment,clause,voter,organisation,stance", "A1,3,V-1"], "line 2: expected 5 fields"),
        (
            [
                "amendment,clause,voter,organisation,stance",
                "A1,3,V-1,O,support",
                "A1,4,V-2,O,oppose",
            ],
            "line 3: amendment A1 is on two clauses",
        ),
    ],
)
def test_a_bad_ballot_file_says_where(lines, message):
    with pytest.raises(BallotFileError, match=message):
        read_ballots(lines)
