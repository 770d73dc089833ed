"""The report as CSV, XLSX, ODS and JSON, streamed so that memory stays flat as data grows.

Every export carries the same columns, and none carries an e-mail address, a
user id or anyone's vote: authors appear by display name or pseudonym, and the
ballot file (app.ballots) names voters only by per-consultation pseudonyms.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from xml.sax.saxutils import escape

from app.reporting import Report, ReportRow
from app.summary import AMENDMENT_FIELDS, amendment_facts, clause_line

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "json": "application/json",
}
COLUMNS = (
    *AMENDMENT_FIELDS,
    "clause_heading",
    "written_against_older_version",
    "decision",
    "decision_reason",
    "author",
    "proposed_heading",
    "proposed_text",
    "rationale",
)
CHUNK = 64 * 1024
# A cell starting with one of these is taken for a formula by spreadsheet programs.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Free text written by people (and organisation names), as opposed to computed figures.
TEXT_COLUMNS = frozenset(
    (
        "mostly_from",
        "robustness",
        "clause_heading",
        "decision_reason",
        "author",
        "proposed_heading",
        "proposed_text",
        "rationale",
    )
)
WITHHELD = "(withheld by the moderators after voting closed; its votes still count)"


def record(row: ReportRow) -> dict:
    """One report row as plain values, in COLUMNS order (figures as app.summary states them)."""
    r, a = row.ranked, row.amendment
    values = amendment_facts(r, row.leading, row.too_close_to_call, row.robustness)
    values.update(
        {
            "clause_heading": row.clause_heading,
            "written_against_older_version": row.outdated,
            "decision": row.decision or "",
            "decision_reason": (a.status_reason or "") if row.decision else "",
            "author": row.author.name,
            "proposed_heading": "" if a.withheld else a.proposed_heading or "",
            "proposed_text": WITHHELD if a.withheld else a.proposed_text,
            "rationale": WITHHELD if a.withheld else a.rationale,
        }
    )
    return values


def records(report: Report) -> Iterator[dict]:
    """Every report row, with free text made safe for spreadsheets (never a formula)."""
    for row in report.rows:
        values = record(row)
        for column in TEXT_COLUMNS:
            values[column] = as_text(values[column])
        yield values


def csv_stream(rows: Iterable[dict]) -> Iterator[bytes]:
    """CSV with a header, UTF-8 with a byte-order mark so spreadsheets read accents right."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
        if buffer.tell() > CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def as_text(value: str) -> str:
    """Participant text as text: a leading apostrophe keeps a formula from running."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _csv_value(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else value


def json_stream(report: Report, ballots_sha256: str | None) -> Iterator[bytes]:
    """The report as one JSON document, written a row at a time."""
    c = report.consultation
    head = {
        "consultation": {"slug": c.slug, "title": c.title, "status": c.status},
        "ballots_sha256": ballots_sha256,
        "turnout": report.turnout,
        "turnout_by_organisation": [
            {"organisation": t.organisation, "participants": t.participants}
            for t in report.turnout_by_organisation
        ],
        "rules": {
            "min_votes": report.rules.min_votes,
            "min_organisations": report.rules.min_organisations,
        },
        "clauses": [
            {
                "clause": result.clause.number,
                "heading": result.clause.heading,
                "vote_outcome": clause_line(result),
                "leading_amendment": result.leading.ref if result.leading else None,
                "too_close_to_call": result.too_close_to_call,
                "outcome": result.summary,
                "final_text": [
                    {"number": c.number, "heading": c.heading, "text": c.text}
                    for c in result.consolidated
                    if not c.deleted
                ],
            }
            for result in report.outcome.clauses
        ],
    }
    text = json.dumps(head, ensure_ascii=False, indent=1)
    yield (text[:-2] + ',\n "amendments": [\n').encode("utf-8")
    first = True
    for row in (record(r) for r in report.rows):
        yield (("" if first else ",\n") + json.dumps(row, ensure_ascii=False)).encode("utf-8")
        first = False
    yield b"\n ]\n}\n"


def xlsx_stream(rows: Iterable[dict]) -> Iterator[bytes]:
    """An Excel workbook, written by openpyxl's write-only mode to a temporary file."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Amendments")
    sheet.append(list(COLUMNS))
    for row in rows:
        sheet.append([_sheet_value(row[c]) for c in COLUMNS])
    yield from _spooled(workbook.save)


def ods_stream(rows: Iterable[dict]) -> Iterator[bytes]:
    """An OpenDocument spreadsheet (the UK government's open standard), written row by row."""

    def write(path: str) -> None:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            # The mimetype must come first and uncompressed (OpenDocument 1.2, part 3, 3.3).
            archive.writestr(
                zipfile.ZipInfo("mimetype"), FORMATS["ods"], compress_type=zipfile.ZIP_STORED
            )
            archive.writestr("META-INF/manifest.xml", _ODS_MANIFEST, zipfile.ZIP_DEFLATED)
            with archive.open("content.xml", "w") as content:
                content.write(_ODS_HEAD.encode())
                content.write(_ods_row(list(COLUMNS)).encode())
                for row in rows:
                    content.write(_ods_row([row[c] for c in COLUMNS]).encode())
                content.write(_ODS_TAIL.encode())

    yield from _spooled(write)


def _sheet_value(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


def _ods_row(values: list) -> str:
    cells = []
    for value in values:
        value = _sheet_value(value)
        if isinstance(value, int | float) and value is not None:
            cells.append(
                f'<table:table-cell office:value-type="float" office:value="{value}">'
                f"<text:p>{value}</text:p></table:table-cell>"
            )
        elif value in (None, ""):
            cells.append("<table:table-cell/>")
        else:
            cells.append(
                f'<table:table-cell office:value-type="string"><text:p>{escape(str(value))}'
                "</text:p></table:table-cell>"
            )
    return "<table:table-row>" + "".join(cells) + "</table:table-row>\n"


def _spooled(write) -> Iterator[bytes]:
    """Let ``write(path)`` build a file on disk, then stream it and remove it."""
    handle, path = tempfile.mkstemp(prefix="redline-export-")
    os.close(handle)
    try:
        write(path)
        with open(path, "rb") as built:
            while chunk := built.read(CHUNK):
                yield chunk
    finally:
        os.unlink(path)


_MANIFEST_NS = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
_ODS_MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<manifest:manifest xmlns:manifest="{_MANIFEST_NS}" manifest:version="1.2">\n'
    ' <manifest:file-entry manifest:full-path="/" manifest:version="1.2"'
    ' manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>\n'
    ' <manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>\n'
    "</manifest:manifest>\n"
)
_ODF = "urn:oasis:names:tc:opendocument:xmlns"
_ODS_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<office:document-content xmlns:office="{_ODF}:office:1.0"'
    f' xmlns:table="{_ODF}:table:1.0" xmlns:text="{_ODF}:text:1.0" office:version="1.2">\n'
    '<office:body><office:spreadsheet><table:table table:name="Amendments">\n'
)
_ODS_TAIL = "</table:table></office:spreadsheet></office:body></office:document-content>\n"


def export_stream(report: Report, fmt: str, ballots_sha256: str | None) -> Iterator[bytes]:
    """The report in one of FORMATS."""
    if fmt == "csv":
        return csv_stream(records(report))
    if fmt == "json":
        return json_stream(report, ballots_sha256)
    if fmt == "xlsx":
        return xlsx_stream(records(report))
    if fmt == "ods":
        return ods_stream(records(report))
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
