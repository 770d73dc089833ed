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
from app.ranking import Rules
from app.summary import AMENDMENT_FIELDS
from tests.conftest import settings_for
from tests.test_report_agreement import workbook_rows
from tests.utils.forms import closing_fields
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
        lambda s: s.exec(
            select(Amendment.id).where(Amendment.status == "open").order_by(Amendment.id)
        ).all()
    )


def decision_plan(database: Database) -> list[tuple[int, str]]:
    """Accept every other amendment, but never a second change to one clause, nor a change
    written against an older version of its clause (both are refused: see test_decisions)."""

    def plan(session):
        latest = dict(
            session.exec(
                select(ClauseVersion.clause_id, func.max(ClauseVersion.id)).group_by(
                    ClauseVersion.clause_id
                )
            ).all()
        )
        accepted_on: set[int] = set()
        decisions = []
        amendments = session.exec(
            select(Amendment).where(Amendment.status == "open").order_by(Amendment.id)
        ).all()
        for i, a in enumerate(amendments):
            change = a.kind == "change"
            allowed = not change or (
                a.clause_id not in accepted_on and a.clause_version_id == latest[a.clause_id]
            )
            decision = "accept" if i % 2 == 0 and allowed else "reject"
            if decision == "accept" and change:
                accepted_on.add(a.clause_id)
            decisions.append((a.id, decision))
        return decisions

    return database.call(plan)


def close_and_decide(organiser, database) -> None:
    assert (
        post(organiser, f"/organise/{SLUG}/status", action="close", confirm="yes").status_code
        == 303
    )
    for i, (amendment_id, decision) in enumerate(decision_plan(database)):
        response = post(
            organiser,
            f"/organise/amendments/{amendment_id}/decide",
            decision=decision,
            reason=f"Decision {i} explained.",
        )
        assert response.status_code == 303, response.text


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
    response = post(organiser, f"/organise/{SLUG}/status", action=action, confirm="yes")
    assert response.status_code == 409
    assert "draft to open to closed to published" in response.text
    assert audit_actions(seeded) == []


def test_publishing_needs_a_decision_on_every_amendment(organiser, seeded):
    post(organiser, f"/organise/{SLUG}/status", action="close", confirm="yes")
    response = post(organiser, f"/organise/{SLUG}/status", action="publish", confirm="yes")
    assert response.status_code == 409
    assert "Decide on every amendment" in response.text


def test_close_decide_publish_writes_the_audit_log(organiser, public, seeded):
    close_and_decide(organiser, seeded)
    assert (
        post(organiser, f"/organise/{SLUG}/status", action="publish", confirm="yes").status_code
        == 303
    )
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


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_entry SET reason = 'rewritten'", "DELETE FROM audit_entry"]
)
def test_the_audit_log_is_append_only_in_the_database(organiser, seeded, statement):
    post(organiser, f"/organise/{SLUG}/status", action="close", confirm="yes")
    engine = seeded.engine
    with pytest.raises(DBAPIError), engine.begin() as connection:
        connection.execute(text(statement))
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
        **{"amendments_close_at-day": "1", "amendments_close_at-month": "1"},
        **{"amendments_close_at-year": "2099", "amendments_close_at-time": "12:00"},
        **{"voting_close_at-day": "1", "voting_close_at-month": "2"},
        **{"voting_close_at-year": "2099", "voting_close_at-time": "midday"},
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
        (
            closing_fields(voting="2099-02-30T12:00"),
            "voting_close_at-day",
            "Voting closes must be a real date",
        ),
        (
            closing_fields(voting="next tuesday"),
            "voting_close_at-month",
            "Voting closes must include a month, a year and a time",
        ),
        (
            closing_fields(amendments="2099-03-01T12:00", voting="2099-02-01T12:00"),
            "amendments_close_at-day",
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
        **closing_fields(voting="2099-02-01T12:00"),
        "min_votes": "5",
        "min_organisations": "2",
        **fields,
    }
    response = post(organiser, f"/organise/{SLUG}/details", **form)
    assert response.status_code == 422
    error_id = field.split("-")[0]  # a date input's message belongs to the whole input
    assert f'href="#{field}"' in response.text and f'id="{error_id}-error"' in response.text
    assert message in response.text
    stored = seeded.call(lambda s: s.exec(select(Consultation)).one())
    assert stored.title == "Social media guidance for public-sector workers"
    assert (stored.min_votes, stored.min_organisations) == (5, 2)


