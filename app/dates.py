"""Pure: dates and times as people type them into a GOV.UK date input, in UK time. No I/O.

Organisers enter a day, a month, a year and a time of day in Europe/London; Redline
stores UTC. The error messages follow the GOV.UK Design System's date input
guidance: say which part is missing or wrong ("... must include a month"), and
name the parts to highlight (all of them when the date as a whole is wrong).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from app.numbers import is_whole_number

LONDON = ZoneInfo("Europe/London")
DATE_PARTS = ("day", "month", "year")
PARTS = (*DATE_PARTS, "time")

MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
# 5pm, 5:30pm, 5.30 pm, 17:00, 17.00, 1700 is not accepted (too easily a year).
_TIME = re.compile(r"^(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?$")


@dataclass(frozen=True)
class DateEntry:
    """What was typed into one date input and its time field (strings, as sent)."""

    day: str = ""
    month: str = ""
    year: str = ""
    time: str = ""

    def is_empty(self) -> bool:
        """True when nothing was typed in any part."""
        return not any(getattr(self, part).strip() for part in PARTS)


@dataclass(frozen=True)
class DateProblem:
    """Why an entry is not a time: the message, and the parts to highlight."""

    message: str
    parts: tuple[str, ...]

    @property
    def first_part(self) -> str:
        """The part the error summary links to (the first one highlighted)."""
        return self.parts[0]


class DateEntryError(ValueError):
    """An entry that is not a time Redline can store; carries its ``DateProblem``."""

    def __init__(self, problem: DateProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _month(text: str) -> int | None:
    text = text.strip().lower()
    if is_whole_number(text, 2):
        return int(text)
    return MONTHS.get(text.rstrip("."))


def parse_time_of_day(text: str) -> tuple[int, int] | None:
    """(hour, minute) from "17:00", "5pm", "5:30 pm", "midday" or "midnight"; None if not a time."""
    text = " ".join(text.strip().lower().split())
    if text in ("midday", "noon", "12 noon"):
        return 12, 0
    if text == "midnight":
        return 0, 0
    match = _TIME.match(text)
    if not match:
        return None
    hour, minute = int(match[1]), int(match[2] or 0)
    suffix = (match[3] or "").replace(".", "")
    if suffix:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if suffix == "pm" else 0)
    elif match[2] is None:
        # A bare "17" is ambiguous enough to ask again.
        return None
    if hour > 23 or minute > 59:
        return None
    return hour, minute


def parse_london(entry: DateEntry, label: str, *, required: bool = False) -> datetime | None:
    """The UTC moment an organiser meant, typed as day, month, year and time in UK time.

    ``label`` names the field in messages ("Voting closes"). An empty entry is None
    (or, when ``required``, "Enter ..."). Raises ``DateEntryError`` naming the parts
    to highlight. A time the clocks skip (the hour after 1am on the last Sunday of
    March) is refused; a time that happens twice (the hour after 1am on the last
    Sunday of October) is read as the first of the two, in British Summer Time.
    """
    if entry.is_empty():
        if required:
            raise DateEntryError(DateProblem(f"Enter when {label.lower()}", PARTS))
        return None
    missing = [part for part in PARTS if not getattr(entry, part).strip()]
    if missing:
        names = {"day": "a day", "month": "a month", "year": "a year", "time": "a time"}
        if len(missing) == 1:
            wanted = names[missing[0]]
        else:
            wanted = ", ".join(names[p] for p in missing[:-1]) + " and " + names[missing[-1]]
        raise DateEntryError(DateProblem(f"{label} must include {wanted}", tuple(missing)))
    day_text, year_text = entry.day.strip(), entry.year.strip()
    month = _month(entry.month)
    wrong = [
        part
        for part, ok in (
            ("day", is_whole_number(day_text, 2) and 1 <= int(day_text) <= 31),
            ("month", month is not None and 1 <= month <= 12),
            ("year", is_whole_number(year_text, 4) and len(year_text) == 4),
        )
        if not ok
    ]
    if wrong == ["year"]:
        raise DateEntryError(DateProblem(f"{label}: the year must include 4 numbers", ("year",)))
    if wrong:
        raise DateEntryError(DateProblem(f"{label} must be a real date", tuple(wrong)))
    try:
        day = date(int(year_text), month or 0, int(day_text))
    except ValueError:
        # 31 June, 29 February in a common year: the date as a whole is wrong.
        raise DateEntryError(DateProblem(f"{label} must be a real date", DATE_PARTS)) from None
    clock = parse_time_of_day(entry.time)
    if clock is None:
        raise DateEntryError(DateProblem(f"{label}: enter a time such as 5pm or 17:00", ("time",)))
    local = datetime(day.year, day.month, day.day, *clock, tzinfo=LONDON)
    moment = local.astimezone(UTC)
    if moment.astimezone(LONDON).replace(tzinfo=None) != local.replace(tzinfo=None):
        raise DateEntryError(
            DateProblem(
                f"{label}: {entry.time.strip()} does not exist on that day in the UK "
                "because the clocks go forward; choose another time",
                ("time",),
            )
        )
    return moment


def london_time(value: datetime | None) -> str:
    """A UTC time as GOV.UK style shows it in Europe/London: '24 November 2026 at 2:05pm'."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(LONDON)
    hour = local.hour % 12 or 12
    suffix = "am" if local.hour < 12 else "pm"
    clock = f"{hour}{suffix}" if local.minute == 0 else f"{hour}:{local.minute:02d}{suffix}"
    if local.hour == 12 and local.minute == 0:
        clock = "midday"
    return f"{local.day} {local:%B %Y} at {clock}"


def entry_of(value: datetime | None) -> DateEntry:
    """How a stored UTC time is shown in a date input and time field, in UK time."""
    if value is None:
        return DateEntry()
    if value.tzinfo is None:
        # SQLite hands back naive datetimes; Redline stores UTC.
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(LONDON)
    return DateEntry(str(local.day), str(local.month), str(local.year), f"{local:%H:%M}")


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


def describe_duration(span: timedelta) -> str:
    """A length of time in words, in its two largest units: "4 weeks", "3 days and 2 hours".

    Rounded to the nearest of the smaller unit, so 27 days and 23 hours reads "4 weeks".
    """
    minutes = round(abs(span).total_seconds() / 60)
    day, week = 24 * 60, 7 * 24 * 60
    if minutes >= 2 * week - day // 2:
        units = [(week, "week"), (day, "day")]
    elif minutes >= day - 30:
        units = [(day, "day"), (60, "hour")]
    else:
        units = [(60, "hour"), (1, "minute")]
    (big, big_name), (small, small_name) = units
    rounded = round(minutes / small) * small
    words = [
        _plural(n, name)
        for n, name in ((rounded // big, big_name), (rounded % big // small, small_name))
        if n
    ]
    return " and ".join(words) or "less than a minute"


def relative_to(moment: datetime, reference: datetime) -> str:
    """Where ``moment`` falls against ``reference``: "4 weeks before", "2 hours after", "at"."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=UTC)
    span = reference - moment
    if abs(span) < timedelta(minutes=1):
        return "at"
    return f"{describe_duration(span)} {'before' if span > timedelta(0) else 'after'}"
