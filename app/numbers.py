"""Pure: whole numbers as people type them, ASCII digits only. No I/O.

``str.isdigit`` is true for characters ``int`` refuses ("²", "①") and ``int`` refuses
numbers of more than 4,300 digits, so a check with ``isdigit`` followed by ``int``
turns hostile input into a 500. Every place that reads a number from text uses this.
"""

from __future__ import annotations

DIGITS = frozenset("0123456789")


def is_whole_number(text: str, max_digits: int = 9) -> bool:
    """True when ``text`` is 1 to ``max_digits`` ASCII digits and nothing else."""
    return 0 < len(text) <= max_digits and DIGITS.issuperset(text)


def whole_number(text: str, max_digits: int = 9) -> int | None:
    """The number ``text`` spells in ASCII digits, or None when it is anything else."""
    return int(text) if is_whole_number(text, max_digits) else None
