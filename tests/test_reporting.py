"""The report's turnout: proposers, and proposers who cast no vote, counted as the rule says."""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from contextlib import closing

import anyio
import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from app import organising, reporting
from app.db import Database
from app.main import create_app
from app.models import LISTED_STATUSES, Amendment, Consultation, Organisation, User, Vote, Voter
from app.ranking import OTHER
from app.reporting import _proposers_by_organisation
from app.services import cast_vote
from tests.conftest import settings_for


def recounted(session, consultation_id: int) -> tuple[dict, dict]:
    """Proposers per organisation and those with no vote on a listed amendment, from the rows."""
    amendments = session.exec(
        select(Amendment).where(Amendment.consultation_id == consultation_id)
    ).all()
    listed = {a.id for a in amendments if a.status in LISTED_STATUSES}
    voted = {v.user_id for v in session.exec(select(Vote)).all() if v.amendment_id in listed}
    names = {o.id: o.name for o in session.exec(select(Organisation)).all()}
    proposers, non_voters = defaultdict(int), defaultdict(int)
    for author in {a.author_id for a in amendments if a.status != "withdrawn"}:
        voter = session.get(Voter, (consultation_id, author))
        organisation = voter.organisation_id if voter else None
        if organisation is None:
            organisation = session.get(User, author).organisation_id
        name = names.get(organisation) or OTHER
        proposers[name] += 1
        non_voters[name] += author not in voted
    return dict(proposers), dict(non_voters)


def test_proposers_who_voted_only_on_a_hidden_amendment_count_as_not_voting(seeded: Database):
    with seeded.session() as session:
        amendments = session.exec(select(Amendment).order_by(Amendment.id)).all()
        consultation_id = amendments[0].consultation_id
        organiser = session.exec(select(User.id).where(User.role == "organiser")).first()
    author, other = (
        amendments[0].author_id,
        next(a for a in amendments if a.author_id != amendments[0].author_id),
    )
    seeded.write_call(cast_vote, author, other.id, "support")
    seeded.write_call(organising.moderate, organiser, other.id, "hide", "Off topic")
    with seeded.session() as session:
        proposers, non_voters = _proposers_by_organisation(session, consultation_id)
        expected = recounted(session, consultation_id)
    assert (dict(proposers), {k: v for k, v in non_voters.items()}) == expected
    assert sum(expected[1].values()) > 0


def test_proposers_read_without_unlisted_amendments_agree_with_a_recount(seeded: Database):
    # The report passes any_unlisted=False when it has read every amendment's status and
    # none is hidden or withdrawn; the count must be the one the rule gives.
    with seeded.session() as session:
        consultation_id = session.exec(select(Consultation.id)).first()
        statuses = session.exec(
            select(Amendment.status).where(Amendment.consultation_id == consultation_id)
        ).all()
        assert statuses and all(status in LISTED_STATUSES for status in statuses)
        expected = recounted(session, consultation_id)
        quick = _proposers_by_organisation(session, consultation_id, any_unlisted=False)
        full = _proposers_by_organisation(session, consultation_id)
    assert (dict(quick[0]), dict(quick[1])) == expected == (dict(full[0]), dict(full[1]))


def test_the_garbage_collector_runs_again_after_a_report_whatever_happens(seeded: Database):
    import gc

    from app.models import Consultation
    from app.reporting import _cyclic_gc_paused, build_report

    with seeded.session() as session:
        build_report(session, session.exec(select(Consultation)).first())
    assert gc.isenabled()
    try:
        with _cyclic_gc_paused(), _cyclic_gc_paused():
            assert not gc.isenabled()
            raise RuntimeError
    except RuntimeError:
        pass
    assert gc.isenabled()


def test_what_a_paused_build_leaves_is_still_collected():
    import gc
    import weakref

    from app.reporting import _cyclic_gc_paused

    class Node:
        pass

    with _cyclic_gc_paused():
        cycle = Node()
        cycle.self = cycle  # garbage only the cyclic collector can free
        gone = weakref.ref(cycle)
        del cycle
    assert gc.get_freeze_count() == 0  # handed to the oldest generation, not made permanent
    gc.collect()
    assert gone() is None


