"""The live ranking of a consultation's amendments, while voting is open."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import queries
from app.lifecycle import results_visible
from app.ranking import (
    MIN_GROUP_SIZE,
    ORGANISATION_VOTE_CAP,
    SINGLE_ORGANISATION_SHARE,
)
from app.reporting import live_report
from app.web import redirect, render, render_once


async def results(request: Request) -> Response:
    """Ranked amendments and the outcome so far per clause, unless organisers hid them."""
    slug = request.path_params["slug"]

    def load(session):
        # One session (one trip to a worker thread) for the consultation and its report.
        found = queries.consultation_by_slug(session, slug)
        if found.status in ("closed", "published"):
            return found, None
        visible = results_visible(found.status, found.live_results)
        return found, live_report(session, found) if visible else None

    consultation, report = await request.app.state.database.run(load)
    if consultation.status in ("closed", "published"):
        # Once closed the report takes over: organisers see it at once, everyone on publication.
        return redirect(f"/consultations/{consultation.slug}/report")
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
