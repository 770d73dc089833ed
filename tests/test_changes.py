"""What an edit changed, before -> after (app.changes), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from app.changes import Change, changes_between, decode, encode, shown, spelled_out

LABELS = {"title": "Title", "voting_close_at": "Voting closes", "live": "Live results"}


def test_only_changed_fields_are_listed_in_label_order_and_in_uk_time():
    before = {"title": "Old", "voting_close_at": None, "live": True}
    after = {
        "title": "New",
        "voting_close_at": datetime(2027, 7, 15, 16, 0, tzinfo=UTC),
        "live": True,
    }
    assert changes_between(before, after, LABELS) == [
        Change("Title", "Old", "New"),
        Change("Voting closes", "not set", "15 July 2027 at 5pm"),
    ]


def test_a_naive_stored_time_equals_the_same_aware_time():
    naive = {"voting_close_at": datetime(2027, 1, 15, 12, 0)}
    aware = {"voting_close_at": datetime(2027, 1, 15, 12, 0, tzinfo=UTC)}
    assert changes_between(naive, aware, LABELS) == []


def test_round_trip_and_text():
    changes = [Change("Title", "Old", "New"), Change("Wording", "a\n\nb", "a\n\nc")]
    assert decode(encode(changes)) == changes
    assert encode([]) == "" and decode("") == []
    assert spelled_out(changes[:1]) == "Title: Old → New"
    assert spelled_out(changes) == "Title: Old → New; Wording: a b → a c"
    assert changes[1].is_wording and not changes[0].is_wording
    assert Change("Summary", "not set", "x" * 200).wording == ("", "x" * 200)
    assert shown(False) == "no" and shown("") == "not set"
