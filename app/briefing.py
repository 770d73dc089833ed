"""The report as a briefing-ready workbook: the sheets of the XLSX and ODS downloads.

Five sheets, described once (app.sheets writes them in either format):

- **Summary**: title, status, dates (UK time), turnout, the rules used, the SHA-256
  of the ballot file.
- **Amendments**: one row per ranked amendment with readable headers, the clause's
  current wording beside the proposed wording, counts as numbers, shares as
  percentages; rows in natural clause order (2 before 10, 3.2 before 3.10), then
  by rank. Clause numbers that are plain integers are numbers; "3.2" stays text,
  and "Clause order" is a number that sorts every clause naturally.
- **Outcome by clause**: the outcome table of the report page.
- **Turnout**: participants per organisation group, then everyone, proposers and voters
  (totals withheld where they would reveal a suppressed count: app.disclosure).
- **Organisation breakdown**: supports and opposes per amendment per organisation
  group, small numbers suppressed by the report's own helper.

Figures come from the Report (app.reporting), so they agree with the report page
and the CSV. The rows of the two large sheets are generated as the file is
written, never gathered into a second list.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, func, select

from app.cells import Percent
from app.disclosure import disclose_beside_public_total
from app.models import AuditEntry, Consultation
from app.numbers import is_whole_number
from app.ranking import OTHER, SMALL_NUMBER, natural_key
from app.reporting import OTHER_LABEL, Report, ReportRow, Wording, WordingReader, with_wordings
from app.sheets import Column, Sheet
from app.summary import AMENDMENT_FIELDS, amendment_facts, clause_line

UK = ZoneInfo("Europe/London")
WITHHELD = "(withheld by the moderators after voting closed; its votes still count)"
# The columns of the CSV and JSON exports (machine-readable; tests compare them with the
# report line by line).
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
KIND_LABELS = {"change": "Change", "delete": "Delete", "insert": "New clause"}

# (machine field of app.summary / app.exports, readable header, width, wraps)
AMENDMENT_COLUMNS = (
    ("clause", "Clause", 8, False),
    ("clause_order", "Clause order", 8, False),
    ("clause_heading", "Clause heading", 24, True),
    ("amendment", "Amendment", 11, False),
    ("kind", "Kind", 10, False),
    ("rank", "Rank", 7, False),
    ("original_text", "Original wording", 50, True),
    ("proposed_heading", "Proposed heading", 20, True),
    ("proposed_text", "Proposed wording", 50, True),
    ("rationale", "Rationale", 45, True),
    ("author", "Proposed by", 18, True),
    ("supports", "Supports", 9, False),
    ("opposes", "Opposes", 9, False),
    ("organisations", "Organisations", 12, False),
    ("support_share", "Support share", 10, False),
    ("interval_low", "95% interval low", 10, False),
    ("interval_high", "95% interval high", 10, False),
    ("score", "Score", 8, False),
    ("result", "Result", 16, True),
    ("leading", "Leads its clause", 9, False),
    ("too_close_to_call", "Too close to call", 9, False),
    ("mostly_one_organisation", "Mostly one organisation", 12, False),
    ("mostly_from", "Mostly from", 18, True),
    ("robustness", "Robustness", 30, True),
    ("written_against_older_version", "Written against an older version", 12, False),
    ("decision", "Decision", 10, False),
    ("decision_reason", "Reason", 40, True),
)


def opened_at(session: Session, consultation: Consultation) -> datetime | None:
    """When the consultation was first opened, from the audit log (None: never opened)."""
    return session.exec(
        select(func.min(AuditEntry.created_at)).where(
            AuditEntry.consultation_id == consultation.id, AuditEntry.action == "open"
        )
    ).one()


def clause_number(number: str) -> int | str:
    """A clause number as a spreadsheet should hold it: a plain integer as a number."""
    return int(number) if is_whole_number(number, 15) else number


def uk_time(value: datetime | None) -> datetime | None:
    """A stored UTC time as a UK wall-clock time (spreadsheets have no time zones)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UK).replace(tzinfo=None)


def _percent(value: float | None) -> Percent | None:
    return None if value is None else Percent(value)


