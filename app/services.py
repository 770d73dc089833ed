"""The writes: sign-in records, proposing, withdrawing, voting, importing. One transaction each.

Run them with ``Database.write`` (or ``write_call``). On SQLite that begins with
BEGIN IMMEDIATE, so writers queue for the one write lock. On PostgreSQL each takes
locks before it checks the rules, so that no vote or proposal is accepted after
the moment a consultation closes, and none on an amendment after its withdrawal:
voting and proposing lock the consultation shared (many at once), closing locks it
exclusive (alone); withdrawing locks the amendment exclusive, voting locks it
shared (see ``lock_consultation``). Locks are always taken consultation first, then
amendment, so that two of these transactions can never wait for each other in a
cycle.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from app import documents, vote_sql
from app.eligibility import (
    Participant,
    Window,
    email_domain,
    identity_refusal,
    organisation_for_domain,
    parse_domain_patterns,
    proposals_closed,
    voting_closed,
)
from app.errors import (
    AmendmentHasVotes,
    Conflict,
    InvalidInput,
    NotAllowed,
    NotFound,
    WordingChanged,
)
from app.lifecycle import results_visible
from app.models import (
    STANCES,
    Amendment,
    Clause,
    ClauseVersion,
    Consultation,
    Organisation,
    User,
    Vote,
    utcnow,
)
from app.people import Details
from app.proposals import Proposal, ProposalInput, validate_proposal, wording_fingerprint
from app.queries import clause_with_version, consultation_by_slug, known_domains
from app.tallies import participate, record_vote

_PSEUDONYM_WORDS = (
    "Alder Ash Aspen Birch Cedar Elm Hazel Holly Juniper Larch Linden Maple Oak Pine Rowan "
    "Willow Yew Heron Kestrel Lapwing Curlew Dunlin Plover Wren Finch Swift Otter Badger Hare"
).split()


# First keys of PostgreSQL advisory locks, one namespace per kind of row locked.
_CONSULTATION_LOCKS = vote_sql.CONSULTATION_LOCKS
_AMENDMENT_LOCKS = vote_sql.AMENDMENT_LOCKS


def _fair_lock(namespace: int, key, exclusive: bool):
    """The SQL that queues for the advisory lock standing for a row (see ``_queue_fairly``)."""
    function = func.pg_advisory_xact_lock if exclusive else func.pg_advisory_xact_lock_shared
    return function(namespace, key)


def _queue_fairly(session: Session, namespace: int, key: int, exclusive: bool) -> None:
    """On PostgreSQL, queue for a transaction-scoped advisory lock standing for a row.

    Row locks alone are not fair: while votes keep taking a row FOR SHARE, a FOR UPDATE
    waits until, by chance, no vote holds it (measured: from 0.3 s to 38 s with twenty
    voters). Advisory locks go through the lock manager, whose queue is first come,
    first served: a close waits only for the votes already in, and votes arriving after
    it wait behind it, then see it. SQLite needs none of this: BEGIN IMMEDIATE queues.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    session.connection().execute(select(_fair_lock(namespace, key, exclusive)))


def lock_consultation(
    session: Session, consultation_id: int, *, update: bool = False
) -> Consultation | None:
    """The consultation row, re-read under a lock: shared, or exclusive if ``update``.

    Votes and proposals take it shared (any number at once); whatever changes the
    consultation's state (closing, above all) takes it exclusive. Status and closing
    times must be checked on the returned object, never on one read before the lock:
    a close may have committed while this transaction waited for it. On PostgreSQL
    the lock is a fair advisory lock and the row FOR SHARE / FOR UPDATE; SQLite
    ignores both, its writers being serialised by BEGIN IMMEDIATE.
    """
    _queue_fairly(session, _CONSULTATION_LOCKS, consultation_id, exclusive=update)
    return session.exec(
        select(Consultation)
        .where(Consultation.id == consultation_id)
        .with_for_update(read=not update)
        # Refresh an object already in the session with what the locked read returned.
        .execution_options(populate_existing=True)
    ).first()


def lock_amendment(
    session: Session, amendment_id: int, *, update: bool = False
) -> Amendment | None:
    """The amendment row, re-read under a lock (see ``lock_consultation``).

    Take the consultation's lock first: always in that order, so that no two
    transactions can each hold what the other waits for.
    """
    _queue_fairly(session, _AMENDMENT_LOCKS, amendment_id, exclusive=update)
    return session.exec(
        select(Amendment)
        .where(Amendment.id == amendment_id)
        .with_for_update(read=not update)
        .execution_options(populate_existing=True)
    ).first()


