"""Pure: what an edit changed, field by field (before -> after), for the audit log. No I/O.

An audit entry keeps its changes as JSON text, so that the log page can show short
values inline and long wording as tracked changes, and the CSV can spell them out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from app.dates import london_time

# Values longer than this are wording: the log shows them as tracked changes.
SHORT = 120
NOT_SET = "not set"


@dataclass(frozen=True)
class Change:
    """One field that an edit changed, as shown to people (UK time, "not set")."""

    field: str
    before: str
    after: str

    @property
    def is_wording(self) -> bool:
        """True for long or multi-line values, shown as tracked changes rather than inline."""
        return any(len(v) > SHORT or "\n" in v for v in (self.before, self.after))

    @property
    def wording(self) -> tuple[str, str]:
        """(before, after) as wording to compare: an unset value is no words at all."""
        return tuple("" if v == NOT_SET else v for v in (self.before, self.after))


def shown(value: object) -> str:
    """A stored value as the audit log shows it."""
    if value is None or value == "":
        return NOT_SET
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return london_time(value)
    return str(value)


def changes_between(
    before: Mapping[str, object], after: Mapping[str, object], labels: Mapping[str, str]
) -> list[Change]:
    """The fields (in ``labels`` order) whose shown value differs between before and after."""
    found = []
    for name, label in labels.items():
        old, new = shown(before.get(name)), shown(after.get(name))
        if old != new:
            found.append(Change(label, old, new))
    return found


def encode(changes: list[Change]) -> str:
    """JSON text for the audit entry's ``changes`` column ('' for none)."""
    if not changes:
        return ""
    return json.dumps([[c.field, c.before, c.after] for c in changes], ensure_ascii=False)


def decode(text: str) -> list[Change]:
    """The changes an audit entry recorded (none for entries written before they were kept)."""
    if not text:
        return []
    return [Change(*item) for item in json.loads(text)]


def spelled_out(changes: list[Change]) -> str:
    """ "Field: before → after; ..." on one line, for the CSV download (one row per entry)."""
    return "; ".join(
        f"{c.field}: {' '.join(c.before.split())} → {' '.join(c.after.split())}" for c in changes
    )