def _clause_orders(report: Report) -> dict[str, int]:
    numbers = {r.clause.number for r in report.outcome.clauses}
    numbers |= {row.ranked.clause_ref for row in report.rows}
    return {n: i for i, n in enumerate(sorted(numbers, key=natural_key), start=1)}


def _in_clause_order(report: Report, orders: dict[str, int]) -> list[ReportRow]:
    # A list of references to the rows the report already holds, not copies of them.
    return sorted(report.rows, key=lambda row: (orders[row.ranked.clause_ref], row.ranked.rank))


def record(row: ReportRow, wording: Wording) -> dict:
    """One report row and its amendment's wording as plain values, in COLUMNS order
    (figures as app.summary states them).

    The CSV and JSON exports write these values; the workbook starts from them too.
    """
    r, a = row.ranked, row.amendment
    values = amendment_facts(r, row.leading, row.too_close_to_call, row.robustness)
    values.update(
        {
            "clause_heading": row.clause_heading,
            "written_against_older_version": row.outdated,
            "decision": row.decision or "",
            "decision_reason": (a.status_reason or "") if row.decision else "",
            "author": str(row.author),
            "proposed_heading": "" if a.withheld else a.proposed_heading or "",
            "proposed_text": WITHHELD if a.withheld else wording.proposed_text,
            "rationale": WITHHELD if a.withheld else wording.rationale,
        }
    )
    return values


def amendment_values(
    row: ReportRow, wording: Wording, original: str, order: int
) -> dict[str, object]:
    """One amendment's cells, keyed by machine field (see AMENDMENT_COLUMNS)."""
    r = row.ranked
    values = record(row, wording)
    values.update(
        {
            "clause": clause_number(r.clause_ref),
            "clause_order": order,
            "kind": r.kind,
            "original_text": "" if r.kind == "insert" else original,
            "support_share": _percent(r.support_share),
            "interval_low": _percent(r.interval[0]),
            "interval_high": _percent(r.interval[1]),
            "score": round(r.score, 3),
            "written_against_older_version": row.outdated,
        }
    )
    return values


def _amendment_rows(report: Report, read: WordingReader) -> Iterator[list[object]]:
    orders = _clause_orders(report)
    current = {r.clause.number: r.clause.text for r in report.outcome.clauses}
    for row, wording in with_wordings(_in_clause_order(report, orders), read):
        ref = row.ranked.clause_ref
        values = amendment_values(row, wording, current.get(ref, ""), orders[ref])
        yield [values[field] for field, *_ in AMENDMENT_COLUMNS]


def _summary_rows(report: Report, opened_at: datetime | None) -> list[tuple[str, object]]:
    c = report.consultation
    rules = report.rules
    votes = sum(row.ranked.votes for row in report.rows)
    changed = sum(1 for r in report.outcome.clauses if r.applied)
    return [
        ("Consultation", c.title),
        ("Address", c.slug),
        ("Status", c.status.capitalize()),
        ("Opened (UK time)", uk_time(opened_at)),
        ("Amendments advertised to close (UK time)", uk_time(c.amendments_close_at)),
        ("Voting advertised to close (UK time)", uk_time(c.voting_close_at)),
        ("Closed (UK time)", uk_time(c.closed_at)),
        ("Outcome published (UK time)", uk_time(c.published_at)),
        ("Participants", report.turnout["participants"]),
        ("Proposers", report.turnout["proposers"]),
        ("Voters", report.turnout["voters"]),
        ("Amendments ranked", len(report.rows)),
        ("Votes", votes),
        ("Clauses changed", changed),
        (
            "Rules",
            f"An amendment needs at least {rules.min_votes} votes from at least "
            f"{rules.min_organisations} organisations before it can carry. It carries when "
            "the lower end of the 95% interval of its support share is above 50%. "
            "The highest-ranked change that carries leads its clause.",
        ),
        (
            "Small numbers",
            f"Organisations with fewer than {SMALL_NUMBER} participants are counted together "
            f'as "{OTHER_LABEL}". Any count by organisation below {SMALL_NUMBER} is shown as '
            f'"fewer than {SMALL_NUMBER}", and no total reveals one.',
        ),
        ("Decisions", "Organisers' decisions applied" if report.uses_decisions else "None yet"),
        ("Ballot file SHA-256", c.ballots_sha256 or "not fixed until the consultation closes"),
        ("Counted (UK time)", uk_time(report.counted_at)),
        (
            "About this file",
            "Text written by participants and organisers appears exactly as written, "
            "always as text: no cell in this workbook is a formula.",
        ),
    ]


