"""The report as CSV, XLSX, ODS, JSON, ODT and DOCX, streamed so that memory stays flat.

CSV and JSON carry the machine-readable columns (``COLUMNS``), one row per ranked
amendment. XLSX and ODS are briefing workbooks of several sheets (app.briefing).
ODT and DOCX are the consolidated final text with its tracked changes
(app.final_text). None carries an e-mail address, a user id or anyone's vote:
authors appear by display name or pseudonym, and the ballot file (app.ballots)
names voters only by per-amendment pseudonyms.

Every CSV, XLSX and ODS cell is written through app.cells, so text people wrote is
never taken for a formula (see that module for the exact rule).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime

from app import final_text, sheets
from app.briefing import COLUMNS, WITHHELD, record, workbook
from app.cells import CsvWriter
from app.reporting import Report, WordingReader, with_wordings
from app.summary import clause_line

__all__ = ["COLUMNS", "FORMATS", "WITHHELD", "export_stream", "record"]

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": sheets.XLSX_TYPE,
    "ods": sheets.ODS_TYPE,
    "json": "application/json",
    "odt": final_text.ODT_TYPE,
    "docx": final_text.DOCX_TYPE,
}
CHUNK = 64 * 1024


def csv_stream(rows: Iterable[dict]) -> Iterator[bytes]:
    """CSV with a header, UTF-8 with a byte-order mark so spreadsheets read accents right."""
    buffer = io.StringIO()
    writer = CsvWriter(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(row[c] for c in COLUMNS)
        if buffer.tell() > CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def records(report: Report, read: WordingReader) -> Iterator[dict]:
    """The report's rows as the CSV and JSON write them, their wording read by ``read``."""
    return (record(row, wording) for row, wording in with_wordings(report.rows, read))


def json_stream(report: Report, ballots_sha256: str | None, read: WordingReader) -> Iterator[bytes]:
    """The report as one JSON document, written a row at a time; text exactly as written.

    ``read`` reads the amendments' wording as the rows are written.
    """
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
    for row in records(report, read):
        yield (("" if first else ",\n") + json.dumps(row, ensure_ascii=False)).encode("utf-8")
        first = False
    yield b"\n ]\n}\n"


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


def final_text_of(report: Report) -> final_text.FinalText:
    """The consolidated text of the report page, for the ODT and DOCX downloads."""
    c = report.consultation
    applied = "accepted" if report.uses_decisions else "leading"
    return final_text.FinalText(
        title=f"{c.title}: consolidated text",
        introduction=(
            f"The guidance with every {applied} amendment applied "
            f"(consultation {c.slug}, {c.status}).",
            "Each change is a tracked change: removed words are struck through and added "
            "words underlined. Accept all changes to get the clean final text.",
        ),
        clauses=report.consolidated,
        when=c.published_at or c.closed_at or report.counted_at,
    )


def export_stream(
    report: Report,
    fmt: str,
    ballots_sha256: str | None,
    opened_at: datetime | None = None,
    *,
    wordings: WordingReader,
) -> Iterator[bytes]:
    """The report in one of FORMATS. ``opened_at`` (from the audit log) dates the workbook.

    ``wordings`` reads the amendments' wording (app.reporting.wordings, in a session of
    the caller's) as the rows are written: the report itself does not hold it.
    """
    if fmt == "csv":
        return csv_stream(records(report, wordings))
    if fmt == "json":
        return json_stream(report, ballots_sha256, wordings)
    if fmt == "xlsx":
        return _spooled(lambda path: sheets.write_xlsx(workbook(report, wordings, opened_at), path))
    if fmt == "ods":
        return _spooled(lambda path: sheets.write_ods(workbook(report, wordings, opened_at), path))
    if fmt == "odt":
        return _spooled(lambda path: final_text.write_odt(final_text_of(report), path))
    if fmt == "docx":
        return _spooled(lambda path: final_text.write_docx(final_text_of(report), path))
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
