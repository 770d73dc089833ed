"""SQLModel tables: the one source of truth for the schema (migrations follow it)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import CheckConstraint, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

CONSULTATION_STATUSES = ("draft", "open", "closed", "published")
AMENDMENT_STATUSES = ("open", "withdrawn", "hidden", "accepted", "rejected")
AMENDMENT_KINDS = ("change", "insert")
# Amendments that count in tallies and are listed on public pages.
LISTED_STATUSES = ("open", "accepted", "rejected")
STANCES = ("support", "oppose")
ROLES = ("participant", "organiser", "admin")

# Named constraints keep Alembic migrations identical on SQLite and PostgreSQL.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Now, in UTC: times are stored in UTC on both engines and shown in Europe/London."""
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Organisation(SQLModel, table=True):
    """A public body, derived from the verified e-mail domain of its members."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)


class OrganisationDomain(SQLModel, table=True):
    """An e-mail domain known to belong to an organisation (from seed/organisations.yaml)."""

    __tablename__ = "organisation_domain"

    domain: str = Field(max_length=253, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)


class User(SQLModel, table=True):
    """A participant, keyed by (issuer, subject) of their sign-in, never by e-mail alone."""

    __tablename__ = "user_account"
    __table_args__ = (
        UniqueConstraint("issuer", "subject", name="uq_user_account_issuer_subject"),
        CheckConstraint(_in("role", ROLES), name="role"),
    )

    id: int | None = Field(default=None, primary_key=True)
    issuer: str = Field(max_length=500)
    subject: str = Field(max_length=255)
    email: str = Field(max_length=320)
    email_verified: bool = False
    # The name the identity provider gives: private, refreshed at each sign-in, never shown.
    name: str | None = Field(default=None, max_length=200)
    # The name the participant chose to be shown by; without one, the pseudonym is shown.
    display_name: str | None = Field(default=None, max_length=80)
    pseudonym: str = Field(max_length=80, unique=True)
    show_organisation: bool = False
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id", index=True)
    role: str = Field(default="participant", max_length=20)
    # The verified address a granted role was given to: the role applies only while the
    # identity still has that address, verified (docs/security.md, "Roles").
    role_address: str | None = Field(default=None, max_length=320)
    # Part of every session cookie; bumped at sign-out and when a role is revoked, so
    # that every copy of an earlier cookie is refused (app.auth).
    session_version: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    last_sign_in_at: datetime = Field(default_factory=utcnow)


class Consultation(SQLModel, table=True):
    """A titled document with a lifecycle: draft, open, closed, published."""

    __table_args__ = (CheckConstraint(_in("status", CONSULTATION_STATUSES), name="status"),)

    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=100, unique=True)
    title: str = Field(max_length=200)
    summary: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    status: str = Field(default="draft", max_length=20)
    # Newline-separated patterns such as "*.gov.uk"; see app.eligibility.
    eligible_domains: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    amendments_close_at: datetime | None = None
    voting_close_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    # Keys the per-consultation voter pseudonyms of the ballot file; never exported.
    ballot_key: str = Field(default_factory=lambda: secrets.token_hex(32), max_length=64)
    closed_at: datetime | None = None
    published_at: datetime | None = None
    # SHA-256 of the ballot file as of closing, stated in the report so anyone can check it.
    ballots_sha256: str | None = Field(default=None, max_length=64)
    # Fair exposure: whether participants see counts and live results before voting closes.
    live_results: bool = True
    # Evidence an amendment needs before it can carry or lead (DESIGN.md, "Ranking").
    min_votes: int = 5
    min_organisations: int = 2


class Clause(SQLModel, table=True):
    """A numbered part of a consultation; its wording lives in clause versions."""

    __table_args__ = (UniqueConstraint("consultation_id", "number", name="uq_clause_number"),)

    id: int | None = Field(default=None, primary_key=True)
    consultation_id: int = Field(foreign_key="consultation.id", index=True)
    number: str = Field(max_length=20)
    position: int


class ClauseVersion(SQLModel, table=True):
    """One revision of a clause's heading and text; amendments target a version."""

    __tablename__ = "clause_version"
    __table_args__ = (UniqueConstraint("clause_id", "version", name="uq_clause_version"),)

    id: int | None = Field(default=None, primary_key=True)
    clause_id: int = Field(foreign_key="clause.id", index=True)
    version: int
    heading: str = Field(max_length=200)
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Amendment(SQLModel, table=True):
    """A proposal to change (or delete) one clause's wording, or to insert a new clause after it."""

    __table_args__ = (
        CheckConstraint(_in("status", AMENDMENT_STATUSES), name="status"),
        CheckConstraint(_in("kind", AMENDMENT_KINDS), name="kind"),
        Index("ix_amendment_clause_status", "clause_id", "status"),
        # The report's reads of a consultation's listed amendments (the kept counts' join,
        # the distinct authors) read only this index, not the rows with their wording.
        Index("ix_amendment_consultation_status", "consultation_id", "status", "id", "author_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    consultation_id: int = Field(foreign_key="consultation.id", index=True)
    clause_id: int = Field(foreign_key="clause.id")
    clause_version_id: int = Field(foreign_key="clause_version.id")
    author_id: int = Field(foreign_key="user_account.id", index=True)
    kind: str = Field(default="change", max_length=20)
    proposed_heading: str | None = Field(default=None, max_length=200)
    # Empty wording on a "change" amendment proposes deleting the clause.
    proposed_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    rationale: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default="open", max_length=20)
    status_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # Hidden by a moderator after closing: still counted in the frozen record, text not shown.
    withheld: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Vote(SQLModel, table=True):
    """One participant's stance on one amendment; at most one per pair (a database constraint)."""

    __table_args__ = (
        UniqueConstraint("amendment_id", "user_id", name="uq_vote_amendment_user"),
        CheckConstraint(_in("stance", STANCES), name="stance"),
    )

    id: int | None = Field(default=None, primary_key=True)
    amendment_id: int = Field(foreign_key="amendment.id")
    user_id: int = Field(foreign_key="user_account.id", index=True)
    stance: str = Field(max_length=10)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Voter(SQLModel, table=True):
    """A participant who has voted in a consultation, and the organisation they vote for.

    The organisation is fixed by the first vote, so that a later sign-in from another
    domain never moves votes already cast between organisations. ``votes`` counts the
    person's current votes here; with none they no longer count as a participant.
    """

    consultation_id: int = Field(foreign_key="consultation.id", primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", primary_key=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisation.id")
    votes: int = 0


class VoteTally(SQLModel, table=True):
    """Supports and opposes per amendment and organisation, kept up to date with every vote.

    Pages and reports read these counts instead of the vote table, so their cost does
    not grow with the number of votes; tests prove they always equal a recount.
    """

    __tablename__ = "vote_tally"

    amendment_id: int = Field(foreign_key="amendment.id", primary_key=True)
    # 0 stands for "no organisation" (a key column cannot be NULL).
    organisation_id: int = Field(primary_key=True)
    supports: int = 0
    opposes: int = 0


class AmendmentFlag(SQLModel, table=True):
    """A participant's report that an amendment breaks the rules, for moderators to review."""

    __tablename__ = "amendment_flag"
    __table_args__ = (UniqueConstraint("amendment_id", "reporter_id", name="uq_amendment_flag"),)

    id: int | None = Field(default=None, primary_key=True)
    amendment_id: int = Field(foreign_key="amendment.id", index=True)
    reporter_id: int = Field(foreign_key="user_account.id")
    reason: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None


class AuditEntry(SQLModel, table=True):
    """One organiser action: who, what, when, why. Rows are only ever added."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    consultation_id: int | None = Field(default=None, foreign_key="consultation.id", index=True)
    actor_id: int | None = Field(default=None, foreign_key="user_account.id")
    action: str = Field(max_length=50)
    subject: str = Field(max_length=200)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)
    # What an edit changed, before -> after, as JSON (app.changes); '' for other actions.
    changes: str = Field(
        default="", sa_column=Column(Text, nullable=False, default="", server_default="")
    )


class Ballot(SQLModel, table=True):
    """One line of the ballot file, frozen when the consultation closes. Rows are only added.

    The organisation is the voter's group as recoded at the moment of closing; nothing
    later (a new sign-in from another domain, moderation) changes what counts. A listed
    amendment nobody voted on has one line with no voter.
    """

    __table_args__ = (
        CheckConstraint("stance IN ('support', 'oppose', '')", name="stance"),
        CheckConstraint("kind IN ('change', 'delete', 'insert')", name="kind"),
    )

    consultation_id: int = Field(foreign_key="consultation.id", primary_key=True)
    line: int = Field(primary_key=True)
    amendment_id: int = Field(foreign_key="amendment.id")
    clause_number: str = Field(max_length=20)
    kind: str = Field(max_length=10)
    user_id: int | None = Field(default=None, foreign_key="user_account.id")
    organisation: str = Field(default="", max_length=200)
    stance: str = Field(default="", max_length=10)


class BallotTally(SQLModel, table=True):
    """Supports and opposes per amendment and group, counted from the ballots at closing.

    Written in the same transaction as the ballots, from them, and only added to: the
    closed report reads these few rows rather than grouping every ballot line again.
    An amendment nobody voted on has one row with an empty organisation and no votes,
    as it has one ballot line.
    """

    __tablename__ = "ballot_tally"

    consultation_id: int = Field(foreign_key="consultation.id", primary_key=True)
    amendment_id: int = Field(foreign_key="amendment.id", primary_key=True)
    organisation: str = Field(default="", max_length=200, primary_key=True)
    clause_number: str = Field(max_length=20)
    kind: str = Field(max_length=10)
    supports: int = 0
    opposes: int = 0


class BallotTurnout(SQLModel, table=True):
    """Distinct voters per group in the frozen ballots, counted at closing. Only added to."""

    __tablename__ = "ballot_turnout"

    consultation_id: int = Field(foreign_key="consultation.id", primary_key=True)
    organisation: str = Field(max_length=200, primary_key=True)
    voters: int = 0


class FinalWording(SQLModel, table=True):
    """An organiser's final wording of a clause after closing, reconciling amendments."""

    __tablename__ = "final_wording"

    id: int | None = Field(default=None, primary_key=True)
    clause_id: int = Field(foreign_key="clause.id", unique=True)
    consultation_id: int = Field(foreign_key="consultation.id", index=True)
    heading: str = Field(max_length=200)
    # Empty text deletes the clause.
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # Space-separated references of the accepted amendments it stands for ("A3 A7").
    amendment_refs: str = Field(default="", max_length=2000)
    author_id: int | None = Field(default=None, foreign_key="user_account.id")
    created_at: datetime = Field(default_factory=utcnow)


class SignInState(SQLModel, table=True):
    """An OpenID Connect ``state`` Redline issued; used at most once (app.sign_in_states)."""

    __tablename__ = "sign_in_state"

    state: str = Field(max_length=128, primary_key=True)
    provider: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    used_at: datetime | None = None


class RateLimitWindow(SQLModel, table=True):
    """One fixed-window rate-limit counter, shared by every web process (app.rate_limit_store).

    Used on PostgreSQL when no Redis is configured. ``expires_at`` is a Unix time in
    seconds: the ``limits`` library's storage interface speaks in those.
    """

    __tablename__ = "rate_limit_window"

    key: str = Field(max_length=300, primary_key=True)
    hits: int = 0
    expires_at: float = Field(index=True)
