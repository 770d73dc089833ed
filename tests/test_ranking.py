"""Ranking: the properties DESIGN.md asks for, over generated ballots, and hand-worked scenarios.

Each property of DESIGN.md "Ranking" is a hypothesis test here; docs/ranking.md says
why the rule has it. The scenario table is the cases that broke the first rule.
"""

from __future__ import annotations

import math
import random
import re
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from app.ballots import csv_lines, tally_file, voter_pseudonym
from app.outcome import ClauseText, clause_outcomes
from app.ranking import (
    DEFAULT_RULES,
    OTHER,
    AmendmentTally,
    Counts,
    Rules,
    group_odds,
    natural_key,
    rank,
    recode_small_organisations,
    score,
    wilson_interval,
)
from app.summary import summary_lines

GROUPS = ["a", "b", "c", "d", "e", "f", OTHER]
counts = st.builds(Counts, st.integers(0, 60), st.integers(0, 60))
by_group = st.dictionaries(st.sampled_from(GROUPS), counts, max_size=len(GROUPS))


@st.composite
def ballots(draw, min_size=1, max_size=6):
    """A consultation's tallies: amendments on a few clauses, of every kind."""
    n = draw(st.integers(min_size, max_size))
    return [
        AmendmentTally(
            f"A{i + 1}",
            draw(st.sampled_from(["1", "2", "3"])),
            draw(by_group),
            draw(st.sampled_from(["change", "delete", "insert"])),
        )
        for i in range(n)
    ]


def bump(tally: AmendmentTally, group: str, extra: Counts) -> AmendmentTally:
    new = dict(tally.by_group)
    new[group] = new.get(group, Counts()) + extra
    return AmendmentTally(tally.ref, tally.clause_ref, new, tally.kind)


def order_of(ranked) -> list[str]:
    return [a.ref for a in ranked]


# -- Property 1: monotone -------------------------------------------------------------------


@given(ballots(min_size=2), st.data())
def test_one_more_support_never_lowers_the_score_or_the_place(tallies, data):
    i = data.draw(st.integers(0, len(tallies) - 1))
    group = data.draw(st.sampled_from(GROUPS))
    before = rank(tallies)
    after_tallies = list(tallies)
    after_tallies[i] = bump(tallies[i], group, Counts(1, 0))
    after = rank(after_tallies)
    ref = tallies[i].ref
    old = next(a for a in before if a.ref == ref)
    new = next(a for a in after if a.ref == ref)
    assert new.order >= old.order
    assert new.interval[0] >= old.interval[0] - 1e-12
    assert not (old.carries and not new.carries)
    below_before = set(order_of(before)[old.rank :])
    below_after = set(order_of(after)[new.rank :])
    assert below_before <= below_after  # nothing it was above is now above it


@given(ballots(min_size=2), st.data())
def test_one_more_oppose_never_raises_the_score_or_the_place(tallies, data):
    i = data.draw(st.integers(0, len(tallies) - 1))
    group = data.draw(st.sampled_from(GROUPS))
    before = rank(tallies)
    after_tallies = list(tallies)
    after_tallies[i] = bump(tallies[i], group, Counts(0, 1))
    after = rank(after_tallies)
    ref = tallies[i].ref
    old = next(a for a in before if a.ref == ref)
    new = next(a for a in after if a.ref == ref)
    assert new.order <= old.order
    assert new.interval[1] <= old.interval[1] + 1e-12
    above_before = set(order_of(before)[: old.rank - 1])
    above_after = set(order_of(after)[: new.rank - 1])
    assert above_before <= above_after  # nothing that was above it is now below it


# -- Property 2: breadth beats volume ---------------------------------------------------------


@given(
    st.integers(1, 30),
    st.integers(0, 29),
    st.integers(2, 6),
    st.integers(1, 5),
    st.integers(1, 10),
)
def test_the_same_share_spread_over_more_organisations_ranks_higher(s, o, k, j, t):
    """k organisations at (s, o) each beat j < k organisations at (t*s, t*o) each, when the
    narrow side's total is the same or smaller (j * t <= k): same share everywhere."""
    assume(s > o and j < k and j * t <= k)
    broad = AmendmentTally("A1", "1", {GROUPS[g]: Counts(s, o) for g in range(k)})
    narrow = AmendmentTally("A2", "1", {GROUPS[g]: Counts(t * s, t * o) for g in range(j)})
    assert score(broad).order > score(narrow).order


