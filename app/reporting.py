"""The ranked amendment report of one consultation: the one road from counts to outcome.

counts (live while open, frozen at closing after; app.tallies) -> app.ranking ->
app.outcome (outcome per clause and consolidated text). The live results page,
the report page, the organisers' decisions page, every export and (from a
ballot file) `redline tally` all go this way.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import NamedTuple

from sqlalchemy import Engine, and_, bindparam, case, func
from sqlmodel import Session, col, select

from app.db import ReadOnlySession, read_beside
from app.disclosure import disclose
from app.models import (
    Amendment,
    AuditEntry,
    Clause,
    ClauseVersion,
    Consultation,
    FinalWording,
    Organisation,
    User,
    Vote,
    Voter,
    utcnow,
)
from app.outcome import ClauseText, Outcome, Proposal, clause_outcomes
from app.outcome import FinalWording as FinalText
from app.people import AuthorLabel, author_label
from app.queries import clause_texts
from app.ranking import OTHER, RankedAmendment, Rules, rank, recode_small_organisations
from app.summary import facts_by_ref
from app.tallies import (
    LISTED_STATUSES,
    TALLIED_COLUMNS,
    amendment_ref,
    frozen_voters_by_group,
    rules_of,
    tallies,
    voters_by_organisation,
)

WITHHELD_TEXT = "[Text withheld by the moderators after voting closed.]"
OTHER_LABEL = "Other organisations (fewer than 5 participants each)"
DECISIONS = ("accepted", "rejected")


class ReportRow(NamedTuple):
    """One ranked amendment with everything the report and its exports show.

    A named tuple of what differs per amendment (as app.ranking.RankedAmendment): a large
    report makes one per amendment. What follows from those (the author's label, the
    clause's heading and versions) is read through properties, made only where shown.
    """

    ranked: RankedAmendment
    # The amendment's columns (id, kind, proposed_heading, status, status_reason, withheld,
    # ...), read as attributes; its wording is read apart (``Wording``, ``with_wordings``).
    amendment: AmendmentColumns
    # The clause's current wording (None for a clause no longer in the consultation).
    clause: ClauseText | None
    leading: bool = False
    too_close_to_call: bool = False
    robustness: str = ""

    @property
    def author(self) -> AuthorLabel:
        a = self.amendment
        return author_label(a.display_name, a.pseudonym, a.show_organisation, a.organisation)

    @property
    def clause_heading(self) -> str:
        return self.clause.heading if self.clause is not None else ""

    @property
    def target_version(self) -> int:
        return self.amendment.version

    @property
    def current_version(self) -> int:
        return self.clause.version if self.clause is not None else self.amendment.version

    @property
    def outdated(self) -> bool:
        return self.target_version != self.current_version

    @property
    def decision(self) -> str | None:
        return self.amendment.status if self.amendment.status in DECISIONS else None


@dataclass(frozen=True)
class TurnoutRow:
    """Participants from one organisation group, as app.disclosure lets them be shown."""

    organisation: str
    participants: int | str


@dataclass
class Report:
    consultation: Consultation
    rules: Rules
    rows: list[ReportRow]
    outcome: Outcome
    # Participants (int, or "at least N"), proposers and voters (int, or None when
    # withheld): shown figures only, see app.disclosure.
    turnout: dict[str, int | str | None]
    turnout_by_organisation: list[TurnoutRow]
    frozen: bool
    counted_at: datetime = field(default_factory=utcnow)

    @property
    def consolidated(self):
        return self.outcome.consolidated

    @property
    def uses_decisions(self) -> bool:
        return self.outcome.uses_decisions

    @property
    def voters(self) -> int | None:
        """How many voted, or None where that total would reveal a suppressed count."""
        return self.turnout["voters"]


class AmendmentColumns(NamedTuple):
    """The columns of one amendment the report reads while it is built (``AMENDMENT_COLUMNS``).

    Not its wording and rationale: see ``Wording``.
    """

    id: int
    author_id: int
    kind: str
    proposed_heading: str | None
    status: str
    status_reason: str | None
    withheld: bool
    version: int
    display_name: str | None
    pseudonym: str
    show_organisation: bool
    organisation: str | None


AMENDMENT_COLUMNS = (
    Amendment.id,
    Amendment.author_id,
    Amendment.kind,
    Amendment.proposed_heading,
    Amendment.status,
    Amendment.status_reason,
    Amendment.withheld,
    ClauseVersion.version,
    User.display_name,
    User.pseudonym,
    User.show_organisation,
    Organisation.name.label("organisation"),
)


def _amendments(
    session: Session, consultation_id: int
) -> tuple[dict[str, AmendmentColumns], list[tuple[int, str, str, str]]]:
    """Every amendment of the consultation as plain tuples, keyed by reference; and the
    listed ones as app.tallies.live_tallies takes them (read here once for both)."""
    rows = (
        session.connection()
        .execute(
            select(*AMENDMENT_COLUMNS, *TALLIED_COLUMNS[1:])
            .join(ClauseVersion, col(ClauseVersion.id) == Amendment.clause_version_id)
            .join(Clause, col(Clause.id) == Amendment.clause_id)
            .join(User, col(User.id) == Amendment.author_id)
            .outerjoin(Organisation, col(Organisation.id) == User.organisation_id)
            .where(Amendment.consultation_id == consultation_id)
        )
        .all()
    )  # fetched in bulk: row-by-row fetching costs more than the query
    # Plain tuples, not ORM objects or result rows: a report may hold tens of thousands of
    # amendments, and each is read a dozen times while the report is put together.
    make = tuple.__new__
    width = len(AMENDMENT_COLUMNS)
    status = AmendmentColumns._fields.index("status")
    amendments: dict[str, AmendmentColumns] = {}
    listed: list[tuple[int, str, str, str]] = []
    for row in rows:
        ref = amendment_ref(row[0])
        amendments[ref] = make(AmendmentColumns, row[:width])
        if row[status] in LISTED_STATUSES:
            listed.append((row[0], ref, row[width], row[width + 1]))
    return amendments, listed


class Wording(NamedTuple):
    """What an amendment proposes and why, exactly as its author wrote them.

    Kept out of the report's rows: ranking never reads them, yet they were most of what
    reading a large consultation's amendments moved (about 30 MB at 30,000 amendments).
    What shows them reads them for just the rows it shows: ``wordings`` for a page's
    rows, ``with_wordings`` for an export streaming every row.
    """

    proposed_text: str
    rationale: str


# Reads the ``Wording`` of the amendments with the given ids, by id (``wordings`` in a
# session of the caller's choosing: an export's may open a short one per chunk).
WordingReader = Callable[[Sequence[int]], Mapping[int, Wording]]

# Amendments whose wording is read per statement (and held at once by with_wordings).
WORDING_CHUNK = 500


def wordings(session: Session, amendment_ids: Iterable[int]) -> dict[int, Wording]:
    """The ``Wording`` of each of the amendments ``amendment_ids``, by id."""
    ids = [int(amendment_id) for amendment_id in amendment_ids]
    found: dict[int, Wording] = {}
    make = tuple.__new__  # Wording's fields in order
    for start in range(0, len(ids), WORDING_CHUNK):
        # The ids (integers) are written into the statement rather than bound one
        # parameter each: half the cost on both engines, and no limit on parameters.
        chosen = bindparam("ids", ids[start : start + WORDING_CHUNK], literal_execute=True)
        rows = (
            session.connection()
            .execute(
                select(Amendment.id, Amendment.proposed_text, Amendment.rationale).where(
                    col(Amendment.id).in_(chosen)
                )
            )
            .all()
        )
        for amendment_id, text, rationale in rows:
            found[amendment_id] = make(Wording, (text, rationale))
    return found


def with_wordings(
    rows: Iterable[ReportRow], read: WordingReader, chunk: int = WORDING_CHUNK
) -> Iterator[tuple[ReportRow, Wording]]:
    """Each of ``rows`` with its amendment's wording, read by ``read`` ``chunk`` rows at a time.

    For exports: tens of thousands of rows stream through with only a chunk's wording
    in memory at once.
    """
    rows = iter(rows)
    while batch := list(islice(rows, chunk)):
        found = read([row.amendment.id for row in batch])
        for row in batch:
            yield row, found[row.amendment.id]


def _final_wordings(session: Session, consultation_id: int) -> list[FinalText]:
    rows = session.exec(
        select(FinalWording, Clause.number)
        .join(Clause, col(Clause.id) == FinalWording.clause_id)
        .where(FinalWording.consultation_id == consultation_id)
    )
    return [
        FinalText(number, f.heading, f.text, tuple(f.amendment_refs.split())) for f, number in rows
    ]


_RECORDS: OrderedDict[tuple, Report] = OrderedDict()
_RECORDS_LOCK = threading.Lock()
RECORDS_KEPT = 4


class _Counted(NamedTuple):
    """A live report as this process keeps it (see live_report)."""

    # time.monotonic() before the count's first read: every vote committed before then
    # is in it.
    started: float
    # time.monotonic() when it was done, and for how long after that it is served as fresh.
    counted: float
    fresh_for: float
    # Whether it cost enough to build to be served stale while a recount runs.
    worth_keeping: bool
    report: Report


# The last live count of each open consultation (per database), big or small.
_LIVE: OrderedDict[tuple, _Counted] = OrderedDict()
# Open consultations whose last live count is kept per process. Beyond that the oldest
# count of a small one goes first (it only lets waiting views share it), then the oldest.
LIVE_KEPT = 8
# A live report that takes more than this to build is kept for a while (see live_report).
LIVE_BUILD_WORTH_KEEPING = 0.25
LIVE_STALE_FACTOR = 10
LIVE_MAX_AGE = 60.0
# A kept live report older than this is not served even while its recount runs: the
# request counts afresh itself (only when recounts keep failing, or wait behind others).
LIVE_STALE_LIMIT = 2 * LIVE_MAX_AGE
# One live count at a time per process, in a request or in the background.
_LIVE_BUILD_LOCK = threading.Lock()
# Guards _LIVE and _RECOUNT, only ever briefly (never held while counting).
_LIVE_LOCK = threading.Lock()
# The background recount of this process, if one is running: (key, thread).
_RECOUNT: list[tuple[tuple, threading.Thread]] = []
# Python's GIL switch interval while a background recount runs (see _recount).
RECOUNT_SWITCH_INTERVAL = 0.0005

log = logging.getLogger("redline.reporting")


def live_report(
    session: Session, consultation: Consultation, arrived: float | None = None
) -> Report:
    """The report of an open consultation, for the live results page.

    Small consultations are counted afresh for every view, but views that arrive while
    a count runs share the next one: each waits for the count in progress, and the
    count that starts after it arrived serves every view that waited for it, since it
    holds every vote committed before any of them asked. Without that, 64 people
    opening the results at once cost 64 counts one after another (the last waited
    seconds). ``arrived``: when the view asked (time.monotonic()), if before now.

    One whose report takes longer than LIVE_BUILD_WORTH_KEEPING seconds to build is
    kept, and served as it is for up to LIVE_STALE_FACTOR times its build time (at
    most a minute), so that results viewed by many people at once cost one count, not
    one each; the page says when it was counted. After that it is stale: viewers still
    get it at once while one recount runs in the background (one per process at a
    time), and the fresh count replaces it when done. Reports are kept per database and
    consultation, and only while open: a closed consultation's results are its frozen
    report, never a kept one.
    """
    engine = session.get_bind()
    key = live_key(engine, consultation.id)
    if consultation.status in ("closed", "published"):
        forget_live_report(engine, consultation.id)
        return frozen_report(session, consultation)
    if arrived is None:
        arrived = time.monotonic()
    kept = kept_live_report(engine, consultation.id, arrived)
    if kept is not None:
        return kept
    with _LIVE_BUILD_LOCK:
        kept = kept_live_report(engine, consultation.id, arrived)
        if kept is not None:
            return kept  # counted while this request waited
        counted = _count_live(key, engine, consultation.id)
    # Closed since this request read it open: its live counts, as the page it asked for
    # shows them (they stay as they were at closing), counted for this view alone.
    return counted.report if counted is not None else build_report(session, consultation)


def live_key(engine: Engine, consultation_id: int) -> tuple:
    """What a consultation's live count is kept under: its database and its id."""
    return (engine.url.render_as_string(hide_password=True), consultation_id)


def forget_live_report(engine: Engine, consultation_id: int) -> None:
    """Drop the kept live count of a consultation that has closed: its frozen report
    takes over, and a large count would otherwise stay until newer ones push it out."""
    with _LIVE_LOCK:
        _LIVE.pop(live_key(engine, consultation_id), None)


def kept_live_report(engine: Engine, consultation_id: int, arrived: float) -> Report | None:
    """The kept live count that a view which asked at ``arrived`` may be served at once:
    one counted since, one still fresh, or a stale one worth keeping (whose recount this
    starts in the background); None if it must wait for a count.

    Reads only what this process keeps, never the database: the web calls it on the
    event loop, and a view served from it needs no worker thread.
    """
    key = live_key(engine, consultation_id)
    kept = _LIVE.get(key)
    if kept is None:
        return None
    if kept.started >= arrived:
        return kept.report
    if kept.worth_keeping:
        age = time.monotonic() - kept.counted
        if age < kept.fresh_for:
            return kept.report
        if age < LIVE_STALE_LIMIT:
            _recount_in_background(engine, key, consultation_id)
            return kept.report
    return None


def _count_live(key: tuple, engine: Engine, consultation_id: int) -> _Counted | None:
    """Count the live report afresh and keep it (_LIVE_BUILD_LOCK held); None if the
    consultation closed meanwhile.

    In a session of its own, begun now: a request's own session may have begun reading
    before others arrived (on SQLite its snapshot dates from its first read), and a count
    shared with those must hold what they would have counted themselves.
    """
    started = time.monotonic()
    with ReadOnlySession(engine, expire_on_commit=False) as session:
        consultation = session.get(Consultation, consultation_id)
        if consultation is None or consultation.status in ("closed", "published"):
            forget_live_report(engine, consultation_id)  # closed meanwhile
            return None
        # Its cost is the count's alone, not the wait for a pooled connection above:
        # a small consultation counted while the pool is busy must not be taken for a
        # large one and served unchanged for ten times that wait.
        building = time.monotonic()
        report = build_report(session, consultation)
    done = time.monotonic()
    cost = done - building
    counted = _Counted(
        started=started,
        counted=done,
        fresh_for=min(LIVE_MAX_AGE, LIVE_STALE_FACTOR * cost),
        worth_keeping=cost > LIVE_BUILD_WORTH_KEEPING,
        report=report,
    )
    _keep(key, counted)
    return counted


def _keep(key: tuple, counted: _Counted) -> None:
    """Keep ``counted`` as the last live count of ``key``, within LIVE_KEPT."""
    with _LIVE_LOCK:
        _LIVE[key] = counted
        _LIVE.move_to_end(key)
        while len(_LIVE) > LIVE_KEPT:
            small = next((k for k, c in _LIVE.items() if not c.worth_keeping and k != key), None)
            if small is None:
                _LIVE.popitem(last=False)
            else:
                del _LIVE[small]


def _recount_in_background(engine: Engine, key: tuple, consultation_id: int) -> None:
    """Start the recount of a stale kept report, unless this process runs one already."""
    with _LIVE_LOCK:
        if _RECOUNT:
            return  # one at a time: a later view starts the next
        thread = threading.Thread(
            target=_recount, args=(engine, key, consultation_id), name="live-recount", daemon=True
        )
        _RECOUNT.append((key, thread))
    try:
        thread.start()
    except RuntimeError:  # no thread to be had now: the request's view stays as kept
        with _LIVE_LOCK:
            _RECOUNT.clear()


def _recount(engine: Engine, key: tuple, consultation_id: int) -> None:
    """The background recount, on the consultation as it is now."""
    # While this thread counts, the threads serving requests (the event loop among them)
    # wait for the GIL each time they give it up for I/O: by default up to 5 ms a time,
    # which made every view during a recount several times slower. A shorter interval
    # for the recount's duration hands the GIL back sooner (one recount at a time, so
    # setting and restoring it cannot interleave).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(RECOUNT_SWITCH_INTERVAL)
    try:
        with _LIVE_BUILD_LOCK:
            _count_live(key, engine, consultation_id)
    except Exception:  # the kept report stays; the next view of it tries again
        log.exception("recounting the live results of consultation %s failed", consultation_id)
    finally:
        sys.setswitchinterval(interval)
        with _LIVE_LOCK:
            _RECOUNT.clear()


def frozen_report(session: Session, consultation: Consultation) -> Report:
    """The report of a closed or published consultation, built once per change.

    After closing, the counts are frozen; what can still change the report is an
    organiser's action (a decision, final wording, moderation, publication), and each
    of those writes an audit entry in the same transaction. So the report is kept,
    per process, under the consultation's status and its latest audit entry, and is
    rebuilt only when one of those moves. Open consultations are always built afresh.
    """
    if consultation.status not in ("closed", "published"):
        return build_report(session, consultation)
    latest = session.exec(
        select(func.max(AuditEntry.id)).where(AuditEntry.consultation_id == consultation.id)
    ).one()
    database = session.get_bind().url.render_as_string(hide_password=True)
    key = (database, consultation.id, consultation.status, consultation.ballots_sha256, latest)
    with _RECORDS_LOCK:
        if key in _RECORDS:
            _RECORDS.move_to_end(key)
            return _RECORDS[key]
    report = build_report(session, consultation)
    with _RECORDS_LOCK:
        _RECORDS[key] = report
        while len(_RECORDS) > RECORDS_KEPT:
            _RECORDS.popitem(last=False)
    return report


_PAUSES = 0
_PAUSES_LOCK = threading.Lock()


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while a report is built.

    A large report makes a few hundred thousand small objects that all live until it is
    done; each time they pass a quarter of the heap the collector walks the whole heap
    again, which cost about 40 % of building a 30,000-amendment report. Reference
    counting still frees everything as usual, and the collector runs again as soon as the
    last build in the process finishes (the count keeps concurrent builds from
    re-enabling it under each other, and an exception re-enables it too).
    """
    global _PAUSES
    with _PAUSES_LOCK:
        if _PAUSES == 0 and not gc.isenabled():
            paused_here = False  # someone else turned it off: leave it to them
        else:
            paused_here = True
            _PAUSES += 1
            gc.disable()
    try:
        yield
    finally:
        if paused_here:
            with _PAUSES_LOCK:
                _PAUSES -= 1
                if _PAUSES == 0:
                    # What the build made is mostly the report, which lives on (kept, or
                    # until the response is sent): hand it to the oldest generation as it
                    # is (freeze then unfreeze moves every tracked object there unscanned)
                    # rather than have the youngest generation's next pass walk all of it
                    # at once, then the middle one's again. Nothing is made immortal:
                    # the oldest generation is still collected (its next full pass finds
                    # any cycle among these), and reference counting frees the rest.
                    gc.freeze()
                    gc.unfreeze()
                    gc.enable()


def build_report(session: Session, consultation: Consultation) -> Report:
    """Rank, work out the outcome per clause and gather what the report shows around it."""
    with _cyclic_gc_paused():
        return _build_report(session, consultation)


def _build_report(session: Session, consultation: Consultation) -> Report:
    """build_report's work, with the collector paused."""
    rules = rules_of(consultation)
    frozen = consultation.status in ("closed", "published")
    consultation_id = consultation.id
    # Reads that need nothing of each other run beside each other on PostgreSQL
    # (app.db.read_beside): the amendments while the counts are read, then the turnout
    # while everything is ranked.
    amendments_read = read_beside(session, lambda own: _amendments(own, consultation_id))
    # Read once for both the live counts' recoding and the turnout (frozen: neither reads it).
    voters = None if frozen else voters_by_organisation(session, consultation_id)
    counted = tallies(session, consultation, lambda: amendments_read()[1], voters)
    amendments, listed = amendments_read()
    # Every amendment is read above; none hidden or withdrawn is the usual case.
    any_unlisted = len(listed) < len(amendments)
    turnout_read = read_beside(
        session, lambda own: turnout(own, consultation_id, frozen, voters, any_unlisted)
    )
    ranked = rank(counted, rules)
    clauses = [ClauseText(*clause) for clause in clause_texts(session, consultation.id)]
    # clause_outcomes reads a proposal only for an amendment that carries (a leading
    # change, an adopted new clause) or that organisers decided on (and decisions only to
    # know whether there are any): the rest, nearly all of a large report, need none. It
    # reads the wording of just those it applies, through proposed_texts.
    decided = {ref for ref, a in amendments.items() if a.status in DECISIONS}
    proposals = {}
    for r in ranked:
        if r.carries or r.ref in decided:
            a = amendments[r.ref]
            proposals[r.ref] = Proposal(
                ref=r.ref,
                clause_ref=r.clause_ref,
                kind=r.kind,
                heading=a.proposed_heading,
                text=None,
                target_version=a.version,
                decision=a.status if a.status in DECISIONS else None,
            )

    def proposed_texts(refs: Sequence[str]) -> dict[str, str]:
        found = wordings(session, (amendments[ref].id for ref in refs))
        shown = {}
        for ref in refs:
            a = amendments[ref]
            text = found[a.id].proposed_text
            # Text a moderator withheld after closing stays out of every output.
            shown[ref] = WITHHELD_TEXT if a.withheld and text else text
        return shown

    outcome = clause_outcomes(
        ranked,
        clauses,
        proposals,
        _final_wordings(session, consultation.id),
        rules,
        texts=proposed_texts,
    )
    facts = facts_by_ref(outcome).get
    clause_of = {t.number: t for t in clauses}.get
    make = tuple.__new__  # ReportRow's fields in order
    rows = [
        make(ReportRow, (r, amendments[r.ref], clause_of(r.clause_ref), *facts(r.ref, _NO_FACTS)))
        for r in ranked
    ]
    totals, by_organisation = turnout_read()
    return Report(
        consultation=consultation,
        rules=rules,
        rows=rows,
        outcome=outcome,
        turnout=totals,
        turnout_by_organisation=by_organisation,
        frozen=frozen,
    )


# An amendment that neither leads nor is an adopted new clause (app.summary.facts_by_ref).
_NO_FACTS = (False, False, "")


def _voters_by_group(
    session: Session,
    consultation_id: int,
    frozen: bool,
    voters: Mapping[str, int] | None = None,
) -> dict[str, int]:
    if frozen:
        return frozen_voters_by_group(session, consultation_id)
    if voters is None:
        voters = voters_by_organisation(session, consultation_id)
    recode = recode_small_organisations(voters)
    grouped: dict[str, int] = defaultdict(int)
    for name, count in voters.items():
        grouped[recode[name]] += count
    return dict(grouped)


def _proposers_by_organisation(
    session: Session, consultation_id: int, any_unlisted: bool = True
) -> tuple[dict[str, int], dict[str, int]]:
    """Distinct proposers per organisation, and those of them who cast no vote here.

    "No vote here" means none on a listed amendment. It is read from the vote count kept
    on each person's ``voter`` row (app.tallies.participate), less their votes on
    amendments no longer listed (hidden or withdrawn: few), rather than by looking for
    each proposer's votes among all the votes. ``any_unlisted`` False, from a caller
    that has just read every amendment's status and found none unlisted, saves looking
    for votes on them (a pass over all the amendments, half of this query's time).
    """
    # The organisation a person counts for here was fixed when they first took part
    # (app.tallies.participate), so a later sign-in from elsewhere changes nothing.
    authors = (
        select(Amendment.author_id)
        .where(Amendment.consultation_id == consultation_id, Amendment.status != "withdrawn")
        .distinct()
        .subquery()
    )
    unlisted_votes = (
        select(Vote.user_id, func.count().label("votes"))
        .join(Amendment, col(Amendment.id) == Vote.amendment_id)
        .where(Amendment.consultation_id == consultation_id)
        .where(col(Amendment.status).not_in(LISTED_STATUSES))
        .group_by(Vote.user_id)
        .subquery()
    )
    listed_votes = func.coalesce(Voter.votes, 0)
    if any_unlisted:
        listed_votes = listed_votes - func.coalesce(unlisted_votes.c.votes, 0)
    query = (
        select(
            Organisation.name,
            func.count(),
            func.sum(case((listed_votes > 0, 0), else_=1)),
        )
        .select_from(authors)
        .join(User, col(User.id) == authors.c.author_id)
        .outerjoin(
            Voter,
            and_(Voter.user_id == authors.c.author_id, Voter.consultation_id == consultation_id),
        )
    )
    if any_unlisted:
        query = query.outerjoin(unlisted_votes, unlisted_votes.c.user_id == authors.c.author_id)
    query = query.outerjoin(
        Organisation,
        col(Organisation.id) == func.coalesce(Voter.organisation_id, User.organisation_id),
    ).group_by(Organisation.name)
    proposers: dict[str, int] = defaultdict(int)
    non_voters: dict[str, int] = defaultdict(int)
    for name, count, not_voting in session.exec(query):
        proposers[name or OTHER] += count
        non_voters[name or OTHER] += int(not_voting)
    return proposers, non_voters


def turnout(
    session: Session,
    consultation_id: int,
    frozen: bool,
    voters: Mapping[str, int] | None = None,
    any_unlisted: bool = True,
) -> tuple[dict[str, int | str | None], list[TurnoutRow]]:
    """Participants per organisation group, and participants, proposers and voters overall.

    Organisations are grouped as the ranking groups them. Only participants are
    broken down by organisation (proposers and voters by organisation would add
    differences to guard); app.disclosure decides what may be shown: any count
    below 5 as "fewer than 5", and then no exact total at all. ``voters``: the live
    ``voters_by_organisation``, where the caller has read it already; ``any_unlisted``:
    see ``_proposers_by_organisation``.
    """
    voters = _voters_by_group(session, consultation_id, frozen, voters)
    kept = {name for name in voters if name != OTHER}

    def group(name: str) -> str:
        return name if name in kept else OTHER

    by_organisation, non_voters = _proposers_by_organisation(session, consultation_id, any_unlisted)
    proposers: dict[str, int] = defaultdict(int)
    for name, n in by_organisation.items():
        proposers[group(name)] += n
    proposers_only: dict[str, int] = defaultdict(int)
    for name, n in non_voters.items():
        proposers_only[group(name)] += n
    names = set(voters) | set(proposers)
    participants = {name: voters.get(name, 0) + proposers_only.get(name, 0) for name in names}
    shown = disclose(participants)
    withheld = shown.suppressed
    totals: dict[str, int | str | None] = {
        "participants": shown.total_label,
        "proposers": None if withheld else sum(proposers.values()),
        "voters": None if withheld else sum(voters.values()),
    }
    rows = [
        TurnoutRow(
            organisation=OTHER_LABEL if name == OTHER else name,
            participants=shown.cells[name],
        )
        for name in sorted(names, key=lambda n: (n == OTHER, -participants[n], n))
    ]
    return totals, rows
