"""Proposing and withdrawing amendments."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import queries
from app.auth import csrf_protected, current_user
from app.eligibility import proposal_refusal
from app.errors import InvalidInput, NotAllowed
from app.input_rules import FORM_RULES, field_problems
from app.models import Amendment, utcnow
from app.proposals import KIND_LABELS, MAX_RATIONALE_CHARS, MAX_TEXT_CHARS, ProposalInput
from app.rate_limiting import rate_limited
from app.services import (
    participant_of,
    propose_amendment,
    window_of,
    withdraw_amendment,
)
from app.web import form_fields, is_htmx, redirect, render

# The order fields appear on the form, so that the error summary follows it.
FIELD_ORDER = ("kind", "heading", "text", "rationale")


def clause_url(slug: str, number: str) -> str:
    return f"/consultations/{slug}/clauses/{number}"


async def _propose_context(request: Request, form: ProposalInput) -> dict:
    slug, number = request.path_params["slug"], request.path_params["number"]

    def load(session):
        found = queries.consultation_by_slug(session, slug)
        clause, version = queries.clause_with_version(session, found.id, number)
        return found, clause, version

    consultation, clause, version = await request.app.state.database.run(load)
    return {
        "consultation": consultation,
        "clause": clause,
        "version": version,
        "form": form,
        "kinds": KIND_LABELS,
        "max_text": MAX_TEXT_CHARS,
        "max_rationale": MAX_RATIONALE_CHARS,
        "errors": {},
    }


async def propose_form(request: Request) -> Response:
    """The form to propose an amendment, pre-filled with the current wording."""
    context = await _propose_context(request, ProposalInput())
    user = await current_user(request)
    refusal = proposal_refusal(participant_of(user), window_of(context["consultation"]), utcnow())
    if refusal:
        raise NotAllowed(refusal)
    context["form"] = ProposalInput(kind="change", text=context["version"].text)
    return await render(request, "amendments/propose.html", context)


@rate_limited("proposals")
@csrf_protected
async def propose(request: Request) -> Response:
    """Store a proposal; on bad input show the form again with errors and the typed text."""
    slug, number = request.path_params["slug"], request.path_params["number"]
    fields = await form_fields(request, *FIELD_ORDER)
    form = ProposalInput(**fields)
    user = await current_user(request)
    if user is None:
        raise NotAllowed("Sign in to propose an amendment.")
    try:
        if problems := field_problems(fields, FORM_RULES["propose"]):
            raise InvalidInput(problems)
        amendment = await request.app.state.database.write(
            propose_amendment, user.id, slug, number, form
        )
    except InvalidInput as failed:
        context = await _propose_context(request, form)
        context["errors"] = {k: failed.errors[k] for k in FIELD_ORDER if k in failed.errors}
        template = (
            "amendments/_propose_form.html" if is_htmx(request) else "amendments/propose.html"
        )
        return await render(request, template, context, status_code=422)
    target = f"{clause_url(slug, number)}?sort=newest&proposed=1#amendment-{amendment.id}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return redirect(target)


@csrf_protected
async def withdraw(request: Request) -> Response:
    """The author withdraws their own amendment."""
    user = await current_user(request)
    if user is None:
        raise NotAllowed("Sign in to withdraw your amendment.")
    amendment_id = int(request.path_params["amendment_id"])
    database = request.app.state.database
    amendment = await database.write(withdraw_amendment, user.id, amendment_id)
    # Read after the write's commit, so that the write lock covers the withdrawal alone.
    slug, number = await database.run(queries.clause_page_address, amendment)
    return redirect(f"{clause_url(slug, number)}#amendment-{amendment_id}")


@rate_limited("reports")
@csrf_protected
async def flag(request: Request) -> Response:
    """Any signed-in participant reports an amendment to the moderators, with a reason."""
    from app.organising import flag_amendment

    user = await current_user(request)
    if user is None:
        raise NotAllowed("Sign in to report an amendment.")
    amendment_id = int(request.path_params["amendment_id"])
    reason = (await form_fields(request, "reason"))["reason"]
    database = request.app.state.database

    def address(session):
        return queries.clause_page_address(session, session.get(Amendment, amendment_id))

    try:
        if problems := field_problems({"reason": reason}, FORM_RULES["flag"]):
            raise InvalidInput(problems)
        await database.write(flag_amendment, user.id, amendment_id, reason)
    except InvalidInput as failed:
        from app.views.consultations import clause

        slug, number = await database.run(address)
        request.scope["path_params"] = {"slug": slug, "number": number}
        return await clause(request, {f"flag-{amendment_id}": failed.message})
    slug, number = await database.run(address)
    return redirect(f"{clause_url(slug, number)}?reported={amendment_id}#amendment-{amendment_id}")