@dataclass(frozen=True)
class VoteCast:
    """A vote as its transaction left it: what the vote widget shows, read under its locks.

    ``supports`` and ``opposes`` are the amendment's counts after the vote, read only
    when the consultation shows results to participants (0 otherwise). ``voter`` is the
    voter's account as read under the vote's locks. The amendment, consultation and
    voter are detached, read-only copies (app.vote_sql reads them as rows): to change
    one, load it in a session.
    """

    amendment: Amendment
    consultation: Consultation
    my_vote: str | None
    supports: int = 0
    opposes: int = 0
    voter: User | None = None


class SessionEnded(NotAllowed):
    """The session a vote was sent in was ended on the server: nothing was cast."""


def _lock_for_vote(
    session: Session, amendment_id: int, user_id: int | None
) -> tuple[Consultation, Amendment, User | None] | None:
    """The consultation and amendment under the locks a vote takes, and the voter's account.

    The same locks, in the same order, as ``lock_consultation`` then ``lock_amendment``
    (shared), in one round trip instead of five: on PostgreSQL the first statement
    queues for both advisory locks (a select list is evaluated left to right: the
    consultation's first), then one read locks both rows FOR SHARE and reads the
    voter's whole account alongside (no second read of it). None when there is no
    such amendment.
    """
    run = vote_sql.Runner(session)
    sql = run.sql
    with run.together():
        if sql.locks is not None:
            run.execute(sql.locks, (amendment_id,))
        read = run.execute(sql.locked_read, (user_id, amendment_id))
    row = read.fetchone()
    if row is None:
        return None
    consultation, amendment, user = run.entities(row)
    return consultation, amendment, user


def window_of(consultation: Consultation) -> Window:
    """The parts of a consultation that the eligibility rules read."""
    return Window(
        status=consultation.status,
        eligible_domains=tuple(parse_domain_patterns(consultation.eligible_domains)),
        amendments_close_at=consultation.amendments_close_at,
        voting_close_at=consultation.voting_close_at,
    )


def participant_of(user: User | None) -> Participant | None:
    """The parts of a user that the eligibility rules read."""
    return None if user is None else Participant(user.email, user.email_verified)


def organisation_id_for(session: Session, email: str) -> int | None:
    """The organisation of an e-mail address, created from its domain when not known yet."""
    domain = email_domain(email)
    if not domain:
        return None
    name = organisation_for_domain(domain, known_domains(session))
    organisation = session.exec(select(Organisation).where(Organisation.name == name)).first()
    if organisation is None:
        organisation = Organisation(name=name)
        session.add(organisation)
        session.flush()
    return organisation.id


def _new_pseudonym(session: Session) -> str:
    while True:
        words = secrets.SystemRandom().sample(_PSEUDONYM_WORDS, 2)
        candidate = f"{words[0]} {words[1]} {secrets.randbelow(900) + 100}"
        if session.exec(select(User.id).where(User.pseudonym == candidate)).first() is None:
            return candidate


def record_sign_in(
    session: Session,
    *,
    issuer: str,
    subject: str,
    email: str,
    email_verified: bool,
    name: str | None = None,
) -> User:
    """Create or refresh the user keyed by (issuer, subject); e-mail and name are refreshed."""
    user = session.exec(select(User).where(User.issuer == issuer, User.subject == subject)).first()
    email = email.strip().lower()
    if user is None:
        user = User(
            issuer=issuer,
            subject=subject,
            email=email,
            email_verified=email_verified,
            pseudonym=_new_pseudonym(session),
        )
    user.name = name or None
    user.email = email
    user.email_verified = email_verified
    user.organisation_id = organisation_id_for(session, email) if email_verified else None
    user.last_sign_in_at = utcnow()
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


# Built once: every request of a signed-in person runs it (see tallies._vote_statements),
# and a plain select costs less CPU than Session.get's identity-map load (measured:
# 0.45 ms against 0.6 ms per request's read transaction).
_USER_BY_ID = select(User).where(User.id == bindparam("user_id"))


def get_user(session: Session, user_id: int | None) -> User | None:
    """The user with this id, or None."""
    if user_id is None:
        return None
    return session.exec(_USER_BY_ID, params={"user_id": user_id}).first()


def propose_amendment(
    session: Session,
    user_id: int,
    slug: str,
    clause_number: str,
    form: ProposalInput,
    now: datetime | None = None,
) -> Amendment:
    """Store a proposal against the clause's current version; InvalidInput on bad input."""
    user = get_user(session, user_id)
    found = consultation_by_slug(session, slug)
    # Checked under the lock: a close committed meanwhile refuses the proposal.
    consultation = lock_consultation(session, found.id)
    if consultation is None or consultation.status == "draft":
        raise NotFound("There is no consultation at this address.")
    clause, version = clause_with_version(session, consultation.id, clause_number)
    window = window_of(consultation)
    closed = proposals_closed(window, now or utcnow())
    if closed:
        raise Conflict(closed)
    refusal = identity_refusal(participant_of(user), window)
    if refusal:
        raise NotAllowed(refusal)
    proposal, errors = validate_proposal(form, version.text)
    if proposal is None:
        raise InvalidInput(errors)
    return _store_proposal(session, user_id, consultation, clause, version, proposal)


