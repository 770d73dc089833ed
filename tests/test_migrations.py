"""The Alembic migrations and the SQLModel tables agree, on both engines."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, select

from app.db import Database, make_engine, migrate
from app.models import Vote
from app.seeding import seed
from tests.conftest import SEED_DIR


def test_no_pending_autogenerate_diff(database: Database):
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_one_vote_per_user_per_amendment_is_a_database_constraint(database: Database):
    database.call(seed, SEED_DIR, True)
    with Session(database.engine) as session:
        existing = session.exec(select(Vote)).first()
        session.add(
            Vote(amendment_id=existing.amendment_id, user_id=existing.user_id, stance="oppose")
        )
        with pytest.raises(IntegrityError):
            session.commit()


def test_a_stance_other_than_support_or_oppose_is_refused_by_the_database(database: Database):
    database.call(seed, SEED_DIR, True)
    with Session(database.engine) as session:
        existing = session.exec(select(Vote)).first()
        existing.stance = "maybe"
        with pytest.raises(IntegrityError):
            session.commit()


def test_seeding_twice_adds_nothing(database: Database):
    first = database.call(seed, SEED_DIR, True)
    second = database.call(seed, SEED_DIR, True)
    assert first.consultations == 1 and first.amendments > 0 and first.votes > 0
    assert (second.organisations, second.consultations, second.amendments, second.votes) == (
        0,
        0,
        0,
        0,
    )


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    from app.db import alembic_config

    command.downgrade(alembic_config(url), revision)


def test_upgrading_a_database_with_data_keeps_it(database_url):
    # From the schema before the organiser workflow, with a consultation in it.
    downgrade(database_url, "0002")
    engine = make_engine(database_url)
    with engine.begin() as connection:
        tables = set(inspect(connection).get_table_names())
        assert not tables & {"audit_entry", "amendment_flag", "ballot", "final_wording"}
        connection.execute(
            text(
                "INSERT INTO consultation"
                " (slug, title, summary, status, eligible_domains, created_at)"
                " VALUES ('old', 'Old', '', 'open', '*.gov.uk', CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
    migrate(database_url)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT slug, ballot_key, live_results, min_votes, min_organisations,"
                " ballots_sha256 FROM consultation"
            )
        ).all()
    engine.dispose()
    assert [(r[0], len(r[1]), bool(r[2]), r[3], r[4], r[5]) for r in rows] == [
        ("old", 64, True, 5, 2, None)
    ]


def test_upgrading_freezes_the_ballots_of_consultations_already_closed(database_url):
    """Revision 0004 writes the snapshot of consultations closed before it, with its hash."""
    downgrade(database_url, "0003")
    engine = make_engine(database_url)
    sizes = {"Org A": 6, "Org B": 5, "Org C": 2}
    with engine.begin() as connection:

        def insert(sql: str, **values) -> None:
            connection.execute(text(sql), values)

        insert(
            "INSERT INTO consultation (id, slug, title, summary, status, eligible_domains,"
            " created_at, ballot_key) VALUES (1, 'old', 'Old', '', 'closed', '*.gov.uk',"
            " CURRENT_TIMESTAMP, :key)",
            key="k" * 64,
        )
        insert("INSERT INTO clause (id, consultation_id, number, position) VALUES (1, 1, '1', 1)")
        insert(
            "INSERT INTO clause_version (id, clause_id, version, heading, text, created_at)"
            " VALUES (1, 1, 1, 'Scope', 'Everyone.', CURRENT_TIMESTAMP)"
        )
        user = 0
        voters = []
        for org_id, (name, size) in enumerate(sizes.items(), start=1):
            insert("INSERT INTO organisation (id, name) VALUES (:id, :name)", id=org_id, name=name)
            for _ in range(size):
                user += 1
                voters.append(user)
                insert(
                    "INSERT INTO user_account (id, issuer, subject, email, email_verified,"
                    " pseudonym, show_organisation, organisation_id, role, created_at,"
                    " last_sign_in_at) VALUES (:id, 'idp', :subject, :email, :yes, :pseudonym,"
                    " :no, :org, 'participant', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                    id=user,
                    subject=f"s{user}",
                    email=f"u{user}@x.gov.uk",
                    yes=True,
                    no=False,
                    pseudonym=f"P {user}",
                    org=org_id,
                )
        for amendment_id, kind, text_ in (
            (1, "change", "All."),
            (2, "change", ""),
            (3, "insert", "New."),
        ):
            insert(
                "INSERT INTO amendment (id, consultation_id, clause_id, clause_version_id,"
                " author_id, kind, proposed_text, rationale, status, created_at, updated_at)"
                " VALUES (:id, 1, 1, 1, 1, :kind, :text, 'Why.', 'open', CURRENT_TIMESTAMP,"
                " CURRENT_TIMESTAMP)",
                id=amendment_id,
                kind=kind,
                text=text_,
            )
        votes = 0
        for n, voter in enumerate(voters):
            for amendment_id in (1, 2):
                if amendment_id == 2 and n % 3:
                    continue
                votes += 1
                insert(
                    "INSERT INTO vote (amendment_id, user_id, stance, created_at, updated_at)"
                    " VALUES (:a, :u, :stance, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                    a=amendment_id,
                    u=voter,
                    stance="oppose" if n % 4 == 0 else "support",
                )
    engine.dispose()
    migrate(database_url)

    from app import ballots
    from app.models import Ballot, Consultation
    from app.tallies import ballot_rows

    database = Database(database_url)
    try:
        consultation = database.call(lambda s: s.get(Consultation, 1))
        rows = database.call(lambda s: list(ballot_rows(s, consultation)))
        snapshot = database.call(lambda s: s.exec(select(Ballot)).all())
    finally:
        database.dispose()
    # Every vote, plus one line for the amendment nobody voted on.
    assert len(rows) == len(snapshot) == votes + 1
    assert consultation.ballots_sha256 == ballots.sha256_of(ballots.csv_lines(rows))
    assert {r[0] for r in rows} == {"A1", "A2", "A3"}
    assert {(r[0], r[2]) for r in rows} == {("A1", "change"), ("A2", "delete"), ("A3", "insert")}
    # Org C had 2 voters: recoded as "other" at the moment of freezing.
    assert {r[4] for r in rows} == {"Org A", "Org B", "other", ""}


def test_the_report_index_comes_with_its_revision_and_goes_with_its_downgrade(database_url):
    """Revision 0010: the report's index on a consultation's amendments by status."""

    def amendment_indexes() -> dict[str, list[str]]:
        engine = make_engine(database_url)
        with engine.connect() as connection:
            found = inspect(connection).get_indexes("amendment")
        engine.dispose()
        return {index["name"]: index["column_names"] for index in found}

    columns = ["consultation_id", "status", "id", "author_id"]
    assert amendment_indexes()["ix_amendment_consultation_status"] == columns
    downgrade(database_url, "0009")
    assert "ix_amendment_consultation_status" not in amendment_indexes()
    migrate(database_url)
    assert amendment_indexes()["ix_amendment_consultation_status"] == columns
