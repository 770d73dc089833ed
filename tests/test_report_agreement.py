"""The report page, every export and `redline tally` agree, and the record never changes.

Varied consultations (the seeded demo, and generated ones with small organisations,
a 40-strong one-organisation bloc for and against, changes, deletions and new
clauses competing on one clause, ties and amendments nobody voted on) are closed
through the real app. Then every vote-computed statement is read back from the
report page, the CSV, XLSX, ODS and JSON exports and from `redline tally` run on the
downloaded ballot file, and compared line by line with ``summary_lines`` built from
``build_report``: the one road from counts to outcome. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import random
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import func, select
from starlette.testclient import TestClient

from app import documents, services
from app.briefing import AMENDMENT_COLUMNS
from app.cells import original_text
from app.cli import main as cli
from app.db import Database
from app.exports import COLUMNS, WITHHELD
from app.main import create_app
from app.models import (
    Amendment,
    AuditEntry,
    Ballot,
    Clause,
    ClauseVersion,
    Consultation,
    Organisation,
    User,
    Vote,
    utcnow,
)
from app.queries import consultation_by_slug
from app.ranking import Rules
from app.reporting import Report, build_report
from app.seeding import seed
from app.summary import AMENDMENT_FIELDS, percent, summary_lines
from tests.conftest import SEED_DIR, settings_for
from tests.utils.sessions import force_login

DEMO = "social-media-guidance"
ORGANISER = "organiser@cabinetoffice.gov.uk"
ISSUER = "https://idp.test"
HOLDS = "Still leads with any one organisation's votes removed"

# Organisations (named after their e-mail domain, as for any unknown domain) and their
# sizes: three below 5 participants, recoded as "other", and a 40-strong bloc.
PEOPLE = {
    "alpha.gov.uk": 14,
    "beta.gov.uk": 10,
    "gamma.nhs.uk": 8,
    "delta.gov.uk": 4,
    "eps.gov.uk": 2,
    "zeta.police.uk": 1,
    "bloc.gov.uk": 40,
}
CLAUSES = 6
DOCUMENT = "# Generated guidance\n\nFor tests.\n\n" + "".join(
    f"## {n}. Heading {n}\nClause {n} says something plain about topic {n}.\n\n"
    for n in range(1, CLAUSES + 1)
)


@dataclass(frozen=True)
class Spec:
    """One amendment to generate: its clause, kind and votes per organisation (s, o)."""

    label: str
    clause: str
    kind: str  # change, delete or insert
    votes: dict[str, tuple[int, int]] = field(default_factory=dict)
    text: str | None = None


SPECS = [
    # Clause 1: a broad change, a bloc-backed change, a deletion and two new clauses.
    Spec(
        "broad",
        "1",
        "change",
        {
            "alpha.gov.uk": (8, 1),
            "beta.gov.uk": (6, 2),
            "gamma.nhs.uk": (4, 1),
            "delta.gov.uk": (2, 0),
        },
    ),
    Spec("bloc-for", "1", "change", {"bloc.gov.uk": (40, 0), "alpha.gov.uk": (0, 3)}),
    Spec("delete", "1", "delete", {"beta.gov.uk": (3, 3), "gamma.nhs.uk": (2, 2)}),
    Spec("new-adopted", "1", "insert", {"alpha.gov.uk": (6, 0), "beta.gov.uk": (5, 1)}),
    Spec("new-unvoted", "1", "insert"),
    # Clause 2: a lone vote, a 20-9 majority, and broad support sunk by the bloc.
    Spec("lone", "2", "change", {"eps.gov.uk": (1, 0)}),
    Spec(
        "majority",
        "2",
        "change",
        {"alpha.gov.uk": (10, 2), "beta.gov.uk": (6, 3), "gamma.nhs.uk": (4, 4)},
    ),
    Spec(
        "bloc-against",
        "2",
        "change",
        {
            "alpha.gov.uk": (9, 0),
            "beta.gov.uk": (7, 0),
            "gamma.nhs.uk": (5, 0),
            "bloc.gov.uk": (0, 40),
        },
    ),
    # Clause 3: an exact tie between two changes; clause 4: one nobody voted on.
    Spec("tie-1", "3", "change", {"alpha.gov.uk": (5, 1), "beta.gov.uk": (4, 1)}),
    Spec("tie-2", "3", "change", {"alpha.gov.uk": (5, 1), "beta.gov.uk": (4, 1)}),
    Spec("unvoted", "4", "change"),
    # Clause 5: a deletion carried by small organisations only ("other").
    Spec("small-only", "5", "delete", {"delta.gov.uk": (4, 0), "eps.gov.uk": (2, 0)}),
    # Free text that a spreadsheet would take for a formula.
    Spec("formula", "4", "change", {"alpha.gov.uk": (1, 1)}, text='=HYPERLINK("x")'),
]


@dataclass
class Generated:
    slug: str
    ids: dict[str, int]


def ensure_people(session) -> dict[str, list[int]]:
    """Organisations and their members (and the organiser), created once per database."""
    people: dict[str, list[int]] = {}
    for domain, size in PEOPLE.items():
        organisation = session.exec(select(Organisation).where(Organisation.name == domain)).first()
        if organisation is None:
            organisation = Organisation(name=domain)
            session.add(organisation)
            session.flush()
        ids = []
        for i in range(size):
            subject = f"{domain}-{i}"
            user = session.exec(select(User).where(User.subject == subject)).first()
            if user is None:
                user = User(
                    issuer=ISSUER,
                    subject=subject,
                    email=f"person{i}@{domain}",
                    email_verified=True,
                    pseudonym=f"Tester {domain} {i}",
                    organisation_id=organisation.id,
                )
                session.add(user)
                session.flush()
            ids.append(user.id)
        people[domain] = ids
    session.commit()
    return people


def ensure_organiser(session) -> int:
    user = session.exec(select(User).where(User.email == ORGANISER)).first()
    if user is None:
        user = User(
            issuer=ISSUER,
            subject="organiser",
            email=ORGANISER,
            email_verified=True,
            display_name="Olu Organiser",
            pseudonym="Organiser 1",
        )
        session.add(user)
        session.commit()
    return user.id


def generate(
    database: Database,
    slug: str,
    specs: list[Spec] = SPECS,
    rules: Rules | None = None,
    extra: int = 6,
    seed_value: int = 1,
    document: str = DOCUMENT,
) -> Generated:
    """An open consultation with the given amendments and votes, plus ``extra`` random ones."""
    generator = random.Random(seed_value)
    specs = list(specs)
    for n in range(extra):
        kind = generator.choice(["change", "change", "delete", "insert"])
        votes = {}
        for domain, size in PEOPLE.items():
            if generator.random() < 0.6:
                total = generator.randint(0, min(size, 12))
                supports = generator.randint(0, total)
                votes[domain] = (supports, total - supports)
        specs.append(Spec(f"random-{n}", str(generator.randint(1, CLAUSES)), kind, votes))

    def build(session) -> Generated:
        people = ensure_people(session)
        consultation = services.import_document(
            session,
            documents.parse(document.encode()),
            slug=slug,
            eligible_domains="*.gov.uk, *.nhs.uk, *.police.uk",
            status="open",
            voting_close_at=utcnow() + timedelta(days=7),
        )
        consultation.min_votes = (rules or Rules()).min_votes
        consultation.min_organisations = (rules or Rules()).min_organisations
        session.add(consultation)
        versions = {
            number: (clause_id, version_id)
            for number, clause_id, version_id in session.exec(
                select(Clause.number, Clause.id, ClauseVersion.id)
                .join(ClauseVersion, ClauseVersion.clause_id == Clause.id)
                .where(Clause.consultation_id == consultation.id)
            )
        }
        authors = [uid for ids in people.values() for uid in ids]
        ids = {}
        votes: list[tuple[int, int, str]] = []
        for n, spec in enumerate(specs):
            clause_id, version_id = versions[spec.clause]
            amendment = Amendment(
                consultation_id=consultation.id,
                clause_id=clause_id,
                clause_version_id=version_id,
                author_id=authors[n % len(authors)],
                kind="insert" if spec.kind == "insert" else "change",
                proposed_heading=f"New clause {spec.label}" if spec.kind == "insert" else None,
                proposed_text=""
                if spec.kind == "delete"
                else spec.text or f"Wording proposed by {spec.label} for clause {spec.clause}.",
                rationale=f"Because of {spec.label}.",
            )
            session.add(amendment)
            session.flush()
            ids[spec.label] = amendment.id
            for domain, (supports, opposes) in spec.votes.items():
                voters = generator.sample(people[domain], supports + opposes)
                for i, user_id in enumerate(voters):
                    stance = "support" if i < supports else "oppose"
                    votes.append((user_id, amendment.id, stance))
        session.commit()
        # Every vote is cast as the app casts it (rules checked, counts kept in step).
        for user_id, amendment_id, stance in votes:
            services.cast_vote(session, user_id, amendment_id, stance)
        return Generated(consultation.slug, ids)

    return database.write_call(build)


@contextmanager
def organiser_client(database: Database) -> Iterator[TestClient]:
    """The real app on ``database``, signed in as an organiser (named in configuration)."""
    user_id = database.write_call(ensure_organiser)
    app = create_app(settings_for(database.url, organisers=frozenset({ORGANISER})))
    with TestClient(app, follow_redirects=False) as client:
        client.csrf = force_login(client, user_id)
        yield client


def post(client: TestClient, path: str, **data):
    return client.post(path, data={"csrf_token": client.csrf, **data})


def close(client: TestClient, slug: str) -> None:
    response = post(client, f"/organise/{slug}/status", action="close", confirm="yes")
    assert response.status_code == 303, response.text


def report_of(database: Database, slug: str) -> Report:
    return database.call(
        lambda s: build_report(s, consultation_by_slug(s, slug, include_drafts=True))
    )


def expected_lines(report: Report) -> list[str]:
    """What `redline tally` must print after its SHA-256 line, from the report's own data."""
    return list(summary_lines([row.ranked for row in report.rows], report.outcome, report.rules))


