"""Pages for organisers (and administrators): create, edit, run, moderate, decide, audit."""

from __future__ import annotations

import io
from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from app import dates, lifecycle, organising, queries, tasklist
from app.auth import csrf_protected, require_organiser
from app.cells import CsvWriter
from app.changes import spelled_out
from app.dashboard import amendments_by_status, participation, task_facts
from app.documents import MAX_DOCUMENT_BYTES
from app.errors import Conflict, InvalidInput, NotFound
from app.input_rules import FORM_RULES, field_problems
from app.models import Amendment
from app.numbers import is_whole_number
from app.reporting import build_report, wordings
from app.web import form_fields, london_time, redirect, render


async def index(request: Request) -> Response:
    """Every consultation, drafts included, with status, closing dates and counts."""
    await require_organiser(request)
    consultations = await request.app.state.database.run(
        queries.list_consultations, include_drafts=True
    )
    return await render(request, "organise/index.html", {"consultations": consultations})


async def _dashboard_context(request: Request, slug: str) -> dict:
    def load(session):
        consultation = queries.consultation_by_slug(session, slug, include_drafts=True)
        return (
            consultation,
            queries.clause_rows(session, consultation.id),
            task_facts(session, consultation),
            participation(session, consultation),
        )

    # Counting participation reads every voter: kept off the event loop.
    consultation, clauses, facts, figures = await request.app.state.database.run_in_thread(load)
    return {
        "consultation": consultation,
        "clauses": clauses,
        "queue_size": facts.queue_size,
        "stages": tasklist.stages(facts),
        "participation": figures,
        "actions": lifecycle.available_actions(consultation.status),
        "action_labels": lifecycle.LABELS,
        "errors": {},
        "field_ids": {},
        "date_parts": {},
        "form": _details_form(consultation),
    }


def _details_form(consultation) -> dict:
    return {
        "title": consultation.title,
        "summary": consultation.summary,
        "eligible_domains": consultation.eligible_domains.replace("\n", ", "),
        "amendments_close_at": dates.entry_of(consultation.amendments_close_at),
        "voting_close_at": dates.entry_of(consultation.voting_close_at),
        "live_results": "yes" if consultation.live_results else "no",
        "min_votes": str(consultation.min_votes),
        "min_organisations": str(consultation.min_organisations),
    }


DATE_FIELDS = {"amendments_close_at": "Amendments close", "voting_close_at": "Voting closes"}


async def _date_fields(request: Request) -> dict[str, dates.DateEntry]:
    """The day, month, year and time typed for each closing time, as sent."""
    names = [f"{field}-{part}" for field in DATE_FIELDS for part in dates.PARTS]
    values = await form_fields(request, *names)
    return {
        field: dates.DateEntry(*(values[f"{field}-{part}"] for part in dates.PARTS))
        for field in DATE_FIELDS
    }


def _typed_parts(entries: dict[str, dates.DateEntry]) -> dict[str, str]:
    """Each part of each date as typed, by its form field name, for app.input_rules."""
    return {
        f"{field}-{part}": getattr(entry, part)
        for field, entry in entries.items()
        for part in dates.PARTS
    }


def _parse_dates(
    entries: dict[str, dates.DateEntry], errors: dict, field_ids: dict, date_parts: dict
) -> dict[str, datetime | None]:
    """Each closing time in UTC; a wrong one adds its message and the parts to highlight."""
    parsed: dict[str, datetime | None] = {}
    for field, label in DATE_FIELDS.items():
        try:
            parsed[field] = dates.parse_london(entries[field], label)
        except dates.DateEntryError as wrong:
            parsed[field] = None
            errors[field] = wrong.problem.message
            field_ids[field] = f"{field}-{wrong.problem.first_part}"
            date_parts[field] = wrong.problem.parts
    return parsed


async def dashboard(request: Request) -> Response:
    """One consultation: its task list, figures, details form, lifecycle actions and clauses."""
    await require_organiser(request)
    context = await _dashboard_context(request, request.path_params["slug"])
    return await render(request, "organise/consultation.html", context)


