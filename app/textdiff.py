"""Pure word-level diff of two wordings, for tracked-changes display. No I/O.

A diff made word by word is exact but hard to read: "~~one~~two working ~~day,~~hours
~~even~~during". ``word_diff`` therefore groups the changes into phrases: a removed
phrase followed by the phrase that replaces it, where an unchanged run of at most one
short word (or only spaces) between two changes is taken into both sides of the change
("~~one working day, even~~ two working hours during"). Joining the segments still
rebuilds both wordings exactly.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

Op = Literal["equal", "insert", "delete"]

# A token is a run of non-space characters or a run of whitespace, so joining the
# tokens gives back the exact text and a diff never splits a word.
_TOKEN = re.compile(r"\S+|\s+")

# An unchanged run between two changes is absorbed into them when it holds at most this
# many words, each at most this long, and no paragraph break: readers take "one working
# day" as one phrase, but keep a long unchanged stretch or a new paragraph apart.
ABSORB_MAX_WORDS = 1
ABSORB_MAX_WORD_CHARS = 12


@dataclass(frozen=True)
class Segment:
    """A run of text that is unchanged, inserted or deleted."""

    op: Op
    text: str


def tokenize(text: str) -> list[str]:
    """Split text into words and the whitespace between them."""
    return _TOKEN.findall(text)


def word_diff(old: str, new: str) -> list[Segment]:
    """Segments that turn ``old`` into ``new``, grouped into phrases.

    Equal segments alternate with changes; a change is a deletion, an insertion, or a
    deletion directly followed by its replacement (never the other way round, and never
    two deletions or two insertions side by side). Joining the equal and delete segments
    gives ``old``; equal and insert give ``new``.
    """
    a, b = tokenize(old), tokenize(new)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    # Hunks: ("equal", text, text) or ("change", deleted, inserted).
    hunks: list[tuple[str, str, str]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        deleted, inserted = "".join(a[i1:i2]), "".join(b[j1:j2])
        if tag == "equal":
            hunks.append(("equal", deleted, deleted))
            continue
        if len(hunks) >= 2 and hunks[-2][0] == "change" and _absorbable(hunks[-1][1]):
            # change, short unchanged run, change: one phrase on each side.
            _, gap, _ = hunks.pop()
            _, before_deleted, before_inserted = hunks.pop()
            deleted = before_deleted + gap + deleted
            inserted = before_inserted + gap + inserted
        elif hunks and hunks[-1][0] == "change":
            # Opcodes never put two changes side by side, but be safe: merge them.
            _, before_deleted, before_inserted = hunks.pop()
            deleted, inserted = before_deleted + deleted, before_inserted + inserted
        hunks.append(("change", deleted, inserted))
    segments: list[Segment] = []
    for kind, first, second in hunks:
        if kind == "equal":
            _append(segments, "equal", first)
        else:
            _append(segments, "delete", first)
            _append(segments, "insert", second)
    return segments


def _absorbable(gap: str) -> bool:
    """Whether an unchanged run between two changes reads as part of one phrase."""
    if "\n" in gap:
        return False
    words = gap.split()
    return len(words) <= ABSORB_MAX_WORDS and all(len(w) <= ABSORB_MAX_WORD_CHARS for w in words)


def _append(segments: list[Segment], op: Op, text: str) -> None:
    if not text:
        return
    if segments and segments[-1].op == op:
        segments[-1] = Segment(op, segments[-1].text + text)
    else:
        segments.append(Segment(op, text))


def apply(segments: list[Segment], side: Literal["old", "new"]) -> str:
    """Rebuild one side of a diff."""
    skip = "insert" if side == "old" else "delete"
    return "".join(s.text for s in segments if s.op != skip)


def change_summary(segments: list[Segment]) -> tuple[int, int]:
    """Number of words inserted and deleted, for a summary above the tracked changes.

    Counted per phrase, so that an unchanged word absorbed into both sides of a
    replacement ("one working day" to "two working hours") is not counted as changed.
    """
    inserted = deleted = 0
    removed: Counter[str] = Counter()
    for segment in [*segments, Segment("equal", "")]:
        if segment.op == "delete":
            removed = Counter(segment.text.split())
            continue
        if segment.op == "insert":
            added = Counter(segment.text.split())
            inserted += (added - removed).total()
            deleted += (removed - added).total()
        else:
            deleted += removed.total()
        removed = Counter()
    return inserted, deleted


def side_by_side(segments: list[Segment]) -> tuple[list[Segment], list[Segment]]:
    """The current wording with its deletions, and the proposed wording with its insertions."""
    return (
        [s for s in segments if s.op != "insert"],
        [s for s in segments if s.op != "delete"],
    )
