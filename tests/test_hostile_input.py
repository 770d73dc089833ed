"""A hostile-input corpus replayed on every form and every path parameter, on both engines.

Signed in as a participant and as an organiser, each form field and each path
parameter gets XSS, SQL injection, template injection, NUL and other control
characters, invalid UTF-8, right-to-left and zero-width characters, huge values
and out-of-range ids. What must hold (issue 12): no 5xx ever; a refused request
changes nothing stored; text that is accepted is shown as text, never run.
A few hundred requests per engine.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from sqlmodel import func, select
from starlette.routing import Route
from starlette.testclient import TestClient

from app.db import Database
from app.main import create_app
from app.models import (
    Amendment,
    AmendmentFlag,
    AuditEntry,
    Clause,
    ClauseVersion,
    Consultation,
    FinalWording,
    User,
    Vote,
)
from app.rate_limit_rules import DEFAULT_RATE_LIMITS
from tests.conftest import settings_for
from tests.utils.sessions import force_login

SLUG = "social-media-guidance"
ORGANISER = "dan.price@cabinetoffice.gov.uk"
PARTICIPANT = "amira.shah@hmrc.gov.uk"
# Generous limits: this module is about input, not about rate limiting.
NO_THROTTLE = dict.fromkeys(DEFAULT_RATE_LIMITS, "off")

# Text values for form fields and query parameters.
TEXT_CORPUS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' OR 1=1; DROP TABLE vote; --",
    "{{7*7}} {% print 7*7 %} ${7*7}",
    "a\x00b",
    "line\x01\x1b[31mred\x7f\x85",
    "\u202egnirts desrever\u200b\u200d\ufeff",
    "emoji \U0001f600 and a flag \U0001f3f3\ufe0f\u200d\U0001f308",
    # Digits int() refuses although str.isdigit() accepts them, and too many digits.
    "\u00b2",
    "9" * 5000,
    "x" * 100_000,
    "A" * 1_000_000,
]
# Raw bodies that are not UTF-8 at all (percent-encoded and as bytes).
BAD_UTF8 = [b"%FF%FE%00", b"\xff\xfe\xc3\x28"]
# Path parameter values (before percent-encoding).
PATH_CORPUS = [
    "<script>alert(1)</script>",
    "' OR '1'='1",
    "{{7*7}}",
    "a\x00b",
    "\u202e\u200b",
    "%FF%FE",  # sent as is: invalid UTF-8 once decoded
    "9" * 30,
    "\u00b2",
    "9" * 5000,
    "x" * 5000,
]
ID_CORPUS = ["0", "-1", str(2**63), str(2**64), "9" * 40, "01", "1e3", "\u0661\u0662"]


def user_id(database: Database, email: str) -> int:
    return database.call(lambda s: s.exec(select(User.id).where(User.email == email)).one())


def fingerprint(database: Database) -> tuple:
    """Everything a form could change, in one comparable value."""

    def read(session):
        counts = tuple(
            session.exec(select(func.count()).select_from(model)).one()
            for model in (
                Amendment,
                AmendmentFlag,
                AuditEntry,
                Clause,
                ClauseVersion,
                Consultation,
                FinalWording,
                User,
            )
        )
        stances = tuple(session.exec(select(Vote.stance, func.count()).group_by(Vote.stance)).all())
        consultations = tuple(
            (c.slug, c.title, c.summary, c.eligible_domains, c.status, c.live_results)
            for c in session.exec(select(Consultation).order_by(Consultation.id)).all()
        )
        statuses = tuple(
            session.exec(select(Amendment.status, func.count()).group_by(Amendment.status)).all()
        )
        reasons = tuple(session.exec(select(AmendmentFlag.reason)).all())
        return counts, sorted(stances), consultations, sorted(statuses), sorted(reasons)

    return database.call(read)


class Replay:
    """Sends requests, and checks that none is a 5xx and no refusal changed anything."""

    def __init__(self, database: Database, app) -> None:
        self.database = database
        self.app = app
        self.sent = 0
        self.refused = 0
        # What is stored after the last request: the "before" of the next one.
        self.stored = fingerprint(database)

    def check(self, client: TestClient, method: str, path: str, **kwargs):
        response = client.request(method, path, **kwargs)
        self.sent += 1
        where = f"{method} {path[:120]!r} {str(kwargs.get('data', ''))[:120]!r}"
        if response.status_code == 502 and path.startswith("/auth/"):
            # Outside demo mode the fixtures configure a provider that cannot be reached
            # (login.example.invalid): the honest answer is the "sign-in is not working"
            # page, whatever the hostile parameter, never a crash.
            assert "Sign-in is not working at the moment" in response.text, where
        else:
            assert response.status_code < 500, f"{response.status_code} on {where}"
        stored = fingerprint(self.database)
        if response.status_code >= 400:
            self.refused += 1
            assert stored == self.stored, f"refused but changed: {where}"
        self.stored = stored
        return response


@pytest.fixture
def app(seeded: Database):
    return create_app(
        settings_for(seeded.url, organisers=frozenset({ORGANISER}), rate_limits=NO_THROTTLE)
    )


def signed_in(app, database: Database, email: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    client.csrf = force_login(client, user_id(database, email))
    return client


def an_open_amendment(database: Database, clause: str, not_by: int) -> int:
    def find(session):
        return session.exec(
            select(Amendment.id)
            .join(Clause, Clause.id == Amendment.clause_id)
            .where(
                Clause.number == clause,
                Amendment.status == "open",
                Amendment.author_id != not_by,
            )
        ).first()

    return database.call(find)


def forms(amendment: int, clause_path: str, organise: str) -> list[tuple[str, str, dict]]:
    """(role, path, valid fields) of every form; each field in turn gets the corpus."""
    return [
        (
            "participant",
            f"{clause_path}/4/amend",
            {
                "kind": "change",
                "heading": "",
                "text": "Answer replies within two working days.",
                "rationale": "People expect a reply sooner than in fifteen days.",
            },
        ),
        ("participant", f"/amendments/{amendment}/flag", {"reason": "It is off topic here."}),
        ("participant", f"/amendments/{amendment}/vote", {"stance": "support"}),
        (
            "organiser",
            f"{organise}/details",
            {
                "title": "Social media guidance",
                "summary": "A summary.",
                "eligible_domains": "*.gov.uk, *.nhs.uk",
                "amendments_close_at-day": "",
                "amendments_close_at-month": "",
                "amendments_close_at-year": "",
                "amendments_close_at-time": "",
                "voting_close_at-day": "31",
                "voting_close_at-month": "1",
                "voting_close_at-year": "2030",
                "voting_close_at-time": "5pm",
                "live_results": "yes",
                "min_votes": "",
                "min_organisations": "",
            },
        ),
        ("organiser", f"{organise}/status", {"action": "nonsense"}),
        (
            "organiser",
            "/organise/new",
            {
                "slug": "hostile",
                "eligible": "*.gov.uk",
                "document_text": "# T\n\n## 1. A\n\nB.",
                "voting_close_at-day": "31",
                "voting_close_at-month": "1",
                "voting_close_at-year": "2030",
                "voting_close_at-time": "5pm",
            },
        ),
        (
            "organiser",
            f"{organise}/clauses/2/revise",
            {"heading": "A heading", "text": "New wording of clause two.", "reason": "Clearer."},
        ),
        (
            "organiser",
            f"/organise/amendments/{amendment}/moderate",
            {"action": "dismiss", "reason": "Nothing wrong with it."},
        ),
        (
            "organiser",
            f"/organise/amendments/{amendment}/decide",
            {"decision": "reject", "reason": "Not now."},
        ),
        (
            "organiser",
            f"{organise}/clauses/3/final-wording",
            {
                "heading": "Heading",
                "text": "Final text.",
                "reason": "Reconciled.",
                "amendments": str(amendment),
            },
        ),
        (
            "participant",
            f"/amendments/{amendment}/edit",
            {
                "kind": "change",
                "heading": "",
                "text": "Answer replies within one working day.",
                "rationale": "People expect a reply sooner than in fifteen days.",
            },
        ),
        (
            "participant",
            "/your-details",
            {"name_choice": "display_name", "display_name": "A Reader", "show_organisation": ""},
        ),
    ]


def test_every_form_field_survives_the_corpus(app, seeded):
    replay = Replay(seeded, app)
    clients = {
        "participant": signed_in(app, seeded, PARTICIPANT),
        "organiser": signed_in(app, seeded, ORGANISER),
    }
    amendment = an_open_amendment(seeded, "4", user_id(seeded, PARTICIPANT))
    clause_path = f"/consultations/{SLUG}/clauses"
    for role, path, valid in forms(amendment, clause_path, f"/organise/{SLUG}"):
        client = clients[role]
        for field in valid:
            for value in TEXT_CORPUS:
                replay.check(
                    client, "POST", path, data={**valid, field: value, "csrf_token": client.csrf}
                )
            for raw in BAD_UTF8:
                body = b"csrf_token=" + client.csrf.encode() + b"&" + field.encode() + b"=" + raw
                replay.check(
                    client,
                    "POST",
                    path,
                    content=body,
                    headers={"content-type": "application/x-www-form-urlencoded"},
                )
        # The security token itself is a field too.
        for value in TEXT_CORPUS[:8]:
            replay.check(client, "POST", path, data={**valid, "csrf_token": value})
    # Demo sign-in (refused on PostgreSQL by design, still never a 5xx).
    public = TestClient(app, follow_redirects=False)
    token = re.search(r'name="csrf_token" value="([^"]+)"', public.get("/sign-in").text)
    token = token.group(1) if token else ""  # no persona form on PostgreSQL
    for value in TEXT_CORPUS:
        for field in ("persona", "next"):
            data = {"persona": "amira", "next": "/", field: value, "csrf_token": token}
            replay.check(public, "POST", "/sign-in/demo", data=data)
    # Accepted text is shown as text: no markup from the corpus reaches a page unescaped.
    for path in (f"{clause_path}/4", f"/organise/{SLUG}/moderation", f"/organise/{SLUG}"):
        page = clients["organiser"].get(path).text
        assert "<script>alert(1)</script>" not in page
        assert "<img src=x onerror" not in page
    print(f"\nforms: {replay.sent} requests, {replay.refused} refused, no 5xx")
    assert replay.sent > 300 and replay.refused > 100, (replay.sent, replay.refused)


def test_closed_consultation_forms_survive_the_corpus(app, seeded):
    """Deciding and final wording run only after closing: replay them there too."""
    organiser = signed_in(app, seeded, ORGANISER)
    amendment = an_open_amendment(seeded, "4", 0)
    response = organiser.post(
        f"/organise/{SLUG}/status",
        data={"action": "close", "confirm": "yes", "csrf_token": organiser.csrf},
    )
    assert response.status_code == 303
    replay = Replay(seeded, app)
    closed = [
        (path, valid)
        for role, path, valid in forms(amendment, "", f"/organise/{SLUG}")
        if "decide" in path or "final-wording" in path
    ]
    for path, valid in closed:
        for field in valid:
            for value in TEXT_CORPUS:
                data = {**valid, field: value, "csrf_token": organiser.csrf}
                response = replay.check(organiser, "POST", path, data=data)
                if value in ("a\x00b", "x" * 100_000):
                    assert response.status_code == 422, (path, field)
                    assert "govuk-error-summary" in response.text


def test_a_huge_revision_heading_is_a_field_error(app, seeded):
    """Issue 12: a 100,000-character clause-revision heading was a 500 on PostgreSQL."""
    organiser = signed_in(app, seeded, ORGANISER)
    before = fingerprint(seeded)
    response = organiser.post(
        f"/organise/{SLUG}/clauses/2/revise",
        data={
            "heading": "H" * 100_000,
            "text": "New.",
            "reason": "r",
            "csrf_token": organiser.csrf,
        },
    )
    assert response.status_code == 422
    assert "Heading must be 200 characters or fewer" in response.text
    assert 'href="#heading"' in response.text
    assert fingerprint(seeded) == before


def test_a_nul_in_a_proposal_is_a_message_next_to_the_field(app, seeded):
    participant = signed_in(app, seeded, PARTICIPANT)
    before = fingerprint(seeded)
    typed = "Reply within\x00 two days."
    response = participant.post(
        f"/consultations/{SLUG}/clauses/4/amend",
        data={
            "kind": "change",
            "text": typed,
            "rationale": "Because people expect it.",
            "csrf_token": participant.csrf,
        },
    )
    assert response.status_code == 422
    assert "Proposed wording must not contain control characters" in response.text
    assert 'href="#text"' in response.text
    assert fingerprint(seeded) == before


def path_cases(app, values: dict[str, str]):
    """(method, path, the parameter made hostile) for every route with path parameters."""
    for route in app.routes:
        if not isinstance(route, Route) or "{" not in route.path:
            continue
        names = re.findall(r"\{(\w+)(?::\w+)?\}", route.path)
        for hostile in names:
            corpus = ID_CORPUS if hostile == "amendment_id" else PATH_CORPUS
            for value in corpus:
                encoded = value if value.startswith("%") else quote(value, safe="")
                params = {**values, hostile: encoded}
                path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m, p=params: p[m.group(1)], route.path)
                for method in sorted(route.methods - {"HEAD"}):
                    yield method, path, hostile


def test_every_path_parameter_survives_the_corpus(app, seeded):
    replay = Replay(seeded, app)
    amendment = str(an_open_amendment(seeded, "4", 0))
    values = {"slug": SLUG, "number": "3", "amendment_id": amendment, "format": "csv"}
    values["provider"] = "work"
    organiser = signed_in(app, seeded, ORGANISER)
    participant = signed_in(app, seeded, PARTICIPANT)
    for method, path, hostile in path_cases(app, values):
        clients = [organiser] if path.startswith("/organise") else [organiser, participant]
        for client in clients:
            data = {"csrf_token": client.csrf} if method == "POST" else None
            response = replay.check(client, method, path, data=data)
            if hostile in ("slug", "number", "amendment_id") and method == "GET":
                # (A post may be refused earlier, say 409 for the consultation's state.)
                assert response.status_code == 404, (method, path[:80])
    # Query parameters the pages read.
    for value in PATH_CORPUS + TEXT_CORPUS[:8]:
        encoded = quote(value, safe="")
        for path in (
            f"/consultations/{SLUG}/clauses/4?sort={encoded}&page={encoded}",
            f"/sign-in?next={encoded}",
            f"/auth/work/login?next={encoded}",
        ):
            replay.check(participant, "GET", path)
    print(f"\npaths and queries: {replay.sent} requests, {replay.refused} refused, no 5xx")
    assert replay.sent > 200