@csrf_protected
async def update_details(request: Request) -> Response:
    """Save title, summary, eligible domains and closing times."""
    user = await require_organiser(request)
    slug = request.path_params["slug"]
    fields = await form_fields(
        request,
        "title",
        "summary",
        "eligible_domains",
        "live_results",
        "min_votes",
        "min_organisations",
    )
    entries = await _date_fields(request)
    errors: dict[str, str] = field_problems(
        {**fields, **_typed_parts(entries)}, FORM_RULES["details"]
    )
    field_ids: dict[str, str] = {}
    date_parts: dict[str, tuple[str, ...]] = {}
    closing = _parse_dates(entries, errors, field_ids, date_parts)
    try:
        if errors:
            raise InvalidInput(errors)
        await request.app.state.database.write(
            organising.update_details,
            user.id,
            slug,
            title=fields["title"],
            summary=fields["summary"],
            eligible_domains=fields["eligible_domains"],
            amendments_close_at=closing["amendments_close_at"],
            voting_close_at=closing["voting_close_at"],
            live_results={"yes": True, "no": False}.get(fields["live_results"]),
            min_votes=fields["min_votes"] or None,
            min_organisations=fields["min_organisations"] or None,
        )
    except InvalidInput as failed:
        context = await _dashboard_context(request, slug)
        context["errors"] = {**errors, **failed.errors}
        for field in DATE_FIELDS:
            if field in failed.errors and field not in date_parts:
                # Refused as a whole (say, amendments closing after voting): every part.
                field_ids[field] = f"{field}-day"
                date_parts[field] = dates.PARTS
        context["field_ids"] = field_ids
        context["date_parts"] = date_parts
        context["form"] = {**fields, **entries}
        return await render(request, "organise/consultation.html", context, status_code=422)
    return redirect(f"/organise/{slug}?saved=details")


CONFIRMED_STEPS = ("close", "publish")


@csrf_protected
async def change_status(request: Request) -> Response:
    """Open, close or publish.

    Closing and publishing cannot be undone, so they happen only from their
    confirmation page (``confirm=yes``); a bare press is sent there first. A refusal
    shows the dashboard with what is still to do, never a dead end.
    """
    user = await require_organiser(request)
    slug = request.path_params["slug"]
    fields = await form_fields(request, "action", "confirm")
    action = fields["action"]
    if problems := field_problems(fields, FORM_RULES["status"]):
        raise InvalidInput(problems)
    if action in CONFIRMED_STEPS and fields["confirm"] != "yes":
        return redirect(f"/organise/{slug}/{action}")
    try:
        # Closing builds the report and freezes every ballot: minutes of work at a
        # national consultation's size, which must not hold up the event loop.
        await request.app.state.database.write_in_thread(
            organising.change_status, user.id, slug, action
        )
    except Conflict as refused:
        return await _refused(request, slug, action, refused.message)
    return redirect(f"/organise/{slug}?saved={action}")


async def _refused(request: Request, slug: str, action: str, message: str) -> Response:
    """The dashboard, its task list and the reason a step was refused (409)."""
    context = await _dashboard_context(request, slug)
    # The refusal heads the error summary and links to the task list below it.
    context["errors"] = {"tasks": message}
    return await render(request, "organise/consultation.html", context, status_code=409)


async def confirm_step(request: Request) -> Response:
    """ "Are you sure ...?": what closing or publishing changes, before it is done."""
    await require_organiser(request)
    slug = request.path_params["slug"]
    action = request.url.path.rstrip("/").rsplit("/", 1)[-1]  # "close" or "publish"

    def load(session):
        consultation = queries.consultation_by_slug(session, slug, include_drafts=True)
        by_status = amendments_by_status(session, consultation.id)
        return consultation, task_facts(session, consultation), by_status["accepted"]

    consultation, facts, accepted = await request.app.state.database.run_in_thread(load)
    refusal = lifecycle.transition_refusal(action, consultation.status)
    remaining = tasklist.blockers(facts, action)
    if action == "publish" and remaining and not refusal:
        refusal = "Publishing needs every amendment decided and every clause resolved."
    if refusal:
        return await _refused(request, slug, action, refusal)
    if action == "close":
        confirmation = tasklist.close_confirmation(
            consultation.title, consultation.voting_close_at, facts.now
        )
    else:
        confirmation = tasklist.publish_confirmation(consultation.title, facts.amendments, accepted)
    return await render(
        request,
        "organise/confirm.html",
        {"consultation": consultation, "action": action, "confirmation": confirmation},
    )