# Reading the report page back


def plain(fragment: str) -> str:
    """The text of an HTML fragment, tags removed and whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def table_rows(page: str, marker: str) -> list[str]:
    """The body rows (as HTML) of the first table whose opening holds ``marker``."""
    start = page.index(marker)
    body = page[start : page.index("</table>", start)]
    body = body[body.index("<tbody") :]
    return re.findall(r"<tr class=\"govuk-table__row\"[^>]*>(.*?)</tr>", body, flags=re.S)


def cells(row: str) -> list[str]:
    return re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, flags=re.S)


def ranked_rows_on_page(page: str) -> list[dict[str, str]]:
    """Every vote-computed statement of the ranked table, one dict per amendment."""
    rows = []
    for row in table_rows(page, 'class="govuk-table app-results-table"'):
        tds = cells(row)
        result = tds[6]
        tags = [plain(t) for t in re.findall(r"<strong[^>]*>(.*?)</strong>", result, flags=re.S)]
        spans = [plain(s) for s in re.findall(r"<span[^>]*>(.*?)</span>", result, flags=re.S)]
        lead = [s for s in spans if s.startswith(("Leads clause", "Adopted as a new clause"))]
        robustness = [s for s in spans if s not in lead]
        mostly = [t for t in tags if t.startswith("Mostly from")]
        kind_text = plain(re.search(r"<span[^>]*>(.*?)</span>", tds[1], flags=re.S).group(1))
        rows.append(
            {
                "rank": plain(tds[0]),
                "amendment": "A" + re.search(r"#amendment-(\d+)", tds[1]).group(1),
                "kind": re.match(r"(changes|deletes|adds a new clause after) ", kind_text).group(1),
                "clause": re.search(r"clause (\S+?),", kind_text).group(1),
                "supports": plain(tds[2]),
                "opposes": plain(tds[3]),
                "share": plain(tds[4]),
                "score": plain(tds[5]),
                "result": tags[0].lower(),
                "leading": "yes" if lead else "no",
                "too_close_to_call": "yes" if lead and "(too close to call)" in lead[0] else "no",
                "robustness": robustness[0] if robustness else "",
                "mostly_one_organisation": "yes" if mostly else "no",
                "mostly_from": mostly[0].removeprefix("Mostly from ") if mostly else "",
                "withheld": "yes" if "text withheld by the moderators" in kind_text else "no",
            }
        )
    return rows


def clause_lines_on_page(page: str) -> dict[str, tuple[str, list[str]]]:
    """Per clause: the outcome table's vote statement as ``clause_line`` words it, and
    the robustness sentences it shows."""
    lines = {}
    for row in table_rows(page, 'caption--s">Outcome'):
        th, votes = cells(row)[:2]
        number = re.search(r"/clauses/([^\"#?]+)[\"#?]", th).group(1)
        said = plain(votes)
        parts = [f"clause {number}:"]
        leads = re.search(r"(Change|Deletion) by amendment (\d+) leads", said)
        if leads:
            verb = "delete" if leads.group(1) == "Deletion" else "change"
            parts.append(f"{verb} by A{leads.group(2)}")
            close_call = re.search(r"Too close to call with amendment (\d+)", said)
            if close_call:
                parts.append(f"(too close to call with A{close_call.group(1)})")
        else:
            assert "Current wording stands" in said, said
            parts.append("current wording stands")
        robustness = [
            plain(s)
            for s in re.findall(r"<span class=\"govuk-body-s app-block\">(.*?)</span>", votes, re.S)
            if "intervals overlap" not in s
        ]
        for span in re.findall(r"<span class=\"app-block govuk-body-s\">(.*?)</span>", votes, re.S):
            question = re.fullmatch(
                r"New clause \(amendment (\d+)\): "
                r"(adopted|carries|does not carry|needs more votes)(?:\. (.+))?",
                plain(span),
            )
            assert question, span
            ref, state, said_robustness = question.groups()
            parts.append(f"; new clause A{ref}: {state}")
            if said_robustness:
                robustness.append(said_robustness)
        lines[number] = (" ".join(parts).replace(" ;", ";"), robustness)
    return lines


def page_view(report: Report) -> list[dict[str, str]]:
    """What the ranked table must state for each amendment, from build_report's figures."""
    view = []
    for row in report.rows:
        a = row.ranked
        share = (
            "No votes yet"
            if a.support_share is None
            else f"{a.support_share * 100:.0f}% (95% interval "
            f"{a.interval[0] * 100:.0f}–{a.interval[1] * 100:.0f}%)"
        )
        view.append(
            {
                "rank": str(a.rank),
                "amendment": a.ref,
                "kind": {
                    "change": "changes",
                    "delete": "deletes",
                    "insert": "adds a new clause after",
                }[a.kind],
                "clause": a.clause_ref,
                "supports": str(a.supports),
                "opposes": str(a.opposes),
                "share": share,
                "score": f"{a.score:+.2f}",
                "result": a.result,
                "leading": "yes" if row.leading else "no",
                "too_close_to_call": "yes" if row.leading and row.too_close_to_call else "no",
                "robustness": row.robustness if row.robustness != HOLDS else "",
                "mostly_one_organisation": "yes" if a.mostly_one_organisation else "no",
                "mostly_from": a.mostly_from
                or ("one organisation" if a.mostly_one_organisation else ""),
                "withheld": "yes" if row.amendment.withheld else "no",
            }
        )
    return view


