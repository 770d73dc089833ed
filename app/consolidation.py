"""Pure: the consultation's text with the chosen amendments applied. No I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from app.textdiff import Segment, word_diff


@dataclass(frozen=True)
class ClauseText:
    number: str
    heading: str
    text: str


@dataclass(frozen=True)
class Change:
    """An amendment chosen for the consolidated text."""

    ref: str
    kind: str  # "change" (empty text = delete) or "insert"
    heading: str | None
    text: str


@dataclass(frozen=True)
class ConsolidatedClause:
    """One clause of the consolidated text, as clean text and as tracked changes."""

    number: str
    heading: str
    text: str
    segments: list[Segment]
    amendments: list[str] = field(default_factory=list)
    deleted: bool = False
    inserted: bool = False


def consolidate(
    clauses: Sequence[ClauseText],
    changes: Mapping[str, Change],
    insertions: Mapping[str, Sequence[Change]],
) -> list[ConsolidatedClause]:
    """Apply one wording change per clause and any new clauses inserted after it.

    New clauses are numbered after the clause they follow ("4.A", "4.B") so that
    the original numbers stay stable for readers comparing the two texts.
    """
    result = []
    for clause in clauses:
        change = changes.get(clause.number)
        if change is None:
            result.append(
                ConsolidatedClause(
                    clause.number, clause.heading, clause.text, [Segment("equal", clause.text)]
                )
            )
        elif not change.text:
            result.append(
                ConsolidatedClause(
                    clause.number,
                    clause.heading,
                    "",
                    [Segment("delete", clause.text)],
                    [change.ref],
                    deleted=True,
                )
            )
        else:
            result.append(
                ConsolidatedClause(
                    clause.number,
                    clause.heading,
                    change.text,
                    word_diff(clause.text, change.text),
                    [change.ref],
                )
            )
        for i, insertion in enumerate(insertions.get(clause.number, ())):
            letter = chr(ord("A") + i) if i < 26 else str(i + 1)
            result.append(
                ConsolidatedClause(
                    f"{clause.number}.{letter}",
                    insertion.heading or "New clause",
                    insertion.text,
                    [Segment("insert", insertion.text)],
                    [insertion.ref],
                    inserted=True,
                )
            )
    return result


def suppress_small(count: int, threshold: int = 5) -> int | str:
    """Small-number suppression: counts below the threshold are shown as "fewer than 5"."""
    return count if count >= threshold else f"fewer than {threshold}"
