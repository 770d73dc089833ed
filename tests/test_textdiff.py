"""Word-level diff of wordings, grouped into phrases."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.textdiff import (
    ABSORB_MAX_WORD_CHARS,
    Segment,
    apply,
    change_summary,
    side_by_side,
    word_diff,
)


def test_a_short_unchanged_word_between_two_changes_joins_them_into_one_phrase():
    segments = word_diff("reply within one working day", "reply within two working hours")
    assert segments == [
        Segment("equal", "reply within "),
        Segment("delete", "one working day"),
        Segment("insert", "two working hours"),
    ]
    # The absorbed word is on both sides of the phrase, so it is not counted as changed.
    assert change_summary(segments) == (2, 2)


def test_the_issue_example_reads_as_one_replacement():
    old = "Reply within one working day, even if its answer is not final."
    new = "Reply within two working hours during its answer is not final."
    segments = word_diff(old, new)
    assert segments == [
        Segment("equal", "Reply within "),
        Segment("delete", "one working day, even if"),
        Segment("insert", "two working hours during"),
        Segment("equal", " its answer is not final."),
    ]


def test_a_longer_unchanged_run_keeps_changes_apart():
    segments = word_diff("post one item every working day", "post two items every working day")
    assert [s.op for s in segments] == ["equal", "delete", "insert", "equal"]
    segments = word_diff("one thing and another here", "two thing and another there")
    assert [s.op for s in segments] == ["delete", "insert", "equal", "delete", "insert"]
    assert segments[2] == Segment("equal", " thing and another ")


def test_a_long_word_or_a_paragraph_break_is_never_absorbed():
    long_word = "x" * (ABSORB_MAX_WORD_CHARS + 1)
    segments = word_diff(f"one {long_word} day", f"two {long_word} hours")
    assert Segment("equal", f" {long_word} ") in segments
    segments = word_diff("one\n\nday", "two\n\nhours")
    assert Segment("equal", "\n\n") in segments


def test_identical_text_has_no_changes():
    assert word_diff("same words", "same words") == [Segment("equal", "same words")]


def test_everything_deleted():
    assert word_diff("all of it", "") == [Segment("delete", "all of it")]
    assert change_summary(word_diff("all of it", "")) == (0, 3)


def test_words_are_never_split():
    for segment in word_diff("acknowledge promptly", "acknowledged promptly"):
        assert segment.text in {"acknowledge", "acknowledged", " promptly"}


def test_side_by_side_shows_each_wording_with_its_own_changes():
    current, proposed = side_by_side(word_diff("reply in one day", "reply in two days"))
    assert "".join(s.text for s in current) == "reply in one day"
    assert "".join(s.text for s in proposed) == "reply in two days"
    assert {s.op for s in current} == {"equal", "delete"}
    assert {s.op for s in proposed} == {"equal", "insert"}


vocabulary = ["the", "post", "reply", "day", "a", "working", "acknowledgement", ",", "\n\n", " "]
words = st.lists(st.sampled_from(vocabulary), max_size=30)


@given(words, words)
def test_both_sides_are_rebuilt_exactly(old_words, new_words):
    old, new = " ".join(old_words), " ".join(new_words)
    segments = word_diff(old, new)
    assert apply(segments, "old") == old
    assert apply(segments, "new") == new


@given(words, words)
def test_phrases_alternate_with_unchanged_text(old_words, new_words):
    segments = word_diff(" ".join(old_words), " ".join(new_words))
    assert all(s.text for s in segments), "no empty segment"
    for first, second in zip(segments, segments[1:], strict=False):
        assert first.op != second.op, "no two adjacent segments of one kind"
        assert (first.op, second.op) != ("insert", "delete"), "the removal comes first"
    # An unchanged run between two changes is one a reader takes apart from them.
    for before, gap, after in zip(segments, segments[1:], segments[2:], strict=False):
        if gap.op == "equal" and before.op != "equal" and after.op != "equal":
            assert (
                "\n" in gap.text
                or any(len(w) > ABSORB_MAX_WORD_CHARS for w in gap.text.split())
                or len(gap.text.split()) > 1
            )


@given(words, words)
def test_change_summary_never_exceeds_the_words_on_either_side(old_words, new_words):
    old, new = " ".join(old_words), " ".join(new_words)
    inserted, deleted = change_summary(word_diff(old, new))
    assert 0 <= inserted <= len(new.split())
    assert 0 <= deleted <= len(old.split())
    if old == new:
        assert (inserted, deleted) == (0, 0)