def _outcome_rows(report: Report) -> Iterator[list[object]]:
    for result in sorted(report.outcome.clauses, key=lambda r: natural_key(r.clause.number)):
        body = result.consolidated[0]
        adopted = ", ".join(c.amendments[0] for c in result.consolidated[1:] if c.amendments)
        yield [
            clause_number(result.clause.number),
            result.clause.heading,
            clause_line(result).split(": ", 1)[-1],
            result.leading.ref if result.leading else "",
            result.too_close_to_call,
            result.robustness.summary if result.robustness else "",
            result.summary,
            result.clause.text,
            "(deleted)" if body.deleted else body.text,
            adopted,
        ]


TOTAL_WITHHELD = "withheld (it would reveal a count below 5)"


def _turnout_rows(report: Report) -> list[list[object]]:
    rows: list[list[object]] = [
        [t.organisation, t.participants] for t in report.turnout_by_organisation
    ]
    totals = report.turnout
    for label, key in (
        ("All organisations", "participants"),
        ("People who proposed amendments", "proposers"),
        ("People who voted", "voters"),
    ):
        value = totals[key]
        rows.append([label, TOTAL_WITHHELD if value is None else value])
    return rows


def _breakdown_rows(report: Report) -> Iterator[list[object]]:
    orders = _clause_orders(report)
    for row in _in_clause_order(report, orders):
        r = row.ranked
        groups = sorted(r.by_group, key=lambda g: (g == OTHER, g))
        # The amendment's totals are published on the Amendments sheet, so a column with
        # any small count is withheld whole (app.disclosure).
        supports = disclose_beside_public_total({g: r.by_group[g].supports for g in groups})
        opposes = disclose_beside_public_total({g: r.by_group[g].opposes for g in groups})
        for group in groups:
            yield [
                clause_number(r.clause_ref),
                orders[r.clause_ref],
                r.ref,
                OTHER_LABEL if group == OTHER else group,
                supports[group],
                opposes[group],
            ]


def workbook(report: Report, read: WordingReader, opened_at: datetime | None = None) -> list[Sheet]:
    """The sheets of the briefing workbook, their big tables still to be generated.

    ``read`` reads the amendments' wording as the Amendments sheet is written.
    """
    summary = _summary_rows(report, opened_at)
    turnout = _turnout_rows(report)
    return [
        Sheet(
            "Summary",
            [Column("Item", 42, True), Column("Value", 90, True)],
            summary,
            len(summary),
            filter=False,
        ),
        Sheet(
            "Amendments",
            [Column(header, width, wrap) for _, header, width, wrap in AMENDMENT_COLUMNS],
            _amendment_rows(report, read),
            len(report.rows),
        ),
        Sheet(
            "Outcome by clause",
            [
                Column("Clause", 8),
                Column("Heading", 24, True),
                Column("Vote outcome", 30, True),
                Column("Leading amendment", 11),
                Column("Too close to call", 9),
                Column("Robustness", 30, True),
                Column("Outcome", 30, True),
                Column("Current wording", 50, True),
                Column("Final wording", 50, True),
                Column("New clauses adopted", 14, True),
            ],
            _outcome_rows(report),
            len(report.outcome.clauses),
        ),
        Sheet(
            "Turnout",
            [
                Column("Organisation", 40, True),
                Column("Participants", 24, True),
            ],
            turnout,
            len(turnout),
        ),
        Sheet(
            "Organisation breakdown",
            [
                Column("Clause", 8),
                Column("Clause order", 8),
                Column("Amendment", 11),
                Column("Organisation", 40, True),
                Column("Supports", 14, True),
                Column("Opposes", 14, True),
            ],
            _breakdown_rows(report),
            sum(len(row.ranked.by_group) for row in report.rows),
        ),
    ]
