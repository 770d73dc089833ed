"""Pure: the one cell writer every CSV, XLSX and ODS output goes through. No I/O.

Text that people write (wording, rationales, reasons, names, titles) reaches
organisers and the Cabinet Office in spreadsheets, where a cell starting with
``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return before one) can be
taken for a formula: ``=HYPERLINK(...)`` becomes a live link, ``+cmd|...``
a command (OWASP, "CSV Injection"). So:

- XLSX and ODS get *typed* cells: text is always a string cell (openpyxl's
  ``data_type`` forced to ``"s"``, ODF ``office:value-type="string"``), never a
  formula, and shows exactly what was written. Numbers, percentages and times
  are real numbers, so they sort and sum.
- CSV has no types, so text that starts with ``= + - @``, a tab or a carriage
  return gets a single apostrophe in front, as OWASP recommends. Text that
  already starts with an apostrophe gets one more, so the rule is exactly
  reversible: remove one leading apostrophe, if there is one, to recover the
  original (``original_text``). A cell that is a plain number (``-2``, ``+0.125``,
  ``93.5%``) is left alone: a spreadsheet reads it as that number, not a formula.

Characters XML 1.0 cannot carry (control characters other than tab, newline
and carriage return) are replaced by U+FFFD in XLSX and ODS, where they would
otherwise make the file unreadable; CSV keeps them. ODF text has no carriage
return, so ODS shows one as a line break; XLSX and CSV keep it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

# A cell starting with one of these is taken for a formula by spreadsheet programs.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Percent:
    """A share between 0 and 1, written as a number formatted as a percentage."""

    value: float


CellKind = Literal["empty", "text", "number", "percent", "datetime"]


@dataclass(frozen=True)
class Cell:
    """What one spreadsheet cell holds, decided once for every format."""

    kind: CellKind
    value: Any


def cell(value: object) -> Cell:
    """Classify a value: None and "" are empty, booleans become yes/no text, str is text.

    Only ``int``, ``float``, ``Percent`` and ``datetime`` become numbers; a string is
    always text, whatever it looks like.
    """
    if value is None or value == "":
        return Cell("empty", "")
    if isinstance(value, bool):
        return Cell("text", "yes" if value else "no")
    if isinstance(value, int | float):
        return Cell("number", value)
    if isinstance(value, Percent):
        return Cell("percent", value.value)
    if isinstance(value, datetime | date):
        return Cell("datetime", value)
    return Cell("text", str(value))


def xml_text(text: str) -> str:
    """Text with the characters XML 1.0 forbids replaced, for XLSX and ODS cells."""
    return _NOT_XML.sub("\ufffd", text)


def csv_text(text: str) -> str:
    """Text for a CSV cell that no spreadsheet will run as a formula (see module docstring)."""
    if text.startswith(QUOTE):
        return QUOTE + text
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return QUOTE + text
    return text


def original_text(text: str) -> str:
    """Undo ``csv_text``: the text as it was written."""
    return text[1:] if text.startswith(QUOTE) else text


def csv_cell(value: object) -> str:
    """One value as a CSV field: numbers as numbers, text neutralised, times in ISO 8601."""
    c = cell(value)
    if c.kind == "empty":
        return ""
    if c.kind == "number":
        return repr(c.value) if isinstance(c.value, float) else str(c.value)
    if c.kind == "percent":
        return f"{c.value * 100:.1f}%"
    if c.kind == "datetime":
        return c.value.isoformat()
    return csv_text(c.value)


class CsvWriter:
    """``csv.writer`` that sends every field through ``csv_cell``: the one road for CSV."""

    def __init__(self, stream, lineterminator: str = "\r\n") -> None:
        self._writer = csv.writer(stream, lineterminator=lineterminator)

    def writerow(self, values: Iterable[object]) -> None:
        """Write one row."""
        self._writer.writerow([csv_cell(v) for v in values])

    def writerows_of_text(self, rows: Iterable[Iterable[str]]) -> None:
        """Write rows whose every field is a ``str``, exactly as ``writerow`` would.

        Each distinct text is sent through ``csv_cell`` once: a ballot file repeats the
        same references, organisations and stances on a million lines. (Text only: as
        dictionary keys ``1``, ``1.0`` and ``True`` are one key but different cells.)
        """
        cells = _TextCells()
        for row in rows:
            self._writer.writerow([cells[v] for v in row])


class _TextCells(dict):
    """text -> its CSV field, worked out on first use."""

    def __missing__(self, text: str) -> str:
        field = self[text] = csv_cell(text)
        return field
