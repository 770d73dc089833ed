"""The reads behind the pages: lookups and the aggregations (GROUP BY in SQL) they rest on."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import and_, case, func, literal, literal_column, or_, union
from sqlmodel import Session, col, select

from app.errors import NotFound
from app.models import (
    Amendment,
    Clause,
    ClauseVersion,
    Consultation,
    Organisation,
    OrganisationDomain,
    User,
    Vote,
)
from app.ranking import (
    MIN_GROUP_SIZE,
    AmendmentTally,
    Counts,
    clause_outcomes,
    rank,
    recode_small_organisations,
)
from app.ranking import consensus as consensus_of

# Amendments that count in tallies and are listed on public pages.
LISTED_STATUSES = ("open", "accepted", "rejected")


@dataclass(frozen=True)
class ConsultationSummary:
    consultation: Consultation
    clause_count: int
    amendment_count: int


@dataclass(frozen=True)
class ClauseRow:
    clause: Clause
    version: ClauseVersion
    amendment_count: int


@dataclass(frozen=True)
class AuthorLabel:
    """How an author is shown in public: chosen display name or pseudonym, never e-mail."""

    name: str
    organisation: str | None


@dataclass
class AmendmentRow:
    amendment: Amendment
    author: AuthorLabel
    target: ClauseVersion
    supports: int = 0
    opposes: int = 0
    my_vote: str | None = None

    @property
    def votes(self) -> int:
        return self.supports + self.opposes


@dataclass(frozen=True)
class ConsultationTally:
    """Everything the ranking needs: per-amendment counts by recoded organisation."""

    tallies: list[AmendmentTally]
    groups: frozenset[str]
    voters: int
    clause_refs: list[str] = field(default_factory=list)
    voters_by_organisation: dict[str, int] = field(default_factory=dict)


def list_consultations(session: Session, include_drafts: bool) -> list[ConsultationSummary]:
    """Consultations for the home page, newest first, with clause and amendment counts."""
    clause_counts = (
        select(Clause.consultation_id, func.count().label("n"))
        .group_by(Clause.consultation_id)
        .subquery()
    )
    amendment_counts = (
        select(Amendment.consultation_id, func.count().label("n"))
        .where(col(Amendment.status).in_(LISTED_STATUSES))
        .group_by(Amendment.consultation_id)
        .subquery()
    )
    query = (
        select(
            Consultation,
            func.coalesce(clause_counts.c.n, 0),
            func.coalesce(amendment_counts.c.n, 0),
        )
        .outerjoin(clause_counts, clause_counts.c.consultation_id == Consultation.id)
        .outerjoin(amendment_counts, amendment_counts.c.consultation_id == Consultation.id)
        .order_by(col(Consultation.created_at).desc(), col(Consultation.id).desc())
    )
    if not include_drafts:
        query = query.where(Consultation.status != "draft")
    return [
        ConsultationSummary(c, n_clauses, n_amend) for c, n_clauses, n_amend in session.exec(query)
    ]


def consultation_by_slug(session: Session, slug: str, include_drafts: bool = False) -> Consultation:
    """The consultation with this slug, or NotFound (drafts are hidden from participants)."""
    consultation = session.exec(select(Consultation).where(Consultation.slug == slug)).first()
    if consultation is None or (consultation.status == "draft" and not include_drafts):
        raise NotFound("There is no consultation at this address.")
    return consultation


def _current_versions(consultation_id: int):
    latest = (
        select(ClauseVersion.clause_id, func.max(ClauseVersion.version).label("version"))
        .join(Clause, col(Clause.id) == ClauseVersion.clause_id)
        .where(Clause.consultation_id == consultation_id)
        .group_by(ClauseVersion.clause_id)
        .subquery()
    )
    return latest


def clause_rows(session: Session, consultation_id: int) -> list[ClauseRow]:
    """Every clause in order, with its current version and number of listed amendments."""
    latest = _current_versions(consultation_id)
    amendment_counts = (
        select(Amendment.clause_id, func.count().label("n"))
        .where(Amendment.consultation_id == consultation_id)
        .where(col(Amendment.status).in_(LISTED_STATUSES))
        .group_by(Amendment.clause_id)
        .subquery()
    )
    query = (
        select(Clause, ClauseVersion, func.coalesce(amendment_counts.c.n, 0))
        .join(ClauseVersion, col(ClauseVersion.clause_id) == Clause.id)
        .join(
            latest,
            and_(
                latest.c.clause_id == ClauseVersion.clause_id,
                latest.c.version == ClauseVersion.version,
            ),
        )
        .outerjoin(amendment_counts, amendment_counts.c.clause_id == Clause.id)
        .where(Clause.consultation_id == consultation_id)
        .order_by(Clause.position)
    )
    return [ClauseRow(clause, version, n) for clause, version, n in session.exec(query)]


def clause_with_version(
    session: Session, consultation_id: int, number: str
) -> tuple[Clause, ClauseVersion]:
    """One clause by its number and its current version, or NotFound."""
    clause = session.exec(
        select(Clause).where(Clause.consultation_id == consultation_id, Clause.number == number)
    ).first()
    if clause is None:
        raise NotFound(f"There is no clause {number} in this consultation.")
    version = session.exec(
        select(ClauseVersion)
        .where(ClauseVersion.clause_id == clause.id)
        .order_by(col(ClauseVersion.version).desc())
    ).first()
    if version is None:
        raise NotFound(f"Clause {number} has no wording yet.")
    return clause, version


def author_labels(session: Session, user_ids: set[int]) -> dict[int, AuthorLabel]:
    """Public labels of the given users."""
    if not user_ids:
        return {}
    rows = session.exec(
        select(
            User.id, User.display_name, User.pseudonym, User.show_organisation, Organisation.name
        )
        .outerjoin(Organisation, col(Organisation.id) == User.organisation_id)
        .where(col(User.id).in_(user_ids))
    )
    return {
        user_id: AuthorLabel(
            name=display_name or pseudonym,
            organisation=org_name if show_organisation else None,
        )
        for user_id, display_name, pseudonym, show_organisation, org_name in rows
    }


def amendment_rows(
    session: Session,
    clause_id: int,
    viewer_id: int | None,
    include_own_withdrawn: bool = True,
) -> list[AmendmentRow]:
    """Listed amendments on one clause, vote counts (summed in SQL) and the viewer's vote."""
    statuses = list(LISTED_STATUSES)
    query = (
        select(Amendment, ClauseVersion)
        .join(ClauseVersion, col(ClauseVersion.id) == Amendment.clause_version_id)
        .where(Amendment.clause_id == clause_id)
        .order_by(col(Amendment.created_at).desc(), col(Amendment.id).desc())
    )
    if viewer_id is not None and include_own_withdrawn:
        query = query.where(
            col(Amendment.status).in_(statuses)
            | (
                (Amendment.author_id == viewer_id)
                & col(Amendment.status).in_(("withdrawn", "hidden"))
            )
        )
    else:
        query = query.where(col(Amendment.status).in_(statuses))
    pairs = list(session.exec(query))
    if not pairs:
        return []
    ids = [a.id for a, _ in pairs]
    counts = vote_counts(session, ids)
    mine = my_votes(session, ids, viewer_id)
    labels = author_labels(session, {a.author_id for a, _ in pairs})
    rows = []
    for amendment, target in pairs:
        supports, opposes = counts.get(amendment.id, (0, 0))
        rows.append(
            AmendmentRow(
                amendment=amendment,
                author=labels[amendment.author_id],
                target=target,
                supports=supports,
                opposes=opposes,
                my_vote=mine.get(amendment.id),
            )
        )
    return rows


