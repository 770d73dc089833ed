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
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from sqlmodel import select

from app.briefing import clause_number, uk_time
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


def test_workbook_times_are_uk_wall_clock_times():
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert uk_time(summer) == datetime(2026, 7, 1, 13, 0)  # BST
    assert uk_time(datetime(2026, 12, 1, 12, 0)) == datetime(2026, 12, 1, 12, 0)  # naive: UTC
    assert uk_time(None) is None


def test_clause_numbers_are_numbers_only_when_plain_integers():
    assert clause_number("10") == 10
    assert clause_number("3.2") == "3.2"
    assert clause_number("3.") == "3."


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


# The briefing workbook

ORDERED = """# Ordered guidance

For tests.

## 2. Two
Clause two says something plain.

## 3. Three
Clause three says something plain.

### 3.2 Three point two
Clause three point two says something plain.

## 10. Ten
Clause ten says something plain.
"""
ORDERED_SPECS = [
    Spec(
        "ten",
        "10",
        "change",
        {"alpha.gov.uk": (8, 1), "beta.gov.uk": (6, 2), "delta.gov.uk": (2, 0)},
    ),
    Spec("two", "2", "change", {"alpha.gov.uk": (3, 3), "gamma.nhs.uk": (5, 0)}),
    Spec("three-two", "3.2", "delete", {"beta.gov.uk": (5, 1), "gamma.nhs.uk": (6, 0)}),
    Spec("new", "3", "insert", {"alpha.gov.uk": (6, 0), "beta.gov.uk": (5, 1)}),
]
SHEETS = ["Summary", "Amendments", "Outcome by clause", "Turnout", "Organisation breakdown"]


def ordered_consultation(database: Database) -> str:
    generate(database, "ordered", specs=ORDERED_SPECS, extra=0, document=ORDERED)
    with organiser_client(database) as client:
        close(client, "ordered")
    return "ordered"


def assert_suppressed(counts: list) -> None:
    """No count by organisation below 5 is shown (strings are the suppression labels)."""
    assert counts
    for value in counts:
        assert isinstance(value, str) or value >= 5, counts


def test_the_xlsx_workbook_is_briefing_ready(database):
    from openpyxl import load_workbook

    slug = ordered_consultation(database)
    body = downloads(database, slug)["xlsx"]
    report = report_of(database, slug)
    workbook = load_workbook(io.BytesIO(body))
    assert workbook.sheetnames == SHEETS
    for sheet in workbook:
        assert sheet.freeze_panes == "A2", sheet.title
        assert all(c.font.bold for c in sheet[1]), sheet.title
        assert sheet.print_title_rows == "$1:$1", sheet.title

    sheet = workbook["Amendments"]
    headers = [c.value for c in sheet[1]]
    for wanted in (
        "Clause",
        "Amendment",
        "Original wording",
        "Proposed wording",
        "Supports",
        "Opposes",
        "Support share",
        "95% interval low",
        "95% interval high",
        "Result",
        "Decision",
        "Reason",
    ):
        assert wanted in headers
    rows = [dict(zip(headers, row, strict=True)) for row in sheet.iter_rows(min_row=2)]
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, len(headers)).column_letter}{len(rows) + 1}"
    # Natural clause order, integers as numbers, "3.2" as text with a numeric order.
    assert [r["Clause"].value for r in rows] == [2, 3, "3.2", 10]
    assert [r["Clause"].data_type for r in rows] == ["n", "n", "s", "n"]
    assert [r["Clause order"].value for r in rows] == [1, 2, 3, 4]
    ten = next(r for r in rows if r["Clause"].value == 10)
    assert ten["Original wording"].value == "Clause ten says something plain."
    assert ten["Proposed wording"].value == "Wording proposed by ten for clause 10."
    assert ten["Proposed wording"].alignment.wrap_text
    assert sheet.column_dimensions[headers_letter(sheet, "Proposed wording")].width >= 40
    assert (ten["Supports"].value, ten["Opposes"].value) == (16, 3)
    share = ten["Support share"]
    assert share.data_type == "n" and share.number_format == "0.0%"
    assert share.value == pytest.approx(16 / 19)
    assert 0 < ten["95% interval low"].value < share.value < ten["95% interval high"].value

    summary = {row[0].value: row[1].value for row in workbook["Summary"].iter_rows(min_row=2)}
    assert summary["Consultation"] == "Ordered guidance"
    assert summary["Status"] == "Closed"
    assert summary["Closed (UK time)"].year >= 2026
    assert summary["Ballot file SHA-256"] == report.consultation.ballots_sha256
    assert summary["Votes"] == sum(row.ranked.votes for row in report.rows)
    assert summary["Amendments ranked"] == 4

    turnout = [[c.value for c in row] for row in workbook["Turnout"].iter_rows(min_row=2)]
    assert turnout[:-3] == [
        [t.organisation, t.participants] for t in report.turnout_by_organisation
    ]
    assert [row[0] for row in turnout[-3:]] == [
        "All organisations",
        "People who proposed amendments",
        "People who voted",
    ]

    breakdown = list(workbook["Organisation breakdown"].iter_rows(min_row=2, values_only=True))
    of_ten = {row[3]: (row[4], row[5]) for row in breakdown if row[2] == ten["Amendment"].value}
    # The amendment's total supports are on the Amendments sheet: with "other" small,
    # alpha's 8 would give "other" away by subtraction, so the whole column is withheld.
    assert of_ten["alpha.gov.uk"][0] == "withheld"
    assert of_ten["Other organisations (fewer than 5 participants each)"][0] == "withheld"
    assert_suppressed([row[4] for row in breakdown] + [row[5] for row in breakdown])