@given(st.dictionaries(st.sampled_from(GROUPS), counts, min_size=1), st.integers(2, 10))
def test_with_the_same_spread_more_votes_never_rank_lower(groups, t):
    """Scaling every organisation's votes up (same share in each) never lowers the score,
    for amendments that no organisation opposes on balance."""
    assume(all(c.supports >= c.opposes for c in groups.values()))
    small = AmendmentTally("A1", "1", groups)
    large = AmendmentTally(
        "A2", "1", {g: Counts(t * c.supports, t * c.opposes) for g, c in groups.items()}
    )
    assert score(large).order >= score(small).order


# -- Property 3: bounded influence of one organisation ------------------------------------------

supportive = st.builds(
    lambda o, extra: Counts(2 * (o + 1) + extra, o), st.integers(0, 20), st.integers(0, 20)
)  # (s + 1) > 2 (o + 1): odds above 2 to 1


@given(
    st.lists(supportive, min_size=2, max_size=5),
    st.sampled_from(GROUPS[:-1]),
    counts,
)
def test_one_organisation_alone_cannot_lift_an_amendment_above_broad_support(
    broad_counts, bloc_group, bloc_counts
):
    broad = AmendmentTally("A9", "1", {GROUPS[i]: c for i, c in enumerate(broad_counts)})
    bloc = AmendmentTally("A1", "1", {bloc_group: bloc_counts})
    assert score(broad).order > score(bloc).order
    assert order_of(rank([bloc, broad]))[0] == "A9"


@given(
    st.lists(supportive, min_size=3, max_size=5),
    st.dictionaries(
        st.sampled_from(GROUPS),
        st.builds(lambda s, extra: Counts(s, s + extra), st.integers(0, 20), st.integers(0, 20)),
        max_size=4,
    ),
    st.sampled_from(GROUPS[:-1]),
    counts,
    st.booleans(),
)
def test_one_organisation_alone_cannot_sink_broad_support_below_a_marginal_amendment(
    broad_counts, marginal_counts, bloc_group, bloc_counts, on_marginal
):
    """Broad: 3+ organisations each for it at better than 2 to 1. Marginal: no organisation
    for it on balance. One organisation's votes, any number either way, on either of them,
    cannot put the marginal amendment above the broad one."""
    broad = {GROUPS[i]: c for i, c in enumerate(broad_counts)}
    marginal = dict(marginal_counts)
    if on_marginal:
        marginal[bloc_group] = bloc_counts
    else:
        broad[bloc_group] = bloc_counts
    ranked = rank([AmendmentTally("A1", "1", marginal), AmendmentTally("A9", "1", broad)])
    assert order_of(ranked)[0] == "A9"


@given(by_group)
def test_the_order_statistic_is_the_product_of_each_organisations_clipped_odds(groups):
    expected = Fraction(1)
    for c in groups.values():
        if c.total:
            expected *= group_odds(c)
    assert score(AmendmentTally("A1", "1", groups)).order == expected


@given(counts)
def test_one_organisation_moves_the_score_by_at_most_ln_4(c):
    assert abs(math.log(group_odds(c))) <= math.log(4) + 1e-12


# -- Property 4: enough evidence ----------------------------------------------------------------


@given(ballots(max_size=8), st.integers(1, 12), st.integers(1, 4))
def test_too_few_votes_never_carries_leads_or_makes_a_clause_too_close(tallies, votes, orgs):
    rules = Rules(min_votes=votes, min_organisations=orgs)
    ranked = rank(tallies, rules)
    for a in ranked:
        thin = a.votes < votes or a.organisations < orgs
        assert a.enough_evidence is not thin
        if thin:
            assert not a.carries and a.result == "needs more votes"
    outcome = clause_outcomes(ranked, [ClauseText(n, "", "") for n in "123"], rules=rules)
    for result in outcome.clauses:
        for a in (result.leading, result.runner_up):
            assert a is None or a.enough_evidence
        for q in result.new_clauses:
            assert not q.adopted or q.amendment.enough_evidence


# -- Property 5: organisations that voted on nothing ---------------------------------------------


