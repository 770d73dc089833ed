"""The counts kept with every vote always equal a recount from the votes, on both engines."""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from app import organising
from app.db import Database
from app.errors import RedlineError
from app.models import Amendment, Ballot, Consultation, User, Voter
from app.ranking import rank
from app.services import cast_vote, record_sign_in, withdraw_amendment
from app.tallies import (
    freeze_ballots,
    frozen_tallies,
    frozen_voters_by_group,
    kept_counts,
    live_tallies,
    rebuild_tallies,
    recount,
)


def consultation_id(database: Database) -> int:
    with database.session() as session:
        return session.exec(select(Consultation.id)).first()


def voters(database: Database, n: int) -> list[int]:
    with database.session() as session:
        ids = session.exec(
            select(User.id)
            .where(User.email_verified)
            .where(User.issuer == "urn:redline:demo")
            .order_by(User.id)
        ).all()
    return list(ids[:n])


def amendments(database: Database) -> list[int]:
    with database.session() as session:
        return list(session.exec(select(Amendment.id).order_by(Amendment.id)).all())


def assert_kept_equals_recount(database: Database) -> None:
    cid = consultation_id(database)
    with database.session() as session:
        assert kept_counts(session, cid) == {
            key: value for key, value in recount(session, cid).items() if value != (0, 0)
        }


def test_the_seeded_demo_counts_match_a_recount(seeded: Database):
    assert_kept_equals_recount(seeded)


def test_random_votes_changes_and_withdrawals_keep_the_counts_exact(seeded: Database):
    rnd = random.Random(7)
    people = voters(seeded, 30)
    targets = amendments(seeded)
    for _ in range(300):
        stance = rnd.choice(["support", "oppose", None])
        # Some are refused by the rules; those must change nothing.
        with contextlib.suppress(RedlineError):
            seeded.write_call(cast_vote, rnd.choice(people), rnd.choice(targets), stance)
    assert_kept_equals_recount(seeded)


def test_hiding_and_withdrawing_amendments_drop_them_from_the_live_ranking_only(
    seeded: Database,
):
    cid = consultation_id(seeded)
    first, second = amendments(seeded)[:2]
    with seeded.session() as session:
        author = session.get(Amendment, first).author_id
        organiser = session.exec(select(User.id).where(User.role == "organiser")).first()
    seeded.write_call(withdraw_amendment, author, first)
    seeded.write_call(organising.moderate, organiser, second, "hide", "Off topic")
    assert_kept_equals_recount(seeded)
    with seeded.session() as session:
        refs = {t.ref for t in live_tallies(session, cid)}
    assert f"A{first}" not in refs and f"A{second}" not in refs


def test_concurrent_votes_from_many_threads_keep_the_counts_exact(seeded: Database):
    people = voters(seeded, 20)
    targets = amendments(seeded)
    jobs = [(p, a, s) for p in people for a in targets for s in ("support", "oppose", None)]
    random.Random(3).shuffle(jobs)

    def vote(job):
        person, amendment, stance = job
        try:
            seeded.write_call(cast_vote, person, amendment, stance)
            return "ok"
        except RedlineError as error:
            return type(error).__name__

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(vote, jobs))
    assert "Busy" not in results
    assert_kept_equals_recount(seeded)


def test_a_later_sign_in_from_another_domain_keeps_the_voters_organisation(seeded: Database):
    cid = consultation_id(seeded)
    with seeded.session() as session:
        person = session.exec(select(Voter.user_id).where(Voter.votes > 0)).first()
        user = session.get(User, person)
        before = session.get(Voter, (cid, person)).organisation_id
        issuer, subject = user.issuer, user.subject
    seeded.write_call(
        record_sign_in,
        issuer=issuer,
        subject=subject,
        email="someone@elsewhere.nhs.uk",
        email_verified=True,
    )
    seeded.write_call(cast_vote, person, amendments(seeded)[-1], "support")
    with seeded.session() as session:
        assert session.get(Voter, (cid, person)).organisation_id == before
    assert_kept_equals_recount(seeded)


def test_rebuilding_gives_the_same_counts_and_ranking(seeded: Database):
    cid = consultation_id(seeded)
    with seeded.session() as session:
        kept, ranked = kept_counts(session, cid), rank(live_tallies(session, cid))
    with seeded.write_session() as session:
        rebuild_tallies(session, cid)
        session.commit()
    with seeded.session() as session:
        assert kept_counts(session, cid) == kept
        assert rank(live_tallies(session, cid)) == ranked


def close(database: Database) -> int:
    cid = consultation_id(database)
    with database.write_session() as session:
        consultation = session.get(Consultation, cid)
        consultation.status = "closed"
        consultation.ballots_sha256 = freeze_ballots(session, consultation)
        session.add(consultation)
        session.commit()
    return cid


def test_the_counts_frozen_at_closing_equal_the_live_counts_and_the_ballot_lines(
    seeded: Database,
):
    cid = consultation_id(seeded)
    with seeded.session() as session:
        live = {t.ref: t for t in live_tallies(session, cid)}
    close(seeded)
    with seeded.session() as session:
        frozen = {t.ref: t for t in frozen_tallies(session, cid)}
        lines = session.exec(select(Ballot).where(Ballot.consultation_id == cid)).all()
        turnout = frozen_voters_by_group(session, cid)
    assert live and frozen == live
    voters_by_group = Counter(
        organisation
        for organisation, _ in {(b.organisation, b.user_id) for b in lines if b.user_id}
    )
    assert turnout == dict(voters_by_group)


@pytest.mark.parametrize("table", ["ballot_tally", "ballot_turnout"])
@pytest.mark.parametrize("statement", ["UPDATE {} SET organisation = 'x'", "DELETE FROM {}"])
def test_the_frozen_counts_are_append_only_in_the_database(seeded: Database, table, statement):
    close(seeded)
    with pytest.raises(DBAPIError), seeded.engine.begin() as connection:
        connection.execute(text(statement.format(table)))
