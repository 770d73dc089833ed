"""Pages for organisers (and administrators) only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import queries
from app.auth import require_organiser
from app.web import render


async def index(request: Request) -> Response:
    """Every consultation, drafts included, with status, closing dates and counts."""
    await require_organiser(request)
    consultations = await request.app.state.database.run(
        queries.list_consultations, include_drafts=True
    )
    return await render(request, "organise/index.html", {"consultations": consultations})