def check_page_against_summary(page_rows: list[dict], lines: list[str]) -> None:
    """The page's rounded figures against the summary's: same statement, less precision."""
    amendment_lines = [dict(zip(AMENDMENT_FIELDS, line.split("\t"), strict=True)) for line in lines]
    assert len(page_rows) == len(amendment_lines)
    for shown, stated in zip(page_rows, amendment_lines, strict=True):
        for key in ("rank", "amendment", "clause", "supports", "opposes", "result", "leading"):
            assert shown[key] == stated[key], (key, shown, stated)
        assert shown["too_close_to_call"] == stated["too_close_to_call"], (shown, stated)
        assert shown["mostly_one_organisation"] == stated["mostly_one_organisation"]
        assert shown["mostly_from"] == (
            stated["mostly_from"]
            or ("one organisation" if stated["mostly_one_organisation"] == "yes" else "")
        )
        assert shown["robustness"] == (
            "" if stated["robustness"] == HOLDS else stated["robustness"]
        )
        assert abs(float(shown["score"]) - float(stated["score"])) <= 0.0051
        if stated["support_share"] == "-":
            assert shown["share"] == "No votes yet"
        else:
            found = re.fullmatch(r"(\d+)% \(95% interval (\d+)–(\d+)%\)", shown["share"])
            numbers = [float(n) for n in found.groups()]
            summary = [
                float(stated[k][:-1]) for k in ("support_share", "interval_low", "interval_high")
            ]
            assert all(abs(p - s) <= 0.56 for p, s in zip(numbers, summary, strict=True))


