"""Casting, changing and withdrawing a vote."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import queries
from app.auth import csrf_protected, remember_user, session_user_id, still_signed_in
from app.eligibility import vote_refusal
from app.errors import InvalidInput, NotAllowed, WordingChanged
from app.input_rules import FORM_RULES, field_problems
from app.models import Amendment, utcnow
from app.rate_limiting import count_in_write, rate_limited
from app.services import SessionEnded, cast_vote, participant_of, window_of
from app.views.amendments import clause_url
from app.views.consultations import clause
from app.web import form_fields, is_htmx, redirect, render


@rate_limited("votes", in_write=True)
@csrf_protected
async def vote(request: Request) -> Response:
    """Support, oppose or withdraw; htmx gets the updated widget, others a redirect back."""
    amendment_id = int(request.path_params["amendment_id"])
    user_id = session_user_id(request)
    if user_id is None:
        raise NotAllowed("Sign in to vote on amendments.")
    fields = await form_fields(request, "stance", "wording")
    stance = fields["stance"]
    if problems := field_problems({"stance": stance}, FORM_RULES["vote"]):
        raise InvalidInput(problems)
    database = request.app.state.database

    # One short write transaction: the session's account, the vote, and what the widget
    # shows after it, read under the vote's locks, so no other transaction is needed.
    def vote_as_session_user(session):
        # The vote's rate-limit count, first, in this worker-thread call (see rate_limited).
        count_in_write(request, session)
        return cast_vote(
            session,
            user_id,
            amendment_id,
            None if stance == "withdraw" else stance,
            # The fingerprint of the wording the voter read: absent from scripts' posts.
            wording=fields["wording"] or None,
            # Checked on the account as read under the vote's locks: no second read of it.
            signed_in=lambda user: still_signed_in(request, user),
        )

    try:
        cast = await database.write(vote_as_session_user)
    except SessionEnded:
        remember_user(request, user_id, None)  # the session is forgotten in this browser
        raise NotAllowed("Sign in to vote on amendments.") from None
    except WordingChanged as refused:
        if is_htmx(request):
            raise  # an error summary swapped into the vote widget

        # Without JavaScript: the clause page with its new wording, the refusal on top.
        def address(session):
            return queries.clause_page_address(session, session.get(Amendment, amendment_id))

        slug, number = await database.run(address)
        request.scope["path_params"] = {"slug": slug, "number": number}
        return await clause(request, {f"vote-{amendment_id}": refused.message})
    user = remember_user(request, user_id, cast.voter)
    if not is_htmx(request):
        slug, number = await database.run(queries.clause_page_address, cast.amendment)
        return redirect(f"{clause_url(slug, number)}?voted={amendment_id}#amendment-{amendment_id}")
    refusal = vote_refusal(
        participant_of(user), window_of(cast.consultation), cast.amendment.status, utcnow()
    )
    return await render(
        request,
        "_vote_widget.html",
        # A VoteCast has what the widget reads of an amendment row (queries.AmendmentRow).
        {"row": cast, "refusal": refusal, "consultation": cast.consultation, "announce": True},
    )
