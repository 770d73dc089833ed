"""The live ranking of a consultation's amendments, while voting is open."""

from __future__ import annotations

import time

import anyio
from anyio.lowlevel import RunVar
from starlette.requests import Request
from starlette.responses import Response

from app import queries
from app.db import Database
from app.lifecycle import results_visible
from app.models import Consultation
from app.ranking import (
    MIN_GROUP_SIZE,
    ORGANISATION_VOTE_CAP,
    SINGLE_ORGANISATION_SHARE,
)
from app.reporting import (
    Report,
    forget_live_report,
    kept_live_report,
    live_key,
    live_report,
)
from app.web import redirect, render, render_once

# Per event loop: the one view of each consultation's live results that may be counting
# it now, in a worker thread; the others wait here (app.reporting.live_report). Waiting
# on the loop rather than in threads leaves the few read threads to every other page
# while many people open the results at once.
_COUNTING: RunVar[dict[tuple, anyio.Lock]] = RunVar("redline_live_counts")


def _counting(key: tuple) -> anyio.Lock:
    try:
        locks = _COUNTING.get()
    except LookupError:
        locks = {}
        _COUNTING.set(locks)
    return locks.setdefault(key, anyio.Lock())


async def shared_live_report(database: Database, consultation: Consultation) -> Report:
    """app.reporting.live_report, with views that wait for a count waiting on the event
    loop: one view at a time counts (in a worker thread), and those that arrived before
    it started take its count without a thread of their own."""
    arrived = time.monotonic()
    engine = database.read_engine
    kept = kept_live_report(engine, consultation.id, arrived)
    if kept is not None:
        return kept
    async with _counting(live_key(engine, consultation.id)):
        kept = kept_live_report(engine, consultation.id, arrived)
        if kept is not None:
            return kept
        # A count is long work: in a worker thread, never on the event loop.
        return await database.run_in_thread(live_report, consultation, arrived)


async def results(request: Request) -> Response:
    """Ranked amendments and the outcome so far per clause, unless organisers hid them."""
    slug = request.path_params["slug"]

    database = request.app.state.database
    consultation = await database.run(queries.consultation_by_slug, slug)
    if consultation.status in ("closed", "published"):
        forget_live_report(database.read_engine, consultation.id)
        # Once closed the report takes over: organisers see it at once, everyone on publication.
        return redirect(f"/consultations/{consultation.slug}/report")
    report = None
    if results_visible(consultation.status, consultation.live_results):
        report = await shared_live_report(database, consultation)
    return await render(
        request,
        "results/results.html",
        {
            "report": report,
            "consultation": consultation,
            "ranking": render_once(
                request,
                "results/_ranking.html",
                report,
                report=report,
                consultation=report.consultation,
            )
            if report is not None
            else None,
            "min_group": MIN_GROUP_SIZE,
            "single_share": int(SINGLE_ORGANISATION_SHARE * 100),
            "vote_cap": ORGANISATION_VOTE_CAP,
        },
    )


async def how_ranking_works(request: Request) -> Response:
    """The ranking rule in plain English, with a worked example and the exact formulas."""
    from app.ranking import AmendmentTally, Counts, rank

    example = rank(
        [
            AmendmentTally(
                "A1",
                "4",
                {"Org A": Counts(6, 1), "Org B": Counts(3, 2), "Org C": Counts(0, 2)},
            ),
            AmendmentTally("A2", "4", {"Org A": Counts(40, 0), "Org B": Counts(0, 1)}),
        ]
    )
    return await render(
        request,
        "results/how_ranking_works.html",
        {
            "example": example,
            "min_group": MIN_GROUP_SIZE,
            "single_share": int(SINGLE_ORGANISATION_SHARE * 100),
            "vote_cap": ORGANISATION_VOTE_CAP,
        },
    )