def test_live_results_can_be_switched_while_open_and_thresholds_set_while_draft(
    organiser, seeded, public
):
    form = {
        "title": "Social media guidance for public-sector workers",
        "summary": "",
        "eligible_domains": "*.gov.uk",
        **closing_fields(voting="2099-02-01T12:00"),
        "min_votes": "5",
        "min_organisations": "2",
    }
    assert (
        post(organiser, f"/organise/{SLUG}/details", **form, live_results="no").status_code == 303
    )
    stored = seeded.call(lambda s: s.exec(select(Consultation)).one())
    assert stored.live_results is False
    assert (
        "hide results until the outcome is published"
        in public.get(f"/consultations/{SLUG}/results").text
    )
    assert (
        post(organiser, f"/organise/{SLUG}/details", **form, live_results="yes").status_code == 303
    )
    assert seeded.call(lambda s: s.exec(select(Consultation.live_results)).one()) is True
    # The evidence thresholds are fixed once the consultation is open.
    refused = post(organiser, f"/organise/{SLUG}/details", **{**form, "min_votes": "7"})
    assert refused.status_code == 422
    assert "can only change before the consultation opens" in refused.text
    assert seeded.call(lambda s: s.exec(select(Consultation.min_votes)).one()) == 5

    created = post(
        organiser,
        "/organise/new",
        document_text="# Replies to the public\n\n## 1. Speed\nAnswer within a day.\n",
        slug="replies",
    )
    assert created.status_code == 303
    saved = post(
        organiser,
        "/organise/replies/details",
        **{**form, "title": "Replies", "min_votes": "3", "min_organisations": "1"},
    )
    assert saved.status_code == 303
    draft = seeded.call(
        lambda s: s.exec(select(Consultation).where(Consultation.slug == "replies")).one()
    )
    assert (draft.min_votes, draft.min_organisations) == (3, 1)
    for field, value in (("min_votes", "0"), ("min_organisations", "two")):
        bad = post(organiser, "/organise/replies/details", **{**form, field: value})
        assert bad.status_code == 422
        assert f'href="#{field}"' in bad.text and f'id="{field}-error"' in bad.text
        assert "whole number from 1 to 1000" in bad.text
    draft = seeded.call(
        lambda s: s.exec(select(Consultation).where(Consultation.slug == "replies")).one()
    )
    assert (draft.min_votes, draft.min_organisations) == (3, 1)


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


def test_after_closing_moderation_only_withholds_text_and_cannot_bring_back_the_uncounted(
    organiser, seeded
):
    before_close, after_close = amendment_ids(seeded)[:2]
    moderate = "/organise/amendments/{}/moderate"
    hidden = post(organiser, moderate.format(before_close), action="hide", reason="Abusive.")
    assert hidden.status_code == 303
    assert (
        post(organiser, f"/organise/{SLUG}/status", action="close", confirm="yes").status_code
        == 303
    )
    # Hidden before the close: not in the record, and it cannot be put back into it.
    refused = post(organiser, moderate.format(before_close), action="restore", reason="Oops.")
    assert refused.status_code == 409
    assert "not part of the record" in refused.text
    # Hidden after the close: the text is withheld, the amendment stays listed and counted.
    assert (
        post(organiser, moderate.format(after_close), action="hide", reason="Libel.").status_code
        == 303
    )
    stored = seeded.call(lambda s: s.get(Amendment, after_close))
    assert (stored.status, stored.withheld) == ("open", True)
    again = post(organiser, moderate.format(after_close), action="hide", reason="Twice.")
    assert again.status_code == 409
    restored = post(organiser, moderate.format(after_close), action="restore", reason="Fine.")
    assert restored.status_code == 303
    assert seeded.call(lambda s: s.get(Amendment, after_close).withheld) is False
    assert audit_actions(seeded) == [
        "hide amendment",
        "close",
        "hide amendment",
        "restore amendment",
    ]


def test_moderation_needs_a_reason(organiser, seeded):
    target = amendment_ids(seeded)[0]
    response = post(organiser, f"/organise/amendments/{target}/moderate", action="hide", reason=" ")
    assert response.status_code == 422
    assert "Enter a reason" in response.text


# The report


def test_report_visibility_follows_the_lifecycle(organiser, participant, public, seeded):
    assert public.get(f"/consultations/{SLUG}/report").status_code == 409
    post(organiser, f"/organise/{SLUG}/status", action="close", confirm="yes")
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
    # The workbooks' "Amendments" sheet, read back as the machine columns.
    return workbook_rows(body, fmt)[1]


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
    post(organiser, f"/organise/{SLUG}/status", action="publish", confirm="yes")
    ballot_file = public.get(f"/consultations/{SLUG}/ballots.csv")
    assert ballot_file.status_code == 200
    lines = ballot_file.text.splitlines()
    assert lines[0] == ",".join(ballots.HEADER)
    report = public.get(f"/consultations/{SLUG}/report.json").json()
    rules = Rules(**report["rules"])
    ranked, outcome = ballots.tally_file(lines, rules)
    assert [a.ref for a in ranked] == [a["amendment"] for a in report["amendments"]]
    leading = {r.clause.number: r.leading.ref if r.leading else None for r in outcome.clauses}
    for clause in report["clauses"]:
        if clause["clause"] in leading:
            assert leading[clause["clause"]] == clause["leading_amendment"], clause
    # The report states the SHA-256 of exactly this file, and `redline tally` agrees.
    path = tmp_path / "ballots.csv"
    path.write_bytes(ballot_file.content)
    result = CliRunner().invoke(
        cli,
        [
            "tally",
            "--min-votes",
            str(rules.min_votes),
            "--min-organisations",
            str(rules.min_organisations),
            str(path),
        ],
    )
    assert result.exit_code == 0, result.output
    output = result.output.splitlines()
    assert output[0] == f"SHA-256 {report['ballots_sha256']}"
    assert output[2] == "\t".join(AMENDMENT_FIELDS)
    printed = [line.split("\t")[1] for line in output[3:] if "\t" in line]
    assert printed == [a["amendment"] for a in report["amendments"]]