@given(ballots(), st.lists(st.sampled_from(["x", "y", "z"]), unique=True, min_size=1))
def test_organisations_that_voted_on_nothing_do_not_change_the_order(tallies, silent):
    with_silent = [
        AmendmentTally(t.ref, t.clause_ref, {**t.by_group, **{s: Counts() for s in silent}}, t.kind)
        for t in tallies
    ]
    assert [(a.ref, a.order, a.interval, a.result) for a in rank(tallies)] == [
        (a.ref, a.order, a.interval, a.result) for a in rank(with_silent)
    ]


def test_recoding_ignores_organisations_with_no_voters():
    assert recode_small_organisations({"a": 5, "b": 0}) == {"a": "a", "b": OTHER}


# -- Property 6: deterministic, recomputable from the ballot file -----------------------------


@given(ballots(), st.randoms(use_true_random=False))
def test_the_order_does_not_depend_on_input_order(tallies, rnd):
    shuffled = list(tallies)
    rnd.shuffle(shuffled)
    assert order_of(rank(tallies)) == order_of(rank(shuffled))


@settings(max_examples=60)
@given(ballots(max_size=5))
def test_the_ballot_file_alone_reproduces_every_statement(tallies):
    rows = []
    voter = 0
    for t in tallies:
        if not t.counts.total:
            rows.append((t.ref, t.clause_ref, t.kind, "", "", ""))
        for group, c in sorted(t.by_group.items()):
            for stance, n in (("support", c.supports), ("oppose", c.opposes)):
                for _ in range(n):
                    voter += 1
                    pseudonym = voter_pseudonym("k", int(t.ref[1:]), voter)
                    rows.append((t.ref, t.clause_ref, t.kind, pseudonym, group, stance))
    text = b"".join(csv_lines(rows)).decode()
    ranked, outcome = tally_file(text.splitlines(keepends=True))
    direct = rank(tallies)
    clauses = [ClauseText(n, "", "") for n in sorted({t.clause_ref for t in tallies})]
    expected = list(summary_lines(direct, clause_outcomes(direct, clauses), Rules()))
    assert list(summary_lines(ranked, outcome, Rules())) == expected


def test_ties_go_to_the_reference_in_natural_order():
    same = {"a": Counts(3, 1), "b": Counts(2, 0)}
    ranked = rank([AmendmentTally(ref, "1", same) for ref in ("A10", "A2", "A1")])
    assert order_of(ranked) == ["A1", "A2", "A10"]
    assert ranked[0].order == ranked[2].order


def test_equal_scores_are_equal_exactly_not_by_rounding():
    # Two organisations at 2 to 1 each equal one at 4 to 1: ln 2 + ln 2 = ln 4.
    two = score(AmendmentTally("A2", "1", {"a": Counts(1, 0), "b": Counts(1, 0)}))
    one = score(AmendmentTally("A1", "1", {"c": Counts(3, 0)}))
    assert two.order == one.order == Fraction(4)
    tied = [AmendmentTally("A2", "1", two.by_group), AmendmentTally("A1", "1", one.by_group)]
    assert order_of(rank(tied)) == ["A1", "A2"]


# -- Scenarios: the cases that broke the first rule, worked by hand ------------------------------


def scenario(*tallies, rules=DEFAULT_RULES):
    ranked = rank(tallies, rules)
    return {a.ref: a for a in ranked}, order_of(ranked)


def test_a_lone_vote_does_not_outrank_a_20_to_9_majority():
    by_ref, order = scenario(
        AmendmentTally("A1", "1", {"a": Counts(1, 0)}),
        AmendmentTally("A2", "1", {"a": Counts(8, 3), "b": Counts(7, 3), "c": Counts(5, 3)}),
    )
    # A1: ln 2 = 0.693. A2: ln(9/4) + ln(8/4) + ln(6/4) = 0.811 + 0.693 + 0.405 = 1.910.
    assert order == ["A2", "A1"]
    assert by_ref["A1"].score == pytest.approx(0.693, abs=1e-3)
    assert by_ref["A2"].score == pytest.approx(1.910, abs=1e-3)
    assert by_ref["A1"].result == "needs more votes"
    assert by_ref["A2"].result == "carries"  # 20/29 = 69 %, interval 51-84 %


def test_a_lone_vote_cannot_lead_even_when_the_majority_is_polarised():
    by_ref, order = scenario(
        AmendmentTally("A1", "1", {"a": Counts(1, 0)}),
        AmendmentTally("A2", "1", {"a": Counts(20, 0), "b": Counts(0, 9)}),
    )
    outcome = clause_outcomes(list(by_ref.values()), [ClauseText("1", "", "")])
    assert outcome.clauses[0].leading is None or outcome.clauses[0].leading.ref != "A1"


