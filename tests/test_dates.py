"""GOV.UK date input parsing in UK time (app.dates): BST and GMT, and each kind of error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.dates import (
    DateEntry,
    DateEntryError,
    describe_duration,
    entry_of,
    parse_london,
    parse_time_of_day,
    relative_to,
)


def test_summer_time_is_an_hour_ahead_of_utc():
    moment = parse_london(DateEntry("15", "7", "2027", "17:00"), "Voting closes")
    assert moment == datetime(2027, 7, 15, 16, 0, tzinfo=UTC)


def test_winter_time_is_utc():
    moment = parse_london(DateEntry("15", "December", "2026", "5pm"), "Voting closes")
    assert moment == datetime(2026, 12, 15, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        (datetime(2027, 7, 15, 16, 0, tzinfo=UTC), DateEntry("15", "7", "2027", "17:00")),
        (datetime(2026, 12, 15, 17, 0, tzinfo=UTC), DateEntry("15", "12", "2026", "17:00")),
        # SQLite returns naive UTC values.
        (datetime(2027, 7, 15, 23, 30), DateEntry("16", "7", "2027", "00:30")),
    ],
)
def test_stored_times_are_shown_in_uk_time_and_read_back_unchanged(stored, shown):
    assert entry_of(stored) == shown
    assert parse_london(shown, "Voting closes") == stored.replace(tzinfo=UTC)


def test_empty_is_none_unless_required():
    assert parse_london(DateEntry(), "Voting closes") is None
    with pytest.raises(DateEntryError) as failed:
        parse_london(DateEntry(" ", "", "", ""), "Voting closes", required=True)
    assert failed.value.problem.message == "Enter when voting closes"
    assert failed.value.problem.parts == ("day", "month", "year", "time")


@pytest.mark.parametrize(
    ("entry", "message", "parts"),
    [
        (DateEntry("15", "", "2026", "5pm"), "Voting closes must include a month", ("month",)),
        (
            DateEntry("15", "", "", "5pm"),
            "Voting closes must include a month and a year",
            ("month", "year"),
        ),
        (DateEntry("15", "12", "2026", ""), "Voting closes must include a time", ("time",)),
        (DateEntry("32", "12", "2026", "5pm"), "Voting closes must be a real date", ("day",)),
        (DateEntry("1", "13", "2026", "5pm"), "Voting closes must be a real date", ("month",)),
        (
            DateEntry("31", "6", "2026", "5pm"),
            "Voting closes must be a real date",
            ("day", "month", "year"),
        ),
        (
            DateEntry("29", "2", "2027", "5pm"),
            "Voting closes must be a real date",
            ("day", "month", "year"),
        ),
        (
            DateEntry("1", "6", "27", "5pm"),
            "Voting closes: the year must include 4 numbers",
            ("year",),
        ),
        (
            DateEntry("1", "6", "2027", "25:00"),
            "Voting closes: enter a time such as 5pm or 17:00",
            ("time",),
        ),
    ],
)
def test_errors_say_which_part_is_wrong(entry, message, parts):
    with pytest.raises(DateEntryError) as failed:
        parse_london(entry, "Voting closes")
    assert failed.value.problem.message == message
    assert failed.value.problem.parts == parts
    assert failed.value.problem.first_part == parts[0]


def test_a_time_the_clocks_skip_is_refused_and_a_repeated_one_is_read_as_summer_time():
    with pytest.raises(DateEntryError) as failed:
        parse_london(DateEntry("28", "3", "2027", "1:30am"), "Voting closes")
    assert failed.value.problem.parts == ("time",)
    assert "clocks go forward" in failed.value.problem.message
    repeated = parse_london(DateEntry("31", "10", "2027", "01:30"), "Voting closes")
    assert repeated == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "clock"),
    [
        ("17:00", (17, 0)),
        ("5pm", (17, 0)),
        ("5:30 PM", (17, 30)),
        ("9.15am", (9, 15)),
        ("12am", (0, 0)),
        ("12pm", (12, 0)),
        ("midday", (12, 0)),
        ("midnight", (0, 0)),
        ("17", None),
        ("13pm", None),
        ("10:60", None),
        ("soon", None),
    ],
)
def test_time_of_day(text, clock):
    assert parse_time_of_day(text) == clock


@pytest.mark.parametrize(
    ("span", "words"),
    [
        (timedelta(weeks=4), "4 weeks"),
        (timedelta(weeks=4, days=2, hours=5), "4 weeks and 2 days"),
        (timedelta(days=27, hours=23, minutes=50), "4 weeks"),
        (timedelta(days=9, hours=3), "9 days and 3 hours"),
        (timedelta(days=1), "1 day"),
        (timedelta(hours=23, minutes=50), "1 day"),
        (timedelta(hours=2, minutes=59, seconds=50), "3 hours"),
        (timedelta(hours=2, minutes=10), "2 hours and 10 minutes"),
        (timedelta(seconds=20), "less than a minute"),
    ],
)
def test_describe_duration(span, words):
    assert describe_duration(span) == words


def test_relative_to():
    now = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    assert relative_to(now, now + timedelta(weeks=4)) == "4 weeks before"
    assert relative_to(now, now - timedelta(hours=3)) == "3 hours after"
    assert relative_to(now, now.replace(tzinfo=None)) == "at"