async def new_form(request: Request) -> Response:
    """Upload a Markdown document to create a draft consultation."""
    await require_organiser(request)
    form = dict.fromkeys(DATE_FIELDS, dates.DateEntry())
    return await render(
        request,
        "organise/new.html",
        {"errors": {}, "form": form, "max_bytes": MAX_DOCUMENT_BYTES},
    )


@csrf_protected
async def create(request: Request) -> Response:
    """Create a draft from the uploaded document; errors say what and where, nothing is kept."""
    user = await require_organiser(request)
    form = await request.form()
    upload = form.get("document")
    fields = {
        k: form.get(k) if isinstance(form.get(k), str) else ""
        for k in ("slug", "eligible", "document_text")
    }
    entries = await _date_fields(request)
    errors: dict[str, str] = field_problems(
        {**fields, **_typed_parts(entries)}, FORM_RULES["create"]
    )
    field_ids: dict[str, str] = {}
    date_parts: dict[str, tuple[str, ...]] = {}
    data = b""
    has_file = upload is not None and not isinstance(upload, str) and bool(upload.filename)
    if fields["document_text"].strip() and not has_file and not errors:
        # Typed into the form instead of uploaded: the same importer reads it.
        data = fields["document_text"].encode("utf-8")
        if len(data) > MAX_DOCUMENT_BYTES:
            errors["document_text"] = f"The text must be under {MAX_DOCUMENT_BYTES:,} bytes"
    elif not has_file and not errors:
        errors["document"] = "Choose a Markdown file to upload, or type the guidance below"
    elif has_file:
        data = await upload.read(MAX_DOCUMENT_BYTES + 1)
        if len(data) > MAX_DOCUMENT_BYTES:
            errors["document"] = f"The file must be smaller than {MAX_DOCUMENT_BYTES:,} bytes"
    # After the document's own checks, so the error summary follows the page's order.
    closing = _parse_dates(entries, errors, field_ids, date_parts)
    try:
        if errors:
            raise InvalidInput(errors)
        consultation = await request.app.state.database.write(
            organising.create_from_document,
            user.id,
            data,
            fields["slug"] or None,
            fields["eligible"],
            "document" if has_file else "document_text",
            **closing,
        )
    except InvalidInput as failed:
        for field in DATE_FIELDS:
            if field in failed.errors and field not in date_parts:
                field_ids[field], date_parts[field] = f"{field}-day", dates.PARTS
        return await render(
            request,
            "organise/new.html",
            {
                "errors": {**errors, **failed.errors},
                "form": {**fields, **entries},
                "field_ids": field_ids,
                "date_parts": date_parts,
                "max_bytes": MAX_DOCUMENT_BYTES,
            },
            status_code=422,
        )
    return redirect(f"/organise/{consultation.slug}?saved=created")


async def revise_form(request: Request) -> Response:
    """The form for a new version of a clause."""
    await require_organiser(request)
    return await render(request, "organise/revise.html", await _revise_context(request, None))


async def _revise_context(request: Request, form: dict | None) -> dict:
    slug, number = request.path_params["slug"], request.path_params["number"]

    def load(session):
        consultation = queries.consultation_by_slug(session, slug, include_drafts=True)
        clause, version = queries.clause_with_version(session, consultation.id, number)
        return consultation, clause, version

    consultation, clause, version = await request.app.state.database.run(load)
    return {
        "consultation": consultation,
        "clause": clause,
        "version": version,
        "form": form or {"heading": version.heading, "text": version.text, "reason": ""},
        "errors": {},
    }


