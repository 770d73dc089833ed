"""The report's turnout: proposers, and proposers who cast no vote, counted as the rule says."""

from __future__ import annotations

from collections import defaultdict

from sqlmodel import select

from app import organising
from app.db import Database
from app.models import LISTED_STATUSES, Amendment, Organisation, User, Vote, Voter
from app.ranking import OTHER
from app.reporting import _proposers_by_organisation
from app.services import cast_vote


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


def test_the_amendment_tuple_names_the_columns_it_is_read_from():
    from app.reporting import AMENDMENT_COLUMNS, AmendmentColumns

    assert AmendmentColumns._fields == tuple(c.key for c in AMENDMENT_COLUMNS)