# Reading the exports back


def export_rows(body: bytes, fmt: str) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows as strings) of an export, read with an independent reader.

    CSV and JSON carry the machine-readable columns; XLSX and ODS are read from their
    "Amendments" sheet, whose readable headers and typed cells are mapped back to the
    machine columns (percentages and scores formatted as app.summary states them).
    """
    if fmt in ("xlsx", "ods"):
        return workbook_rows(body, fmt)
    if fmt == "csv":
        table = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
        table = [table[0]] + [[original_text(v) for v in row] for row in table[1:]]
    else:
        amendments = json.loads(body)["amendments"]
        header = list(amendments[0]) if amendments else []
        table = [header] + [[row[k] for k in header] for row in amendments]
    header = [_as_text(h) for h in table[0]]
    rows = []
    for raw in table[1:]:
        values = [_as_text(v) for v in raw] + [""] * (len(header) - len(raw))
        rows.append(dict(zip(header, values, strict=True)))
    return header, rows


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def sheet_table(body: bytes, fmt: str, name: str) -> list[list]:
    """One sheet of a workbook as typed values: numbers as numbers, text as text."""
    if fmt == "xlsx":
        from openpyxl import load_workbook

        sheet = load_workbook(io.BytesIO(body), read_only=True)[name]
        return [list(row) for row in sheet.iter_rows(values_only=True)]
    from odf import table as odf_table
    from odf import teletype
    from odf.opendocument import load

    document = load(io.BytesIO(body))
    sheet = next(
        t
        for t in document.spreadsheet.getElementsByType(odf_table.Table)
        if t.getAttribute("name") == name
    )
    rows = []
    for row in sheet.getElementsByType(odf_table.TableRow):
        values = []
        for cell in row.getElementsByType(odf_table.TableCell):
            kind = cell.getAttribute("valuetype")
            if kind in ("float", "percentage"):
                values.append(float(cell.getAttribute("value")))
            elif kind is None:
                values.append(None)
            else:
                values.append(teletype.extractText(cell))
        rows.append(values)
    return rows


def workbook_rows(body: bytes, fmt: str) -> tuple[list[str], list[dict[str, str]]]:
    """The "Amendments" sheet of a workbook, in rank order, as machine columns."""
    table = sheet_table(body, fmt, "Amendments")
    field_of = {header: name for name, header, *_ in AMENDMENT_COLUMNS}
    fields = [field_of[h] for h in table[0]]
    rows = []
    for raw in table[1:]:
        row = {}
        for name, value in zip(fields, raw, strict=True):
            if name in ("support_share", "interval_low", "interval_high"):
                row[name] = percent(value)
            elif name == "score":
                row[name] = f"{value:+.3f}"
            else:
                row[name] = _as_text(value)
        rows.append(row)
    rows.sort(key=lambda r: int(r["rank"]))
    header = [f for f in COLUMNS if f in fields] + [f for f in fields if f not in COLUMNS]
    return header, rows


def amendment_lines_of(rows: list[dict[str, str]]) -> list[str]:
    return ["\t".join(row[f] for f in AMENDMENT_FIELDS) for row in rows]


def statements(client: TestClient, database: Database, slug: str, tmp_path) -> dict:
    """Everything the report states, from every source, for comparison."""
    report = report_of(database, slug)
    page = client.get(f"/consultations/{slug}/report")
    assert page.status_code == 200
    ballot_file = client.get(f"/consultations/{slug}/ballots.csv")
    assert ballot_file.status_code == 200
    exports = {}
    for fmt in ("csv", "xlsx", "ods", "json"):
        response = client.get(f"/consultations/{slug}/report.{fmt}")
        assert response.status_code == 200, fmt
        exports[fmt] = response.content
    path = tmp_path / f"{slug}-ballots.csv"
    path.write_bytes(ballot_file.content)
    tally = CliRunner().invoke(
        cli,
        [
            "tally",
            "--min-votes",
            str(report.rules.min_votes),
            "--min-organisations",
            str(report.rules.min_organisations),
            str(path),
        ],
    )
    assert tally.exit_code == 0, tally.output
    return {
        "report": report,
        "page": page.text,
        "ballots": ballot_file.content,
        "exports": exports,
        "tally": tally.output.splitlines(),
    }


def assert_all_agree(found: dict, consultation: Consultation) -> None:
    report: Report = found["report"]
    expected = expected_lines(report)
    n = len(report.rows)
    rules_line, header_line = expected[:2]
    amendment_lines, clause_lines = expected[2 : 2 + n], expected[2 + n :]
    assert header_line == "\t".join(AMENDMENT_FIELDS)

    # `redline tally` on the downloaded ballot file prints exactly the same lines.
    digest = hashlib.sha256(found["ballots"]).hexdigest()
    assert found["tally"][0] == f"SHA-256 {digest}"
    assert found["tally"][1:] == expected

    # The page states the hash of the file it offers, and the thresholds to run tally with.
    page = found["page"]
    assert re.search(r'<code class="app-hash">([0-9a-f]{64})</code>', page).group(1) == digest
    assert consultation.ballots_sha256 == digest
    rules = report.rules
    assert (
        f"redline tally --min-votes {rules.min_votes} --min-organisations "
        f"{rules.min_organisations} ballots.csv" in page
    )
    assert (
        f"at least {rules.min_votes} votes from at least {rules.min_organisations} organisations"
        in page
    )
    assert rules_line == (
        f"rules: at least {rules.min_votes} votes from at least "
        f"{rules.min_organisations} organisations"
    )

    # The report page, row by row and clause by clause.
    shown = ranked_rows_on_page(page)
    assert shown == page_view(report)
    check_page_against_summary(shown, amendment_lines)
    on_page = clause_lines_on_page(page)
    assert list(on_page) == [r.clause.number for r in report.outcome.clauses]
    stated = {line.split(":")[0].removeprefix("clause "): line for line in clause_lines}
    assert len(stated) == len(clause_lines)
    by_ref = {line.split("\t")[1]: line.split("\t") for line in amendment_lines}
    robustness_at = AMENDMENT_FIELDS.index("robustness")
    for number, (line, robustness) in on_page.items():
        assert line == stated.get(number, f"clause {number}: current wording stands")
        result = next(r for r in report.outcome.clauses if r.clause.number == number)
        expected_robustness = []
        if result.leading is not None:
            expected_robustness.append(by_ref[result.leading.ref][robustness_at])
        for question in result.new_clauses:
            said = by_ref[question.amendment.ref][robustness_at]
            if question.adopted and said != HOLDS:
                expected_robustness.append(said)
        assert robustness == expected_robustness, number

    # Turnout: the page and the JSON say the same.
    document = json.loads(found["exports"]["json"])
    turnout = document["turnout"]

    def people(n: int) -> str:
        return f"{n:,} {'person' if n == 1 else 'people'}"

    if turnout["voters"] is None:
        # Withheld totals (app.disclosure): only the bound, on the page as in the JSON.
        bound = turnout["participants"]
        assert f"{bound[:1].upper()}{bound[1:]} people took part." in page
        assert "How many people proposed and how many voted is not shown" in page
    else:
        assert (
            f"{people(turnout['participants'])} took part. "
            f"{people(turnout['proposers'])} proposed " in page
        )
        assert f"and {people(turnout['voters'])} cast" in page

    # Every export: the same columns, the same lines.
    for fmt, body in found["exports"].items():
        header, rows = export_rows(body, fmt)
        assert header[: len(AMENDMENT_FIELDS)] == list(AMENDMENT_FIELDS), fmt
        assert amendment_lines_of(rows) == amendment_lines, fmt
    assert document["ballots_sha256"] == digest
    assert document["rules"] == {
        "min_votes": rules.min_votes,
        "min_organisations": rules.min_organisations,
    }
    with_amendments = {row[2] for row in (line.split("\t") for line in amendment_lines)}
    vote_outcomes = [
        c["vote_outcome"]
        for c in document["clauses"]
        if c["clause"] in with_amendments or c["leading_amendment"]
    ]
    assert vote_outcomes == clause_lines
    for c in document["clauses"]:
        result = next(r for r in report.outcome.clauses if r.clause.number == c["clause"])
        assert c["leading_amendment"] == (result.leading.ref if result.leading else None)
        assert c["too_close_to_call"] == result.too_close_to_call


SCENARIOS = ["demo", "generated", "generated-strict", "generated-loose"]


def prepare(scenario: str, database: Database) -> str:
    """Load a scenario into ``database``; returns the slug of its open consultation."""
    if scenario == "demo":
        database.write_call(seed, SEED_DIR, True)
        return DEMO
    if scenario == "generated":
        return generate(database, "generated", extra=8, seed_value=7).slug
    if scenario == "generated-strict":
        return generate(database, "strict", rules=Rules(8, 3), extra=10, seed_value=11).slug
    return generate(database, "loose", rules=Rules(1, 1), extra=10, seed_value=13).slug


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_report_page_exports_and_tally_agree_line_by_line(database, tmp_path, scenario):
    slug = prepare(scenario, database)
    with organiser_client(database) as client:
        live = client.get(f"/consultations/{slug}/results")
        assert live.status_code == 200
        before = report_of(database, slug)
        close(client, slug)
        found = statements(client, database, slug, tmp_path)
        consultation = database.call(lambda s: consultation_by_slug(s, slug))
        assert_all_agree(found, consultation)
        # The live results just before closing ranked exactly what the frozen record does.
        # (The results page lists the 20 highest-ranked; the report lists them all.)
        shown_live = ranked_rows_on_page(live.text)
        assert len(shown_live) == min(20, len(found["report"].rows))
        assert (
            shown_live
            == [{**row, "withheld": "no"} for row in ranked_rows_on_page(found["page"])][
                : len(shown_live)
            ]
        )
        assert clause_lines_on_page(live.text) == clause_lines_on_page(found["page"])
        assert expected_lines(before) == expected_lines(found["report"])
    report = found["report"]
    results = {r.result for r in (row.ranked for row in report.rows)}
    if scenario == "generated":
        # The scenario is as varied as intended.
        assert results == {"carries", "does not carry", "needs more votes"}
        assert {row.ranked.kind for row in report.rows} == {"change", "delete", "insert"}
        assert any(r.too_close_to_call for r in report.outcome.clauses)
        assert any(q.adopted for r in report.outcome.clauses for q in r.new_clauses)
        assert any(row.ranked.votes == 0 for row in report.rows)
        named = {row.ranked.mostly_from for row in report.rows}
        assert "bloc.gov.uk" in named
        groups = {g for row in report.rows for g in row.ranked.by_group}
        assert groups == {"alpha.gov.uk", "beta.gov.uk", "gamma.nhs.uk", "bloc.gov.uk", "other"}


def test_the_generated_scenario_decides_the_hand_worked_cases(database, tmp_path):
    generated = generate(database, "generated", extra=0)
    report = report_of(database, generated.slug)
    by_label = {
        label: next(row.ranked for row in report.rows if row.ranked.ref == f"A{i}")
        for label, i in generated.ids.items()
    }
    clause = {r.clause.number: r for r in report.outcome.clauses}
    # Broad support leads clause 1, not the 40-strong bloc; the bloc is named.
    assert clause["1"].leading.ref == by_label["broad"].ref
    assert by_label["bloc-for"].mostly_from == "bloc.gov.uk"
    assert by_label["broad"].rank < by_label["bloc-for"].rank
    # A lone vote never outranks the 20-9 majority, and needs more votes.
    assert by_label["lone"].result == "needs more votes"
    assert by_label["majority"].rank < by_label["lone"].rank
    # The bloc against cannot sink broad support below the marginal majority.
    assert by_label["bloc-against"].rank < by_label["majority"].rank
    # An exact tie is broken by reference, and it is too close to call.
    assert by_label["tie-1"].order == by_label["tie-2"].order
    assert by_label["tie-1"].rank < by_label["tie-2"].rank
    assert clause["3"].too_close_to_call and clause["3"].runner_up.ref == by_label["tie-2"].ref
    # Nobody voted: listed, needs more votes, never leading or too close to call.
    assert by_label["unvoted"].votes == 0 and by_label["unvoted"].result == "needs more votes"
    assert clause["4"].leading is None and not clause["4"].too_close_to_call
    # Small organisations count as one group ("other"), which is not enough organisations.
    assert set(by_label["small-only"].by_group) == {"other"}
    assert by_label["small-only"].result == "needs more votes"
    adopted = {q.amendment.ref: q.adopted for q in clause["1"].new_clauses}
    assert adopted == {by_label["new-adopted"].ref: True, by_label["new-unvoted"].ref: False}


def test_free_text_that_looks_like_a_formula_is_text_in_every_export(database):
    generated = generate(database, "generated", extra=0)
    formula = f"A{generated.ids['formula']}"
    with organiser_client(database) as client:
        close(client, generated.slug)
        for fmt in ("csv", "xlsx", "ods", "json"):
            body = client.get(f"/consultations/{generated.slug}/report.{fmt}").content
            if fmt == "json":
                row = next(r for r in json.loads(body)["amendments"] if r["amendment"] == formula)
                assert row["proposed_text"] == '=HYPERLINK("x")'
            elif fmt == "csv":
                rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
                row = next(r for r in rows if r["amendment"] == formula)
                # A spreadsheet reads the apostrophe as "this is text".
                assert row["proposed_text"] == '\'=HYPERLINK("x")'
            else:
                # Workbooks hold it as a string cell, exactly as written.
                table = sheet_table(body, fmt, "Amendments")
                at = table[0].index("Proposed wording")
                row = next(r for r in table[1:] if formula in r)
                assert row[at] == '=HYPERLINK("x")', fmt


def test_the_ballot_file_never_links_one_voter_across_amendments(database):
    generated = generate(database, "generated", extra=8, seed_value=3)
    with organiser_client(database) as client:
        close(client, generated.slug)
        body = client.get(f"/consultations/{generated.slug}/ballots.csv").text
    rows = list(csv.DictReader(io.StringIO(body)))
    amendments_of: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row["voter"]:
            amendments_of[row["voter"]].add(row["amendment"])
    # Many people voted on many amendments, yet no pseudonym appears on two of them.
    assert len(amendments_of) > 100
    assert all(len(refs) == 1 for refs in amendments_of.values())
    voted = database.call(lambda s: s.exec(select(func.count(func.distinct(Vote.user_id)))).one())
    assert len(amendments_of) > voted  # one person, several pseudonyms
    # Every listed amendment is in the file, those nobody voted on once, without a voter.
    listed = {f"A{i}" for i in generated.ids.values()}
    assert {row["amendment"] for row in rows} >= listed
    empty = [row for row in rows if not row["voter"]]
    assert {row["amendment"] for row in empty} >= {
        f"A{generated.ids['unvoted']}",
        f"A{generated.ids['new-unvoted']}",
    }
    assert all(row["organisation"] == "" and row["stance"] == "" for row in empty)
    # Organisations under 5 participants appear only as "other".
    organisations = {row["organisation"] for row in rows} - {""}
    assert organisations == {
        "alpha.gov.uk",
        "beta.gov.uk",
        "gamma.nhs.uk",
        "bloc.gov.uk",
        "other",
    }


def test_a_later_sign_in_from_another_domain_changes_nothing_after_closing(database, tmp_path):
    generated = generate(database, "generated", extra=4, seed_value=5)
    with organiser_client(database) as client:
        close(client, generated.slug)
        before = statements(client, database, generated.slug, tmp_path)
        # Every gamma voter (8, a group of its own) and the alpha voters move to small
        # organisations' domains: re-derived at sign-in, the grouping would change.
        for domain, new_domain in (
            ("gamma.nhs.uk", "eps.gov.uk"),
            ("alpha.gov.uk", "zeta.police.uk"),
        ):
            for i in range(PEOPLE[domain]):
                user = database.write_call(
                    services.record_sign_in,
                    issuer=ISSUER,
                    subject=f"{domain}-{i}",
                    email=f"moved{i}@{new_domain}",
                    email_verified=True,
                )
                organisation = database.call(
                    lambda s, oid=user.organisation_id: s.get(Organisation, oid).name
                )
                assert organisation == new_domain
        after = statements(client, database, generated.slug, tmp_path)
    consultation = database.call(lambda s: consultation_by_slug(s, generated.slug))
    assert after["ballots"] == before["ballots"]
    assert after["tally"] == before["tally"]
    assert expected_lines(after["report"]) == expected_lines(before["report"])
    assert ranked_rows_on_page(after["page"]) == ranked_rows_on_page(before["page"])
    assert clause_lines_on_page(after["page"]) == clause_lines_on_page(before["page"])
    assert after["exports"]["csv"] == before["exports"]["csv"]
    assert_all_agree(after, consultation)
    # The turnout by organisation is part of the report too: grouped as at closing.
    assert turnout_table(after["page"]) == turnout_table(before["page"])
    assert json.loads(after["exports"]["json"]) == json.loads(before["exports"]["json"])


def turnout_table(page: str) -> list[list[str]]:
    return [
        [plain(c) for c in cells(row)] for row in table_rows(page, "Participants by organisation")
    ]


def test_hiding_after_closing_keeps_the_counts_and_says_the_text_is_withheld(database, tmp_path):
    generated = generate(database, "generated", extra=0)
    target = generated.ids["majority"]  # leads clause 2
    ref = f"A{target}"
    with organiser_client(database) as client:
        close(client, generated.slug)
        before = statements(client, database, generated.slug, tmp_path)
        hidden = post(
            client, f"/organise/amendments/{target}/moderate", action="hide", reason="Libellous."
        )
        assert hidden.status_code == 303
        after = statements(client, database, generated.slug, tmp_path)
        clause_page = client.get(f"/consultations/{generated.slug}/clauses/2").text
    # Same counts, same ranking, same file and hash: only the text is withheld.
    assert after["ballots"] == before["ballots"]
    assert after["tally"] == before["tally"]
    assert expected_lines(after["report"]) == expected_lines(before["report"])
    consultation = database.call(lambda s: consultation_by_slug(s, generated.slug))
    assert_all_agree(after, consultation)
    row = next(r for r in ranked_rows_on_page(after["page"]) if r["amendment"] == ref)
    assert row["withheld"] == "yes" and (row["supports"], row["opposes"]) == ("20", "9")
    assert (
        "text withheld by the moderators after voting closed (its votes still count)"
        in (after["page"])
    )
    assert "withheld the text of this amendment after voting closed" in clause_page
    assert "Wording proposed by majority" not in clause_page
    for fmt in ("csv", "xlsx", "ods", "json"):
        _, rows = export_rows(after["exports"][fmt], fmt)
        row = next(r for r in rows if r["amendment"] == ref)
        assert row["proposed_text"] == WITHHELD and row["rationale"] == WITHHELD, fmt
    # Withheld means withheld everywhere the report shows text, the consolidated text too.
    assert "Wording proposed by majority" not in after["page"]
    assert "Wording proposed by majority" not in after["exports"]["json"].decode()


def test_restoring_after_publishing_is_refused(database, tmp_path):
    generated = generate(database, "generated", extra=0)
    target = generated.ids["majority"]
    ref = f"A{target}"
    with organiser_client(database) as client:
        close(client, generated.slug)
        hidden = post(
            client, f"/organise/amendments/{target}/moderate", action="hide", reason="Libellous."
        )
        assert hidden.status_code == 303
        before = statements(client, database, generated.slug, tmp_path)
        decide_everything(client, database, generated.slug, reject={ref})
        published = post(
            client, f"/organise/{generated.slug}/status", action="publish", confirm="yes"
        )
        assert published.status_code == 303, published.text
        refused = post(
            client, f"/organise/amendments/{target}/moderate", action="restore", reason="Sorry."
        )
        assert refused.status_code == 409
        assert "can no longer be restored" in refused.text
        # Nor can anything else be hidden or restored into the published record's counts.
        other = generated.ids["broad"]
        again = post(client, f"/organise/amendments/{other}/moderate", action="restore", reason="x")
        assert again.status_code == 409
        after = statements(client, database, generated.slug, tmp_path)
    assert database.call(lambda s: s.get(Amendment, target).withheld) is True
    assert after["ballots"] == before["ballots"] and after["tally"] == before["tally"]
    public = TestClient(client.app, follow_redirects=False)
    page = public.get(f"/consultations/{generated.slug}/report")
    assert page.status_code == 200
    assert "Wording proposed by majority" not in page.text
    shown = next(r for r in ranked_rows_on_page(page.text) if r["amendment"] == ref)
    assert shown["withheld"] == "yes"
    assert (shown["supports"], shown["opposes"]) == ("20", "9")


def decide_everything(
    client: TestClient, database: Database, slug: str, reject: set[str] = frozenset()
) -> None:
    """Accept each clause's leading change and adopted new clauses; reject the rest."""
    report = report_of(database, slug)
    accept = report.outcome.leading_refs() - set(reject)
    for row in report.rows:
        decision = "accept" if row.ranked.ref in accept and not row.outdated else "reject"
        response = post(
            client,
            f"/organise/amendments/{row.amendment.id}/decide",
            decision=decision,
            reason=f"Decided: {decision}.",
        )
        assert response.status_code == 303, response.text


