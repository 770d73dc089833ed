"""Form fields as a browser sends them, for tests that post forms directly."""

from __future__ import annotations


def date_fields(name: str, value: str) -> dict[str, str]:
    """The day, month, year and time fields of date input ``name`` for "YYYY-MM-DDTHH:MM".

    An empty ``value`` sends the four fields empty; anything else not in that shape is
    sent whole as the day, so that a test can post nonsense.
    """
    parts = dict.fromkeys(("day", "month", "year", "time"), "")
    if value:
        try:
            day_part, time_part = value.split("T")
            year, month, day = day_part.split("-")
            parts = {"day": day, "month": month, "year": year, "time": time_part}
        except ValueError:
            parts["day"] = value
    return {f"{name}-{part}": text for part, text in parts.items()}


def closing_fields(amendments: str = "", voting: str = "") -> dict[str, str]:
    """Both closing times of the details form."""
    return {
        **date_fields("amendments_close_at", amendments),
        **date_fields("voting_close_at", voting),
    }
