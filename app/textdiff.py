"""Pure word-level diff of two wordings, for tracked-changes display. No I/O."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Literal

Op = Literal["equal", "insert", "delete"]

# A token is a run of non-space characters or a run of whitespace, so joining the
# tokens gives back the exact text and a diff never splits a word.
_TOKEN = re.compile(r"\S+|\s+")


@dataclass(frozen=True)
class Segment:
    """A run of text that is unchanged, inserted or deleted."""

    op: Op
    text: str


def tokenize(text: str) -> list[str]:
    """Split text into words and the whitespace between them."""
    return _TOKEN.findall(text)


def word_diff(old: str, new: str) -> list[Segment]:
    """Segments that turn ``old`` into ``new``: equal runs, deletions, then insertions.

    Joining the equal and delete segments gives ``old``; equal and insert give ``new``.
    """
    a, b = tokenize(old), tokenize(new)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    segments: list[Segment] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            _append(segments, "equal", "".join(a[i1:i2]))
            continue
        if tag in ("delete", "replace"):
            _append(segments, "delete", "".join(a[i1:i2]))
        if tag in ("insert", "replace"):
            _append(segments, "insert", "".join(b[j1:j2]))
    return segments


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
    """Number of words inserted and deleted, for a screen-reader summary."""
    inserted = sum(len(s.text.split()) for s in segments if s.op == "insert")
    deleted = sum(len(s.text.split()) for s in segments if s.op == "delete")
    return inserted, deleted