def _store_proposal(
    session: Session,
    user_id: int,
    consultation: Consultation,
    clause: Clause,
    version: ClauseVersion,
    proposal: Proposal,
) -> Amendment:
    amendment = Amendment(
        consultation_id=consultation.id,
        clause_id=clause.id,
        clause_version_id=version.id,
        author_id=user_id,
        kind=proposal.kind,
        proposed_heading=proposal.heading,
        proposed_text=proposal.text,
        rationale=proposal.rationale,
    )
    session.add(amendment)
    # The author takes part: their organisation for this consultation is fixed now.
    participate(session, consultation.id, user_id)
    session.commit()
    session.refresh(amendment)
    return amendment


def withdraw_amendment(session: Session, user_id: int, amendment_id: int) -> Amendment:
    """The author withdraws their own open amendment; its votes stop counting.

    Takes the consultation FOR SHARE and the amendment FOR UPDATE: a vote on it either
    committed before (and stops counting now) or waits and is then refused.
    """
    found = session.get(Amendment, amendment_id)
    if found is None:
        raise NotFound("There is no such amendment.")
    consultation = lock_consultation(session, found.consultation_id)
    amendment = lock_amendment(session, amendment_id, update=True)
    if amendment is None:
        raise NotFound("There is no such amendment.")
    if amendment.author_id != user_id:
        raise NotAllowed("Only the author of an amendment can withdraw it.")
    if amendment.status != "open":
        raise Conflict(f"This amendment is {amendment.status} and cannot be withdrawn.")
    if consultation is None or consultation.status != "open":
        raise Conflict("This consultation is closed; amendments can no longer be withdrawn.")
    amendment.status = "withdrawn"
    amendment.updated_at = utcnow()
    session.add(amendment)
    session.commit()
    return amendment


def has_votes(session: Session, amendment_id: int) -> bool:
    """Whether anyone has a vote on this amendment now."""
    found = session.exec(select(Vote.id).where(Vote.amendment_id == amendment_id).limit(1))
    return found.first() is not None


def edit_amendment(
    session: Session,
    user_id: int,
    amendment_id: int,
    form: ProposalInput,
    now: datetime | None = None,
) -> Amendment:
    """The author corrects their own open amendment, while no one has voted on it.

    Once any vote stands on it, AmendmentHasVotes: a change then needs a new amendment,
    so that no vote is moved to words its voter did not read. Locks as withdrawing does
    (consultation shared, amendment exclusive, in that order), against votes that take
    both shared: a vote that committed first is seen here and the edit is refused; a
    vote that waits for the edit is refused after it by ``cast_vote``, because the
    wording its voter read (its fingerprint, sent with the vote) is no longer the
    amendment's. On SQLite BEGIN IMMEDIATE serialises the two the same way. The
    amendment keeps the clause version it was written against.
    """
    found = session.get(Amendment, amendment_id)
    if found is None:
        raise NotFound("There is no such amendment.")
    consultation = lock_consultation(session, found.consultation_id)
    amendment = lock_amendment(session, amendment_id, update=True)
    if amendment is None or consultation is None or consultation.status == "draft":
        raise NotFound("There is no such amendment.")
    if amendment.author_id != user_id:
        raise NotAllowed("Only the author of an amendment can change it.")
    if amendment.status != "open":
        raise Conflict(f"This amendment is {amendment.status} and cannot be changed.")
    window = window_of(consultation)
    closed = proposals_closed(window, now or utcnow())
    if closed:
        raise Conflict(closed)
    refusal = identity_refusal(participant_of(get_user(session, user_id)), window)
    if refusal:
        raise NotAllowed(refusal)
    if has_votes(session, amendment_id):
        raise AmendmentHasVotes(
            "People have voted on this amendment, so it can no longer be changed: "
            "propose your new wording as a new amendment."
        )
    target = session.get(ClauseVersion, amendment.clause_version_id)
    proposal, errors = validate_proposal(form, target.text if target else "")
    if proposal is None:
        raise InvalidInput(errors)
    amendment.kind = proposal.kind
    amendment.proposed_heading = proposal.heading
    amendment.proposed_text = proposal.text
    amendment.rationale = proposal.rationale
    amendment.updated_at = utcnow()
    session.add(amendment)
    session.commit()
    return amendment


