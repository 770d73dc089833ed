"""Builds a large consultation straight in SQL: amendments, voters, organisations and votes.

Voter v (0-based) belongs to organisation v % 50 (organisations 45-49 are made tiny, to
exercise the recoding) and votes on VOTES_PER_VOTER amendments, spread so that no voter
votes twice on one amendment; stances follow a fixed pattern that gives a spread of
results. Everything is deterministic, so two runs measure the same data.
"""

from __future__ import annotations

import time

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.tallies import rebuild_tallies

ORGANISATIONS = 50
CLAUSES = 100


def build(engine: Engine, amendments: int, voters: int, votes: int) -> float:
    """Fill an empty, migrated database; returns seconds taken."""
    started = time.perf_counter()
    per_voter = max(1, votes // voters)
    active_voters = votes // per_voter
    postgres = engine.dialect.name == "postgresql"
    now = "now()" if postgres else "CURRENT_TIMESTAMP"

    def numbers(name: str, count: int) -> str:
        if postgres:
            return f"(SELECT generate_series(0, {count - 1}) AS {name})"
        return (
            f"(WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq "
            f"WHERE n < {count - 1}) SELECT n AS {name} FROM seq)"
        )

    with engine.begin() as db:
        db.execute(
            text(
                f"INSERT INTO organisation (id, name) SELECT o + 1, 'Organisation ' || o FROM {numbers('o', ORGANISATIONS)} AS orgs"
            )
        )
        # Organisations 45-49 keep only voters whose number is below 1,000: a few each.
        db.execute(
            text(
                "INSERT INTO user_account (id, issuer, subject, email, email_verified, pseudonym,"
                " show_organisation, organisation_id, role, created_at, last_sign_in_at)"
                f" SELECT v + 1, 'bench', 'v' || v, 'v' || v || '@org' || (v % {ORGANISATIONS}) || '.gov.uk',"
                f" true, 'P' || v, false,"
                f" CASE WHEN v % {ORGANISATIONS} >= 45 AND v >= 1000 THEN (v % 45) + 1"
                f" ELSE (v % {ORGANISATIONS}) + 1 END, 'participant', {now}, {now}"
                f" FROM {numbers('v', voters)} AS people"
            )
        )
        db.execute(
            text(
                "INSERT INTO consultation (id, slug, title, summary, status, eligible_domains,"
                " created_at, ballot_key) VALUES (1, 'bench', 'Benchmark consultation', '',"
                f" 'open', '*.gov.uk', {now}, 'bench-key')"
            )
        )
        db.execute(
            text(
                f"INSERT INTO clause (id, consultation_id, number, position) SELECT c + 1, 1, CAST(c + 1 AS TEXT), c + 1 FROM {numbers('c', CLAUSES)} AS clauses"
            )
        )
        db.execute(
            text(
                "INSERT INTO clause_version (id, clause_id, version, heading, text, created_at)"
                f" SELECT c + 1, c + 1, 1, 'Clause ' || (c + 1), 'The original wording of clause ' || (c + 1) || '.', {now}"
                f" FROM {numbers('c', CLAUSES)} AS clauses"
            )
        )
        db.execute(
            text(
                "INSERT INTO amendment (id, consultation_id, clause_id, clause_version_id, author_id,"
                " kind, proposed_text, rationale, status, created_at, updated_at)"
                f" SELECT a + 1, 1, (a % {CLAUSES}) + 1, (a % {CLAUSES}) + 1, (a % {voters}) + 1, 'change',"
                " 'Proposed wording number ' || a || ' for this clause.', 'Because it is clearer.',"
                f" 'open', {now}, {now} FROM {numbers('a', amendments)} AS props"
            )
        )
        # Voter v votes on amendments (v * 37 + j * 499) mod amendments, j < per_voter: distinct.
        db.execute(
            text(
                "INSERT INTO vote (amendment_id, user_id, stance, created_at, updated_at)"
                f" SELECT ((v * 37 + j * 499) % {amendments}) + 1, v + 1,"
                f" CASE WHEN ((v % 7) + ((v * 37 + j * 499) % {amendments}) % 5) % 3 = 0"
                f" THEN 'oppose' ELSE 'support' END, {now}, {now}"
                f" FROM {numbers('v', active_voters)} AS people CROSS JOIN {numbers('j', per_voter)} AS picks"
            )
        )
        if postgres:
            for table in (
                "organisation",
                "user_account",
                "consultation",
                "clause",
                "clause_version",
                "amendment",
            ):
                db.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                    )
                )
    # Votes were inserted in bulk, around app.tallies.change_vote: count them once, as
    # `redline recount` would, so that pages and reports read the kept counts.
    with Session(engine) as session:
        rebuild_tallies(session, 1)
        session.commit()
    with engine.begin() as db:
        db.execute(text("ANALYZE"))
    return time.perf_counter() - started