def headers_letter(sheet, header: str) -> str:
    return next(c.column_letter for c in sheet[1] if c.value == header)


def test_the_ods_workbook_is_briefing_ready(database):
    from odf import table, teletype
    from odf.opendocument import load

    slug = ordered_consultation(database)
    body = downloads(database, slug)["ods"]
    document = load(io.BytesIO(body))
    tables = {
        t.getAttribute("name"): t for t in document.spreadsheet.getElementsByType(table.Table)
    }
    assert list(tables) == SHEETS
    settings = zipfile.ZipFile(io.BytesIO(body)).read("settings.xml").decode()
    for name in SHEETS:
        # The header row is frozen in every sheet.
        entry = settings.split(f'config:name="{name}"', 1)[1].split(
            "</config:config-item-map-entry>"
        )[0]
        assert 'config:name="VerticalSplitPosition" config:type="int">1<' in entry
        header = tables[name].getElementsByType(table.TableRow)[0]
        assert {c.getAttribute("stylename") for c in header.getElementsByType(table.TableCell)} == {
            "Header"
        }
    ranges = [
        r.getAttribute("targetrangeaddress")
        for r in document.spreadsheet.getElementsByType(table.DatabaseRange)
    ]
    assert "Amendments.A1:AA5" in ranges

    def cells(name: str) -> list[list]:
        rows = []
        for row in tables[name].getElementsByType(table.TableRow)[1:]:
            rows.append(row.getElementsByType(table.TableCell))
        return rows

    amendments = cells("Amendments")
    assert [teletype.extractText(r[0]) for r in amendments] == ["2", "3", "3.2", "10"]
    assert [r[0].getAttribute("valuetype") for r in amendments] == [
        "float",
        "float",
        "string",
        "float",
    ]
    share = amendments[-1][14]
    assert share.getAttribute("valuetype") == "percentage"
    assert float(share.getAttribute("value")) == pytest.approx(16 / 19)
    breakdown = cells("Organisation breakdown")
    counts = []
    for row in breakdown:
        for c in row[4:6]:
            kind = c.getAttribute("valuetype")
            counts.append(
                float(c.getAttribute("value")) if kind == "float" else teletype.extractText(c)
            )
    assert_suppressed(counts)


# The consolidated text as Word and OpenDocument text


def test_the_docx_and_odt_carry_the_report_consolidated_text_as_tracked_changes(database, tmp_path):
    from docx import Document
    from docx.oxml.ns import qn
    from odf import teletype
    from odf import text as odf_text
    from odf.opendocument import load

    from app.textdiff import apply

    slug = ordered_consultation(database)
    found = downloads(database, slug)
    report = report_of(database, slug)
    clauses = report.consolidated
    with organiser_client(database) as client:
        page = client.get(f"/consultations/{slug}/report").text
    assert f'href="/consultations/{slug}/report.docx"' in page
    assert f'href="/consultations/{slug}/report.odt"' in page
    changed = [c for c in clauses if any(s.op != "equal" for s in c.segments)]
    assert changed  # clause 10 changes, 3.2 is deleted, a new clause follows 3

    body = Document(io.BytesIO(found["docx"])).element.body
    insertions = body.findall(".//" + qn("w:ins"))
    deletions = body.findall(".//" + qn("w:del"))
    assert insertions and deletions
    accepted = "".join(t.text for t in body.iter(qn("w:t")))
    rejected = "".join(
        t.text
        for t in body.iter(qn("w:t"), qn("w:delText"))
        if not any(a.tag == qn("w:ins") for a in t.iterancestors())
    )
    for clause in clauses:
        assert clause.text.replace("\n", "") in accepted, clause.number
        assert apply(clause.segments, "old").replace("\n", "") in rejected, clause.number
    assert f"{clauses[-1].number}. {clauses[-1].heading}" in accepted

    document = load(io.BytesIO(found["odt"]))
    regions = document.text.getElementsByType(odf_text.ChangedRegion)
    assert len(regions) == sum(1 for c in changed for s in c.segments if s.op != "equal")
    removed = [
        teletype.extractText(p)
        for d in document.text.getElementsByType(odf_text.Deletion)
        for p in d.getElementsByType(odf_text.P)
    ]
    assert removed == [s.text for c in changed for s in c.segments if s.op == "delete"]

    # `redline export` writes the same documents.
    for fmt in ("odt", "docx"):
        output = tmp_path / f"final.{fmt}"
        result = CliRunner().invoke(
            cli,
            ["export", slug, "--format", fmt, "-o", str(output)],
            env={"REDLINE_DATABASE_URL": database.url},
        )
        assert result.exit_code == 0, result.output
        if fmt == "docx":
            again = Document(str(output)).element.body
            assert "".join(t.text for t in again.iter(qn("w:t"))) == accepted
        else:
            assert len(load(str(output)).text.getElementsByType(odf_text.ChangedRegion)) == len(
                regions
            )