@csrf_protected
async def revise(request: Request) -> Response:
    """Store a new clause version."""
    user = await require_organiser(request)
    slug, number = request.path_params["slug"], request.path_params["number"]
    fields = await form_fields(request, "heading", "text", "reason")
    try:
        if problems := field_problems(fields, FORM_RULES["revise"]):
            raise InvalidInput(problems)
        await request.app.state.database.write(
            organising.revise_clause,
            user.id,
            slug,
            number,
            fields["heading"],
            fields["text"],
            fields["reason"],
        )
    except InvalidInput as failed:
        context = await _revise_context(request, fields)
        context["errors"] = failed.errors
        return await render(request, "organise/revise.html", context, status_code=422)
    return redirect(f"/organise/{slug}?saved=revised")


async def _consultation_with(request: Request, read):
    """The consultation named in the path (drafts included) and ``read(session, its id)``."""
    slug = request.path_params["slug"]

    def load(session):
        consultation = queries.consultation_by_slug(session, slug, include_drafts=True)
        return consultation, read(session, consultation.id)

    # The moderation queue and the audit log read every entry: organisers' long reads.
    return await request.app.state.database.run_in_thread(load)


async def moderation(request: Request, errors: dict | None = None) -> Response:
    """Reported and hidden amendments, with hide and restore forms."""
    await require_organiser(request)
    consultation, queue = await _consultation_with(request, queries.moderation_queue)
    return await render(
        request,
        "organise/moderation.html",
        {"consultation": consultation, "queue": queue, "errors": errors or {}},
        status_code=422 if errors else 200,
    )


@csrf_protected
async def moderate(request: Request) -> Response:
    """Hide, restore or dismiss reports on an amendment, with a reason."""
    user = await require_organiser(request)
    fields = await form_fields(request, "action", "reason")
    amendment_id = int(request.path_params["amendment_id"])
    slug = request.path_params["slug"] = await _slug_of(request, amendment_id)
    try:
        if problems := field_problems(fields, FORM_RULES["moderate"]):
            raise InvalidInput(problems)
        await request.app.state.database.write(
            organising.moderate, user.id, amendment_id, fields["action"], fields["reason"]
        )
    except InvalidInput as failed:
        return await moderation(request, {f"reason-{amendment_id}": failed.message})
    return redirect(f"/organise/{slug}/moderation?saved={fields['action']}")


async def _slug_of(request: Request, amendment_id: int) -> str:
    """The consultation an amendment belongs to (NotFound for an unknown amendment)."""

    def find(session):
        amendment = session.get(Amendment, amendment_id)
        if amendment is None:
            raise NotFound("There is no such amendment.")
        return queries.clause_page_address(session, amendment)[0]

    return await request.app.state.database.run(find)


async def decisions(request: Request, errors: dict | None = None) -> Response:
    """After closing: the outcome per clause, then each ranked amendment to accept or reject."""
    await require_organiser(request)
    slug = request.path_params["slug"]

    def load(session):
        consultation = queries.consultation_by_slug(session, slug, include_drafts=True)
        report = build_report(session, consultation)
        # The page shows every ranked amendment's wording.
        return report, wordings(session, (row.amendment.id for row in report.rows))

    report, wording = await request.app.state.database.run_in_thread(load)  # builds the report
    return await render(
        request,
        "organise/decisions.html",
        {
            "consultation": report.consultation,
            "report": report,
            "wording": wording,
            "errors": errors or {},
        },
        status_code=422 if errors else 200,
    )


@csrf_protected
async def decide(request: Request) -> Response:
    """Accept or reject one amendment with a published reason.

    A refusal (two accepted changes to one clause, an amendment written against an
    older version) is shown next to that amendment with the way to resolve it.
    """
    user = await require_organiser(request)
    amendment_id = int(request.path_params["amendment_id"])
    fields = await form_fields(request, "decision", "reason")
    slug = request.path_params["slug"] = await _slug_of(request, amendment_id)
    try:
        if problems := field_problems(fields, FORM_RULES["decide"]):
            raise InvalidInput(problems)
        await request.app.state.database.write(
            organising.decide, user.id, amendment_id, fields["decision"], fields["reason"]
        )
    except (InvalidInput, Conflict) as failed:
        return await decisions(request, {f"reason-{amendment_id}": failed.message})
    return redirect(f"/organise/{slug}/decisions#decide-{amendment_id}")


