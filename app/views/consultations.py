"""Home, consultation and clause pages."""

from __future__ import annotations

from secrets import token_hex

from starlette.requests import Request
from starlette.responses import Response

from app import queries
from app.auth import run_as_session_user
from app.eligibility import proposal_refusal, vote_refusal
from app.models import utcnow
from app.numbers import whole_number
from app.published import clause_result
from app.services import participant_of, window_of
from app.web import render


async def home(request: Request) -> Response:
    """Consultations with their status and closing dates."""

    def load(session, _user):
        return queries.list_consultations(session, include_drafts=False)

    consultations = await run_as_session_user(request, load)
    return await render(request, "home.html", {"consultations": consultations})


async def consultation(request: Request) -> Response:
    """The numbered clauses of one consultation, with amendment counts."""
    slug = request.path_params["slug"]

    def load(session, user):
        found = queries.consultation_by_slug(session, slug)
        return user, found, queries.clause_rows(session, found.id)

    user, found, clauses = await run_as_session_user(request, load)
    return await render(
        request,
        "consultations/consultation.html",
        {
            "consultation": found,
            "clauses": clauses,
            "proposal_refusal": proposal_refusal(participant_of(user), window_of(found), utcnow()),
        },
    )


# How the clause page shows each amendment; a query parameter, so it works without JavaScript.
DIFF_VIEWS = {
    "changes": "Tracked changes",
    "proposed": "Proposed text only",
    "side-by-side": "Current and proposed side by side",
}


def diff_view(request: Request) -> str:
    """The ?view= the reader chose, tracked changes when absent or unknown."""
    value = request.query_params.get("view", "changes")
    return value if value in DIFF_VIEWS else "changes"


def page_number(request: Request) -> int:
    """The ?page= number, 1 when absent or not a sensible number."""
    value = request.query_params.get("page", "1")
    return whole_number(value, 6) or 1


async def clause(request: Request, errors: dict | None = None) -> Response:
    """One clause: its wording and its amendments as tracked changes, with votes."""
    sort = request.query_params.get("sort", "shuffled")
    # The shuffle is stable for each visitor: by account, or by a random seed in the session.
    visitor_seed = request.session.get("order_seed") or token_hex(8)

    def load(session, user):
        # One session for the viewer and the page.
        found = queries.clause_page(
            session,
            request.path_params["slug"],
            request.path_params["number"],
            user.id if user else None,
            sort,
            f"user-{user.id}" if user else visitor_seed,
            page_number(request),
        )
        return user, found

    database = request.app.state.database
    # The ranking so far ranks every amendment of the clause: long work, off the loop.
    user, page = await run_as_session_user(request, load, in_thread=sort == "ranked")
    outcome = None
    if page.consultation.status == "published":
        # From the published report, which the first view after a change builds (most of
        # a second at a national consultation's size): in a worker thread, off the loop.
        outcome = await database.run_in_thread(clause_result, page.consultation, page.clause.number)
    if user is None:
        request.session.setdefault("order_seed", visitor_seed)
    now = utcnow()
    window = window_of(page.consultation)
    participant = participant_of(user)
    return await render(
        request,
        "consultations/clause.html",
        {
            "page": page,
            "consultation": page.consultation,
            "sort": page.sort,
            "view": diff_view(request),
            "views": DIFF_VIEWS,
            "sorts": {
                key: label
                for key, label in queries.SORTS.items()
                if page.results_visible or key in queries.SORTS_WHILE_HIDDEN
            },
            "proposal_refusal": proposal_refusal(participant, window, now),
            "vote_refusals": {
                row.amendment.id: vote_refusal(participant, window, row.amendment.status, now)
                for row in page.amendments
            },
            "errors": errors or {},
            "outcome": outcome,
        },
        status_code=422 if errors else 200,
    )