def test_the_amendment_tuple_names_the_columns_it_is_read_from():
    from app.reporting import AMENDMENT_COLUMNS, AmendmentColumns

    assert AmendmentColumns._fields == tuple(c.key for c in AMENDMENT_COLUMNS)


LIVE_SLUG = "social-media-guidance"


def supports_shown(page: str, amendment_id: int) -> int:
    """The support count the results page's ranked table shows for one amendment."""
    found = re.search(
        rf'#amendment-{amendment_id}">Amendment {amendment_id}</a>.*?</td>\s*'
        r'<td class="govuk-table__cell govuk-table__cell--numeric">(\d+)</td>',
        page,
        re.DOTALL,
    )
    assert found, f"amendment {amendment_id} is not in the ranked table"
    return int(found.group(1))


def finish_recount() -> None:
    """Wait for this process's background recount of the live results, if one runs."""
    for _key, thread in list(reporting._RECOUNT):
        thread.join(timeout=60)
        assert not thread.is_alive()


def _live_amendment_and_new_voter(seeded: Database) -> tuple[int, Amendment, int]:
    """The seed's open consultation, its first open amendment, and someone who may vote on
    it and has not."""
    with seeded.session() as session:
        consultation_id = session.exec(
            select(Consultation.id).where(Consultation.slug == LIVE_SLUG)
        ).one()
        amendment = session.exec(
            select(Amendment)
            .where(Amendment.consultation_id == consultation_id, Amendment.status == "open")
            .order_by(Amendment.id)
        ).first()
        voted = set(session.exec(select(Vote.user_id).where(Vote.amendment_id == amendment.id)))
        voter = next(
            a.author_id
            for a in session.exec(select(Amendment).order_by(Amendment.id))
            if a.author_id not in voted and a.author_id != amendment.author_id
        )
    return consultation_id, amendment, voter


def supports_counted(report: reporting.Report, amendment_id: int) -> int:
    """The supports a report counted for one amendment."""
    return next(r for r in report.rows if r.amendment.id == amendment_id).ranked.supports


def live_view(seeded: Database, consultation_id: int) -> reporting.Report:
    """The live report one view of the results page gets, in a read session of its own."""

    def read(session):
        return reporting.live_report(session, session.get(Consultation, consultation_id))

    return seeded.read_call(read)


def test_a_stale_live_report_is_served_at_once_while_one_recount_replaces_it(
    seeded: Database, monkeypatch: pytest.MonkeyPatch
):
    # Keep even the seed's small report, and let it go stale at once: as a large
    # consultation's report does after LIVE_STALE_FACTOR times its build time.
    monkeypatch.setattr(reporting, "LIVE_BUILD_WORTH_KEEPING", 0.0)
    monkeypatch.setattr(reporting, "LIVE_STALE_FACTOR", 0.0)
    consultation_id, amendment, voter = _live_amendment_and_new_voter(seeded)
    address = f"/consultations/{LIVE_SLUG}/results"
    app = create_app(settings_for(seeded.url))
    try:
        with closing(TestClient(app)) as visitor:
            first = visitor.get(address)  # nothing kept yet: counted in the request
            assert first.status_code == 200
            before = supports_shown(first.text, amendment.id)
            seeded.write_call(cast_vote, voter, amendment.id, "support")
            # Hold the process's one live count, so that the recount stays pending.
            with reporting._LIVE_BUILD_LOCK:
                stale = visitor.get(address)
                again = visitor.get(address)
                pending = list(reporting._RECOUNT)
                assert len(pending) == 1 and pending[0][0][1] == consultation_id
                assert pending[0][1].is_alive()
            # Served at once, as counted before the vote, by both views; one recount for both.
            assert supports_shown(stale.text, amendment.id) == before
            assert supports_shown(again.text, amendment.id) == before
            finish_recount()
            fresh = visitor.get(address)
            assert supports_shown(fresh.text, amendment.id) == before + 1
            finish_recount()
            # Once closed, no kept live count is served: the results give way to the report.
            olive = seeded.call(
                lambda s: s.exec(
                    select(User.id).where(User.email == "olive.grant@cabinetoffice.gov.uk")
                ).one()
            )
            seeded.write_call(organising.change_status, olive, LIVE_SLUG, "close")
            closed = visitor.get(address, follow_redirects=False)
            assert closed.status_code in (302, 303, 307)
            assert closed.headers["location"].endswith(f"/consultations/{LIVE_SLUG}/report")

            def report_now(session):
                return reporting.live_report(
                    session,
                    session.exec(select(Consultation).where(Consultation.slug == LIVE_SLUG)).one(),
                )

            assert seeded.call(report_now).frozen
    finally:
        finish_recount()
        app.state.database.dispose()