def test_broad_many_beat_scattered_few():
    scattered = AmendmentTally("A1", "1", {f"o{i}": Counts(1, 0) for i in range(8)})
    broad = AmendmentTally("A2", "1", {f"o{i}": Counts(10, 0) for i in range(10)})
    by_ref, order = scenario(scattered, broad)
    # 8 ln 2 = 5.545 against 10 ln 4 = 13.863.
    assert order == ["A2", "A1"]
    assert by_ref["A1"].score == pytest.approx(8 * math.log(2))
    assert by_ref["A2"].score == pytest.approx(10 * math.log(4))


def test_a_40_strong_bloc_for_ranks_below_broad_support_and_is_named():
    by_ref, order = scenario(
        AmendmentTally("A1", "1", {"NHS England": Counts(40, 0)}),
        AmendmentTally("A2", "1", {"b": Counts(3, 0), "c": Counts(3, 0), "d": Counts(2, 0)}),
    )
    assert order == ["A2", "A1"]
    assert by_ref["A1"].score == pytest.approx(math.log(4))  # clipped from ln 41
    assert by_ref["A1"].result == "needs more votes"  # one organisation only
    assert by_ref["A1"].mostly_from == "NHS England"
    assert by_ref["A1"].support_share == 1.0 and by_ref["A1"].interval[0] > 0.8  # 20 of 20


def test_a_40_strong_bloc_against_cannot_sink_broad_support_below_a_marginal_amendment():
    broad = {g: Counts(4, 0) for g in "abcd"}
    by_ref, order = scenario(
        AmendmentTally("A1", "1", {**broad, "e": Counts(0, 40)}),
        AmendmentTally("A2", "1", {"f": Counts(3, 3), "g": Counts(2, 2)}),
    )
    assert order == ["A1", "A2"]
    # 4 ln 4 - ln 4 = 3 ln 4; the bloc's 40 opposes count as 20 in the share.
    assert by_ref["A1"].score == pytest.approx(3 * math.log(4))
    assert by_ref["A1"].support_share == pytest.approx(16 / 36)


def test_a_fifth_support_from_the_same_organisation_never_lowers_the_score():
    four = score(AmendmentTally("A1", "1", {"a": Counts(4, 0), "b": Counts(1, 1)}))
    five = score(AmendmentTally("A1", "1", {"a": Counts(5, 0), "b": Counts(1, 1)}))
    assert five.order >= four.order


def test_an_amendment_with_no_votes():
    by_ref, _ = scenario(AmendmentTally("A1", "1", {}))
    a = by_ref["A1"]
    assert (a.supports, a.opposes, a.support_share, a.interval) == (0, 0, None, (0.0, 1.0))
    assert a.score == 0 and a.result == "needs more votes" and not a.mostly_one_organisation


def test_one_vote_flags_one_organisation_without_naming_it():
    a = score(AmendmentTally("A1", "1", {"NHS England": Counts(1, 0)}))
    assert a.mostly_one_organisation and a.mostly_from is None


@given(by_group)
def test_the_flag_is_more_than_seventy_percent_from_one_named_organisation(groups):
    a = score(AmendmentTally("A1", "1", groups))
    supports = sum(c.supports for c in groups.values())
    over = [g for g, c in groups.items() if g != OTHER and c.supports > 0.7 * supports > 0]
    assert a.mostly_one_organisation == bool(over)
    assert a.mostly_from == (over[0] if over and groups[over[0]].supports >= 5 else None)


@given(by_group)
def test_the_share_counts_at_most_twenty_votes_from_one_organisation(groups):
    a = score(AmendmentTally("A1", "1", groups))
    weights = {g: min(1, Fraction(20, c.total)) for g, c in groups.items() if c.total}
    s = sum((groups[g].supports * w for g, w in weights.items()), Fraction(0))
    n = sum((groups[g].total * w for g, w in weights.items()), Fraction(0))
    assert a.support_share == (float(s) / float(n) if n else None)


