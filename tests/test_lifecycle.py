"""Lifecycle rules, the consolidated text and the ballot file's reader (pure modules)."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from app.ballots import (
    BallotFileError,
    csv_chunk,
    csv_lines,
    pseudonyms,
    read_ballots,
    tally_file,
    voter_pseudonym,
)
from app.disclosure import suppress_small
from app.lifecycle import Readiness, available_actions, results_visible, transition_refusal
from app.outcome import ClauseText, Proposal, clause_outcomes
from app.ranking import AmendmentTally, Counts, rank

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
READY = Readiness(3, ("*.gov.uk",), NOW + timedelta(days=1), NOW + timedelta(days=2))
HEADER = "amendment,clause,kind,voter,organisation,stance"


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


@pytest.mark.parametrize(
    ("status", "live", "visible"),
    [
        ("open", True, True),
        ("open", False, False),
        ("closed", False, False),
        ("published", False, True),
        ("published", True, True),
    ],
)
def test_hidden_results_appear_when_the_outcome_is_published(status, live, visible):
    assert results_visible(status, live) is visible


def test_consolidation_applies_changes_deletions_and_insertions():
    clauses = [
        ClauseText("1", "Scope", "Everyone."),
        ClauseText("2", "Accounts", "Keep them apart."),
    ]
    support = {"Org A": Counts(6, 0), "Org B": Counts(5, 0)}
    ranked = rank(
        [
            AmendmentTally("A1", "1", support, "change"),
            AmendmentTally("A2", "2", support, "delete"),
            AmendmentTally("A3", "2", support, "insert"),
        ]
    )
    proposals = {
        "A1": Proposal("A1", "1", "change", None, "Everyone at work."),
        "A2": Proposal("A2", "2", "delete", None, ""),
        "A3": Proposal("A3", "2", "insert", "Live streams", "Give notice."),
    }
    result = clause_outcomes(ranked, clauses, proposals).consolidated
    assert [(c.number, c.text, c.deleted, c.inserted) for c in result] == [
        ("1", "Everyone at work.", False, False),
        ("2", "", True, False),
        ("2.A", "Give notice.", False, True),
    ]
    assert [s.op for s in result[0].segments] == ["delete", "insert"]


def test_small_numbers_are_suppressed():
    assert [suppress_small(n) for n in (0, 4, 5, 12)] == ["fewer than 5", "fewer than 5", 5, 12]


def test_voter_pseudonyms_are_keyed_stable_and_unlinkable_across_amendments():
    assert voter_pseudonym("key-a", 1, 7) == voter_pseudonym("key-a", 1, 7)
    assert voter_pseudonym("key-a", 1, 7) != voter_pseudonym("key-b", 1, 7)
    # The same person on another amendment gets another pseudonym.
    assert voter_pseudonym("key-a", 1, 7) != voter_pseudonym("key-a", 2, 7)
    assert voter_pseudonym("key-a", 1, 7) != voter_pseudonym("key-a", 1, 8)
    assert voter_pseudonym("key-a", 1, 7).startswith("V-")
    assert len(voter_pseudonym("key-a", 1, 7)) == 18


def test_the_pseudonyms_of_one_key_are_the_hmac_of_each_line():
    pseudonym = pseudonyms("key-a")
    for amendment, user in [(1, 7), (2, 7), (1, 8), (123456, 98765)]:
        digest = hmac.new(b"key-a", f"{amendment}:{user}".encode(), hashlib.sha256).hexdigest()
        assert pseudonym(amendment, user) == voter_pseudonym("key-a", amendment, user)
        assert pseudonym(amendment, user) == f"V-{digest[:16]}"


def test_a_chunk_of_ballot_lines_is_the_lines_joined():
    rows = [
        ("A1", "3", "change", "V-1", '=Org, "A"', "support"),
        ("A2", "4", "delete", "", "", ""),
        ("A3", "4", "insert", "V-y", "other\nline", "oppose"),
    ]
    assert csv_chunk(rows) == b"".join(csv_lines(rows, with_header=False))


def test_the_ballot_reader_counts_without_recoding():
    rows = [("A1", "3", "change", f"V-{i}", "Org A", "support") for i in range(5)]
    rows += [
        ("A1", "3", "change", "V-x", "Tiny org", "oppose"),
        ("A2", "4", "delete", "", "", ""),
        ("A3", "4", "insert", "V-y", "other", "support"),
    ]
    lines = b"".join(csv_lines(rows)).decode().splitlines()
    tallies = read_ballots(lines)
    by_ref = {t.ref: t for t in tallies}
    # The file states groups as recoded at closing; reading it changes nothing.
    assert by_ref["A1"].by_group == {"Org A": Counts(5, 0), "Tiny org": Counts(0, 1)}
    assert by_ref["A2"].by_group == {} and by_ref["A2"].kind == "delete"
    assert (by_ref["A3"].clause_ref, by_ref["A3"].kind) == ("4", "insert")
    ranked, outcome = tally_file(lines)
    assert [a.ref for a in ranked] == ["A1", "A3", "A2"]
    assert [r.clause.number for r in outcome.clauses] == ["3", "4"]
    # Six votes from two groups is enough evidence; 5 of 6 is not enough to carry.
    assert [(a.ref, a.result) for a in ranked] == [
        ("A1", "does not carry"),
        ("A3", "needs more votes"),
        ("A2", "needs more votes"),
    ]
    assert all(r.leading is None for r in outcome.clauses)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["a,b,c"], "line 1: the header"),
        (["amendment,clause,voter,organisation,stance", "A1,3,V-1,Org,support"], "line 1"),
        ([HEADER, "A1,3,change,V-1,Org,maybe"], "line 2: stance"),
        ([HEADER, "A1,3,change,V-1"], "line 2: expected 6 fields"),
        ([HEADER, "A1,3,replace,V-1,Org,support"], "line 2: kind must be one of"),
        ([HEADER, "A1,3,change,,Org,support"], "line 2: stance must be support or oppose"),
        ([HEADER, "A1,3,change,V-1,Org,support", "A1,3,change,V-1,Org,oppose"], "line 3: voter"),
        (
            [HEADER, "A1,3,change,V-1,O,support", "A1,4,change,V-2,O,oppose"],
            "line 3: amendment A1 appears with two clauses or kinds",
        ),
        (
            [HEADER, "A1,3,change,V-1,O,support", "A1,3,delete,V-2,O,oppose"],
            "line 3: amendment A1 appears with two clauses or kinds",
        ),
    ],
)
def test_a_bad_ballot_file_says_where(lines, message):
    with pytest.raises(BallotFileError, match=message):
        read_ballots(lines)
