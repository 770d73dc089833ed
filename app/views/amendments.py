"""Proposing and withdrawing amendments."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app import queries
from app.auth import csrf_protected, current_user
from app.eligibility import proposal_refusal
from app.errors import AmendmentHasVotes, Conflict, InvalidInput, NotAllowed, NotFound
from app.input_rules import FORM_RULES, field_problems
from app.models import Amendment, Clause, ClauseVersion, Consultation, utcnow
from app.proposals import KIND_LABELS, MAX_RATIONALE_CHARS, MAX_TEXT_CHARS, ProposalInput
from app.rate_limiting import rate_limited
from app.services import (
    edit_amendment,
    has_votes,
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


def _form_context(
    consultation: Consultation, clause: Clause, version: ClauseVersion, form: ProposalInput
) -> dict:
    """What the propose page needs; ``edit_context`` changes the words for an edit."""
    url = clause_url(consultation.slug, clause.number)
    return {
        "consultation": consultation,
        "clause": clause,
        "version": version,
        "form": form,
        "kinds": KIND_LABELS,
        "max_text": MAX_TEXT_CHARS,
        "max_rationale": MAX_RATIONALE_CHARS,
        "errors": {},
        "page_title": f"Propose an amendment to clause {clause.number}",
        "heading": "Propose an amendment",
        "form_action": f"{url}/amend",
        "submit_label": "Publish amendment",
        "cancel_url": url,
        "editing": False,
    }


async def _propose_context(request: Request, form: ProposalInput) -> dict:
    slug, number = request.path_params["slug"], request.path_params["number"]

    def load(session):
        found = queries.consultation_by_slug(session, slug)
        clause, version = queries.clause_with_version(session, found.id, number)
        return found, clause, version

    return _form_context(*await request.app.state.database.run(load), form)


async def _edit_context(request: Request, amendment_id: int) -> tuple[dict, Amendment]:
    """The edit page of one amendment, pre-filled with its stored wording."""

    def load(session):
        amendment = session.get(Amendment, amendment_id)
        if amendment is None:
            raise NotFound("There is no such amendment.")
        consultation = session.get(Consultation, amendment.consultation_id)
        clause = session.get(Clause, amendment.clause_id)
        version = session.get(ClauseVersion, amendment.clause_version_id)
        return amendment, consultation, clause, version, has_votes(session, amendment_id)

    amendment, consultation, clause, version, voted = await request.app.state.database.run(load)
    if consultation is None or consultation.status == "draft":
        raise NotFound("There is no such amendment.")
    kind = amendment.kind if amendment.proposed_text or amendment.kind == "insert" else "delete"
    form = ProposalInput(
        kind=kind,
        heading=amendment.proposed_heading or "",
        text=amendment.proposed_text or version.text,
        rationale=amendment.rationale,
    )
    context = _form_context(consultation, clause, version, form)
    context.update(
        page_title=f"Change amendment {amendment.id} to clause {clause.number}",
        heading=f"Change amendment {amendment.id}",
        form_action=f"/amendments/{amendment.id}/edit",
        submit_label="Save changes",
        cancel_url=f"{clause_url(consultation.slug, clause.number)}#amendment-{amendment.id}",
        editing=True,
        voted=voted,
    )
    return context, amendment


def _as_new_amendment(context: dict, amendment_id: int) -> dict:
    """The edit page turned into the propose page, keeping what the author typed."""
    new = _form_context(
        context["consultation"], context["clause"], context["version"], context["form"]
    )
    new["notice"] = (
        f"People have voted on amendment {amendment_id}, so it can no longer be changed: "
        "no one's vote may move to words they did not read. Your wording is below: publish "
        f"it as a new amendment, and withdraw amendment {amendment_id} if you no longer want it."
    )
    return new


async def _form_page(request: Request, context: dict, status_code: int = 200) -> Response:
    """The propose or edit page; to htmx, only the part of <main> it swaps."""
    context["htmx_fragment"] = is_htmx(request)
    template = "amendments/_propose_page.html" if is_htmx(request) else "amendments/propose.html"
    return await render(request, template, context, status_code=status_code)


def _after_form(request: Request, target: str) -> Response:
    """Where a successful post goes: a full page load, at the top, where the banner is."""
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return redirect(target)


async def propose_form(request: Request) -> Response:
    """The form to propose an amendment, pre-filled with the current wording."""
    context = await _propose_context(request, ProposalInput())
    user = await current_user(request)
    refusal = proposal_refusal(participant_of(user), window_of(context["consultation"]), utcnow())
    if refusal:
        raise NotAllowed(refusal)
    context["form"] = ProposalInput(kind="change", text=context["version"].text)
    return await _form_page(request, context)


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
        return await _form_page(request, context, status_code=422)
    # No #fragment: the page opens at the top, where the success banner links to it.
    return _after_form(request, f"{clause_url(slug, number)}?sort=newest&proposed={amendment.id}")


async def edit_form(request: Request) -> Response:
    """The author's form to change their amendment; once voted on, a form for a new one."""
    user = await current_user(request)
    if user is None:
        raise NotAllowed("Sign in to change your amendment.")
    amendment_id = int(request.path_params["amendment_id"])
    context, amendment = await _edit_context(request, amendment_id)
    if amendment.author_id != user.id:
        raise NotAllowed("Only the author of an amendment can change it.")
    if amendment.status != "open":
        raise Conflict(f"This amendment is {amendment.status} and cannot be changed.")
    refusal = proposal_refusal(participant_of(user), window_of(context["consultation"]), utcnow())
    if refusal:
        raise NotAllowed(refusal)
    if context["voted"]:
        return await _form_page(request, _as_new_amendment(context, amendment_id))
    return await _form_page(request, context)


@rate_limited("proposals")
@csrf_protected
async def edit(request: Request) -> Response:
    """Save the author's changes; bad input or a vote meanwhile keeps what they typed."""
    user = await current_user(request)
    if user is None:
        raise NotAllowed("Sign in to change your amendment.")
    amendment_id = int(request.path_params["amendment_id"])
    fields = await form_fields(request, *FIELD_ORDER)
    form = ProposalInput(**fields)
    database = request.app.state.database
    try:
        # The same checks before the database as a new proposal (app.input_rules).
        if problems := field_problems(fields, FORM_RULES["propose"]):
            raise InvalidInput(problems)
        amendment = await database.write(edit_amendment, user.id, amendment_id, form)
    except (InvalidInput, AmendmentHasVotes) as failed:
        context, _ = await _edit_context(request, amendment_id)
        context["form"] = form
        if isinstance(failed, AmendmentHasVotes):
            return await _form_page(request, _as_new_amendment(context, amendment_id), 409)
        context["errors"] = {k: failed.errors[k] for k in FIELD_ORDER if k in failed.errors}
        return await _form_page(request, context, status_code=422)
    slug, number = await database.run(queries.clause_page_address, amendment)
    return _after_form(request, f"{clause_url(slug, number)}?edited={amendment_id}")


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
    return redirect(f"{clause_url(slug, number)}?reported={amendment_id}")