async def _final_wording_context(request: Request, form: dict | None, errors: dict) -> dict:
    slug, number = request.path_params["slug"], request.path_params["number"]

    def load(session):
        consultation = queries.consultation_by_slug(session, slug, include_drafts=True)
        report = build_report(session, consultation)
        rows = [
            row
            for row in report.rows
            if row.ranked.clause_ref == number and row.ranked.kind in ("change", "delete")
        ]
        # The wording of this clause's changes and deletions only: the page shows no other.
        return report, rows, wordings(session, (row.amendment.id for row in rows))

    report, rows, wording = await request.app.state.database.run_in_thread(load)  # the report
    result = next((r for r in report.outcome.clauses if r.clause.number == number), None)
    if result is None:
        raise NotFound(f"There is no clause {number} in this consultation.")
    if form is None:
        chosen = [row for row in rows if row.decision == "accepted"] or [
            row for row in rows if row.leading
        ]
        body = result.consolidated[0]
        form = {
            "heading": body.heading if result.final_wording else result.clause.heading,
            "text": (
                result.final_wording.text
                if result.final_wording
                else (
                    wording[chosen[0].amendment.id].proposed_text if chosen else result.clause.text
                )
            ),
            "amendments": [str(row.amendment.id) for row in chosen],
            "reason": "",
        }
    return {
        "consultation": report.consultation,
        "result": result,
        "rows": rows,
        "wording": wording,
        "form": form,
        "errors": errors,
    }


async def final_wording_form(request: Request) -> Response:
    """Both texts side by side and a form for the final wording of one clause."""
    await require_organiser(request)
    context = await _final_wording_context(request, None, {})
    return await render(request, "organise/final_wording.html", context)


@csrf_protected
async def final_wording(request: Request) -> Response:
    """Save the final wording of a clause, accepting the amendments it reconciles."""
    user = await require_organiser(request)
    slug, number = request.path_params["slug"], request.path_params["number"]
    form = await request.form()
    fields = {
        k: form.get(k) if isinstance(form.get(k), str) else ""
        for k in ("heading", "text", "reason")
    }
    chosen = [v for v in form.getlist("amendments") if isinstance(v, str)]
    errors = field_problems(fields, FORM_RULES["final_wording"])
    ids = []
    for value in chosen:
        if is_whole_number(value, 11):
            ids.append(int(value))
        else:
            errors["amendments"] = "Choose amendments from the list"
    try:
        if errors:
            raise InvalidInput(errors)
        await request.app.state.database.write(
            organising.write_final_wording,
            user.id,
            slug,
            number,
            heading=fields["heading"],
            text=fields["text"],
            amendment_ids=ids,
            reason=fields["reason"],
        )
    except InvalidInput as failed:
        context = await _final_wording_context(
            request, {**fields, "amendments": chosen}, {**errors, **failed.errors}
        )
        return await render(request, "organise/final_wording.html", context, status_code=422)
    return redirect(f"/organise/{slug}/decisions?saved=final#clause-{number}")


async def audit_log(request: Request) -> Response:
    """Every organiser action on one consultation."""
    await require_organiser(request)
    consultation, lines = await _consultation_with(request, queries.audit_lines)
    return await render(
        request, "organise/audit.html", {"consultation": consultation, "lines": lines}
    )


async def audit_csv(request: Request) -> Response:
    """The audit log as CSV."""
    await require_organiser(request)
    slug = request.path_params["slug"]
    _, lines = await _consultation_with(request, queries.audit_lines)

    def rows():
        buffer = io.StringIO()
        writer = CsvWriter(buffer, lineterminator="\r\n")
        writer.writerow(["when (UK time)", "who", "action", "subject", "reason", "changes"])
        for line in lines:
            writer.writerow(
                [
                    london_time(line.when),
                    line.who,
                    line.action,
                    line.subject,
                    line.reason,
                    spelled_out(line.changes),
                ]
            )
        yield buffer.getvalue().encode("utf-8")

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{slug}-audit-log.csv"'},
    )
