"""Every export: text never becomes a formula, and the briefing files are briefing-ready.

A participant writes formula-like text as wording, rationale and display name; an
organiser gives such a reason and such a consultation title; an organisation is
named like a formula. Each export is then downloaded through the real app and
opened with an independent reader (openpyxl, odfpy, python-docx, the csv module):
no formula anywhere, every text recoverable exactly, and `redline tally` still
reads the ballot file. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from click.testing import CliRunner
from sqlmodel import select

from app.cells import FORMULA_STARTS, CsvWriter, Percent, cell, csv_text, original_text
from app.cli import main as cli
from app.db import Database
from app.models import Amendment, Consultation, Organisation, User
from tests.test_report_agreement import (
    ORGANISER,
    Spec,
    close,
    expected_lines,
    generate,
    organiser_client,
    post,
    report_of,
)

PAYLOADS = [
    '=HYPERLINK("http://evil.example/","Click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1)",
    "\t=1",
    "\r=1",
]
BLOC_NAME = "@SUM(1) bloc"  # the 40-strong organisation, named like a formula
TITLE = '=HYPERLINK("http://evil.example/","Click") guidance'
ORGANISER_NAME = "-2+3 Organiser"


# The cell writer itself


@pytest.mark.parametrize("text", [*PAYLOADS, "'=1", "'quoted", "plain", "", "-", "+"])
def test_csv_text_neutralises_formulas_and_is_exactly_reversible(text):
    written = csv_text(text)
    assert not written.startswith(FORMULA_STARTS)
    assert original_text(written) == text


@pytest.mark.parametrize("number", ["-2", "+0.125", "93.5%", "-0.5", "1e3"])
def test_a_plain_number_in_csv_stays_a_number(number):
    assert csv_text(number) == number
    assert original_text(csv_text(number)) == number


def test_only_numbers_become_numeric_cells():
    assert cell(3).kind == "number" and cell(0.5).kind == "number"
    assert cell(Percent(0.25)).kind == "percent"
    assert cell("=1").kind == "text" and cell("12").kind == "text"
    assert cell(True) == cell("yes")
    assert cell(None).kind == cell("").kind == "empty"
    buffer = io.StringIO()
    CsvWriter(buffer).writerow(["=1", 2, None, False, Percent(0.5)])
    assert buffer.getvalue() == "'=1,2,,no,50.0%\r\n"


# Every export of a consultation full of formula-like text


def hostile_consultation(database: Database) -> str:
    """A generated consultation, closed and decided, with formula-like text everywhere."""
    specs = [
        Spec(f"hostile-{i}", "4", "change", {"alpha.gov.uk": (1, 0)}, text=payload)
        for i, payload in enumerate(PAYLOADS)
    ]
    from tests.test_report_agreement import SPECS

    slug = "hostile"
    generated = generate(database, slug, specs=[*SPECS, *specs], extra=0)

    def disguise(session) -> None:
        consultation = session.exec(
            select(Consultation).where(Consultation.slug == "hostile")
        ).one()
        consultation.title = TITLE
        session.add(consultation)
        for i, payload in enumerate(PAYLOADS):
            amendment = session.get(Amendment, generated.ids[f"hostile-{i}"])
            amendment.rationale = payload
            author = session.get(User, amendment.author_id)
            author.display_name = payload
            session.add_all([amendment, author])
        bloc = session.exec(select(Organisation).where(Organisation.name == "bloc.gov.uk")).one()
        bloc.name = BLOC_NAME
        organiser = session.exec(select(User).where(User.email == ORGANISER)).one()
        organiser.display_name = ORGANISER_NAME
        session.add_all([bloc, organiser])
        session.commit()

    with organiser_client(database) as client:
        database.write_call(disguise)
        close(client, "hostile")
        for i, payload in enumerate(PAYLOADS):
            response = post(
                client,
                f"/organise/amendments/{generated.ids[f'hostile-{i}']}/decide",
                decision="reject",
                reason=payload + " because",
            )
            assert response.status_code == 303, response.text
    return "hostile"


def downloads(database: Database, slug: str) -> dict[str, bytes]:
    found = {}
    with organiser_client(database) as client:
        for fmt in ("csv", "xlsx", "ods", "json", "odt", "docx"):
            response = client.get(f"/consultations/{slug}/report.{fmt}")
            assert response.status_code == 200, fmt
            found[fmt] = response.content
        for name, path in (("ballots", "ballots.csv"), ("audit", "audit.csv")):
            prefix = "/organise" if name == "audit" else "/consultations"
            response = client.get(f"{prefix}/{slug}/{path}")
            assert response.status_code == 200, name
            found[name] = response.content
    return found


def assert_no_formula_in_csv(body: bytes) -> list[list[str]]:
    """Every cell of a CSV: none a spreadsheet would run (a plain number is a number)."""
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))
    for row in rows:
        for value in row:
            if value.startswith(FORMULA_STARTS):
                float(value.removesuffix("%"))  # raises unless it is a plain number
    return rows


def texts_of_xlsx(body: bytes) -> set[str]:
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(body))  # not read-only: it keeps data types
    texts = set()
    for sheet in workbook:
        for row in sheet.iter_rows():
            for c in row:
                assert c.data_type != "f", (sheet.title, c.coordinate, c.value)
                if c.data_type == "s":
                    texts.add(c.value)
    return texts


def texts_of_ods(body: bytes) -> set[str]:
    from odf import table, teletype
    from odf.namespaces import TABLENS
    from odf.opendocument import load

    content = zipfile.ZipFile(io.BytesIO(body)).read("content.xml").decode()
    assert "table:formula" not in content
    document = load(io.BytesIO(body))
    texts = set()
    for c in document.spreadsheet.getElementsByType(table.TableCell):
        assert (TABLENS, "formula") not in c.attributes
        if c.getAttribute("valuetype") == "string":
            texts.add(teletype.extractText(c))
    return texts


def test_no_export_carries_a_formula_and_every_text_survives(database, tmp_path):
    slug = hostile_consultation(database)
    found = downloads(database, slug)
    # ODF text has no carriage return: ODS shows "\r=1" as a line break before "=1".
    as_odf = {p.replace("\r", "\n") for p in PAYLOADS}

    # Report CSV: neutralised, and the original text is one apostrophe away.
    rows = assert_no_formula_in_csv(found["csv"])
    header = rows[0]
    by_field = [dict(zip(header, row, strict=True)) for row in rows[1:]]
    recovered = {original_text(r[f]) for r in by_field for f in ("proposed_text", "rationale")}
    assert set(PAYLOADS) <= recovered
    assert {original_text(r["author"]) for r in by_field} >= set(PAYLOADS)
    assert {original_text(r["decision_reason"]) for r in by_field} >= {
        p + " because" for p in PAYLOADS if not p[0].isspace()
    }
    assert BLOC_NAME in {original_text(r["mostly_from"]) for r in by_field}

    # XLSX and ODS: string cells everywhere text was written, no formula anywhere.
    for fmt, texts_of, expected in (
        ("xlsx", texts_of_xlsx, set(PAYLOADS)),
        ("ods", texts_of_ods, as_odf),
    ):
        texts = texts_of(found[fmt])
        assert expected <= texts, fmt
        assert TITLE in texts, fmt
        assert BLOC_NAME in texts, fmt

    # JSON: exactly as written.
    document = json.loads(found["json"])
    assert document["consultation"]["title"] == TITLE
    written = {a[f] for a in document["amendments"] for f in ("proposed_text", "rationale")}
    assert set(PAYLOADS) <= written

    # The consolidated text documents carry no field codes or formulas either.
    docx_xml = zipfile.ZipFile(io.BytesIO(found["docx"])).read("word/document.xml").decode()
    assert "instrText" not in docx_xml and "fldSimple" not in docx_xml
    odt_xml = zipfile.ZipFile(io.BytesIO(found["odt"])).read("content.xml").decode()
    assert "formula" not in odt_xml

    # Audit log CSV: the organiser's name and reasons neutralised, and recoverable.
    audit = assert_no_formula_in_csv(found["audit"])
    assert ORGANISER_NAME in {original_text(row[1]) for row in audit[1:]}
    assert {original_text(row[4]) for row in audit[1:]} >= {
        p + " because" for p in PAYLOADS if not p[0].isspace()
    }

    # Ballot file: the organisation neutralised, and `redline tally` reads it exactly.
    ballots = assert_no_formula_in_csv(found["ballots"])
    assert "'" + BLOC_NAME in {row[4] for row in ballots[1:]}
    path = tmp_path / "ballots.csv"
    path.write_bytes(found["ballots"])
    tally = CliRunner().invoke(cli, ["tally", str(path)])
    assert tally.exit_code == 0, tally.output
    lines = tally.output.splitlines()[1:]
    assert lines == expected_lines(report_of(database, slug))
    assert any(BLOC_NAME in line for line in lines)
