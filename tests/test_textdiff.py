"""Word-level diff of wordings."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.textdiff import Segment, apply, change_summary, word_diff


def test_a_changed_word_is_one_deletion_and_one_insertion():
    segments = word_diff("reply within one working day", "reply within two working hours")
    assert segments == [
        Segment("equal", "reply within "),
        Segment("delete", "one"),
        Segment("insert", "two"),
        Segment("equal", " working "),
        Segment("delete", "day"),
        Segment("insert", "hours"),
    ]
    assert change_summary(segments) == (2, 2)


def test_identical_text_has_no_changes():
    assert word_diff("same words", "same words") == [Segment("equal", "same words")]


def test_everything_deleted():
    assert word_diff("all of it", "") == [Segment("delete", "all of it")]


def test_words_are_never_split():
    for segment in word_diff("acknowledge promptly", "acknowledged promptly"):
        assert segment.text in {"acknowledge", "acknowledged", " promptly"}


words = st.lists(st.sampled_from(["the", "post", "reply", "day", "a", "\n\n", " "]), max_size=30)


@given(words, words)
def test_both_sides_are_rebuilt_exactly(old_words, new_words):
    old, new = " ".join(old_words), " ".join(new_words)
    segments = word_diff(old, new)
    assert apply(segments, "old") == old
    assert apply(segments, "new") == new