def test_the_flag_needs_more_than_seventy_percent_and_never_names_other():
    assert not score(
        AmendmentTally("A1", "1", {"a": Counts(7, 0), "b": Counts(3, 0)})
    ).mostly_one_organisation
    flagged = score(AmendmentTally("A1", "1", {"a": Counts(8, 0), "b": Counts(2, 0)}))
    assert flagged.mostly_one_organisation and flagged.mostly_from == "a"
    assert not score(AmendmentTally("A1", "1", {OTHER: Counts(10, 0)})).mostly_one_organisation


def test_wilson_interval_matches_a_hand_worked_value():
    # 8 of 10 with z = 1.96: centre (0.8 + 0.19208) / 1.38416 = 0.71676,
    # margin 1.96 * sqrt(0.016 + 0.0096040) / 1.38416 = 0.22659.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_of_no_votes_is_everything_and_refuses_impossible_counts():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_carries_only_with_evidence_and_a_lower_bound_above_half():
    assert not score(AmendmentTally("A1", "1", {"x": Counts(8, 2), "y": Counts(0, 0)})).carries
    assert not score(AmendmentTally("A1", "1", {"x": Counts(9, 1)})).carries  # one organisation
    assert score(AmendmentTally("A1", "1", {"x": Counts(5, 0), "y": Counts(4, 1)})).carries


def test_natural_order_of_references():
    refs = ["A10", "A2", "A1", "3.10", "3.2"]
    assert sorted(refs, key=natural_key) == ["3.2", "3.10", "A1", "A2", "A10"]
    random.shuffle(refs)
    assert sorted(refs, key=natural_key)[2:] == ["A1", "A2", "A10"]


# -- The fast arithmetic is the rule, exactly ------------------------------------------------


def reference_score(tally: AmendmentTally, rules: Rules = DEFAULT_RULES) -> tuple:
    """docs/ranking.md's rule written plainly in Fractions: what app.ranking must equal."""
    voting = {g: c for g, c in tally.by_group.items() if c.total}
    order = Fraction(1)
    for c in voting.values():
        order *= group_odds(c)
    cap = {g: min(Fraction(1), Fraction(20, c.total)) for g, c in voting.items()}
    capped_supports = sum((c.supports * cap[g] for g, c in voting.items()), Fraction(0))
    capped_votes = sum((c.total * cap[g] for g, c in voting.items()), Fraction(0))
    supports = sum(c.supports for c in voting.values())
    opposes = sum(c.opposes for c in voting.values())
    named = {g: c.supports for g, c in voting.items() if g != OTHER}
    top = max(named, key=lambda g: named[g], default=None)
    flagged = supports > 0 and top is not None and named[top] / supports > 0.7
    return (
        tally.ref,
        supports,
        opposes,
        len(voting),
        float(capped_supports) / float(capped_votes) if capped_votes else None,
        wilson_interval(float(capped_supports), float(capped_votes)),
        order,
        supports + opposes >= rules.min_votes and len(voting) >= rules.min_organisations,
        flagged,
        top if flagged and named[top] >= 5 else None,
    )


def figures(a) -> tuple:
    return (
        a.ref,
        a.supports,
        a.opposes,
        a.organisations,
        a.support_share,
        a.interval,
        a.order,
        a.enough_evidence,
        a.mostly_one_organisation,
        a.mostly_from,
    )


@settings(max_examples=300)
@given(ballots(min_size=1, max_size=12))
def test_the_ranking_equals_the_rule_worked_in_plain_fractions(tallies):
    expected = sorted(
        (reference_score(t) for t in tallies), key=lambda f: (-f[6], natural_key(f[0]))
    )
    ranked = rank(tallies)
    assert [figures(a) for a in ranked] == expected
    assert [a.rank for a in ranked] == list(range(1, len(tallies) + 1))
    assert [figures(score(t)) for t in tallies] == [reference_score(t) for t in tallies]


@pytest.mark.parametrize(
    "ref",
    [
        "A1",
        "A10",
        "A2",
        "3.2",
        "3.10",
        "a",
        "12",
        "A1b",
        "A" + "9" * 19,
        "Ä7",
        "A\u0663",
        "A1\u0663",
        "",
    ],
)
def test_the_short_natural_key_is_the_general_one(ref):
    general = tuple(
        (0, int(part), "")
        if part.isascii() and part.isdigit() and len(part) <= 18
        else (1, 0, part)
        for part in re.split(r"(\d+)", ref)
        if part
    )
    assert natural_key(ref) == general
