"""The organiser workflow, the report and its exports, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import func, select
from starlette.routing import Route
from starlette.testclient import TestClient

from app import ballots
from app.cli import main as cli
from app.db import Database
from app.main import create_app
from app.models import Amendment, AuditEntry, ClauseVersion, Consultation, User
from tests.conftest import settings_for
from tests.utils.sessions import force_login

SLUG = "social-media-guidance"
ORGANISER = "dan.price@cabinetoffice.gov.uk"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def user_id(database: Database, email: str) -> int:
    return database.call(lambda s: s.exec(select(User.id).where(User.email == email)).one())


@pytest.fixture
def app(seeded: Database):
    return create_app(settings_for(seeded.url, organisers=frozenset({ORGANISER})))


@pytest.fixture
def organiser(app, seeded):
    with TestClient(app, follow_redirects=False) as client:
        client.csrf = force_login(client, user_id(seeded, ORGANISER))
        yield client


@pytest.fixture
def participant(app, seeded):
    with TestClient(app, follow_redirects=False) as client:
        client.csrf = force_login(client, user_id(seeded, "amira.shah@hmrc.gov.uk"))
        yield client


@pytest.fixture
def public(app):
    with TestClient(app, follow_redirects=False) as client:
        yield client


def post(client, path, **data):
    return client.post(path, data={"csrf_token": client.csrf, **data})


def audit_actions(database: Database) -> list[str]:
    return database.call(
        lambda s: [e.action for e in s.exec(select(AuditEntry).order_by(AuditEntry.id)).all()]
    )


def amendment_ids(database: Database) -> list[int]:
    return database.call(
        lambda s: s.exec(select(Amendment.id).where(Amendment.status == "open")).all()
    )


def close_and_decide(organiser, database) -> None:
    assert post(organiser, f"/organise/{SLUG}/status", action="close").status_code == 303
    for i, amendment_id in enumerate(amendment_ids(database)):
        decision = "accept" if i % 2 == 0 else "reject"
        response = post(
            organiser,
            f"/organise/amendments/{amendment_id}/decide",
            decision=decision,
            reason=f"Decision {i} explained.",
        )
        assert response.status_code == 303


# Permissions


def organiser_routes(app):
    values = {"slug": SLUG, "number": "3", "amendment_id": "1"}
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/organise"):
            path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], route.path)
            for method in sorted(route.methods - {"HEAD"}):
                yield method, path


def test_every_organiser_page_and_action_refuses_participants_and_the_public(
    app, participant, public, seeded
):
    routes = list(organiser_routes(app))
    assert len(routes) >= 14
    before = audit_actions(seeded)
    for method, path in routes:
        for client, who in ((participant, "participant"), (public, "public")):
            data = {"csrf_token": getattr(client, "csrf", ""), "action": "close", "reason": "x"}
            response = client.request(method, path, data=data if method == "POST" else None)
            if method == "POST" and who == "public":
                assert response.status_code == 403, (method, path)  # CSRF or sign-in
            else:
                assert response.status_code == 403, (who, method, path)
    assert audit_actions(seeded) == before
    assert seeded.call(lambda s: s.exec(select(Consultation.status)).one()) == "open"


def test_organisers_named_in_configuration_see_the_organiser_pages(organiser):
    assert organiser.get("/organise").status_code == 200
    page = organiser.get(f"/organise/{SLUG}")
    assert page.status_code == 200 and "Close the consultation" in page.text


# Lifecycle


@pytest.mark.parametrize("action", ["open", "publish"])
def test_illegal_jumps_are_refused_with_a_clear_message(organiser, seeded, action):
    response = post(organiser, f"/organise/{SLUG}/status", action=action)
    assert response.status_code == 409
    assert "draft to open to closed to published" in response.text
    assert audit_actions(seeded) == []


def test_publishing_needs_a_decision_on_every_amendment(organiser, seeded):
    post(organiser, f"/organise/{SLUG}/status", action="close")
    response = post(organiser, f"/organise/{SLUG}/status", action="publish")
    assert response.status_code == 409
    assert "Decide on every amendment" in response.text


def test_close_decide_publish_writes_the_audit_log(organiser, public, seeded):
    close_and_decide(organiser, seeded)
    assert post(organiser, f"/organise/{SLUG}/status", action="publish").status_code == 303
    actions = audit_actions(seeded)
    assert actions[0] == "close" and actions[-1] == "publish"
    assert {"accept", "reject"} <= set(actions)
    page = organiser.get(f"/organise/{SLUG}/audit")
    assert "Decision 0 explained." in page.text and "Dan Price" in page.text
    audit_csv = organiser.get(f"/organise/{SLUG}/audit.csv")
    assert audit_csv.text.count("\n") == len(actions) + 1
    assert public.get(f"/consultations/{SLUG}/report").status_code == 200
    # Votes are refused whatever page a vote comes from.
    any_amendment = seeded.call(lambda s: s.exec(select(Amendment.id)).first())
    assert post(organiser, f"/amendments/{any_amendment}/vote", stance="support").status_code == 409


def test_the_audit_log_is_append_only_in_the_database(organiser, seeded):
    post(organiser, f"/organise/{SLUG}/status", action="close")
    engine = seeded.engine
    with pytest.raises(DBAPIError), engine.begin() as connection:
        connection.execute(text("UPDATE audit_entry SET reason = 'rewritten'"))
    assert seeded.call(lambda s: s.exec(select(AuditEntry.reason)).all()) == [""]


def test_a_draft_needs_domains_and_a_voting_close_before_it_opens(organiser, seeded, tmp_path):
    document = b"# Live streaming\n\n## 1. Notice\nGive notice before streaming.\n"
    created = organiser.post(
        "/organise/new",
        data={"csrf_token": organiser.csrf, "slug": "", "eligible": ""},
        files={"document": ("guidance.md", document, "text/markdown")},
    )
    assert created.status_code == 303
    slug = "live-streaming"
    refused = post(organiser, f"/organise/{slug}/status", action="open")
    assert refused.status_code == 409 and "eligible domains" in refused.text
    saved = post(
        organiser,
        f"/organise/{slug}/details",
        title="Live streaming",
        summary="",
        eligible_domains="*.gov.uk, nhs.net",
        amendments_close_at="2099-01-01T12:00",
        voting_close_at="2099-02-01T12:00",
    )
    assert saved.status_code == 303
    assert post(organiser, f"/organise/{slug}/status", action="open").status_code == 303
    consultation = seeded.call(
        lambda s: s.exec(select(Consultation).where(Consultation.slug == slug)).one()
    )
    assert consultation.status == "open" and consultation.eligible_domains == "*.gov.uk\nnhs.net"
    assert consultation.voting_close_at.hour == 12  # midday in London in winter is 12:00 UTC


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"title": ""}, "title", "Enter a title"),
        ({"eligible_domains": "someone@gov.uk"}, "eligible_domains", "is not a domain pattern"),
        ({"voting_close_at": "next tuesday"}, "voting_close_at", "Enter a date and time"),
        (
            {"amendments_close_at": "2099-03-01T12:00", "voting_close_at": "2099-02-01T12:00"},
            "amendments_close_at",
            "must close before voting closes",
        ),
    ],
)
def test_editing_details_reports_errors_next_to_the_field(
    organiser, seeded, fields, field, message
):
    form = {
        "title": "Social media guidance",
        "summary": "",
        "eligible_domains": "*.gov.uk",
        "amendments_close_at": "",
        "voting_close_at": "2099-02-01T12:00",
        **fields,
    }
    response = post(organiser, f"/organise/{SLUG}/details", **form)
    assert response.status_code == 422
    assert f'href="#{field}"' in response.text and f'id="{field}-error"' in response.text
    assert message in response.text
    title = seeded.call(lambda s: s.exec(select(Consultation.title)).one())
    assert title == "Social media guidance for public-sector workers"


def test_an_uploaded_document_with_errors_is_refused_and_nothing_is_stored(organiser, seeded):
    before = seeded.call(lambda s: s.exec(select(func.count()).select_from(Consultation)).one())
    response = organiser.post(
        "/organise/new",
        data={"csrf_token": organiser.csrf},
        files={"document": ("bad.md", b"# T\n## 1. A\nx\n## 1. B\ny\n", "text/markdown")},
    )
    assert response.status_code == 422
    assert "Line 4: clause number 1 is used twice" in response.text
    assert 'href="#document"' in response.text
    after = seeded.call(lambda s: s.exec(select(func.count()).select_from(Consultation)).one())
    assert after == before


# Revisions and moderation


def test_revising_a_clause_marks_older_amendments(organiser, seeded, public):
    response = post(
        organiser,
        f"/organise/{SLUG}/clauses/7/revise",
        heading="How quickly to reply",
        text="Acknowledge questions within one working day.",
        reason="Shorter.",
    )
    assert response.status_code == 303
    versions = seeded.call(lambda s: s.exec(select(func.max(ClauseVersion.version))).one())
    assert versions == 2
    page = public.get(f"/consultations/{SLUG}/clauses/7").text
    assert page.count("Written against version 1 of this clause") == 2
    close_and_decide(organiser, seeded)
    report = organiser.get(f"/consultations/{SLUG}/report.json").json()
    outdated = {a["amendment"]: a["written_against_older_version"] for a in report["amendments"]}
    assert sum(outdated.values()) == 2
    assert "written against an older version" in organiser.get(f"/consultations/{SLUG}/report").text


def test_report_hide_restore_with_reasons_the_author_can_read(
    organiser, participant, public, seeded
):
    target = seeded.call(
        lambda s: s.exec(
            select(Amendment.id)
            .join(User, User.id == Amendment.author_id)
            .where(User.email == "ben.okafor@dwp.gov.uk", Amendment.proposed_text == "")
        ).one()
    )
    flagged = post(participant, f"/amendments/{target}/flag", reason="It attacks colleagues.")
    assert flagged.status_code == 303
    queue = organiser.get(f"/organise/{SLUG}/moderation").text
    assert "It attacks colleagues." in queue
    assert "Moderation queue (1)" in organiser.get(f"/organise/{SLUG}").text
    hidden = post(
        organiser, f"/organise/amendments/{target}/moderate", action="hide", reason="Not civil."
    )
    assert hidden.status_code == 303
    assert f'id="amendment-{target}"' not in public.get(f"/consultations/{SLUG}/clauses/5").text
    author = TestClient(organiser.app, follow_redirects=False)
    force_login(author, user_id(seeded, "ben.okafor@dwp.gov.uk"))
    assert (
        "a moderator hid it. Reason: Not civil."
        in author.get(f"/consultations/{SLUG}/clauses/5").text
    )
    assert f"#amendment-{target}" not in public.get(f"/consultations/{SLUG}/results").text
    restored = post(
        organiser, f"/organise/amendments/{target}/moderate", action="restore", reason="Reviewed."
    )
    assert restored.status_code == 303
    assert "Moderation queue (0)" in organiser.get(f"/organise/{SLUG}").text
    assert f'id="amendment-{target}"' in public.get(f"/consultations/{SLUG}/clauses/5").text
    assert audit_actions(seeded) == ["hide amendment", "restore amendment"]


def test_moderation_needs_a_reason(organiser, seeded):
    target = amendment_ids(seeded)[0]
    response = post(organiser, f"/organise/amendments/{target}/moderate", action="hide", reason=" ")
    assert response.status_code == 422
    assert "Enter a reason" in response.text


# The report


def test_report_visibility_follows_the_lifecycle(organiser, participant, public, seeded):
    assert public.get(f"/consultations/{SLUG}/report").status_code == 409
    post(organiser, f"/organise/{SLUG}/status", action="close")
    assert organiser.get(f"/consultations/{SLUG}/report").status_code == 200
    assert participant.get(f"/consultations/{SLUG}/report").status_code == 403
    assert public.get(f"/consultations/{SLUG}/report.csv").status_code == 403
    assert public.get(f"/consultations/{SLUG}/results").status_code == 303


def test_report_shows_ranking_turnout_charts_and_consolidated_text(organiser, seeded):
    close_and_decide(organiser, seeded)
    page = organiser.get(f"/consultations/{SLUG}/report").text
    consultation = seeded.call(lambda s: s.exec(select(Consultation)).one())
    assert consultation.ballots_sha256 and consultation.ballots_sha256 in page
    assert "fewer than 5" in page  # Leeds and the Met have 3 and 2 voters
    assert page.count("<svg") == 2 and page.count("<title id=") == 2
    assert "Consolidated text" in page and "With tracked changes" in page and "Clean text" in page
    assert "Accepted" in page and "Decision 0 explained." in page


def read_export(body: bytes, fmt: str) -> list[dict]:
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    if fmt == "json":
        return json.loads(body)["amendments"]
    if fmt == "xlsx":
        from openpyxl import load_workbook

        sheet = load_workbook(io.BytesIO(body), read_only=True).active
        rows = list(sheet.iter_rows(values_only=True))
        return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    from odf import table, teletype
    from odf.opendocument import load

    document = load(io.BytesIO(body))
    rows = [
        [teletype.extractText(cell) for cell in row.getElementsByType(table.TableCell)]
        for row in document.spreadsheet.getElementsByType(table.TableRow)
    ]
    return [dict(zip(rows[0], row, strict=False)) for row in rows[1:]]


@pytest.mark.parametrize("fmt", ["csv", "xlsx", "ods", "json"])
def test_each_export_opens_in_a_real_reader_and_matches_the_report(organiser, seeded, fmt):
    close_and_decide(organiser, seeded)
    expected = organiser.get(f"/consultations/{SLUG}/report.json").json()["amendments"]
    response = organiser.get(f"/consultations/{SLUG}/report.{fmt}")
    assert response.status_code == 200
    assert f'filename="{SLUG}-report.{fmt}"' in response.headers["content-disposition"]
    rows = read_export(response.content, fmt)
    assert [r["amendment"] for r in rows] == [e["amendment"] for e in expected]
    assert [int(float(r["supports"])) for r in rows] == [e["supports"] for e in expected]
    assert [int(float(r["opposes"])) for r in rows] == [e["opposes"] for e in expected]
    assert [str(r["decision"]) for r in rows] == [e["decision"] for e in expected]
    if fmt == "ods":
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        assert archive.namelist()[0] == "mimetype"
        assert archive.read("mimetype") == b"application/vnd.oasis.opendocument.spreadsheet"


def test_the_ballot_file_reproduces_the_published_order(organiser, public, seeded, tmp_path):
    close_and_decide(organiser, seeded)
    post(organiser, f"/organise/{SLUG}/status", action="publish")
    ballot_file = public.get(f"/consultations/{SLUG}/ballots.csv")
    assert ballot_file.status_code == 200
    lines = ballot_file.text.splitlines()
    assert lines[0] == ",".join(ballots.HEADER)
    report = public.get(f"/consultations/{SLUG}/report.json").json()
    assert [a.ref for a in ballots.tally_file(lines)] == [
        a["amendment"] for a in report["amendments"]
    ]
    # The report states the SHA-256 of exactly this file, and `redline tally` agrees.
    path = tmp_path / "ballots.csv"
    path.write_bytes(ballot_file.content)
    result = CliRunner().invoke(cli, ["tally", str(path)])
    assert result.exit_code == 0, result.output
    assert f"SHA-256 {report['ballots_sha256']}" in result.output
    printed = re.findall(r"^\s+\d+\s+(A\d+)", result.output, flags=re.M)
    assert printed == [a["amendment"] for a in report["amendments"]]


def test_redline_export_writes_every_format(organiser, seeded, tmp_path):
    close_and_decide(organiser, seeded)
    env = {"REDLINE_DATABASE_URL": seeded.url}
    for fmt in ("csv", "xlsx", "ods", "json", "ballots"):
        output = tmp_path / f"out.{fmt}"
        result = CliRunner().invoke(
            cli, ["export", SLUG, "--format", fmt, "-o", str(output)], env=env
        )
        assert result.exit_code == 0, result.output
        assert output.stat().st_size > 0
    ballots_bytes = (tmp_path / "out.ballots").read_bytes()
    web = organiser.get(f"/consultations/{SLUG}/ballots.csv").content
    assert ballots_bytes == web


def test_no_export_or_report_page_reveals_emails_user_ids_or_votes(organiser, public, seeded):
    close_and_decide(organiser, seeded)
    post(organiser, f"/organise/{SLUG}/status", action="publish")
    users = seeded.call(lambda s: s.exec(select(User.id, User.email)).all())
    bodies = {}
    for path in (
        f"/consultations/{SLUG}/report",
        f"/consultations/{SLUG}/report.csv",
        f"/consultations/{SLUG}/report.json",
        f"/consultations/{SLUG}/ballots.csv",
        f"/consultations/{SLUG}",
        f"/consultations/{SLUG}/clauses/7",
    ):
        bodies[path] = public.get(path).text
    for fmt in ("xlsx", "ods"):
        archive = zipfile.ZipFile(
            io.BytesIO(public.get(f"/consultations/{SLUG}/report.{fmt}").content)
        )
        bodies[fmt] = " ".join(
            archive.read(n).decode("utf-8", "replace") for n in archive.namelist()
        )
    for where, body in bodies.items():
        assert not EMAIL.search(re.sub(r"<script.*?</script>", "", body, flags=re.S)), where
        for _, email in users:
            assert email not in body, (where, email)
    voters = {
        row[2] for row in csv.reader(io.StringIO(bodies[f"/consultations/{SLUG}/ballots.csv"]))
    }
    assert not voters & {str(uid) for uid, _ in users}
    assert all(v.startswith("V-") for v in voters - {"voter", ""})
    assert '"user_id"' not in bodies[f"/consultations/{SLUG}/report.json"]


def test_empty_reasons_are_reported_next_to_the_field(organiser, participant, seeded):
    amira = user_id(seeded, "amira.shah@hmrc.gov.uk")
    target = seeded.call(
        lambda s: s.exec(select(Amendment.id).where(Amendment.author_id != amira)).first()
    )
    flag = post(participant, f"/amendments/{target}/flag", reason="")
    assert flag.status_code == 422
    assert f'href="#flag-{target}"' in flag.text and f'id="flag-{target}-error"' in flag.text
    assert post(participant, f"/amendments/{target}/flag", reason="Rude.").status_code == 303
    hide = post(organiser, f"/organise/amendments/{target}/moderate", action="hide", reason="")
    assert hide.status_code == 422
    assert f'id="reason-{target}-error"' in hide.text and "Enter a reason" in hide.text
    post(organiser, f"/organise/{SLUG}/status", action="close")
    decide = post(organiser, f"/organise/amendments/{target}/decide", decision="accept", reason="")
    assert decide.status_code == 422
    assert f'href="#reason-{target}"' in decide.text
    assert seeded.call(lambda s: s.get(Amendment, target).status) == "open"


def test_a_consultation_can_be_created_by_typing_it_into_the_form(organiser, seeded):
    bad = post(organiser, "/organise/new", document_text="# Only a title\n")
    assert bad.status_code == 422
    assert 'href="#document_text"' in bad.text and "no clause headings" in bad.text
    assert re.search(r"# Only a title\s*</textarea>", bad.text)  # what was typed is kept
    good = post(
        organiser,
        "/organise/new",
        document_text="# Replies to the public\n\n## 1. Speed\nAnswer within a day.\n",
        slug="replies",
    )
    assert good.status_code == 303 and good.headers["location"].startswith("/organise/replies")
    assert "create" in audit_actions(seeded)


def test_database_ranking_equals_the_ballot_file_ranking_on_varied_votes(database):
    """The database pools small groups in SQL; the file keeps every organisation. Same result."""
    import random

    from app.models import Clause, Organisation, Vote
    from app.queries import consultation_tally
    from app.ranking import rank
    from app.reporting import ballot_rows
    from app.seeding import seed
    from tests.conftest import SEED_DIR

    database.call(seed, SEED_DIR, False)
    generator = random.Random(20261124)

    def populate(session):
        consultation = session.exec(select(Consultation)).one()
        clauses = session.exec(
            select(Clause).where(Clause.consultation_id == consultation.id)
        ).all()
        sizes = {"Big A": 12, "Big B": 9, "Mid C": 6, "Small D": 4, "Small E": 2, "Tiny F": 1}
        users = []
        for name, size in sizes.items():
            organisation = Organisation(name=name)
            session.add(organisation)
            session.flush()
            for i in range(size):
                user = User(
                    issuer="test",
                    subject=f"{name}-{i}",
                    email=f"{i}@{name.replace(' ', '')}.gov.uk",
                    email_verified=True,
                    pseudonym=f"{name} {i}",
                    organisation_id=organisation.id,
                )
                session.add(user)
                users.append(user)
        session.flush()
        version_ids = {
            c.id: session.exec(
                select(ClauseVersion.id).where(ClauseVersion.clause_id == c.id)
            ).one()
            for c in clauses
        }
        for n in range(12):
            clause = clauses[n % 4]
            amendment = Amendment(
                consultation_id=consultation.id,
                clause_id=clause.id,
                clause_version_id=version_ids[clause.id],
                author_id=users[n].id,
                proposed_text=f"Wording {n}",
                rationale="A reason.",
            )
            session.add(amendment)
            session.flush()
            bias = generator.random()
            for user in generator.sample(users, generator.randint(0, len(users))):
                stance = "support" if generator.random() < bias else "oppose"
                session.add(Vote(amendment_id=amendment.id, user_id=user.id, stance=stance))
        # Two blocs: one large enough to be its own group, one small one (3 voters) that
        # gives 75 % of the supports, which only the single-organisation flag can see.
        by_org = {name: [u for u in users if u.pseudonym.startswith(name)] for name in sizes}
        blocs = [
            [(u, "support") for u in by_org["Big A"]],
            [(u, "support") for u in by_org["Mid C"][:3]]
            + [(by_org["Big B"][0], "support")]
            + [(u, "oppose") for u in by_org["Big B"][1:3]],
        ]
        for n, bloc in enumerate(blocs):
            amendment = Amendment(
                consultation_id=consultation.id,
                clause_id=clauses[0].id,
                clause_version_id=version_ids[clauses[0].id],
                author_id=users[0].id,
                proposed_text=f"Bloc wording {n}",
                rationale="A reason.",
            )
            session.add(amendment)
            session.flush()
            for user, stance in bloc:
                session.add(Vote(amendment_id=amendment.id, user_id=user.id, stance=stance))
        session.commit()
        tally = consultation_tally(session, consultation.id)
        from_database = rank(tally.tallies, tally.groups)
        lines = (
            b"".join(ballots.csv_lines(ballot_rows(session, consultation))).decode().splitlines()
        )
        return from_database, ballots.tally_file(lines)

    from_database, from_file = database.call(populate)
    assert {a.single_organisation for a in from_file} >= {"Big A", "Mid C"}
    assert [
        (a.ref, a.supports, a.opposes, round(a.consensus, 12), a.single_organisation)
        for a in from_database
    ] == [
        (a.ref, a.supports, a.opposes, round(a.consensus, 12), a.single_organisation)
        for a in from_file
    ]


def test_deciding_or_moderating_an_unknown_amendment_is_a_404(organiser):
    for path, data in (
        ("/organise/amendments/999999/decide", {"decision": "accept", "reason": "x"}),
        ("/organise/amendments/999999/moderate", {"action": "hide", "reason": "x"}),
    ):
        response = post(organiser, path, **data)
        assert response.status_code == 404
        assert "Traceback" not in response.text
