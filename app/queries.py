"""The reads behind the pages: lookups and the aggregations (GROUP BY in SQL) they rest on."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, namedtuple
from dataclasses import dataclass, field

from sqlalchemy import BigInteger, and_, bindparam, cast, func, literal_column, union
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from app import shuffle
from app.changes import Change, decode
from app.errors import NotFound
from app.input_rules import is_clause_number, is_slug
from app.lifecycle import results_visible
from app.models import (
    LISTED_STATUSES,
    Amendment,
    Clause,
    ClauseVersion,
    Consultation,
    Organisation,
    OrganisationDomain,
    User,
    Vote,
    VoteTally,
)
from app.people import AuthorLabel, author_label, public_name
from app.precompiled import Precompiled, models_of
from app.tallies import amendment_ref


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


# What a page shows of an amendment and of the clause version it targets: every column, as
# a plain read-only record (the table's own column names). Reading a page's twenty rows as
# tuples instead of loading ORM entities halves the time of rows_for.
AmendmentRecord = namedtuple("AmendmentRecord", [c.name for c in Amendment.__table__.columns])
VersionRecord = namedtuple("VersionRecord", [c.name for c in ClauseVersion.__table__.columns])


@dataclass
class AmendmentRow:
    amendment: AmendmentRecord
    author: AuthorLabel
    target: VersionRecord
    supports: int = 0
    opposes: int = 0
    my_vote: str | None = None

    @property
    def votes(self) -> int:
        return self.supports + self.opposes


# Counting a consultation's listed amendments reads every one of them: no count is stored.
# (A count on the consultation row, kept by proposing, withdrawing and moderating, would
# make it one indexed read; that needs a migration.) The home page's figures are "so far"
# figures, so each process keeps the counts for this many seconds instead of counting
# tens of thousands of amendments on every view.
AMENDMENT_COUNTS_MAX_AGE = 5.0
_KEPT_AMENDMENT_COUNTS: dict[tuple[str, tuple[int, ...]], tuple[float, dict[int, int]]] = {}
# Pages run in worker threads: the sweep of old entries must not meet another thread's store.
_KEPT_AMENDMENT_COUNTS_LOCK = threading.Lock()


def _amendment_counts(session: Session, consultation_ids: tuple[int, ...]) -> dict[int, int]:
    """Listed amendments of each of these consultations, counted at most a few seconds ago."""
    if not consultation_ids:
        return {}
    key = (session.get_bind().url.render_as_string(hide_password=True), consultation_ids)
    now = time.monotonic()
    kept = _KEPT_AMENDMENT_COUNTS.get(key)
    if kept is not None and now - kept[0] < AMENDMENT_COUNTS_MAX_AGE:
        return kept[1]
    counts = dict.fromkeys(consultation_ids, 0)
    rows = session.connection().execute(
        select(Amendment.consultation_id, func.count())
        .where(col(Amendment.consultation_id).in_(consultation_ids))
        .where(col(Amendment.status).in_(LISTED_STATUSES))
        .group_by(Amendment.consultation_id)
    )
    counts.update({consultation_id: n for consultation_id, n in rows})
    with _KEPT_AMENDMENT_COUNTS_LOCK:
        for old in [
            k
            for k, (at, _) in _KEPT_AMENDMENT_COUNTS.items()
            if now - at >= AMENDMENT_COUNTS_MAX_AGE
        ]:
            del _KEPT_AMENDMENT_COUNTS[old]
        _KEPT_AMENDMENT_COUNTS[key] = (now, counts)
    return counts


def _consultations_statement(include_drafts: bool):
    """Consultations newest first (drafts only with ``include_drafts``), each with its
    number of clauses."""
    clause_counts = (
        select(Clause.consultation_id, func.count().label("n"))
        .group_by(Clause.consultation_id)
        .subquery()
    )
    query = (
        select(Consultation, func.coalesce(clause_counts.c.n, 0))
        .outerjoin(clause_counts, clause_counts.c.consultation_id == Consultation.id)
        .order_by(col(Consultation.created_at).desc(), col(Consultation.id).desc())
    )
    if not include_drafts:
        query = query.where(Consultation.status != "draft")
    return query


# Built once, as the clause page's statements: the home page runs one on every view.
_CONSULTATIONS = {False: _consultations_statement(False), True: _consultations_statement(True)}


def list_consultations(session: Session, include_drafts: bool) -> list[ConsultationSummary]:
    """Consultations for the home page, newest first, with clause and amendment counts.

    The consultations and their clause counts are read afresh; the amendment counts are
    at most AMENDMENT_COUNTS_MAX_AGE seconds old (see _amendment_counts).
    """
    found = session.exec(_CONSULTATIONS[include_drafts]).all()
    amendments = _amendment_counts(session, tuple(sorted(c.id for c, _ in found)))
    return [ConsultationSummary(c, n_clauses, amendments[c.id]) for c, n_clauses in found]


# Built once: nearly every page looks its consultation up by slug, and building the
# select each time cost a measurable share of a results request's SQLAlchemy time
# (as services._USER_BY_ID).
_CONSULTATION_BY_SLUG = select(Consultation).where(Consultation.slug == bindparam("slug"))


def consultation_by_slug(session: Session, slug: str, include_drafts: bool = False) -> Consultation:
    """The consultation with this slug, or NotFound (drafts are hidden from participants).

    A slug that no consultation could have (a NUL, odd bytes, too long) is NotFound before
    it reaches the database, where PostgreSQL would refuse it with an error.
    """
    if not is_slug(slug):
        raise NotFound("There is no consultation at this address.")
    consultation = session.exec(_CONSULTATION_BY_SLUG, params={"slug": slug}).first()
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


def _current_clauses(consultation_id: int, *columns):
    """SELECT ``columns`` of every clause joined to its current version, in clause order."""
    latest = _current_versions(consultation_id)
    return (
        select(*columns)
        .select_from(Clause)
        .join(ClauseVersion, col(ClauseVersion.clause_id) == Clause.id)
        .join(
            latest,
            and_(
                latest.c.clause_id == ClauseVersion.clause_id,
                latest.c.version == ClauseVersion.version,
            ),
        )
        .where(Clause.consultation_id == consultation_id)
        .order_by(Clause.position)
    )


def clause_rows(session: Session, consultation_id: int) -> list[ClauseRow]:
    """Every clause in order, with its current version and number of listed amendments."""
    amendment_counts = (
        select(Amendment.clause_id, func.count().label("n"))
        .where(Amendment.consultation_id == consultation_id)
        .where(col(Amendment.status).in_(LISTED_STATUSES))
        .group_by(Amendment.clause_id)
        .subquery()
    )
    query = _current_clauses(
        consultation_id, Clause, ClauseVersion, func.coalesce(amendment_counts.c.n, 0)
    ).outerjoin(amendment_counts, amendment_counts.c.clause_id == Clause.id)
    return [ClauseRow(clause, version, n) for clause, version, n in session.exec(query)]


def clause_texts(session: Session, consultation_id: int) -> list[tuple[str, str, str, int]]:
    """Every clause in order as (number, heading, text, version) of its current version.

    What the report reads of the clauses: ``clause_rows`` without the amendment counts,
    which cost a pass over all the amendments.
    """
    query = _current_clauses(
        consultation_id,
        Clause.number,
        ClauseVersion.heading,
        ClauseVersion.text,
        ClauseVersion.version,
    )
    return [tuple(row) for row in session.connection().execute(query).all()]


def clause_with_version(
    session: Session, consultation_id: int, number: str
) -> tuple[Clause, ClauseVersion]:
    """One clause by its number and its current version, or NotFound (also for odd numbers)."""
    if not is_clause_number(number):
        raise NotFound("There is no such clause in this consultation.")
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


def _visible_on_clause(clause_id, viewer_id):
    """Listed amendments on a clause, and the viewer's own withdrawn or hidden ones.

    ``clause_id`` and ``viewer_id`` are values or bound parameters; a viewer of None is
    nobody signed in (only listed amendments).
    """
    listed = col(Amendment.status).in_(LISTED_STATUSES)
    if viewer_id is None:
        return and_(Amendment.clause_id == clause_id, listed)
    own = and_(Amendment.author_id == viewer_id, col(Amendment.status).in_(("withdrawn", "hidden")))
    return and_(Amendment.clause_id == clause_id, listed | own)


# The clause page's statements are built once, with bound parameters, and reused: building
# a SELECT with joins and subqueries in SQLAlchemy costs more Python time than running it.


def _rows_statement(for_viewer: bool):
    """The amendments with ids :ids, their target version, author label columns and counts,
    and with ``for_viewer`` the stance of the viewer :viewer_id."""
    ids = bindparam("ids", expanding=True)
    counts = (
        select(
            VoteTally.amendment_id,
            func.sum(VoteTally.supports).label("supports"),
            func.sum(VoteTally.opposes).label("opposes"),
        )
        .where(col(VoteTally.amendment_id).in_(ids))
        .group_by(VoteTally.amendment_id)
        .subquery()
    )
    query = (
        select(
            *Amendment.__table__.columns,
            *ClauseVersion.__table__.columns,
            User.display_name,
            User.pseudonym,
            User.show_organisation,
            Organisation.name,
            counts.c.supports,
            counts.c.opposes,
        )
        .select_from(Amendment)
        .join(ClauseVersion, col(ClauseVersion.id) == Amendment.clause_version_id)
        .join(User, col(User.id) == Amendment.author_id)
        .outerjoin(Organisation, col(Organisation.id) == User.organisation_id)
        .outerjoin(counts, counts.c.amendment_id == Amendment.id)
        .where(col(Amendment.id).in_(ids))
    )
    if for_viewer:
        viewer = bindparam("viewer_id")
        query = query.add_columns(Vote.stance).outerjoin(
            Vote, and_(col(Vote.amendment_id) == Amendment.id, Vote.user_id == viewer)
        )
    return query


_ROWS = {
    False: Precompiled(_rows_statement(False), expanding="ids"),
    True: Precompiled(_rows_statement(True), expanding="ids"),
}
# Where each part of a row of _ROWS starts: the amendment's columns, its target version's,
# then the author's label, the counts and the viewer's stance.
_AMENDMENT_COLUMNS = len(AmendmentRecord._fields)
_ROW_LABEL_AT = _AMENDMENT_COLUMNS + len(VersionRecord._fields)


def rows_for(session: Session, ids: list[int], viewer_id: int | None) -> list[AmendmentRow]:
    """These amendments, in this order, with counts (summed in SQL) and the viewer's vote.

    One statement: each amendment with the clause version it targets, its author's public
    label, its kept counts and the viewer's own stance, so that a page of amendments costs
    one round trip however many it shows. Ids that name no amendment are left out.
    """
    if not ids:
        return []
    found = {}
    parameters = {"ids": ids} if viewer_id is None else {"ids": ids, "viewer_id": viewer_id}
    for row in _ROWS[viewer_id is not None].rows(session, parameters):
        amendment = AmendmentRecord._make(row[:_AMENDMENT_COLUMNS])
        target = VersionRecord._make(row[_AMENDMENT_COLUMNS:_ROW_LABEL_AT])
        display_name, pseudonym, show_org, org_name, s, o, *mine = row[_ROW_LABEL_AT:]
        found[amendment.id] = AmendmentRow(
            amendment=amendment,
            author=author_label(display_name, pseudonym, show_org, org_name),
            target=target,
            supports=int(s or 0),
            opposes=int(o or 0),
            my_vote=mine[0] if mine else None,
        )
    return [found[amendment_id] for amendment_id in ids if amendment_id in found]


def amendment_row(session: Session, amendment_id: int, viewer_id: int | None) -> AmendmentRow:
    """One amendment as the vote widget and the amendment fragment show it."""
    rows = rows_for(session, [amendment_id], viewer_id)
    if not rows:
        raise NotFound("There is no such amendment.")
    return rows[0]


def vote_counts(session: Session, amendment_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Supports and opposes per amendment, from the counts kept with every vote."""
    if not amendment_ids:
        return {}
    query = (
        select(VoteTally.amendment_id, func.sum(VoteTally.supports), func.sum(VoteTally.opposes))
        .where(col(VoteTally.amendment_id).in_(amendment_ids))
        .group_by(VoteTally.amendment_id)
    )
    return {aid: (int(s), int(o)) for aid, s, o in session.exec(query)}


