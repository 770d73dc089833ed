"""The live ranking of a consultation's amendments."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import queries
from app.ranking import MIN_GROUP_SIZE, SINGLE_ORGANISATION_SHARE
from app.web import redirect, render


async def results(request: Request) -> Response:
    """Ranked amendments per clause, with shares, intervals, consensus and the leading amendment."""
    page = await request.app.state.database.run(queries.results_page, request.path_params["slug"])
    if page.consultation.status in ("closed", "published"):
        # Once closed the report takes over: organisers see it at once, everyone on publication.
        return redirect(f"/consultations/{page.consultation.slug}/report")
    return await render(
        request,
        "results/results.html",
        {
            "page": page,
            "consultation": page.consultation,
            "min_group": MIN_GROUP_SIZE,
            "single_share": int(SINGLE_ORGANISATION_SHARE * 100),
        },
    )
