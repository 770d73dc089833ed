"""Outcome per clause and the consolidated text: one function, so table and text agree."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.disclosure import suppress_small
from app.outcome import ClauseText, FinalWording, Proposal, clause_outcomes, robustness
from app.ranking import DEFAULT_RULES, AmendmentTally, Counts, rank
from app.textdiff import Segment, word_diff

CLAUSES = [
    ClauseText("1", "Accounts", "Keep personal and work accounts apart.", 1),
    ClauseText("2", "Replies", "Reply within 15 working days.", 2),
]
BROAD = {g: Counts(6, 0) for g in "abc"}


def proposals_for(tallies, **decisions):
    texts = {"change": "New words here.", "delete": "", "insert": "A brand new clause."}
    return {
        t.ref: Proposal(
            t.ref,
            t.clause_ref,
            t.kind,
            "Heading" if t.kind == "insert" else None,
            texts[t.kind] + (f" ({t.ref})" if t.kind != "delete" else ""),
            2 if t.clause_ref == "2" else 1,
            decisions.get(t.ref),
        )
        for t in tallies
    }


def outcome_of(tallies, **kwargs):
    ranked = rank(tallies)
    return clause_outcomes(
        ranked, CLAUSES, proposals_for(tallies, **kwargs.pop("decisions", {})), **kwargs
    )


def test_the_highest_ranked_change_that_carries_leads_and_new_clauses_are_separate():
    tallies = [
        AmendmentTally("A1", "1", {"a": Counts(5, 0), "b": Counts(1, 0)}),
        AmendmentTally("A2", "1", BROAD),
        AmendmentTally("A3", "1", BROAD, "insert"),
    ]
    result = outcome_of(tallies).clauses[0]
    assert result.leading.ref == "A2"
    assert [q.amendment.ref for q in result.new_clauses if q.adopted] == ["A3"]
    texts = [c.text for c in result.consolidated]
    assert texts == ["New words here. (A2)", "A brand new clause. (A3)"]
    assert result.consolidated[1].number == "1.A"
    assert result.summary == "Changed by amendment 2"


def test_no_carrying_change_keeps_the_current_wording():
    tallies = [AmendmentTally("A1", "1", {"a": Counts(3, 3), "b": Counts(2, 3)})]
    result = outcome_of(tallies).clauses[0]
    assert result.leading is None and not result.too_close_to_call
    assert result.consolidated[0].text == CLAUSES[0].text
    assert result.summary == "Current wording stands"


def test_too_close_to_call_only_against_an_alternative_with_enough_evidence():
    close = [
        AmendmentTally("A1", "1", {"a": Counts(6, 1), "b": Counts(5, 1)}),
        AmendmentTally("A2", "1", {"a": Counts(5, 1), "b": Counts(5, 1)}),
    ]
    result = outcome_of(close).clauses[0]
    assert result.leading.ref == "A1" and result.too_close_to_call
    assert result.runner_up.ref == "A2"
    thin = [close[0], AmendmentTally("A2", "1", {"a": Counts(1, 0)})]
    result = outcome_of(thin).clauses[0]
    assert result.runner_up is None and not result.too_close_to_call
    empty = [close[0], AmendmentTally("A2", "1", {})]
    assert not outcome_of(empty).clauses[0].too_close_to_call


def test_robustness_names_an_organisation_only_with_five_voters_on_the_lead():
    # Without "big", A1 (big 6-0, small 3-0) loses evidence: it depends on big, named.
    tallies = [AmendmentTally("A1", "1", {"big": Counts(6, 0), "small": Counts(3, 0)})]
    robust = outcome_of(tallies).clauses[0].robustness
    assert not robust.holds and "big" in robust.named
    assert "depends on votes from big" in robust.summary
    # "small" gave only 3 votes: the lead also depends on it, but it is not named.
    assert robust.unnamed == 1 and "small" not in robust.summary
    sturdy = [AmendmentTally("A1", "1", {g: Counts(6, 0) for g in "abcd"})]
    assert outcome_of(sturdy).clauses[0].robustness.holds


def test_decisions_apply_exactly_what_was_accepted():
    tallies = [AmendmentTally("A1", "1", BROAD), AmendmentTally("A2", "1", {"a": Counts(1, 0)})]
    outcome = outcome_of(tallies, decisions={"A1": "rejected", "A2": "accepted"})
    assert outcome.uses_decisions
    result = outcome.clauses[0]
    assert result.leading.ref == "A1"  # the votes still say so
    assert result.consolidated[0].text == "New words here. (A2)"
    assert result.summary == "Changed by amendment 2"


def test_two_accepted_changes_to_one_clause_are_unresolved_not_silently_dropped():
    tallies = [AmendmentTally("A1", "1", BROAD), AmendmentTally("A2", "1", BROAD)]
    result = outcome_of(tallies, decisions={"A1": "accepted", "A2": "accepted"}).clauses[0]
    assert result.unresolved and "1, 2" in result.unresolved
    assert result.consolidated[0].text == CLAUSES[0].text
    assert result.summary.startswith("Unresolved")


def test_an_accepted_amendment_against_an_older_version_never_reverts_a_revision():
    ranked = rank([AmendmentTally("A1", "2", BROAD)])
    proposal = {"A1": Proposal("A1", "2", "change", None, "Old-based words.", 1, "accepted")}
    result = clause_outcomes(ranked, CLAUSES, proposal).clauses[1]
    assert result.unresolved and "version 1" in result.unresolved
    assert result.consolidated[0].text == CLAUSES[1].text


def test_final_wording_resolves_a_clause():
    tallies = [AmendmentTally("A1", "1", BROAD), AmendmentTally("A2", "1", BROAD)]
    final = FinalWording("1", "Accounts", "Merged words.", ("A1", "A2"))
    result = outcome_of(
        tallies, decisions={"A1": "accepted", "A2": "accepted"}, final_wordings=[final]
    ).clauses[0]
    assert result.unresolved is None
    assert result.consolidated[0].text == "Merged words." and result.consolidated[0].by_organisers
    assert result.summary == "Final wording written by the organisers from A1, A2"


def test_a_leading_deletion_deletes_the_clause():
    result = outcome_of([AmendmentTally("A1", "1", BROAD, "delete")]).clauses[0]
    assert result.consolidated[0].deleted and result.summary == "Deleted by amendment 1"


def test_the_tracked_changes_show_each_clause_against_the_wording_it_replaces():
    tallies = [
        AmendmentTally("A1", "1", BROAD),
        AmendmentTally("A2", "1", BROAD, "insert"),
        AmendmentTally("A3", "2", BROAD, "delete"),
    ]
    changed, inserted = outcome_of(tallies).clauses[0].consolidated
    assert changed.segments == word_diff(CLAUSES[0].text, "New words here. (A1)")
    assert inserted.segments == [Segment("insert", "A brand new clause. (A2)")]
    deleted = outcome_of(tallies).clauses[1].consolidated[0]
    assert deleted.segments == [Segment("delete", CLAUSES[1].text)]
    kept = outcome_of([]).clauses[0].consolidated[0]
    assert kept.segments == [Segment("equal", CLAUSES[0].text)]
    assert changed.segments is changed.segments  # worked out once, then kept


@st.composite
def consultations(draw):
    tallies = []
    for i in range(draw(st.integers(1, 6))):
        groups = draw(
            st.dictionaries(
                st.sampled_from("abcd"),
                st.builds(Counts, st.integers(0, 9), st.integers(0, 9)),
                max_size=4,
            )
        )
        kind = draw(st.sampled_from(["change", "delete", "insert"]))
        tallies.append(AmendmentTally(f"A{i + 1}", draw(st.sampled_from("12")), groups, kind))
    decisions = draw(
        st.dictionaries(
            st.sampled_from([t.ref for t in tallies]), st.sampled_from(["accepted", "rejected"])
        )
    )
    return tallies, decisions


@given(consultations())
def test_the_consolidated_text_always_says_what_the_table_says(case):
    tallies, decisions = case
    proposals = proposals_for(tallies, **decisions)
    for result in clause_outcomes(rank(tallies), CLAUSES, proposals).clauses:
        body = result.consolidated[0]
        if result.unresolved or not result.applied:
            assert body.text == result.clause.text and body.amendments == []
        else:
            assert body.amendments == result.applied
            assert body.text == proposals[result.applied[0]].text
            assert result.summary.endswith(f"amendment {result.applied[0][1:]}")
        if not decisions:
            assert result.applied == ([result.leading.ref] if result.leading else [])
        inserted = [c.amendments[0] for c in result.consolidated[1:]]
        if decisions:
            expected = [
                q.amendment.ref
                for q in result.new_clauses
                if decisions.get(q.amendment.ref) == "accepted"
            ]
        else:
            expected = [q.amendment.ref for q in result.new_clauses if q.adopted]
        assert inserted == expected


@given(consultations(), st.booleans())
def test_wording_read_apart_is_read_once_for_just_what_is_applied(case, with_final):
    """With ``texts`` (app.reporting), the same outcome, asking only for the wording applied."""
    tallies, decisions = case
    proposals = proposals_for(tallies, **decisions)
    finals = [FinalWording("2", "Organisers' heading", "Organisers' words.")] if with_final else []
    asked = []

    def texts(refs):
        asked.append(list(refs))
        return {ref: proposals[ref].text for ref in refs}

    without_text = {ref: p._replace(text=None) for ref, p in proposals.items()}
    read_apart = clause_outcomes(rank(tallies), CLAUSES, without_text, finals, texts=texts)
    assert read_apart == clause_outcomes(rank(tallies), CLAUSES, proposals, finals)
    applied = [
        ref
        for c in read_apart.consolidated
        if not c.by_organisers and c.replaces is not None or c.inserted
        for ref in c.amendments
    ]
    assert asked == ([applied] if applied else [])


def test_small_numbers_are_suppressed():
    assert suppress_small(4) == "fewer than 5" and suppress_small(5) == 5


def brute_force_depends_on(changes, leader_ref):
    """Every organisation whose removal (re-ranking everything from scratch) changes the lead."""
    groups = {g for t in changes for g in t.by_group if g != "other"}
    depends = set()
    for group in groups:
        reduced = [
            AmendmentTally(t.ref, t.clause_ref, {g: c for g, c in t.by_group.items() if g != group})
            for t in changes
        ]
        leader = next((a for a in rank(reduced) if a.carries), None)
        if leader is None or leader.ref != leader_ref:
            depends.add(group)
    return depends


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["a", "b", "c", "d", "other"]),
            st.builds(Counts, st.integers(0, 12), st.integers(0, 12)),
            max_size=5,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_robustness_agrees_with_re_ranking_from_scratch(groups_per_amendment):
    changes = [AmendmentTally(f"A{i + 1}", "1", g) for i, g in enumerate(groups_per_amendment)]
    result = clause_outcomes(rank(changes), [CLAUSES[0]]).clauses[0]
    if result.leading is None:
        assert result.robustness is None
        return
    expected = brute_force_depends_on(changes, result.leading.ref)
    robust = result.robustness
    assert robust.holds == (not expected)
    assert len(robust.named) + robust.unnamed == len(expected)
    assert set(robust.named) <= expected


@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["a", "b", "c", "other"]),
            st.builds(Counts, st.integers(0, 12), st.integers(0, 12)),
            max_size=4,
        ),
        min_size=2,
        max_size=6,
    ),
    st.randoms(use_true_random=False),
)
def test_robustness_does_not_depend_on_the_order_rivals_are_given_in(groups_per_amendment, rng):
    """robustness skips its sort when the rivals already come in rank order; any order agrees."""
    ranked = rank(AmendmentTally(f"A{i + 1}", "1", g) for i, g in enumerate(groups_per_amendment))
    leader = next((a for a in ranked if a.carries), None)
    if leader is None:
        return
    rivals = [a for a in ranked if a is not leader]
    shuffled = rivals[:]
    rng.shuffle(shuffled)
    assert robustness(leader, shuffled, DEFAULT_RULES) == robustness(leader, rivals, DEFAULT_RULES)
