"""Builds the consultation of issue 9 straight in SQL: amendments, voters, organisations, votes.

The full size (``FULL``) is 30,000 amendments, 50,000 voters in 50 organisations and
1,000,000 votes:

- clause "1" has exactly ``ONE_CLAUSE`` (300) amendments; the rest are spread evenly
  over ``OTHER_CLAUSES`` (100) further clauses, "2" to "101";
- voter v (0-based) belongs to organisation v % 50, and has the e-mail address
  ``v<v>@org<o>.gov.uk`` of that organisation. Organisations 45-49 are made tiny (1 to 4
  voters each, below the ranking's minimum group size of 5) so that the report has to
  recode them into "other"; the voters they would have had go to organisations 0-44;
- every voter casts ``votes // voters`` votes on distinct amendments spread over the
  whole consultation (about 33 on each amendment at full size), with a fixed pattern
  of stances that gives a spread of results.

The consultation "bench" is open, with voting closing a year from now, live results on
and ``*.gov.uk`` eligible, so a signed-in voter's vote is accepted like anyone's.
Everything is deterministic, so two runs measure the same data. Votes go in with one
INSERT ... SELECT, around ``app.tallies.change_vote``; the kept counts (``voter``,
``vote_tally``) are then rebuilt from them with ``app.tallies.rebuild_tallies``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.tallies import rebuild_tallies

ORGANISATIONS = 50
# Organisations from TINY_FROM on keep (o - TINY_FROM) % 4 + 1 voters: 1, 2, 3, 4, 1.
TINY_FROM = 45
ONE_CLAUSE = 300
OTHER_CLAUSES = 100
SLUG = "bench"
CONSULTATION_ID = 1

CLAUSE_TEXT = (
    "Public-sector workers should take care when they post about their work on social"
    " media. They should not share information that is confidential or that they learned"
    " in confidence, and they should make clear when they speak for themselves rather than"
    " for their employer. If in doubt, they should ask their line manager before posting."
)


@dataclass(frozen=True)
class Size:
    amendments: int
    voters: int
    votes: int

    def __str__(self) -> str:
        return f"{self.amendments:,} amendments, {self.voters:,} voters, {self.votes:,} votes"


FULL = Size(30_000, 50_000, 1_000_000)
# `make bench` compares export memory at FULL with this (same people and amendments).
FEW_VOTES = Size(30_000, 50_000, 10_000)
# `python -m bench.run --quick`: the same shape, a tenth of the size (clause 1 still 300).
QUICK = Size(3_000, 5_000, 100_000)
QUICK_FEW_VOTES = Size(3_000, 5_000, 1_000)


def organisation_of(voter: int) -> int:
    """The 0-based organisation of 0-based voter ``voter`` (as the SQL below decides it)."""
    home = voter % ORGANISATIONS
    if home >= TINY_FROM and voter >= ORGANISATIONS * ((home - TINY_FROM) % 4 + 1):
        return voter % TINY_FROM
    return home


def build(engine: Engine, amendments: int, voters: int, votes: int) -> float:
    """Fill an empty, migrated database; returns seconds taken."""
    if amendments <= ONE_CLAUSE:
        raise ValueError(f"need more than {ONE_CLAUSE} amendments")
    started = time.perf_counter()
    per_voter = max(1, votes // voters)
    active_voters = min(voters, votes // per_voter)
    # Voter v's j-th vote is on amendment (v * 37 + j * stride) mod amendments: distinct
    # for j < per_voter as long as per_voter * stride <= amendments.
    stride = amendments // per_voter
    if stride < 1:
        raise ValueError("more votes per voter than amendments")
    postgres = engine.dialect.name == "postgresql"
    now = "now()" if postgres else "CURRENT_TIMESTAMP"
    closes = "now() + interval '365 days'" if postgres else "datetime('now', '+365 days')"
    clauses = 1 + OTHER_CLAUSES

    def numbers(name: str, count: int) -> str:
        if postgres:
            return f"(SELECT generate_series(0, {count - 1}) AS {name})"
        return (
            f"(WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq "
            f"WHERE n < {count - 1}) SELECT n AS {name} FROM seq)"
        )

    home = f"(v % {ORGANISATIONS})"
    organisation = (
        f"(CASE WHEN {home} >= {TINY_FROM} AND v >= {ORGANISATIONS} * (({home} - {TINY_FROM}) % 4 + 1)"
        f" THEN v % {TINY_FROM} ELSE {home} END)"
    )
    with engine.begin() as db:
        db.execute(
            text(
                "INSERT INTO organisation (id, name)"
                f" SELECT o + 1, 'Organisation ' || o FROM {numbers('o', ORGANISATIONS)} AS orgs"
            )
        )
        db.execute(
            text(
                "INSERT INTO user_account (id, issuer, subject, email, email_verified, pseudonym,"
                " show_organisation, organisation_id, role, created_at, last_sign_in_at)"
                f" SELECT v + 1, 'bench', 'v' || v, 'v' || v || '@org' || {organisation} || '.gov.uk',"
                f" true, 'P' || v, false, {organisation} + 1, 'participant', {now}, {now}"
                f" FROM {numbers('v', voters)} AS people"
            )
        )
        db.execute(
            text(
                "INSERT INTO consultation (id, slug, title, summary, status, eligible_domains,"
                " voting_close_at, created_at, ballot_key, live_results)"
                f" VALUES ({CONSULTATION_ID}, '{SLUG}', 'Benchmark consultation', '', 'open',"
                f" '*.gov.uk', {closes}, {now}, 'bench-key', true)"
            )
        )
        db.execute(
            text(
                "INSERT INTO clause (id, consultation_id, number, position)"
                f" SELECT c + 1, {CONSULTATION_ID}, CAST(c + 1 AS TEXT), c + 1"
                f" FROM {numbers('c', clauses)} AS clauses"
            )
        )
        db.execute(
            text(
                "INSERT INTO clause_version (id, clause_id, version, heading, text, created_at)"
                f" SELECT c + 1, c + 1, 1, 'Clause ' || (c + 1), :wording, {now}"
                f" FROM {numbers('c', clauses)} AS clauses"
            ),
            {"wording": CLAUSE_TEXT},
        )
        # Amendment a: the first ONE_CLAUSE on clause 1, the rest round the other clauses.
        # Each is a real edit of the clause's wording (three kinds), numbered to be unique.
        clause = (
            f"(CASE WHEN a < {ONE_CLAUSE} THEN 1 ELSE 2 + (a - {ONE_CLAUSE}) % {OTHER_CLAUSES} END)"
        )
        db.execute(
            text(
                "INSERT INTO amendment (id, consultation_id, clause_id, clause_version_id, author_id,"
                " kind, proposed_text, rationale, status, withheld, created_at, updated_at)"
                f" SELECT a + 1, {CONSULTATION_ID}, {clause}, {clause}, (a % {voters}) + 1, 'change',"
                " CASE a % 3"
                "  WHEN 0 THEN replace(:wording, 'should', 'must')"
                "  WHEN 1 THEN replace(:wording, 'their line manager', 'the information team')"
                "  ELSE :wording || ' This applies to personal accounts too.' END"
                " || ' (Proposal ' || a || '.)',"
                " 'Because it is clearer, and proposal ' || a || ' says why at some length.',"
                f" 'open', false, {now}, {now} FROM {numbers('a', amendments)} AS props"
            ),
            {"wording": CLAUSE_TEXT},
        )
        db.execute(
            text(
                "INSERT INTO vote (amendment_id, user_id, stance, created_at, updated_at)"
                f" SELECT ((v * 37 + j * {stride}) % {amendments}) + 1, v + 1,"
                f" CASE WHEN ((v % 7) + ((v * 37 + j * {stride}) % {amendments}) % 5) % 3 = 0"
                f" THEN 'oppose' ELSE 'support' END, {now}, {now}"
                f" FROM {numbers('v', active_voters)} AS people"
                f" CROSS JOIN {numbers('j', per_voter)} AS picks"
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
                "vote",
            ):
                db.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" (SELECT max(id) FROM {table}))"
                    )
                )
    # Votes were inserted in bulk, around app.tallies.change_vote: count them once, as
    # `redline recount` would, so that pages and reports read the kept counts.
    with Session(engine) as session:
        rebuild_tallies(session, CONSULTATION_ID)
        session.commit()
    with engine.begin() as db:
        db.execute(text("ANALYZE"))
    return time.perf_counter() - started


def counts(engine: Engine) -> dict[str, int]:
    """Rows per table that the dataset fills, to check it is the size it should be."""
    with engine.connect() as db:
        return {
            table: db.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in (
                "amendment",
                "user_account",
                "organisation",
                "vote",
                "voter",
                "vote_tally",
            )
        }
