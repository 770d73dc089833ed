"""The ranked amendment report and its downloads.

Organisers see it once the consultation closes; everyone once the outcome is published.
"""

from __future__ import annotations

from collections import Counter

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from app import queries
from app.auth import current_user, role_of
from app.briefing import opened_at
from app.errors import Conflict, NotAllowed, NotFound
from app.exports import FORMATS, export_stream
from app.models import Consultation
from app.plain_summary import PlainSummary, plain_summary
from app.reporting import Report, frozen_report, wordings
from app.tallies import ballot_file as ballot_file_chunks
from app.web import render


async def _visible_consultation(request: Request) -> Consultation:
    slug = request.path_params["slug"]
    consultation = await request.app.state.database.run(
        queries.consultation_by_slug, slug, include_drafts=True
    )
    user = await current_user(request)
    organiser = role_of(user, request.app.state.settings) in ("organiser", "admin")
    if consultation.status == "published":
        return consultation
    if consultation.status == "closed" and organiser:
        return consultation
    if consultation.status == "closed":
        raise NotAllowed(
            "The organisers are deciding on the amendments; the report is published afterwards."
        )
    if consultation.status == "draft" and not organiser:
        raise NotFound("There is no consultation at this address.")
    raise Conflict(
        "The report is ready once the consultation closes. See the live results meanwhile."
    )


def summary_of(report: Report) -> PlainSummary:
    """ "We asked, you said, we did" from the report's own figures and outcome."""
    by_clause = Counter(row.ranked.clause_ref for row in report.rows)
    reasons = {
        row.ranked.ref: row.amendment.status_reason or ""
        for row in report.rows
        if row.decision and not row.amendment.withheld
    }
    return plain_summary(
        report.consultation.title,
        report.outcome,
        participants=report.turnout["participants"],
        proposers=report.turnout["proposers"],
        voters=report.turnout["voters"],
        amendments=len(report.rows),
        votes=sum(row.ranked.votes for row in report.rows),
        amendments_by_clause=by_clause,
        reasons=reasons,
        published=report.consultation.status == "published",
    )


async def report(request: Request) -> Response:
    """The report page: a plain-English summary first, then the outcome, ranking, turnout,
    charts, the consolidated text and, last, how to check it."""
    consultation = await _visible_consultation(request)
    # Built from a million frozen ballots in a fraction of a second: kept off the loop.
    built = await request.app.state.database.run_in_thread(frozen_report, consultation)
    return await render(
        request,
        "report/report.html",
        {"consultation": consultation, "report": built, "summary": summary_of(built)},
    )


async def download(request: Request) -> Response:
    """The report as CSV, XLSX, ODS, JSON, ODT or DOCX, streamed."""
    fmt = request.path_params["format"]
    if fmt not in FORMATS:
        # The requested name is not repeated: any text can be placed in an address.
        raise NotFound(f"There is no such download; choose one of {', '.join(FORMATS)}.")
    consultation = await _visible_consultation(request)
    database = request.app.state.database
    built = await database.run_in_thread(frozen_report, consultation)
    opened = await database.run(opened_at, consultation)

    def read(ids):
        # The amendments' wording, a chunk at a time as the response is written, each
        # chunk in a short session of its own (as the ballot file): none is held open
        # while a client reads. Streamed responses are written from a worker thread.
        return database.call(wordings, ids)

    return StreamingResponse(
        export_stream(built, fmt, consultation.ballots_sha256, opened, wordings=read),
        media_type=FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="{consultation.slug}-report.{fmt}"'},
    )


async def ballot_file(request: Request) -> Response:
    """The ballot file frozen at closing, streamed in chunks without pinning a connection."""
    consultation = await _visible_consultation(request)
    return StreamingResponse(
        ballot_file_chunks(request.app.state.database, consultation),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{consultation.slug}-ballots.csv"'},
    )
