"""The organiser's writes: lifecycle, editing, clause revisions, moderation, decisions.

Every action here writes an audit entry in the same transaction as the change it
records, so the log and the data can never disagree.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, func, select

from app import documents
from app.eligibility import parse_domain_patterns
from app.errors import Conflict, InvalidInput, NotFound
from app.lifecycle import Readiness, transition_refusal
from app.models import (
    Amendment,
    AmendmentFlag,
    AuditEntry,
    Clause,
    ClauseVersion,
    Consultation,
    utcnow,
)
from app.queries import amendment_ref, clause_with_version, consultation_by_slug
from app.reporting import ballot_file_sha256
from app.services import import_document

MAX_REASON_CHARS = 1000


def audit(
    session: Session,
    actor_id: int | None,
    action: str,
    subject: str,
    reason: str = "",
    consultation_id: int | None = None,
) -> None:
    """Add one entry to the append-only audit log (committed with the caller's change)."""
    session.add(
        AuditEntry(
            consultation_id=consultation_id,
            actor_id=actor_id,
            action=action,
            subject=subject,
            reason=reason,
        )
    )


def _reason(reason: str, field: str = "reason", required: bool = True) -> str:
    cleaned = documents.normalise_wording(reason)
    if required and not cleaned:
        raise InvalidInput({field: "Enter a reason: it is recorded and shown to the author"})
    if len(cleaned) > MAX_REASON_CHARS:
        raise InvalidInput({field: f"Reason must be {MAX_REASON_CHARS:,} characters or fewer"})
    return cleaned


def _consultation(session: Session, slug: str) -> Consultation:
    return consultation_by_slug(session, slug, include_drafts=True)


def create_from_document(
    session: Session,
    actor_id: int,
    data: bytes,
    slug: str | None,
    eligible: str,
    field: str = "document",
) -> Consultation:
    """Create a draft consultation from an uploaded Markdown document (as `redline import`)."""
    try:
        parsed = documents.parse(data)
    except documents.DocumentError as error:
        where = f"Line {error.line}: " if error.line else ""
        raise InvalidInput({field: f"{where}{error.message}"}) from None
    if slug:
        slug = documents.slugify(slug)
    consultation = import_document(session, parsed, slug=slug, eligible_domains=eligible)
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
) -> Consultation:
    """Edit title, summary, eligible domains and closing times (not once closed)."""
    consultation = _consultation(session, slug)
    if consultation.status in ("closed", "published"):
        raise Conflict(
            f"This consultation is {consultation.status}; its details can no longer change."
        )
    errors = {}
    title = " ".join(title.split())
    if not title:
        errors["title"] = "Enter a title"
    elif len(title) > 200:
        errors["title"] = "Title must be 200 characters or fewer"
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
    if errors:
        raise InvalidInput(errors)
    consultation.title = title
    consultation.summary = documents.normalise_wording(summary)
    consultation.eligible_domains = "\n".join(patterns)
    consultation.amendments_close_at = amendments_close_at
    consultation.voting_close_at = voting_close_at
    session.add(consultation)
    audit(session, actor_id, "edit", f"consultation {slug}", "", consultation.id)
    session.commit()
    return consultation


def change_status(
    session: Session, actor_id: int, slug: str, action: str, now: datetime | None = None
) -> Consultation:
    """Open, close or publish, refusing any jump the lifecycle does not allow."""
    consultation = _consultation(session, slug)
    clause_count = session.exec(
        select(func.count()).select_from(Clause).where(Clause.consultation_id == consultation.id)
    ).one()
    readiness = Readiness(
        clause_count=clause_count,
        eligible_domains=tuple(parse_domain_patterns(consultation.eligible_domains)),
        amendments_close_at=consultation.amendments_close_at,
        voting_close_at=consultation.voting_close_at,
    )
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
        consultation.published_at = now
    if action == "close":
        consultation.closed_at = now
    consultation.status = {"open": "open", "close": "closed", "publish": "published"}[action]
    if action == "close":
        # Votes cannot change from now on: fix the ballot file's fingerprint for the report.
        consultation.ballots_sha256 = ballot_file_sha256(session, consultation)
    session.add(consultation)
    audit(session, actor_id, action, f"consultation {slug}", "", consultation.id)
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
    )
    session.commit()
    return version


def flag_amendment(session: Session, reporter_id: int, amendment_id: int, reason: str) -> None:
    """Any signed-in participant reports an amendment to the moderators (once each)."""
    amendment = session.get(Amendment, amendment_id)
    if amendment is None or amendment.status in ("withdrawn",):
        raise NotFound("There is no such amendment.")
    reason = _reason(reason)
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
    """Hide an amendment (its author can read why) or restore it; resolves its reports."""
    amendment = session.get(Amendment, amendment_id)
    if amendment is None:
        raise NotFound("There is no such amendment.")
    reason = _reason(reason)
    if action == "hide":
        if amendment.status != "open":
            raise Conflict(f"Only open amendments can be hidden; this one is {amendment.status}.")
        amendment.status = "hidden"
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


def decide(
    session: Session, actor_id: int, amendment_id: int, decision: str, reason: str
) -> Amendment:
    """After closing, accept or reject an amendment with a reason published with the outcome."""
    amendment = session.get(Amendment, amendment_id)
    if amendment is None:
        raise NotFound("There is no such amendment.")
    consultation = session.get(Consultation, amendment.consultation_id)
    if consultation is None or consultation.status != "closed":
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
    amendment.status = "accepted" if decision == "accept" else "rejected"
    amendment.status_reason = _reason(reason)
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