def cast_vote(
    session: Session,
    user_id: int | None,
    amendment_id: int,
    stance: str | None,
    now: datetime | None = None,
    wording: str | None = None,
    signed_in: Callable[[User | None], bool] | None = None,
) -> VoteCast:
    """Support, oppose, change or (stance None) withdraw a vote, if the rules allow it now.

    One row per (amendment, user) is a database constraint; ``change_vote`` inserts or
    updates it so that two clicks racing each other never fail or count twice. The
    rules are checked on the consultation and amendment as re-read under FOR SHARE
    locks, so a close or a withdrawal either committed first (and the vote is refused)
    or waits for this vote to commit (and counts it). ``wording`` is the fingerprint
    (``proposals.wording_fingerprint``) of the wording the voter read: if the author
    edited the amendment since, the vote is refused. ``signed_in``, given the voter's
    account as read in this transaction, says whether the session the vote came in
    may still act (``auth.still_signed_in``): if not, SessionEnded and nothing is cast.
    Returns what the vote widget shows, read in this transaction, so that showing it
    needs no second one.
    """
    if stance is not None and stance not in STANCES:
        raise InvalidInput({"stance": "Choose support or oppose"})
    locked = _lock_for_vote(session, amendment_id, user_id)
    if locked is None:
        # No such amendment: the session is still checked first, as for any other.
        if signed_in is not None and not signed_in(get_user(session, user_id)):
            raise SessionEnded("Sign in to vote on amendments.")
        raise NotFound("There is no such amendment.")
    consultation, amendment, user = locked
    if signed_in is not None and not signed_in(user):
        raise SessionEnded("Sign in to vote on amendments.")
    if consultation.status == "draft":
        raise NotFound("There is no such amendment.")
    window = window_of(consultation)
    closed = voting_closed(window, amendment.status, now or utcnow())
    if closed:
        raise Conflict(closed)
    refusal = identity_refusal(participant_of(user), window)
    if refusal:
        raise NotAllowed(refusal)
    if (
        stance is not None
        and wording is not None
        and wording
        != wording_fingerprint(amendment.kind, amendment.proposed_heading, amendment.proposed_text)
    ):
        raise WordingChanged(
            "The author changed this amendment after you opened the page. "
            "Read its new wording, then vote again."
        )
    # Through app.tallies, so that the counts pages and reports read, and the voter's
    # organisation for this consultation, move in the same transaction as the vote.
    visible = results_visible(consultation.status, consultation.live_results)
    _previous, counts = record_vote(
        session, consultation.id, amendment_id, user_id, stance, with_counts=visible
    )
    supports, opposes = counts or (0, 0)
    session.commit()
    return VoteCast(amendment, consultation, stance, supports, opposes, user)


def import_document(
    session: Session,
    document: documents.ParsedDocument,
    *,
    slug: str | None = None,
    eligible_domains: str = "",
    status: str = "draft",
    amendments_close_at: datetime | None = None,
    voting_close_at: datetime | None = None,
) -> Consultation:
    """Create a consultation and its clauses from a parsed document, all or nothing."""
    # Slugified either way: the web answers 404 to any other shape (app.input_rules.is_slug).
    slug = documents.slugify(slug or document.title)
    if session.exec(select(Consultation.id).where(Consultation.slug == slug)).first() is not None:
        raise Conflict(f"A consultation with the address {slug!r} already exists.")
    consultation = Consultation(
        slug=slug,
        title=document.title,
        summary=document.summary,
        status=status,
        eligible_domains="\n".join(parse_domain_patterns(eligible_domains)),
        amendments_close_at=amendments_close_at,
        voting_close_at=voting_close_at,
    )
    try:
        session.add(consultation)
        session.flush()
        for position, parsed in enumerate(document.clauses, start=1):
            clause = Clause(
                consultation_id=consultation.id, number=parsed.number, position=position
            )
            session.add(clause)
            session.flush()
            session.add(
                ClauseVersion(
                    clause_id=clause.id, version=1, heading=parsed.heading, text=parsed.text
                )
            )
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"A consultation with the address {slug!r} already exists.") from None
    session.refresh(consultation)
    return consultation


def clause_ids_by_number(session: Session, consultation_id: int) -> dict[str, int]:
    """Clause ids of one consultation keyed by number."""
    rows = session.exec(
        select(Clause.number, Clause.id).where(Clause.consultation_id == consultation_id)
    )
    return dict(rows.all())


def save_details(session: Session, user_id: int, details: Details) -> User:
    """Store how a participant chose to be shown ("Your details")."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("There is no such person.")
    user.display_name = details.display_name
    user.show_organisation = details.show_organisation
    session.add(user)
    session.commit()
    session.refresh(user)
    return user