def test_a_report_read_beside_itself_is_the_report_read_in_one_session(seeded: Database):
    """On PostgreSQL the web's read session reads the amendments and the turnout on a
    second connection while it ranks (app.db.read_beside); a write-capable session reads
    all of it itself. Both must give the same report, on both engines, also with a
    hidden amendment (which changes how the turnout is read)."""
    from app.reporting import build_report

    def built(session):
        consultation = session.exec(select(Consultation)).first()
        report = build_report(session, consultation)
        return (
            [row.ranked for row in report.rows],
            [row.amendment for row in report.rows],
            report.turnout,
            report.turnout_by_organisation,
            report.outcome.consolidated,
        )

    with seeded.session() as session:
        organiser = session.exec(select(User.id).where(User.role == "organiser")).first()
        amendment = session.exec(select(Amendment).order_by(Amendment.id)).first()
        # Proposers are people who may take part: some of them vote for the first amendment.
        voters = session.exec(select(Amendment.author_id).distinct()).all()
    for voter in voters[:6]:
        seeded.write_call(cast_vote, voter, amendment.id, "support")
    assert seeded.read_call(built) == seeded.call(built)
    seeded.write_call(organising.moderate, organiser, amendment.id, "hide", "Off topic")
    beside, alone = seeded.read_call(built), seeded.call(built)
    assert beside == alone
    assert amendment.id not in {a.id for a in beside[1]}


def test_views_that_wait_for_a_live_count_share_the_next_one_which_holds_every_earlier_vote(
    seeded: Database, monkeypatch: pytest.MonkeyPatch
):
    """A small consultation is counted for each view, but views arriving while a count
    runs do not queue for a count each: the first count to start after they arrived is
    theirs, and it holds every vote committed before they asked."""
    # Small, however slowly a loaded machine counts it: never served as fresh.
    monkeypatch.setattr(reporting, "LIVE_BUILD_WORTH_KEEPING", 60.0)
    consultation_id, amendment, voter = _live_amendment_and_new_voter(seeded)

    before = supports_counted(live_view(seeded, consultation_id), amendment.id)
    seeded.write_call(cast_vote, voter, amendment.id, "support")
    views = 8
    arrived = threading.Barrier(views + 1)
    reports: list[reporting.Report] = []

    def viewer() -> None:
        arrived.wait()
        reports.append(live_view(seeded, consultation_id))

    # Hold the process's one live count, as a count in progress does, while they arrive.
    with reporting._LIVE_BUILD_LOCK:
        threads = [threading.Thread(target=viewer) for _ in range(views)]
        for thread in threads:
            thread.start()
        arrived.wait()
        time.sleep(0.3)  # each is now waiting for the count
    for thread in threads:
        thread.join(timeout=60)
    assert len(reports) == views
    assert len({id(report) for report in reports}) == 1, "each view counted for itself"
    assert supports_counted(reports[0], amendment.id) == before + 1
    # A view arriving after that count counts afresh (the consultation is small).
    assert live_view(seeded, consultation_id) is not reports[0]