def known_domains(session: Session) -> dict[str, str]:
    """Every known e-mail domain and its organisation's name."""
    rows = session.exec(
        select(OrganisationDomain.domain, Organisation.name).join(
            Organisation, col(Organisation.id) == OrganisationDomain.organisation_id
        )
    )
    return dict(rows.all())


SORTS = {
    "shuffled": "Shuffled for you",
    "newest": "Newest",
    "supported": "Most supported",
    "ranked": "Ranking so far",
}
# Sorting by votes would favour early and popular amendments while results are hidden.
SORTS_WHILE_HIDDEN = ("shuffled", "newest")


PAGE_SIZE = 20


@dataclass
class ClausePage:
    consultation: Consultation
    clause: Clause
    version: ClauseVersion
    amendments: list[AmendmentRow]
    total: int
    page: int
    pages: int
    results_visible: bool
    sort: str
    previous: str | None
    next: str | None


def _ids_statement(for_viewer: bool, order: str):
    """Ids of the amendments on clause :clause_id a page lists.

    ``order`` "shuffled" (app.shuffle's order for the coefficients bound as :scale,
    :shift, :rescale and :reshift) and "newest" order and page them in SQL: PAGE_SIZE
    ids from :offset, each with the count of all (a window count, so the page and the
    total are one statement). "all" is every id, unordered, for the orders made in
    Python from counts.
    """
    viewer = bindparam("viewer_id") if for_viewer else None
    visible = _visible_on_clause(bindparam("clause_id"), viewer)
    if order == "all":
        return select(Amendment.id).where(visible)
    if order == "newest":
        listed = select(Amendment.id, func.count().over()).where(visible)
        ordering = (col(Amendment.created_at).desc(), col(Amendment.id).desc())
    else:
        # app.shuffle.position, a step per subquery so that each value is written once;
        # the modulus is part of the statement, the coefficients are bound. OFFSET 0
        # keeps PostgreSQL from merging the steps back into one expression that repeats
        # x nine times (measured: a third more of its time for this statement).
        p = literal_column(str(shuffle.MODULUS))
        first = (
            select(
                Amendment.id.label("id"),
                (
                    (cast(Amendment.id, BigInteger) * bindparam("scale") + bindparam("shift")) % p
                ).label("x"),
            )
            .where(visible)
            .offset(0)
            .subquery("affine")
        )
        x = first.c.x
        second = (
            select(
                first.c.id,
                ((x * x % p * x % p * bindparam("rescale") + bindparam("reshift")) % p).label("z"),
            )
            .offset(0)
            .subquery("cubed")
        )
        z = second.c.z
        listed = select(second.c.id, func.count().over())
        ordering = (z * z % p * z % p, second.c.id)
    return listed.order_by(*ordering).limit(PAGE_SIZE).offset(bindparam("offset"))


