"""Ranking: hand-worked examples and properties (DESIGN.md, "Ranking")."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.ranking import (
    OTHER,
    AmendmentTally,
    Counts,
    clause_outcomes,
    consensus,
    natural_key,
    pooled_groups,
    rank,
    recode_small_organisations,
    single_organisation,
    wilson_interval,
)


def test_wilson_interval_matches_a_hand_worked_value():
    # 8 of 10 with z = 1.96: centre (0.8 + 0.19208) / 1.38416 = 0.71676,
    # margin 1.96 * sqrt(0.016 + 0.0096040) / 1.38416 = 0.22659.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_of_no_votes_is_everything():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_refuses_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_carries_only_when_the_lower_bound_is_above_half():
    ranked = rank([AmendmentTally("A1", "1", {"x": Counts(8, 2)})])
    assert not ranked[0].carries  # lower bound 0.49
    ranked = rank([AmendmentTally("A1", "1", {"x": Counts(9, 1)})])
    assert ranked[0].carries  # lower bound 0.596


def test_consensus_is_the_geometric_mean_over_groups():
    by_group = {"a": Counts(5, 0), "b": Counts(3, 3)}
    # a: 6/7; b: 4/8; no pooled group because every consultation group has 5+ voters.
    assert consensus(by_group, {"a", "b"}) == pytest.approx(math.sqrt(6 / 7 * 4 / 8))


def test_small_groups_are_pooled_into_other():
    by_group = {"a": Counts(5, 1), "b": Counts(2, 0), "c": Counts(1, 1)}
    groups = pooled_groups(by_group, {"a", "b", "c"})
    assert groups == [Counts(5, 1), Counts(3, 1)]
    assert consensus(by_group, {"a", "b", "c"}) == pytest.approx(math.sqrt(6 / 8 * 4 / 6))


def test_groups_that_did_not_vote_still_count_at_the_neutral_value():
    # Only "a" voted; "b" and "c" are in the consultation, so the pool is (0 + 1) / (0 + 2).
    assert consensus({"a": Counts(20, 0)}, {"a", "b", "c"}) == pytest.approx(
        math.sqrt(21 / 22 * 0.5)
    )


def test_a_bloc_from_one_organisation_ranks_below_broad_support_of_the_same_size():
    groups = {"a", "b", "c", "d"}
    bloc = AmendmentTally("A1", "1", {"a": Counts(20, 0)})
    broad = AmendmentTally("A2", "1", {g: Counts(5, 0) for g in groups})
    ranked = rank([bloc, broad], groups)
    assert [a.ref for a in ranked] == ["A2", "A1"]
    assert ranked[1].single_organisation == "a"
    assert ranked[0].single_organisation is None


def test_recoding_sends_organisations_under_five_voters_to_other():
    assert recode_small_organisations({"a": 5, "b": 4, "other": 9}) == {
        "a": "a",
        "b": OTHER,
        "other": OTHER,
    }


def test_single_organisation_flag_needs_more_than_seventy_percent():
    assert single_organisation({"a": Counts(7, 0), "b": Counts(3, 0)}) is None
    assert single_organisation({"a": Counts(8, 0), "b": Counts(2, 0)}) == "a"
    assert single_organisation({OTHER: Counts(10, 0)}) is None


def test_ties_are_broken_by_natural_reference_order():
    tallies = [AmendmentTally(ref, "1", {}) for ref in ("A10", "A2", "A1")]
    assert [a.ref for a in rank(tallies)] == ["A1", "A2", "A10"]
    assert natural_key("3.10") > natural_key("3.2")


def test_leading_amendment_and_too_close_to_call():
    groups = {"a"}
    strong = AmendmentTally("A1", "1", {"a": Counts(30, 2)})
    close = AmendmentTally("A2", "1", {"a": Counts(27, 4)})
    weak = AmendmentTally("A3", "2", {"a": Counts(3, 5)})
    ranked = rank([strong, close, weak], groups)
    outcomes = clause_outcomes(ranked, ["1", "2", "3"])
    assert outcomes["1"].leading.ref == "A1"
    assert outcomes["1"].runner_up.ref == "A2"
    assert outcomes["1"].too_close_to_call
    assert outcomes["2"].leading is None  # nothing carries: the original stands
    assert outcomes["3"].leading is None and outcomes["3"].runner_up is None


def test_a_clear_leader_is_not_too_close_to_call():
    ranked = rank(
        [
            AmendmentTally("A1", "1", {"a": Counts(40, 1)}),
            AmendmentTally("A2", "1", {"a": Counts(5, 30)}),
        ]
    )
    assert not clause_outcomes(ranked, ["1"])["1"].too_close_to_call


counts = st.builds(Counts, st.integers(0, 60), st.integers(0, 60))
group_names = st.sampled_from(["a", "b", "c", "d", OTHER])
tally_maps = st.dictionaries(group_names, counts, max_size=5)


@given(st.integers(0, 200), st.integers(0, 200))
def test_adding_a_support_never_lowers_confidence(supports, opposes):
    before = wilson_interval(supports, supports + opposes)[0]
    after = wilson_interval(supports + 1, supports + opposes + 1)[0]
    assert after >= before - 1e-12


@given(st.integers(0, 200), st.integers(0, 200))
def test_the_interval_contains_the_share(supports, opposes):
    n = supports + opposes
    low, high = wilson_interval(supports, n)
    if n:
        assert low - 1e-12 <= supports / n <= high + 1e-12


@given(tally_maps, group_names)
def test_adding_a_support_never_lowers_consensus(by_group, group):
    groups = {"a", "b", "c", "d", OTHER}
    before = consensus(by_group, groups)
    bumped = dict(by_group)
    bumped[group] = bumped.get(group, Counts()) + Counts(1, 0)
    # A support can move a group out of the pool; it must still not lower its own group's
    # factor, and a group leaving the pool can only be compared in the simple case.
    if by_group.get(group, Counts()).total + 1 != 5:
        assert consensus(bumped, groups) >= before - 1e-12


@given(st.lists(tally_maps, min_size=1, max_size=8), st.randoms())
def test_the_order_does_not_depend_on_input_order(maps, random):
    tallies = [AmendmentTally(f"A{i}", str(i % 3), m) for i, m in enumerate(maps)]
    shuffled = list(tallies)
    random.shuffle(shuffled)
    assert [a.ref for a in rank(tallies)] == [a.ref for a in rank(shuffled)]


@given(st.integers(10, 200), st.integers(2, 6))
def test_a_bloc_never_outranks_broad_support_of_the_same_size(size, organisations):
    names = [f"org{i}" for i in range(organisations)]
    per_org = max(5, size // organisations)
    broad = {name: Counts(per_org, 0) for name in names}
    total = per_org * organisations
    bloc = {names[0]: Counts(total, 0)}
    assert consensus(bloc, names) < consensus(broad, names)