def test_views_waiting_for_a_live_count_hold_no_worker_thread_and_share_one_count(
    seeded: Database,
):
    """The results page's views of one consultation wait for a count on the event loop:
    while one counts, the others hold none of the few read threads that every other page
    needs, and all of them take that one count."""
    from app.db import _read_threads
    from app.views.results import shared_live_report

    with seeded.session() as session:
        consultation = session.exec(
            select(Consultation).where(Consultation.slug == LIVE_SLUG)
        ).one()
    views = 8

    async def main() -> tuple[list[reporting.Report], int]:
        reports: list[reporting.Report] = []

        async def view() -> None:
            reports.append(await shared_live_report(seeded, consultation))

        busiest = 0
        async with anyio.create_task_group() as group:
            # Hold the process's one live count, as a count in progress does.
            with reporting._LIVE_BUILD_LOCK:
                for _ in range(views):
                    group.start_soon(view)
                for _ in range(30):
                    await anyio.sleep(0.01)
                    busiest = max(busiest, _read_threads().borrowed_tokens)
                assert not reports
        return reports, busiest

    reports, busiest = anyio.run(main)
    assert busiest == 1, "only the view that counts holds a read thread"
    assert len(reports) == views
    assert len({id(report) for report in reports}) == 1


def test_past_the_kept_limit_small_live_counts_go_before_large_ones(
    monkeypatch: pytest.MonkeyPatch,
):
    """A large consultation's kept count (a second or more to rebuild) outlives views of
    many small ones: their counts are dropped first, oldest first."""
    monkeypatch.setattr(reporting, "_LIVE", reporting.OrderedDict())
    monkeypatch.setattr(reporting, "LIVE_KEPT", 3)

    def counted(worth_keeping: bool) -> reporting._Counted:
        return reporting._Counted(0.0, 0.0, 10.0, worth_keeping, object())  # type: ignore[arg-type]

    reporting._keep(("db", 1), counted(True))
    for consultation_id in (2, 3, 4, 5):
        reporting._keep(("db", consultation_id), counted(False))
    assert list(reporting._LIVE) == [("db", 1), ("db", 4), ("db", 5)]
    for consultation_id in (6, 7):
        reporting._keep(("db", consultation_id), counted(True))
    assert list(reporting._LIVE) == [("db", 1), ("db", 6), ("db", 7)]
    # No small count left to drop: the oldest goes.
    reporting._keep(("db", 8), counted(True))
    assert list(reporting._LIVE) == [("db", 6), ("db", 7), ("db", 8)]
    # A small count just made stays (until the next count): an older large one goes.
    reporting._keep(("db", 9), counted(False))
    assert list(reporting._LIVE) == [("db", 7), ("db", 8), ("db", 9)]


def test_a_view_is_never_served_a_count_that_began_before_it_asked(
    seeded: Database, monkeypatch: pytest.MonkeyPatch
):
    """A count already under way when a view arrives may miss a vote committed just
    before that view asked: the view waits for it, then counts afresh."""
    monkeypatch.setattr(reporting, "LIVE_BUILD_WORTH_KEEPING", 60.0)
    consultation_id, amendment, voter = _live_amendment_and_new_voter(seeded)

    # The first count, once it has read everything, waits to be let go: it is "under way"
    # while the vote is cast and the second view arrives.
    built, let_go = threading.Event(), threading.Event()
    build = reporting.build_report

    def build_then_wait(session, consultation):
        report = build(session, consultation)
        if not built.is_set():
            built.set()
            assert let_go.wait(timeout=30)
        return report

    monkeypatch.setattr(reporting, "build_report", build_then_wait)
    first: list[reporting.Report] = []
    counting = threading.Thread(target=lambda: first.append(live_view(seeded, consultation_id)))
    counting.start()
    assert built.wait(timeout=30)
    seeded.write_call(cast_vote, voter, amendment.id, "support")
    second: list[reporting.Report] = []
    waiting = threading.Thread(target=lambda: second.append(live_view(seeded, consultation_id)))
    waiting.start()
    time.sleep(0.3)  # the second view has asked, and waits for the count under way
    let_go.set()
    counting.join(timeout=60)
    waiting.join(timeout=60)
    assert supports_counted(second[0], amendment.id) == supports_counted(first[0], amendment.id) + 1
    assert second[0] is not first[0]