_IDS = {
    (viewer, order): Precompiled(_ids_statement(viewer, order))
    for viewer in (False, True)
    for order in ("shuffled", "newest", "all")
}


def _page_of_ids(
    session: Session,
    consultation: Consultation,
    clause_id: int,
    viewer_id: int | None,
    sort: str,
    seed: str,
    page: int,
) -> tuple[list[int], int, int]:
    """The ids of one page of the amendments a clause page lists, in the requested order;
    the number of them all, and the page's number (the last when ``page`` is past it)."""
    parameters: dict = {"clause_id": clause_id}
    if viewer_id is not None:
        parameters["viewer_id"] = viewer_id
    if sort in ("supported", "ranked"):
        # Orders by counts: every id is read (ids only) and sorted here.
        statement = _IDS[viewer_id is not None, "all"]
        ids = [amendment_id for (amendment_id,) in statement.rows(session, parameters)]
        _sort_by_counts(session, consultation, clause_id, ids, sort)
        page = _within(page, len(ids))
        return ids[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], len(ids), page
    if sort == "shuffled":
        parameters.update(shuffle.coefficients(seed)._asdict())
    statement = _IDS[viewer_id is not None, sort]
    rows = statement.rows(session, {**parameters, "offset": (page - 1) * PAGE_SIZE})
    if not rows and page > 1:
        # Past the last page (an old link, or amendments since withdrawn): the last page.
        counted = statement.rows(session, {**parameters, "offset": 0})
        total = counted[0][1] if counted else 0
        page = _within(page, total)
        rows = statement.rows(session, {**parameters, "offset": (page - 1) * PAGE_SIZE})
    total = rows[0][1] if rows else 0
    return [amendment_id for amendment_id, _total in rows], total, _within(page, total)