STATEMENTS = [
    ("audit_entry", "UPDATE audit_entry SET reason = 'rewritten'"),
    ("audit_entry", "DELETE FROM audit_entry"),
    ("ballot", "UPDATE ballot SET stance = 'oppose'"),
    ("ballot", "UPDATE ballot SET organisation = 'other'"),
    ("ballot", "DELETE FROM ballot"),
]


@pytest.mark.parametrize(("table", "statement"), STATEMENTS)
def test_the_audit_log_and_the_frozen_ballots_refuse_update_and_delete(seeded, table, statement):
    with organiser_client(seeded) as client:
        close(client, DEMO)
        before = client.get(f"/consultations/{DEMO}/ballots.csv").content

    def count(session):
        return (
            session.exec(select(func.count()).select_from(AuditEntry)).one(),
            session.exec(select(func.count()).select_from(Ballot)).one(),
        )

    counts = seeded.call(count)
    assert counts[0] >= 1 and counts[1] > 50

    def attempt(session):
        try:
            session.execute(text(statement))
            session.commit()
        except DBAPIError:
            session.rollback()
            return True
        return False

    assert seeded.write_call(attempt), f"{statement} was allowed"
    assert seeded.call(count) == counts
    with organiser_client(seeded) as client:
        assert client.get(f"/consultations/{DEMO}/ballots.csv").content == before