def test_redline_export_writes_every_format(organiser, seeded, tmp_path):
    close_and_decide(organiser, seeded)
    env = {"REDLINE_DATABASE_URL": seeded.url}
    for fmt in ("csv", "xlsx", "ods", "json", "odt", "docx", "ballots"):
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
    post(organiser, f"/organise/{SLUG}/status", action="publish", confirm="yes")
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
    for fmt in ("xlsx", "ods", "odt", "docx"):
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
    rows = list(csv.reader(io.StringIO(bodies[f"/consultations/{SLUG}/ballots.csv"])))
    assert tuple(rows[0]) == ballots.HEADER
    voters = {row[ballots.HEADER.index("voter")] for row in rows[1:]}
    assert not voters & {str(uid) for uid, _ in users}
    assert voters and all(v.startswith("V-") for v in voters)
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
    post(organiser, f"/organise/{SLUG}/status", action="close", confirm="yes")
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


def test_live_frozen_and_ballot_file_rankings_agree_on_varied_votes(database):
    """Live counts (SQL) before closing, the frozen ballots after, and the file: one ranking."""
    import random

    from app import organising, services
    from app.models import Clause, Organisation
    from app.ranking import rank
    from app.seeding import seed
    from app.tallies import ballot_rows, frozen_tallies, live_tallies, rules_of
    from tests.conftest import SEED_DIR

    database.write_call(seed, SEED_DIR, False)
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
        votes: list[tuple[int, int, str]] = []
        for n in range(12):
            clause = clauses[n % 4]
            amendment = Amendment(
                consultation_id=consultation.id,
                clause_id=clause.id,
                clause_version_id=version_ids[clause.id],
                author_id=users[n].id,
                kind="insert" if n % 5 == 4 else "change",
                proposed_heading="New" if n % 5 == 4 else None,
                proposed_text="" if n % 7 == 3 else f"Wording {n}",
                rationale="A reason.",
            )
            session.add(amendment)
            session.flush()
            bias = generator.random()
            for user in generator.sample(users, generator.randint(0, len(users))):
                stance = "support" if generator.random() < bias else "oppose"
                votes.append((user.id, amendment.id, stance))
        # Two blocs: one large enough to be named, one of 3 voters that gives 75 % of the
        # supports: flagged as mostly one organisation, but too few to name it.
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
                votes.append((user.id, amendment.id, stance))
        session.commit()
        # Cast as the app casts votes, so that every count it keeps is kept.
        for user_id, amendment_id, stance in votes:
            services.cast_vote(session, user_id, amendment_id, stance)
        return consultation.slug, rank(
            live_tallies(session, consultation.id), rules_of(consultation)
        )

    slug, live = database.write_call(populate)
    database.write_call(organising.change_status, None, slug, "close")

    def frozen(session):
        consultation = session.exec(select(Consultation)).one()
        rules = rules_of(consultation)
        lines = (
            b"".join(ballots.csv_lines(ballot_rows(session, consultation))).decode().splitlines()
        )
        return rank(frozen_tallies(session, consultation.id), rules), ballots.tally_file(
            lines, rules
        )[0]

    from_snapshot, from_file = database.call(frozen)

    def figures(ranked):
        return [
            (
                a.ref,
                a.clause_ref,
                a.kind,
                a.supports,
                a.opposes,
                a.organisations,
                a.order,
                a.interval,
                a.result,
                a.mostly_one_organisation,
                a.mostly_from,
            )
            for a in ranked
        ]

    assert figures(live) == figures(from_snapshot) == figures(from_file)
    assert {a.kind for a in live} == {"change", "delete", "insert"}
    flags = {(a.mostly_one_organisation, a.mostly_from) for a in from_file}
    assert {(True, "Big A"), (True, None)} <= flags
    # Small D, Small E and Tiny F have fewer than 5 voters each: they count as "other".
    groups = {g for a in from_file for g in a.by_group}
    assert groups == {"Big A", "Big B", "Mid C", "other"}


def test_deciding_or_moderating_an_unknown_amendment_is_a_404(organiser):
    for path, data in (
        ("/organise/amendments/999999/decide", {"decision": "accept", "reason": "x"}),
        ("/organise/amendments/999999/moderate", {"action": "hide", "reason": "x"}),
    ):
        response = post(organiser, path, **data)
        assert response.status_code == 404
        assert "Traceback" not in response.text
