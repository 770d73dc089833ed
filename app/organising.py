"""The organiser's writes: lifecycle, editing, clause revisions, moderation, decisions.

Every action here writes an audit entry in the same transaction as the change it
records, so the log and the data can never disagree.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import event
from sqlmodel import Session, col, func, select

from app import dashboard, documents
from app.changes import Change, changes_between, encode, shown
from app.dates import relative_to
from app.eligibility import parse_domain_patterns
from app.errors import Conflict, InvalidInput, NotFound
from app.input_rules import MAX_REASON_CHARS
from app.lifecycle import RESULT, transition_refusal
from app.models import (
    Amendment,
    AmendmentFlag,
    AuditEntry,
    Clause,
    ClauseVersion,
    Consultation,
    FinalWording,
    utcnow,
)
from app.numbers import is_whole_number
from app.proposals import MAX_TEXT_CHARS, validate_flag_reason
from app.queries import clause_with_version, consultation_by_slug
from app.reporting import build_report
from app.services import import_document, lock_consultation
from app.tallies import amendment_ref, freeze_ballots

log = logging.getLogger("redline.organising")


def audit(
    session: Session,
    actor_id: int | None,
    action: str,
    subject: str,
    reason: str = "",
    consultation_id: int | None = None,
    changed: list[Change] | None = None,
) -> None:
    """Add one entry to the append-only audit log (committed with the caller's change).

    ``changed`` lists what an edit changed, before -> after, shown on the log page.

    Lifecycle, moderation and decision events are logged at INFO too, with the user id
    only, once the change is committed (never for one that was rolled back).
    """
    event.listen(
        session,
        "after_commit",
        lambda _session: log.info(
            "%s: %s by user %s",
            action,
            subject,
            actor_id,
            extra={"event": action, "user_id": actor_id, "consultation_id": consultation_id},
        ),
        once=True,
    )
    session.add(
        AuditEntry(
            consultation_id=consultation_id,
            actor_id=actor_id,
            action=action,
            subject=subject,
            reason=reason,
            changes=encode(changed or []),
        )
    )


DETAIL_LABELS = {
    "title": "Title",
    "summary": "Summary",
    "eligible_domains": "Who may take part",
    "amendments_close_at": "Amendments close",
    "voting_close_at": "Voting closes",
    "live_results": "Live results shown",
    "min_votes": "Votes needed to carry",
    "min_organisations": "Organisations needed to carry",
}


WORDING_LABELS = {"heading": "Heading", "text": "Wording"}


def _details(consultation: Consultation) -> dict[str, object]:
    values = {name: getattr(consultation, name) for name in DETAIL_LABELS}
    values["eligible_domains"] = ", ".join(consultation.eligible_domains.split())
    return values


def _reason(reason: str, field: str = "reason", required: bool = True) -> str:
    cleaned = documents.normalise_wording(reason)
    if required and not cleaned:
        raise InvalidInput({field: "Enter a reason: it is recorded and shown to the author"})
    if len(cleaned) > MAX_REASON_CHARS:
        raise InvalidInput({field: f"Reason must be {MAX_REASON_CHARS:,} characters or fewer"})
    return cleaned


def _consultation(session: Session, slug: str) -> Consultation:
    return consultation_by_slug(session, slug, include_drafts=True)


def _locked(session: Session, consultation_id: int) -> Consultation:
    """The consultation row, locked exclusively until commit (see services.lock_consultation).

    Votes hold it shared, so this waits for votes in flight and makes later ones wait
    and then see the new status: nothing is accepted after the moment of closing.
    """
    consultation = lock_consultation(session, consultation_id, update=True)
    if consultation is None:
        raise NotFound("There is no consultation at this address.")
    return consultation


def create_from_document(
    session: Session,
    actor_id: int,
    data: bytes,
    slug: str | None,
    eligible: str,
    field: str = "document",
    amendments_close_at: datetime | None = None,
    voting_close_at: datetime | None = None,
) -> Consultation:
    """Create a draft consultation from an uploaded Markdown document (as `redline import`),
    with its closing times when they are already known."""
    if amendments_close_at and voting_close_at and amendments_close_at > voting_close_at:
        raise InvalidInput(
            {"amendments_close_at": "The amendment window must close before voting closes"}
        )
    try:
        parsed = documents.parse(data)
    except documents.DocumentError as error:
        where = f"Line {error.line}: " if error.line else ""
        raise InvalidInput({field: f"{where}{error.message}"}) from None
    if slug:
        slug = documents.slugify(slug)
    consultation = import_document(
        session,
        parsed,
        slug=slug,
        eligible_domains=eligible,
        amendments_close_at=amendments_close_at,
        voting_close_at=voting_close_at,
    )
    audit(session, actor_id, "create", f"consultation {consultation.slug}", "", consultation.id)
    session.commit()
    return consultation


def update_details(
    session: Session,
    actor_id: int,
    slug: str,
    *,
    title: str,
    summary: str,
    eligible_domains: str,
    amendments_close_at: datetime | None,
    voting_close_at: datetime | None,
    live_results: bool | None = None,
    min_votes: str | int | None = None,
    min_organisations: str | int | None = None,
) -> Consultation:
    """Edit title, summary, eligible domains, closing times and how results are shown.

    Nothing changes once closed; the evidence thresholds only while a draft, so that
    the rule a consultation is ranked by is fixed before the first vote.
    """
    consultation = _locked(session, _consultation(session, slug).id)
    if consultation.status in ("closed", "published"):
        raise Conflict(
            f"This consultation is {consultation.status}; its details can no longer change."
        )
    errors = {}
    title = " ".join(title.split())
    if not title:
        errors["title"] = "Enter a title"
    elif len(title) > documents.MAX_TITLE_CHARS:
        errors["title"] = f"Title must be {documents.MAX_TITLE_CHARS} characters or fewer"
    patterns = parse_domain_patterns(eligible_domains)
    bad = [
        p
        for p in patterns
        if "@" in p or " " in p or p.count("*") > 1 or ("*" in p and not p.startswith("*."))
    ]
    if bad:
        errors["eligible_domains"] = (
            f"{bad[0]!r} is not a domain pattern: use forms such as *.gov.uk or nhs.net"
        )
    if amendments_close_at and voting_close_at and amendments_close_at > voting_close_at:
        errors["amendments_close_at"] = "The amendment window must close before voting closes"
    thresholds = {}
    for name, value, label, lowest in (
        ("min_votes", min_votes, "votes", 1),
        ("min_organisations", min_organisations, "organisations", 1),
    ):
        if value is None or str(value).strip() == "":
            continue
        text = str(value).strip()
        if not is_whole_number(text, 4) or not lowest <= int(text) <= 1000:
            errors[name] = f"Enter the minimum number of {label} as a whole number from 1 to 1000"
        elif int(text) != getattr(consultation, name):
            if consultation.status != "draft":
                errors[name] = "The minimum evidence can only change before the consultation opens"
            thresholds[name] = int(text)
    if errors:
        raise InvalidInput(errors)
    before = _details(consultation)
    for name, value in thresholds.items():
        setattr(consultation, name, value)
    if live_results is not None:
        consultation.live_results = live_results
    consultation.title = title
    consultation.summary = documents.normalise_wording(summary)
    consultation.eligible_domains = "\n".join(patterns)
    consultation.amendments_close_at = amendments_close_at
    consultation.voting_close_at = voting_close_at
    session.add(consultation)
    changed = changes_between(before, _details(consultation), DETAIL_LABELS)
    audit(session, actor_id, "edit", f"consultation {slug}", "", consultation.id, changed)
    session.commit()
    return consultation


def change_status(
    session: Session, actor_id: int, slug: str, action: str, now: datetime | None = None
) -> Consultation:
    """Open, close or publish, refusing any jump the lifecycle does not allow.

    Closing freezes the ballots in the same transaction, with the consultation row
    locked: every vote acknowledged before the close is in the record, none after.
    """
    consultation = _locked(session, _consultation(session, slug).id)
    readiness = dashboard.readiness(session, consultation)
    now = now or utcnow()
    refusal = transition_refusal(action, consultation.status, readiness, now)
    if refusal:
        raise Conflict(refusal)
    if action == "publish":
        undecided = session.exec(
            select(func.count())
            .select_from(Amendment)
            .where(Amendment.consultation_id == consultation.id, Amendment.status == "open")
        ).one()
        if undecided:
            raise Conflict(
                f"Decide on every amendment (accept or reject) before publishing: "
                f"{undecided} still open."
            )
        unresolved = build_report(session, consultation).outcome.unresolved
        if unresolved:
            numbers = ", ".join(r.clause.number for r in unresolved)
            raise Conflict(
                f"Resolve clause {numbers} before publishing: accepted amendments conflict "
                "there. Reject one, or write the final wording of the clause."
            )
        consultation.published_at = now
    if action == "close":
        consultation.closed_at = now
    changed = [Change("Status", consultation.status, RESULT[action])]
    if action == "close" and readiness.voting_close_at is not None:
        # Closing early (or late) is worth a line: the log says by how much.
        relation = relative_to(now, readiness.voting_close_at)
        when = "at" if relation == "at" else relation
        changed.append(
            Change(
                "Voting closed",
                f"advertised for {shown(readiness.voting_close_at)}",
                f"{shown(now)}, {when} the advertised time",
            )
        )
    consultation.status = RESULT[action]
    if action == "close":
        consultation.ballots_sha256 = freeze_ballots(session, consultation)
    session.add(consultation)
    audit(session, actor_id, action, f"consultation {slug}", "", consultation.id, changed)
    session.commit()
    return consultation


def revise_clause(
    session: Session, actor_id: int, slug: str, number: str, heading: str, text: str, reason: str
) -> ClauseVersion:
    """A new version of a clause's wording; amendments written against older ones are marked so."""
    consultation = _consultation(session, slug)
    if consultation.status not in ("draft", "open"):
        raise Conflict("Clauses can only be revised while the consultation is a draft or open.")
    clause, current = clause_with_version(session, consultation.id, number)
    heading = " ".join(heading.split())
    text = documents.normalise_wording(text)
    errors = {}
    if not heading:
        errors["heading"] = "Enter a heading"
    if not text:
        errors["text"] = "Enter the wording of the clause"
    elif (heading, text) == (current.heading, current.text):
        errors["text"] = "The new wording must differ from the current version"
    if errors:
        raise InvalidInput(errors)
    reason = _reason(reason, required=consultation.status == "open")
    version = ClauseVersion(
        clause_id=clause.id, version=current.version + 1, heading=heading, text=text
    )
    session.add(version)
    audit(
        session,
        actor_id,
        "revise clause",
        f"clause {number} to version {version.version}",
        reason,
        consultation.id,
        changes_between(
            {"heading": current.heading, "text": current.text},
            {"heading": heading, "text": text},
            WORDING_LABELS,
        ),
    )
    session.commit()
    return version


def flag_amendment(session: Session, reporter_id: int, amendment_id: int, reason: str) -> None:
    """Any signed-in participant reports an amendment to the moderators (once each)."""
    amendment = session.get(Amendment, amendment_id)
    if amendment is None or amendment.status in ("withdrawn",):
        raise NotFound("There is no such amendment.")
    reason, errors = validate_flag_reason(reason, MAX_REASON_CHARS)
    if errors:
        raise InvalidInput(errors)
    existing = session.exec(
        select(AmendmentFlag).where(
            AmendmentFlag.amendment_id == amendment_id, AmendmentFlag.reporter_id == reporter_id
        )
    ).first()
    if existing is not None:
        existing.reason, existing.resolved_at = reason, None
        session.add(existing)
    else:
        session.add(
            AmendmentFlag(amendment_id=amendment_id, reporter_id=reporter_id, reason=reason)
        )
    session.commit()


def moderate(
    session: Session, actor_id: int, amendment_id: int, action: str, reason: str
) -> Amendment:
    """Hide an amendment (its author can read why) or restore it; resolves its reports.

    While the consultation is open, hiding takes an amendment out of the count. Once it
    has closed the record is frozen: hiding only withholds the text from display (its
    votes still count, and the pages say so), restoring an amendment hidden before the
    close is refused, and after publication nothing can be restored.
    """
    amendment = session.get(Amendment, amendment_id)
    if amendment is None:
        raise NotFound("There is no such amendment.")
    consultation = _locked(session, amendment.consultation_id)
    session.refresh(amendment)
    frozen = consultation.status in ("closed", "published")
    reason = _reason(reason)
    if action == "hide" and frozen:
        if amendment.withheld or amendment.status == "hidden":
            raise Conflict("This amendment is already hidden.")
        amendment.withheld = True
    elif action == "hide":
        if amendment.status != "open":
            raise Conflict(f"Only open amendments can be hidden; this one is {amendment.status}.")
        amendment.status = "hidden"
    elif action == "restore" and consultation.status == "published":
        raise Conflict("The outcome is published; what it shows can no longer be restored.")
    elif action == "restore" and frozen:
        if not amendment.withheld:
            raise Conflict(
                "This amendment was hidden before voting closed, so it is not part of the "
                "record and cannot be restored now."
            )
        amendment.withheld = False
    elif action == "restore":
        if amendment.status != "hidden":
            raise Conflict("Only hidden amendments can be restored.")
        amendment.status = "open"
    elif action == "dismiss":
        pass
    else:
        raise InvalidInput({"action": "Choose hide, restore or dismiss"})
    if action != "dismiss":
        amendment.status_reason = reason
        amendment.updated_at = utcnow()
        session.add(amendment)
    for flag in session.exec(
        select(AmendmentFlag).where(
            AmendmentFlag.amendment_id == amendment_id, col(AmendmentFlag.resolved_at).is_(None)
        )
    ):
        flag.resolved_at = utcnow()
        session.add(flag)
    audit(
        session,
        actor_id,
        f"{action} amendment",
        f"amendment {amendment_ref(amendment_id)}",
        reason,
        amendment.consultation_id,
    )
    session.commit()
    return amendment


def _accepted_changes_on(session: Session, clause_id: int, other_than: int) -> list[int]:
    rows = session.exec(
        select(Amendment.id).where(
            Amendment.clause_id == clause_id,
            Amendment.status == "accepted",
            Amendment.kind == "change",
            Amendment.id != other_than,
        )
    )
    return list(rows)


def decide(
    session: Session, actor_id: int, amendment_id: int, decision: str, reason: str
) -> Amendment:
    """After closing, accept or reject an amendment with a reason published with the outcome.

    Accepting a change is refused where it would be applied without an organiser
    choosing the text: when another change to the same clause is already accepted,
    or when the amendment was written against an older version of the clause. The
    refusal says how to resolve it (reject one, or write the clause's final wording).
    """
    amendment = session.get(Amendment, amendment_id)
    if amendment is None:
        raise NotFound("There is no such amendment.")
    consultation = _locked(session, amendment.consultation_id)
    session.refresh(amendment)
    if consultation.status != "closed":
        raise Conflict(
            "Amendments are accepted or rejected after the consultation closes "
            "and before it is published."
        )
    if decision not in ("accept", "reject"):
        raise InvalidInput({"decision": "Choose accept or reject"})
    if amendment.status not in ("open", "accepted", "rejected"):
        raise Conflict(
            f"This amendment is {amendment.status}; only listed amendments get a decision."
        )
    reason = _reason(reason)
    clause = session.get(Clause, amendment.clause_id)
    has_final = (
        session.exec(select(FinalWording.id).where(FinalWording.clause_id == clause.id)).first()
        is not None
    )
    if decision == "accept" and amendment.kind == "change" and not has_final:
        others = _accepted_changes_on(session, clause.id, amendment.id)
        if others:
            refs = ", ".join(str(o) for o in others)
            raise Conflict(
                f"Amendment {refs} to clause {clause.number} is already accepted. Two changes "
                "to one clause cannot both be applied as written: reject one of them, or "
                f"write the final wording of clause {clause.number} that merges them."
            )
        _, current = clause_with_version(session, consultation.id, clause.number)
        if amendment.clause_version_id != current.id:
            raise Conflict(
                f"Amendment {amendment.id} was written against an earlier version of clause "
                f"{clause.number}, which has since been revised. Compare both texts and "
                f"choose the final wording of clause {clause.number}."
            )
    amendment.status = "accepted" if decision == "accept" else "rejected"
    amendment.status_reason = reason
    amendment.updated_at = utcnow()
    session.add(amendment)
    audit(
        session,
        actor_id,
        decision,
        f"amendment {amendment_ref(amendment_id)}",
        amendment.status_reason,
        consultation.id,
    )
    session.commit()
    return amendment


def write_final_wording(
    session: Session,
    actor_id: int,
    slug: str,
    number: str,
    *,
    heading: str,
    text: str,
    amendment_ids: list[int],
    reason: str,
) -> FinalWording:
    """After closing: the final wording of a clause, accepting the changes it reconciles.

    This is how two accepted changes to one clause, or an amendment written against an
    older version, reach the consolidated text: an organiser sees the texts and writes
    (or chooses) the wording. Empty text deletes the clause.
    """
    consultation = _locked(session, _consultation(session, slug).id)
    if consultation.status != "closed":
        raise Conflict(
            "The final wording of a clause is chosen after the consultation closes and "
            "before it is published."
        )
    clause, current = clause_with_version(session, consultation.id, number)
    heading = " ".join(heading.split()) or current.heading
    text = documents.normalise_wording(text)
    errors = {}
    if len(heading) > documents.MAX_HEADING_CHARS:
        errors["heading"] = f"Heading must be {documents.MAX_HEADING_CHARS} characters or fewer"
    if len(text) > MAX_TEXT_CHARS:
        errors["text"] = f"Wording must be {MAX_TEXT_CHARS:,} characters or fewer"
    chosen = (
        session.exec(
            select(Amendment).where(
                col(Amendment.id).in_(amendment_ids or [-1]),
                Amendment.clause_id == clause.id,
                Amendment.kind == "change",
                col(Amendment.status).in_(("open", "accepted", "rejected")),
            )
        ).all()
        if amendment_ids
        else []
    )
    if len(chosen) != len(set(amendment_ids)):
        errors["amendments"] = "Choose only amendments to this clause that are in the report"
    try:
        reason = _reason(reason)
    except InvalidInput as failed:
        errors.update(failed.errors)
    if errors:
        raise InvalidInput(errors)
    for amendment in chosen:
        amendment.status = "accepted"
        amendment.status_reason = reason
        amendment.updated_at = utcnow()
        session.add(amendment)
    final = session.exec(select(FinalWording).where(FinalWording.clause_id == clause.id)).first()
    before = (
        {"heading": final.heading, "text": final.text}
        if final is not None
        else {"heading": current.heading, "text": current.text}
    )
    if final is None:
        final = FinalWording(clause_id=clause.id, consultation_id=consultation.id, heading="")
    final.heading = heading
    final.text = text
    final.amendment_refs = " ".join(amendment_ref(a.id) for a in sorted(chosen, key=lambda a: a.id))
    final.author_id = actor_id
    session.add(final)
    audit(
        session,
        actor_id,
        "final wording",
        f"clause {number}" + (f" from {final.amendment_refs}" if chosen else ""),
        reason,
        consultation.id,
        changes_between(before, {"heading": heading, "text": text}, WORDING_LABELS),
    )
    session.commit()
    return final