def amendment_row(session: Session, amendment_id: int, viewer_id: int | None) -> AmendmentRow:
    """One amendment as the vote widget and the amendment fragment show it."""
    pair = session.exec(
        select(Amendment, ClauseVersion)
        .join(ClauseVersion, col(ClauseVersion.id) == Amendment.clause_version_id)
        .where(Amendment.id == amendment_id)
    ).first()
    if pair is None:
        raise NotFound("There is no such amendment.")
    amendment, target = pair
    supports, opposes = vote_counts(session, [amendment_id]).get(amendment_id, (0, 0))
    return AmendmentRow(
        amendment=amendment,
        author=author_labels(session, {amendment.author_id})[amendment.author_id],
        target=target,
        supports=supports,
        opposes=opposes,
        my_vote=my_votes(session, [amendment_id], viewer_id).get(amendment_id),
    )


def vote_counts(session: Session, amendment_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Supports and opposes per amendment, counted by the database."""
    if not amendment_ids:
        return {}
    query = (
        select(
            Vote.amendment_id,
            func.sum(case((Vote.stance == "support", 1), else_=0)),
            func.sum(case((Vote.stance == "oppose", 1), else_=0)),
        )
        .where(col(Vote.amendment_id).in_(amendment_ids))
        .group_by(Vote.amendment_id)
    )
    return {aid: (int(s), int(o)) for aid, s, o in session.exec(query)}


def my_votes(session: Session, amendment_ids: list[int], viewer_id: int | None) -> dict[int, str]:
    """The viewer's own stance on each of these amendments."""
    if viewer_id is None or not amendment_ids:
        return {}
    query = select(Vote.amendment_id, Vote.stance).where(
        Vote.user_id == viewer_id, col(Vote.amendment_id).in_(amendment_ids)
    )
    return dict(session.exec(query).all())


def voters_by_organisation(session: Session, consultation_id: int) -> dict[str, int]:
    """Distinct voters per organisation name (counted in SQL)."""
    voting_users = (
        select(Vote.user_id)
        .join(Amendment, col(Amendment.id) == Vote.amendment_id)
        .where(Amendment.consultation_id == consultation_id)
        .where(col(Amendment.status).in_(LISTED_STATUSES))
        .distinct()
        .subquery()
    )
    voters_by_org = session.exec(
        select(Organisation.name, func.count())
        .select_from(voting_users)
        .join(User, col(User.id) == voting_users.c.user_id)
        .outerjoin(Organisation, col(Organisation.id) == User.organisation_id)
        .group_by(Organisation.name)
    ).all()
    # Voters without an organisation (none once signed in with a verified e-mail) are "other".
    voters_per_name: dict[str, int] = defaultdict(int)
    for name, count in voters_by_org:
        voters_per_name[name or "other"] += count
    return dict(voters_per_name)


def organisation_recoding(session: Session, consultation_id: int) -> tuple[dict[str, str], int]:
    """Each voting organisation's group after recoding those under 5 voters, and the voter count."""
    voters = voters_by_organisation(session, consultation_id)
    return recode_small_organisations(voters), sum(voters.values())


def votes_by_amendment_and_group(consultation_id: int, kept_organisations: list[str]):
    """The aggregation the ranking rests on: supports and opposes per (amendment, group).

    Organisations outside ``kept_organisations`` (those with fewer than 5 voters in the
    consultation) count as "other". Within each amendment, a group keeps its own row only
    when the ranking can tell it apart: it has 5 or more voters on the amendment (its own
    consensus factor), or more than 70 % of the amendment's supports (the
    single-organisation flag). Every other group would be pooled into "other" by
    app.ranking anyway, so the database pools it here, and returns about one row per
    amendment instead of one per (amendment, organisation). The ranking is unchanged:
    tests compare it with the ballot file's, which carries every organisation.
    """
    supports = func.sum(case((Vote.stance == "support", 1), else_=0))
    opposes = func.sum(case((Vote.stance == "oppose", 1), else_=0))
    if kept_organisations:
        group = case(
            (col(Organisation.name).in_(kept_organisations), Organisation.name),
            else_=literal("other"),
        )
    else:
        group = literal("other")
    by_group = (
        select(
            Amendment.id.label("amendment_id"),
            group.label("grp"),
            supports.label("s"),
            opposes.label("o"),
        )
        .join(Vote, col(Vote.amendment_id) == Amendment.id)
        .join(User, col(User.id) == Vote.user_id)
        .outerjoin(Organisation, col(Organisation.id) == User.organisation_id)
        .where(Amendment.consultation_id == consultation_id)
        .where(col(Amendment.status).in_(LISTED_STATUSES))
        .group_by(Amendment.id, literal_column("grp"))
        .subquery("by_group")
    )
    with_totals = select(
        by_group.c.amendment_id,
        by_group.c.grp,
        by_group.c.s,
        by_group.c.o,
        func.sum(by_group.c.s).over(partition_by=by_group.c.amendment_id).label("total_s"),
    ).subquery("with_totals")
    distinguishable = and_(
        with_totals.c.grp != "other",
        or_(
            with_totals.c.s + with_totals.c.o >= MIN_GROUP_SIZE,
            with_totals.c.s * 10 > with_totals.c.total_s * 7,
        ),
    )
    final_group = case((distinguishable, with_totals.c.grp), else_=literal("other"))
    return select(
        with_totals.c.amendment_id,
        final_group.label("final_grp"),
        func.sum(with_totals.c.s),
        func.sum(with_totals.c.o),
    ).group_by(with_totals.c.amendment_id, literal_column("final_grp"))


def consultation_tally(session: Session, consultation_id: int) -> ConsultationTally:
    """Vote counts per amendment and group, with small organisations recoded as "other".

    Two GROUP BY queries; Python only builds the ranking's input from their rows.
    """
    voters_per_name = voters_by_organisation(session, consultation_id)
    recode = recode_small_organisations(voters_per_name)
    voters = sum(voters_per_name.values())
    kept = sorted({group for group in recode.values() if group != "other"})
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # A server-side cursor makes PostgreSQL plan for the first rows (nested loops); this
        # aggregation is read to the end, so ask for the plan that finishes soonest.
        connection.exec_driver_sql("SET LOCAL cursor_tuple_fraction = 1.0")
    rows = connection.execute(
        votes_by_amendment_and_group(consultation_id, kept).execution_options(
            stream_results=True, yield_per=20_000
        )
    )
    by_amendment: dict[int, dict[str, Counts]] = defaultdict(dict)
    for amendment_id, group, supports, opposes in rows:
        by_amendment[amendment_id][group] = Counts(int(supports), int(opposes))

    listed = session.exec(
        select(Amendment.id, Clause.number)
        .join(Clause, col(Clause.id) == Amendment.clause_id)
        .where(Amendment.consultation_id == consultation_id)
        .where(col(Amendment.status).in_(LISTED_STATUSES))
    ).all()
    clause_refs = session.exec(
        select(Clause.number)
        .where(Clause.consultation_id == consultation_id)
        .order_by(Clause.position)
    ).all()
    tallies = [
        AmendmentTally(
            ref=amendment_ref(aid), clause_ref=number, by_group=by_amendment.get(aid, {})
        )
        for aid, number in listed
    ]
    return ConsultationTally(
        tallies=tallies,
        groups=frozenset(recode.values()),
        voters=voters,
        clause_refs=list(clause_refs),
        voters_by_organisation=voters_per_name,
    )


def amendment_ref(amendment_id: int) -> str:
    """The public reference of an amendment, as reports and ballot files print it."""
    return f"A{amendment_id}"


def known_domains(session: Session) -> dict[str, str]:
    """Every known e-mail domain and its organisation's name."""
    rows = session.exec(
        select(OrganisationDomain.domain, Organisation.name).join(
            Organisation, col(Organisation.id) == OrganisationDomain.organisation_id
        )
    )
    return dict(rows.all())


SORTS = {
    "supported": "Most supported",
    "newest": "Newest",
    "consensus": "Consensus across organisations",
}


@dataclass
class ClausePage:
    consultation: Consultation
    clause: Clause
    version: ClauseVersion
    amendments: list[AmendmentRow]
    consensus: dict[int, float]
    previous: str | None
    next: str | None


def clause_page(
    session: Session, slug: str, number: str, viewer_id: int | None, sort: str
) -> ClausePage:
    """Everything the clause page shows, with amendments in the requested order."""
    consultation = consultation_by_slug(session, slug)
    clause, version = clause_with_version(session, consultation.id, number)
    rows = amendment_rows(session, clause.id, viewer_id)
    scores: dict[int, float] = {}
    if rows:
        tally = consultation_tally(session, consultation.id)
        by_ref = {t.ref: t for t in tally.tallies}
        for row in rows:
            counted = by_ref.get(amendment_ref(row.amendment.id))
            scores[row.amendment.id] = (
                consensus_of(counted.by_group, tally.groups) if counted else 0.5
            )
    if sort == "supported":
        rows.sort(key=lambda r: (-r.supports, r.opposes, -r.amendment.id))
    elif sort == "consensus":
        rows.sort(key=lambda r: (-scores.get(r.amendment.id, 0.5), -r.votes, -r.amendment.id))
    numbers = [
        n
        for n in session.exec(
            select(Clause.number)
            .where(Clause.consultation_id == consultation.id)
            .order_by(Clause.position)
        )
    ]
    index = numbers.index(clause.number)
    return ClausePage(
        consultation=consultation,
        clause=clause,
        version=version,
        amendments=rows,
        consensus=scores,
        previous=numbers[index - 1] if index > 0 else None,
        next=numbers[index + 1] if index + 1 < len(numbers) else None,
    )


def clause_page_address(session: Session, amendment: Amendment) -> tuple[str, str]:
    """(consultation slug, clause number) of the page that shows this amendment."""
    row = session.exec(
        select(Consultation.slug, Clause.number)
        .join(Clause, col(Clause.consultation_id) == Consultation.id)
        .where(Clause.id == amendment.clause_id)
    ).one()
    return row[0], row[1]


@dataclass
class ResultsPage:
    consultation: Consultation
    ranked: list
    outcomes: dict
    headings: dict[str, str]
    amendments: dict[str, AmendmentRow]
    voters: int


def results_page(session: Session, slug: str) -> ResultsPage:
    """The live ranking of one consultation (DESIGN.md, "Ranking")."""
    consultation = consultation_by_slug(session, slug)
    tally = consultation_tally(session, consultation.id)
    ranked = rank(tally.tallies, tally.groups)
    clauses = clause_rows(session, consultation.id)
    rows = {
        amendment_ref(row.amendment.id): row
        for clause in clauses
        if clause.amendment_count
        for row in amendment_rows(session, clause.clause.id, viewer_id=None)
    }
    headings = {row.clause.number: row.version.heading for row in clauses}
    return ResultsPage(
        consultation=consultation,
        ranked=ranked,
        outcomes=clause_outcomes(ranked, tally.clause_refs),
        headings=headings,
        amendments=rows,
        voters=tally.voters,
    )


def vote_total(session: Session, consultation_id: int) -> int:
    """Votes on listed amendments of one consultation (what the ballot file holds)."""
    return session.exec(
        select(func.count())
        .select_from(Vote)
        .join(Amendment, col(Amendment.id) == Vote.amendment_id)
        .where(Amendment.consultation_id == consultation_id)
        .where(col(Amendment.status).in_(LISTED_STATUSES))
    ).one()


@dataclass
class FlaggedAmendment:
    row: AmendmentRow
    clause_number: str
    reasons: list[str]


def moderation_queue(session: Session, consultation_id: int) -> list[FlaggedAmendment]:
    """Amendments with unresolved reports, and hidden ones (to restore), oldest report first."""
    from app.models import AmendmentFlag

    flagged = session.exec(
        select(AmendmentFlag.amendment_id, AmendmentFlag.reason)
        .join(Amendment, col(Amendment.id) == AmendmentFlag.amendment_id)
        .where(Amendment.consultation_id == consultation_id)
        .where(col(AmendmentFlag.resolved_at).is_(None))
        .order_by(AmendmentFlag.created_at)
    ).all()
    reasons: dict[int, list[str]] = defaultdict(list)
    for amendment_id, reason in flagged:
        reasons[amendment_id].append(reason)
    hidden = session.exec(
        select(Amendment.id).where(
            Amendment.consultation_id == consultation_id, Amendment.status == "hidden"
        )
    ).all()
    queue = []
    for amendment_id in list(reasons) + [h for h in hidden if h not in reasons]:
        row = amendment_row(session, amendment_id, None)
        clause = session.get(Clause, row.amendment.clause_id)
        queue.append(FlaggedAmendment(row, clause.number if clause else "", reasons[amendment_id]))
    return queue


def moderation_queue_size(session: Session, consultation_id: int) -> int:
    """How many amendments moderation_queue lists, counted in SQL without loading them."""
    from app.models import AmendmentFlag

    flagged = (
        select(AmendmentFlag.amendment_id)
        .join(Amendment, col(Amendment.id) == AmendmentFlag.amendment_id)
        .where(Amendment.consultation_id == consultation_id)
        .where(col(AmendmentFlag.resolved_at).is_(None))
    )
    hidden = select(Amendment.id).where(
        Amendment.consultation_id == consultation_id, Amendment.status == "hidden"
    )
    both = union(flagged, hidden).subquery()
    return session.exec(select(func.count()).select_from(both)).one()


@dataclass(frozen=True)
class AuditLine:
    when: object
    who: str
    action: str
    subject: str
    reason: str


def audit_lines(session: Session, consultation_id: int) -> list[AuditLine]:
    """The audit log of one consultation, oldest first; organisers by display name or pseudonym."""
    from app.models import AuditEntry

    rows = session.exec(
        select(AuditEntry, User)
        .outerjoin(User, col(User.id) == AuditEntry.actor_id)
        .where(AuditEntry.consultation_id == consultation_id)
        .order_by(AuditEntry.created_at, AuditEntry.id)
    )
    return [
        AuditLine(
            when=entry.created_at,
            who=(user.display_name or user.pseudonym) if user else "system",
            action=entry.action,
            subject=entry.subject,
            reason=entry.reason,
        )
        for entry, user in rows
    ]
