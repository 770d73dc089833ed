"""The `redline` command line, against real databases."""

from __future__ import annotations

import hashlib

import pytest
from click.testing import CliRunner
from sqlmodel import func, select

from app import ballots
from app.cli import main
from app.db import Database
from app.models import Clause, ClauseVersion, Consultation
from app.ranking import Rules
from app.seeding import seed
from app.summary import summary_lines
from tests.conftest import SEED_DIR

GOOD = """# Guidance on live streams

A short draft.

## 1. Scope
Everyone.

## 2. Notice
Give notice.
"""


def run(database_url: str, *args: str):
    env = {"REDLINE_DATABASE_URL": database_url, "REDLINE_SECRET_KEY": ""}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def row_counts(database: Database) -> tuple[int, int, int]:
    def count(session):
        return tuple(
            session.exec(select(func.count()).select_from(model)).one()
            for model in (Consultation, Clause, ClauseVersion)
        )

    return database.call(count)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["migrate"],
        ["seed"],
        ["serve"],
        ["import"],
        ["grant"],
        ["revoke"],
        ["export"],
        ["tally"],
        ["recount"],
    ],
)
def test_every_command_has_help(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


def test_import_creates_a_draft_consultation(database, tmp_path):
    path = tmp_path / "guidance.md"
    path.write_text(GOOD, encoding="utf-8")
    result = run(database.url, "import", str(path), "--eligible", "*.gov.uk, *.nhs.uk")
    assert result.exit_code == 0, result.output
    assert "'guidance-on-live-streams'" in result.output and "2 clauses" in result.output
    consultation = database.call(
        lambda s: s.exec(
            select(Consultation).where(Consultation.slug == "guidance-on-live-streams")
        ).one()
    )
    assert consultation.status == "draft"
    assert consultation.eligible_domains == "*.gov.uk\n*.nhs.uk"
    assert row_counts(database) == (1, 2, 2)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"# Only a title\n\nand a summary\n", ":1: no clause headings"),
        (b"# T\n## 1. A\nx\n## 1. B\ny\n", ":4: clause number 1 is used twice (first on line 2)"),
        ("# T\n## 1. Caf\u00e9\ntext\n".encode("latin-1"), ":2: the file is not UTF-8 text"),
    ],
)
def test_import_refuses_malformed_documents_and_stores_nothing(
    database, tmp_path, content, expected
):
    path = tmp_path / "bad.md"
    path.write_bytes(content)
    before = row_counts(database)
    result = CliRunner().invoke(
        main, ["import", str(path)], env={"REDLINE_DATABASE_URL": database.url}
    )
    assert result.exit_code == 1
    assert expected in result.output
    assert row_counts(database) == before


def test_import_refuses_a_20_mb_file_without_reading_it(database, tmp_path):
    path = tmp_path / "huge.md"
    with path.open("wb") as handle:
        handle.write(b"# Huge\n## 1. A\n")
        handle.truncate(20 * 1024 * 1024)
    result = run(database.url, "import", str(path))
    assert result.exit_code == 1
    assert "20,971,520 bytes" in result.output
    assert row_counts(database) == (0, 0, 0)


def test_import_refuses_a_slug_that_exists(database, tmp_path):
    path = tmp_path / "guidance.md"
    path.write_text(GOOD, encoding="utf-8")
    assert run(database.url, "import", str(path)).exit_code == 0
    again = run(database.url, "import", str(path))
    assert again.exit_code == 1
    assert "already exists" in again.output
    assert row_counts(database) == (1, 2, 2)


def test_seed_is_idempotent_and_demo_data_only_goes_into_sqlite(database):
    first = run(database.url, "seed")
    assert first.exit_code == 0 and "1 new consultations" in first.output
    second = run(database.url, "seed")
    assert "0 new organisations, 0 new consultations" in second.output
    demo = run(database.url, "seed", "--demo")
    if database.url.startswith("sqlite"):
        assert demo.exit_code == 0 and "demo amendments" in demo.output
    else:
        assert demo.exit_code == 2
        assert "only works on the embedded SQLite database" in demo.output


def test_a_bad_database_url_is_named_in_the_error():
    result = CliRunner().invoke(main, ["migrate"], env={"REDLINE_DATABASE_URL": "mysql://x/y"})
    assert result.exit_code == 2
    assert "REDLINE_DATABASE_URL" in result.output