def _within(page: int, total: int) -> int:
    """``page`` if it has amendments on it, else the nearest page that has (1 if none)."""
    return min(max(1, page), _pages(total))


def _pages(total: int) -> int:
    """Pages of PAGE_SIZE that ``total`` amendments fill (1 when there are none)."""
    return max(1, -(-total // PAGE_SIZE))


def _sort_by_counts(
    session: Session, consultation: Consultation, clause_id: int, ids: list[int], sort: str
) -> None:
    """Sort ``ids`` in place by support, or by the ranking so far (ties: newest first)."""
    if sort == "supported":
        counts = vote_counts(session, ids)
        ids.sort(key=lambda i: (-counts.get(i, (0, 0))[0], counts.get(i, (0, 0))[1], -i))
        return
    from app.ranking import rank
    from app.tallies import live_tallies, rules_of

    ranked = rank(live_tallies(session, consultation.id, clause_id), rules_of(consultation))
    order = {a.ref: a.rank for a in ranked}
    ids.sort(key=lambda i: (order.get(amendment_ref(i), len(order) + 1), -i))


def _clause_and_neighbours_statement():
    """Consultation :slug, its clause :number (or NULL), that clause's current version (or
    NULL), and the numbers of the clauses before and after it by position (or NULL)."""
    latest = (
        select(func.max(ClauseVersion.version))
        .where(ClauseVersion.clause_id == Clause.id)
        .correlate(Clause)
        .scalar_subquery()
    )
    other = aliased(Clause)
    previous = (
        select(other.number)
        .where(other.consultation_id == Clause.consultation_id, other.position < Clause.position)
        .order_by(col(other.position).desc())
        .limit(1)
        .correlate(Clause)
        .scalar_subquery()
    )
    following = (
        select(other.number)
        .where(other.consultation_id == Clause.consultation_id, other.position > Clause.position)
        .order_by(other.position)
        .limit(1)
        .correlate(Clause)
        .scalar_subquery()
    )
    return (
        select(Consultation, Clause, ClauseVersion, previous, following)
        .outerjoin(
            Clause,
            and_(
                col(Clause.consultation_id) == Consultation.id,
                Clause.number == bindparam("number"),
            ),
        )
        .outerjoin(
            ClauseVersion,
            and_(col(ClauseVersion.clause_id) == Clause.id, ClauseVersion.version == latest),
        )
        .where(Consultation.slug == bindparam("slug"))
    )


_CLAUSE_AND_NEIGHBOURS = Precompiled(_clause_and_neighbours_statement())
_CLAUSE_ENTITIES = (Consultation, Clause, ClauseVersion)


def _clause_and_neighbours(
    session: Session, slug: str, number: str
) -> tuple[Consultation, Clause, ClauseVersion, str | None, str | None]:
    """The consultation, the clause, its current version and the numbers of the clauses
    before and after it, in one statement; NotFound as consultation_by_slug and
    clause_with_version give it."""
    if not is_slug(slug) or not is_clause_number(number):
        # consultation_by_slug says whether it is the consultation or the clause that is missing.
        consultation_by_slug(session, slug)
        raise NotFound("There is no such clause in this consultation.")
    rows = _CLAUSE_AND_NEIGHBOURS.rows(session, {"slug": slug, "number": number})
    consultation, clause, version = models_of(rows[0], _CLAUSE_ENTITIES) if rows else (None,) * 3
    if consultation is None or consultation.status == "draft":
        raise NotFound("There is no consultation at this address.")
    previous_number, next_number = rows[0][-2:]
    if clause is None:
        raise NotFound(f"There is no clause {number} in this consultation.")
    if version is None:
        raise NotFound(f"Clause {number} has no wording yet.")
    return consultation, clause, version, previous_number, next_number


def clause_page(
    session: Session,
    slug: str,
    number: str,
    viewer_id: int | None,
    sort: str,
    seed: str = "",
    page: int = 1,
) -> ClausePage:
    """One page of a clause's amendments, in the requested order, of bounded size.

    The default order is a shuffle that is stable for each visitor (DESIGN.md, "Fair
    exposure"); sorting by support or by rank exists only where results are visible.
    The shuffle and newest first are ordered and paged in SQL (only the page's ids come
    back); by support or rank, only the ids of the clause's amendments are read to order
    them. Full rows, counts and the viewer's votes are read for the PAGE_SIZE amendments
    shown. Three statements in all: the clause with its neighbours, the page's ids, the
    rows shown.
    """
    consultation, clause, version, previous, following = _clause_and_neighbours(
        session, slug, number
    )
    visible = results_visible(consultation.status, consultation.live_results)
    if sort not in SORTS or (not visible and sort not in SORTS_WHILE_HIDDEN):
        sort = "shuffled"
    shown, total, page = _page_of_ids(
        session, consultation, clause.id, viewer_id, sort, seed, max(1, page)
    )
    return ClausePage(
        consultation=consultation,
        clause=clause,
        version=version,
        amendments=rows_for(session, shown, viewer_id),
        total=total,
        page=page,
        pages=_pages(total),
        results_visible=visible,
        sort=sort,
        previous=previous,
        next=following,
    )


def clause_page_address(session: Session, amendment: Amendment) -> tuple[str, str]:
    """(consultation slug, clause number) of the page that shows this amendment."""
    row = session.exec(
        select(Consultation.slug, Clause.number)
        .join(Clause, col(Clause.consultation_id) == Consultation.id)
        .where(Clause.id == amendment.clause_id)
    ).one()
    return row[0], row[1]


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
    changes: list[Change] = field(default_factory=list)


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
            who=public_name(user.display_name, user.pseudonym) if user else "system",
            action=entry.action,
            subject=entry.subject,
            reason=entry.reason,
            changes=decode(entry.changes),
        )
        for entry, user in rows
    ]