def test_grant_and_revoke_roles(database):
    from app.models import User

    database.call(
        lambda s: (
            s.add(
                User(
                    issuer="https://idp.example",
                    subject="abc",
                    email="olive@cabinetoffice.gov.uk",
                    email_verified=True,
                    pseudonym="Alder Wren 101",
                )
            ),
            s.commit(),
        )
    )

    def role() -> str:
        return database.call(
            lambda s: s.exec(
                select(User.role).where(User.email == "olive@cabinetoffice.gov.uk")
            ).one()
        )

    granted = run(database.url, "grant", "Olive@cabinetoffice.gov.uk", "organiser")
    assert granted.exit_code == 0 and role() == "organiser"
    assert run(database.url, "grant", "olive@cabinetoffice.gov.uk", "admin").exit_code == 0
    assert role() == "admin"
    revoked = run(database.url, "revoke", "olive@cabinetoffice.gov.uk")
    assert revoked.exit_code == 0 and role() == "participant"
    unknown = run(database.url, "grant", "nobody@example.com", "organiser")
    assert unknown.exit_code == 1 and "sign in once first" in unknown.output
    assert run(database.url, "grant", "olive@cabinetoffice.gov.uk", "king").exit_code == 2


def test_the_ballot_file_cannot_be_exported_before_closing(database, tmp_path):
    database.write_call(seed, SEED_DIR, True)
    output = tmp_path / "ballots.csv"
    result = CliRunner().invoke(
        main,
        ["export", "social-media-guidance", "--format", "ballots", "-o", str(output)],
        env={"REDLINE_DATABASE_URL": database.url},
    )
    assert result.exit_code == 1
    assert "frozen when the consultation closes" in result.output
    assert not output.exists()


BALLOT_REFS = ("A1", "A2", "A3", "A4")
BALLOTS = [
    *[("A1", "3", "change", f"V-a{i}", "Org A", "support") for i in range(6)],
    *[("A1", "3", "change", f"V-b{i}", "Org B", "support") for i in range(5)],
    ("A1", "3", "change", "V-c", "Org B", "oppose"),
    *[("A2", "3", "delete", f"V-d{i}", "Org A", "support") for i in range(3)],
    ("A3", "3", "insert", "V-e", "other", "support"),
    ("A4", "5", "change", "", "", ""),
]


def test_tally_prints_the_hash_the_rules_every_amendment_and_every_clause(tmp_path):
    path = tmp_path / "ballots.csv"
    content = b"".join(ballots.csv_lines(BALLOTS))
    path.write_bytes(content)
    result = CliRunner().invoke(main, ["tally", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"SHA-256 {hashlib.sha256(content).hexdigest()}"
    ranked, outcome = ballots.tally_file(content.decode().splitlines(), Rules())
    assert len(lines) == 1 + 2 + len(BALLOT_REFS) + 2
    assert lines[1:] == list(summary_lines(ranked, outcome, Rules()))
    assert lines[1] == "rules: at least 5 votes from at least 2 organisations"
    assert "clause 3: change by A1; new clause A3: needs more votes" in lines
    assert "clause 5: current wording stands" in lines
    rows = {line.split("\t")[1]: line.split("\t") for line in lines[3:] if "\t" in line}
    assert set(rows) == set(BALLOT_REFS)
    assert rows["A1"][11:13] == ["carries", "yes"]
    assert rows["A2"][11] == rows["A3"][11] == rows["A4"][11] == "needs more votes"


def test_tally_uses_the_thresholds_it_is_given(tmp_path):
    path = tmp_path / "ballots.csv"
    path.write_bytes(b"".join(ballots.csv_lines(BALLOTS)))
    loose = CliRunner().invoke(
        main, ["tally", "--min-votes", "1", "--min-organisations", "1", str(path)]
    )
    assert loose.exit_code == 0, loose.output
    assert "rules: at least 1 votes from at least 1 organisations" in loose.output
    rows = {
        line.split("\t")[1]: line.split("\t")
        for line in loose.output.splitlines()[3:]
        if "\t" in line
    }
    assert rows["A2"][11] != "needs more votes"
    strict = CliRunner().invoke(main, ["tally", "--min-votes", "50", str(path)])
    assert "clause 3: current wording stands" in strict.output
    assert CliRunner().invoke(main, ["tally", "--min-votes", "0", str(path)]).exit_code == 2


def test_tally_says_where_a_ballot_file_is_wrong(tmp_path):
    path = tmp_path / "ballots.csv"
    path.write_text("amendment,clause,kind,voter,organisation,stance\nA1,3,change,V-1,O,maybe\n")
    result = CliRunner().invoke(main, ["tally", str(path)])
    assert result.exit_code == 1
    assert f"{path}: line 2: stance" in result.output


def test_recount_finds_and_corrects_counts_that_drifted(seeded: Database):
    from sqlalchemy import text

    from app.tallies import kept_counts, recount

    assert "all matched" in run(seeded.url, "recount", "social-media-guidance").output
    with seeded.write_session() as session:
        session.execute(text("UPDATE vote_tally SET supports = supports + 3"))
        session.commit()
    result = run(seeded.url, "recount", "social-media-guidance")
    assert result.exit_code == 0 and "are now corrected" in result.output
    with seeded.session() as session:
        consultation_id = session.exec(select(Consultation.id)).one()
        counted = recount(session, consultation_id)
        assert kept_counts(session, consultation_id) == counted
    assert run(seeded.url, "recount", "no-such").exit_code == 1
