"""Organisers' decisions, the outcome per clause and fair exposure, through the real app.

Two accepted changes to one clause, or an amendment written against an older version
of it, are never applied without an organiser choosing the wording; the consolidated
text is exactly what the outcome table says; hidden live results hide the ranking and
the counts; clause pages list amendments in a shuffle stable for each visitor; and in
the demo nothing with too few votes leads. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from contextlib import closing

import pytest
from sqlmodel import col, func, select
from starlette.testclient import TestClient

from app import organising
from app.db import Database
from app.models import Amendment, AuditEntry, Clause, Consultation, User
from app.queries import clause_page, consultation_by_slug
from app.reporting import Report, wordings
from app.shuffle import shuffle_key
from tests.test_report_agreement import (
    DEMO,
    Spec,
    cells,
    clause_lines_on_page,
    close,
    decide_everything,
    generate,
    organiser_client,
    plain,
    post,
    ranked_rows_on_page,
    report_of,
    table_rows,
)
from tests.utils.forms import closing_fields
from tests.utils.sessions import force_login

DETAILS = {
    "summary": "",
    "eligible_domains": "*.gov.uk, *.nhs.uk, *.police.uk",
    **closing_fields(voting="2099-02-01T12:00"),
}


def demo_amendments(database: Database, clause: str) -> list[int]:
    """The demo's amendments on one clause, in id order."""
    return database.call(
        lambda s: s.exec(
            select(Amendment.id)
            .join(Clause, col(Clause.id) == Amendment.clause_id)
            .where(Clause.number == clause)
            .order_by(Amendment.id)
        ).all()
    )


def audit_count(database: Database) -> int:
    return database.call(lambda s: s.exec(select(func.count()).select_from(AuditEntry)).one())


def status_of(database: Database, amendment_id: int) -> str:
    return database.call(lambda s: s.get(Amendment, amendment_id).status)


def decide(client: TestClient, amendment_id: int, decision: str, reason: str = "Weighed it."):
    return post(
        client, f"/organise/amendments/{amendment_id}/decide", decision=decision, reason=reason
    )


# Conflicting decisions


def test_accepting_a_second_change_to_one_clause_is_refused_on_the_decisions_page(seeded):
    first, second = demo_amendments(seeded, "7")
    with organiser_client(seeded) as client:
        close(client, DEMO)
        assert decide(client, first, "accept").status_code == 303
        before = audit_count(seeded)
        refused = decide(client, second, "accept", "Both are good.")
        assert refused.status_code == 422
        page = refused.text
        assert "govuk-error-summary" in page and f'href="#reason-{second}"' in page
        assert f'id="reason-{second}-error"' in page
        assert f"Amendment {first} to clause 7 is already accepted" in page
        assert "reject one of them, or write the final wording of clause 7" in page
        assert "/clauses/7/final-wording" in page
        # Nothing stored: no decision, no audit entry.
        assert status_of(seeded, second) == "open"
        assert status_of(seeded, first) == "accepted"
        assert audit_count(seeded) == before
        # Rejecting it instead, or rejecting the first and then accepting it, both work.
        assert decide(client, first, "reject").status_code == 303
        assert decide(client, second, "accept").status_code == 303
        assert (status_of(seeded, first), status_of(seeded, second)) == ("rejected", "accepted")


def test_refusals_put_one_error_prefix_in_the_page_title(seeded):
    first, second = demo_amendments(seeded, "7")
    with organiser_client(seeded) as client:
        close(client, DEMO)
        assert decide(client, first, "accept").status_code == 303
        decisions = decide(client, second, "accept").text
        final = post(client, f"/organise/{DEMO}/clauses/7/final-wording", text="x", reason="")
        assert final.status_code == 422
    titles = [re.search(r"<title>(.*?)</title>", page).group(1) for page in (decisions, final.text)]
    assert titles[0].startswith("Error: Decisions: "), titles[0]
    assert titles[1].startswith("Error: Final wording of clause 7: "), titles[1]


def test_a_deletion_and_a_change_to_one_clause_conflict_too(database):
    generated = generate(database, "generated", extra=0)
    broad, deletion = generated.ids["broad"], generated.ids["delete"]
    new_clause = generated.ids["new-adopted"]
    with organiser_client(database) as client:
        close(client, generated.slug)
        assert decide(client, deletion, "accept").status_code == 303
        refused = decide(client, broad, "accept")
        assert refused.status_code == 422
        assert f"Amendment {deletion} to clause 1 is already accepted" in refused.text
        assert status_of(database, broad) == "open"
        # A new clause after clause 1 is a question of its own: no conflict.
        assert decide(client, new_clause, "accept").status_code == 303


def test_accepting_an_amendment_written_against_an_older_version_is_refused(seeded):
    older = demo_amendments(seeded, "7")[0]
    organiser_id = seeded.call(
        lambda s: s.exec(
            select(User.id).where(User.email == "olive.grant@cabinetoffice.gov.uk")
        ).one()
    )
    revised = "Acknowledge every question within one working day, and answer within five."
    seeded.write_call(
        organising.revise_clause,
        organiser_id,
        DEMO,
        "7",
        "How quickly to reply",
        revised,
        "Clearer timescales.",
    )
    with organiser_client(seeded) as client:
        close(client, DEMO)
        before = audit_count(seeded)
        refused = decide(client, older, "accept")
        assert refused.status_code == 422
        assert "govuk-error-summary" in refused.text
        assert (
            f"Amendment {older} was written against an earlier version of clause 7" in refused.text
        )
        assert "Compare both texts and choose the final wording of clause 7" in refused.text
        assert status_of(seeded, older) == "open" and audit_count(seeded) == before
        # The decisions page says which version it was written against.
        decisions = client.get(f"/organise/{DEMO}/decisions").text
        assert "written against version 1 (the clause is now at version 2)" in decisions
        # Rejecting it is allowed: nothing is applied over the revision.
        assert decide(client, older, "reject").status_code == 303
        report = report_of(seeded, DEMO)
        result = next(r for r in report.outcome.clauses if r.clause.number == "7")
        assert result.consolidated[0].text == revised


# Final wording


def test_the_final_wording_page_shows_both_texts_and_its_wording_is_the_outcome(seeded):
    older, other = demo_amendments(seeded, "7")
    organiser_id = seeded.call(
        lambda s: s.exec(
            select(User.id).where(User.email == "olive.grant@cabinetoffice.gov.uk")
        ).one()
    )
    revised = "Acknowledge every question within one working day, and answer within five."
    seeded.write_call(
        organising.revise_clause,
        organiser_id,
        DEMO,
        "7",
        "How quickly to reply",
        revised,
        "Clearer timescales.",
    )
    proposed = seeded.call(lambda s: s.get(Amendment, older).proposed_text)
    with organiser_client(seeded) as client:
        close(client, DEMO)
        page = client.get(f"/organise/{DEMO}/clauses/7/final-wording")
        assert page.status_code == 200
        text = plain(page.text)
        assert "Current wording (version 2)" in text and revised in text
        assert plain(proposed) in text  # the amendment's own wording, in full
        assert "Written against version 1" in text
        assert f'value="{older}"' in page.text and f'value="{other}"' in page.text

        # A reason is required; nothing is stored without one.
        merged = "Acknowledge questions within one working day; answer within five working days."
        missing = post(
            client,
            f"/organise/{DEMO}/clauses/7/final-wording",
            heading="How quickly to reply",
            text=merged,
            amendments=str(older),
            reason="",
        )
        assert missing.status_code == 422 and 'href="#reason"' in missing.text
        assert status_of(seeded, older) == "open"

        saved = post(
            client,
            f"/organise/{DEMO}/clauses/7/final-wording",
            heading="Replying in good time",
            text=merged,
            amendments=str(older),
            reason="Merges the amendment with the revision.",
        )
        assert saved.status_code == 303, saved.text
        assert status_of(seeded, older) == "accepted"
        assert status_of(seeded, other) == "open"
        report = report_of(seeded, DEMO)
        result = next(r for r in report.outcome.clauses if r.clause.number == "7")
        assert result.final_wording is not None and result.unresolved is None
        assert result.summary == f"Final wording written by the organisers from A{older}"
        body = result.consolidated[0]
        assert (body.heading, body.text, body.by_organisers) == (
            "Replying in good time",
            merged,
            True,
        )
        assert body.amendments == [f"A{older}"]

        report_page = client.get(f"/consultations/{DEMO}/report").text
        assert f"(final wording by the organisers from A{older})" in report_page
        assert clean_text(report_page)["7"] == ("Replying in good time", merged)
        assert decided_column(report_page)["7"] == result.summary
        document = client.get(f"/consultations/{DEMO}/report.json").json()
        clause = next(c for c in document["clauses"] if c["clause"] == "7")
        assert clause["outcome"] == result.summary
        assert clause["final_text"] == [
            {"number": "7", "heading": "Replying in good time", "text": merged}
        ]
        # With a final wording, a second change to the clause may be credited too.
        assert decide(client, other, "accept").status_code == 303
        assert "final wording" in [
            e.action for e in seeded.call(lambda s: s.exec(select(AuditEntry)).all())
        ]


def test_an_empty_final_wording_deletes_the_clause(database):
    generated = generate(database, "generated", extra=0)
    with organiser_client(database) as client:
        close(client, generated.slug)
        saved = post(
            client,
            f"/organise/{generated.slug}/clauses/4/final-wording",
            heading="",
            text="",
            reason="Nobody needs it.",
        )
        assert saved.status_code == 303, saved.text
        page = client.get(f"/consultations/{generated.slug}/report").text
    report = report_of(database, generated.slug)
    result = next(r for r in report.outcome.clauses if r.clause.number == "4")
    assert result.consolidated[0].deleted
    assert "4" not in clean_text(page)
    assert "final wording by the organisers: clause deleted" in page
    assert_text_matches_table(database, report, page)


def test_publishing_with_an_unresolved_clause_is_refused(seeded):
    first, second = demo_amendments(seeded, "7")
    with organiser_client(seeded) as client:
        close(client, DEMO)
        decide_everything(client, seeded, DEMO)

        # Two accepted changes to one clause (as decided before the rule existed).
        def accept_both(session):
            for amendment_id in (first, second):
                amendment = session.get(Amendment, amendment_id)
                amendment.status = "accepted"
                session.add(amendment)
            session.commit()

        seeded.write_call(accept_both)
        report = report_of(seeded, DEMO)
        result = next(r for r in report.outcome.clauses if r.clause.number == "7")
        assert result.unresolved and result.consolidated[0].text == result.clause.text
        refused = post(client, f"/organise/{DEMO}/status", action="publish", confirm="yes")
        assert refused.status_code == 409
        assert "Resolve clause 7 before publishing" in refused.text
        consultation = seeded.call(lambda s: consultation_by_slug(s, DEMO, include_drafts=True))
        assert consultation.status == "closed"
        page = client.get(f"/consultations/{DEMO}/report").text
        assert "Unresolved" in decided_column(page)["7"]
        assert_text_matches_table(seeded, report, page)
        # Writing the final wording resolves it; then the outcome can be published.
        saved = post(
            client,
            f"/organise/{DEMO}/clauses/7/final-wording",
            heading="How quickly to reply",
            text="Acknowledge within a day.",
            amendments=[str(first), str(second)],
            reason="Merged both.",
        )
        assert saved.status_code == 303, saved.text
        assert (
            post(client, f"/organise/{DEMO}/status", action="publish", confirm="yes").status_code
            == 303
        )


# The consolidated text is the outcome table


def clean_text(page: str) -> dict[str, tuple[str, str]]:
    """The report's clean consolidated text: clause number -> (heading, text)."""
    section = page[page.index('<div class="app-clean-text">') :]
    section = section[: section.index("</div>")]
    found = {}
    for heading, body in re.findall(
        r'<h4 class="govuk-heading-s">(.*?)</h4>(.*?)(?=<h4|$)', section, flags=re.S
    ):
        number, _, title = plain(heading).partition(". ")
        paragraphs = re.findall(r'<p class="govuk-body">(.*?)</p>', body, flags=re.S)
        found[number] = (title, "\n\n".join(plain(p) for p in paragraphs))
    return found


def decided_column(page: str) -> dict[str, str]:
    """The outcome table's "Decided outcome" column, per clause."""
    column = {}
    for row in table_rows(page, 'caption--s">Outcome'):
        parts = cells(row)
        number = re.search(r"/clauses/([^\"#?]+)[\"#?]", parts[0]).group(1)
        column[number] = plain(parts[2]) if len(parts) > 2 else ""
    return column


def normalise(text: str) -> str:
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n") if p.strip())


def assert_text_matches_table(database: Database, report: Report, page: str | None = None) -> None:
    """For every clause, the consolidated text is what the outcome table says it is."""
    wording = database.call(wordings, (row.amendment.id for row in report.rows))
    proposals = {row.ranked.ref: wording[row.amendment.id] for row in report.rows}
    for result in report.outcome.clauses:
        body, inserted = result.consolidated[0], result.consolidated[1:]
        summary = result.summary
        clause = result.clause
        assert body.number == clause.number
        if result.unresolved:
            assert summary.startswith("Unresolved")
            assert (body.text, body.deleted, body.amendments) == (clause.text, False, [])
        elif result.final_wording is not None:
            assert summary.startswith("Final wording written by the organisers")
            final = result.final_wording
            assert (body.text, body.by_organisers) == (final.text, True)
            assert body.deleted == (final.text == "")
            assert body.amendments == list(final.refs)
        elif summary.startswith(("Changed by amendment", "Deleted by amendment")):
            ref = "A" + summary.rsplit(" ", 1)[1]
            assert result.applied == [ref] and body.amendments == [ref]
            assert body.text == proposals[ref].proposed_text
            assert body.deleted == summary.startswith("Deleted")
            assert body.deleted == (proposals[ref].proposed_text == "")
        else:
            assert summary == "Current wording stands"
            assert (body.text, body.heading, body.deleted) == (clause.text, clause.heading, False)
            assert body.amendments == []
        if report.uses_decisions:
            accepted = [
                r.ranked.ref
                for r in report.rows
                if r.ranked.clause_ref == clause.number
                and r.ranked.kind == "insert"
                and r.decision == "accepted"
            ]
            if result.final_wording is None and not result.unresolved:
                changes = [
                    r.ranked.ref
                    for r in report.rows
                    if r.ranked.clause_ref == clause.number
                    and r.ranked.kind != "insert"
                    and r.decision == "accepted"
                ]
                assert result.applied == changes
        else:
            # Before any decision: the leading change, as the votes column says.
            assert result.applied == ([result.leading.ref] if result.leading else [])
            accepted = [q.amendment.ref for q in result.new_clauses if q.adopted]
        assert [c.amendments for c in inserted] == [[ref] for ref in accepted]
        for c, ref in zip(inserted, accepted, strict=True):
            assert c.inserted and c.text == proposals[ref].proposed_text
    if page is None:
        return
    shown = clean_text(page)
    expected = {
        c.number: (c.heading, normalise(c.text)) for c in report.consolidated if not c.deleted
    }
    assert {k: (h, normalise(t)) for k, (h, t) in shown.items()} == expected
    votes = clause_lines_on_page(page)
    decided = decided_column(page)
    for result in report.outcome.clauses:
        number = result.clause.number
        leads = f"change by {result.leading.ref}" if result.leading else "current wording stands"
        if result.leading and result.leading.kind == "delete":
            leads = f"delete by {result.leading.ref}"
        assert votes[number][0].startswith(f"clause {number}: {leads}")
        if report.uses_decisions:
            said = decided[number]
            if result.unresolved:
                assert said == f"Unresolved {result.unresolved}"
            else:
                assert said == result.summary


def accept_runner_ups(client, database: Database, slug: str) -> None:
    """Reject each leader and accept the next change; accept every new clause; one clause
    gets an organisers' final wording."""
    report = report_of(database, slug)
    leaders = report.outcome.leading_refs()
    accepted_clauses: set[str] = set()
    for row in report.rows:
        a = row.ranked
        if a.kind == "insert":
            decision = "accept"
        elif a.ref in leaders or a.clause_ref in accepted_clauses or row.outdated:
            decision = "reject"
        else:
            decision = "accept"
            accepted_clauses.add(a.clause_ref)
        assert decide(client, row.amendment.id, decision).status_code == 303
    saved = post(
        client,
        f"/organise/{slug}/clauses/2/final-wording",
        heading="Written by us",
        text="The organisers' own wording of clause 2.",
        reason="Neither amendment was right.",
    )
    assert saved.status_code == 303, saved.text


@pytest.mark.parametrize(
    ("scenario", "decisions"),
    [
        ("demo", "none"),
        ("demo", "leaders"),
        ("generated", "none"),
        ("generated", "leaders"),
        ("generated", "runner-ups"),
        ("random", "none"),
        ("random", "runner-ups"),
    ],
)
def test_the_consolidated_text_is_what_the_outcome_table_says(database, scenario, decisions):
    if scenario == "demo":
        from app.seeding import seed
        from tests.conftest import SEED_DIR

        database.write_call(seed, SEED_DIR, True)
        slug = DEMO
    elif scenario == "generated":
        slug = generate(database, "generated", extra=0).slug
    else:
        slug = generate(database, "random", specs=[], extra=30, seed_value=29).slug
    with organiser_client(database) as client:
        close(client, slug)
        if decisions == "leaders":
            decide_everything(client, database, slug)
        elif decisions == "runner-ups":
            accept_runner_ups(client, database, slug)
        page = client.get(f"/consultations/{slug}/report").text
    report = report_of(database, slug)
    assert report.uses_decisions == (decisions != "none")
    assert_text_matches_table(database, report, page)
    summaries = {r.summary.split(" by ")[0] for r in report.outcome.clauses}
    if scenario == "generated" and decisions == "none":
        assert {"Changed", "Current wording stands"} <= summaries
    if decisions == "runner-ups":
        assert "Final wording written" in summaries
        assert any(r.applied for r in report.outcome.clauses if r.final_wording is None)


# Fair exposure


def clause_order(client: TestClient, slug: str, number: str, query: str = "") -> list[str]:
    page = client.get(f"/consultations/{slug}/clauses/{number}{query}")
    assert page.status_code == 200
    return re.findall(r'<article class="app-amendment" id="amendment-(\d+)"', page.text)


def many_amendments(database: Database) -> str:
    specs = [
        Spec(f"m{i}", "1", "change", {"alpha.gov.uk": (i % 6, 1), "beta.gov.uk": (i % 4, 0)})
        for i in range(12)
    ]
    return generate(database, "many", specs=specs, extra=0).slug


def test_the_shuffle_is_stable_for_a_visitor_and_differs_between_visitors(database):
    slug = many_amendments(database)
    with organiser_client(database) as organiser:
        app = organiser.app
        orders = []
        for _ in range(3):
            with closing(TestClient(app, follow_redirects=False)) as visitor:
                first = clause_order(visitor, slug, "1")
                assert len(first) == 12
                assert clause_order(visitor, slug, "1") == first
                assert clause_order(visitor, slug, "1", "?sort=shuffled") == first
                orders.append(first)
        assert len({tuple(o) for o in orders}) == 3
        newest = clause_order(organiser, slug, "1", "?sort=newest")
        assert newest == sorted(newest, key=int, reverse=True)
        assert all(o != newest for o in orders)
        # A signed-in person sees the same order on any device (seeded by the account).
        person = database.call(
            lambda s: s.exec(select(User.id).where(User.subject == "alpha.gov.uk-3")).one()
        )
        seen = []
        for _ in range(2):
            with closing(TestClient(app, follow_redirects=False)) as device:
                force_login(device, person)
                seen.append(clause_order(device, slug, "1"))
        assert seen[0] == seen[1] and len(seen[0]) == 12


def test_the_shuffle_favours_neither_early_amendments_nor_any_place():
    # Each amendment comes first for about as many visitors as any other, whatever its age.
    ids = list(range(1, 11))
    firsts = {i: 0 for i in ids}
    for visitor in range(2000):
        firsts[sorted(ids, key=shuffle_key(f"seed-{visitor}"))[0]] += 1
    assert all(120 <= n <= 280 for n in firsts.values()), firsts
    # A new amendment takes a place among the others; it does not reorder them.
    order = sorted(ids, key=shuffle_key("one visitor"))
    with_new = sorted([*ids, 11], key=shuffle_key("one visitor"))
    assert [i for i in with_new if i != 11] == order


def test_the_database_pages_the_shuffle_exactly_as_its_rule_orders(database):
    """The shuffle is ordered and paged in SQL (app.queries): page after page it gives
    app.shuffle's order of the clause's amendments, on either engine, and a page past
    the last shows the last."""
    specs = [Spec(f"p{i}", "1", "change", {"alpha.gov.uk": (1, 0)}) for i in range(45)]
    slug = generate(database, "paged", specs=specs, extra=0).slug

    def listed(session):
        clause = clause_page(session, slug, "1", None, "newest")
        return clause.total

    total = database.read_call(listed)
    assert total == 45
    for seed in ("one visitor", "another", "user-7"):

        def pages(session, seed=seed):
            return [
                clause_page(session, slug, "1", None, "shuffled", seed, page) for page in (1, 2, 3)
            ]

        shown = database.read_call(pages)
        ids = [row.amendment.id for page in shown for row in page.amendments]
        assert ids == sorted(ids, key=shuffle_key(seed))
        assert [len(page.amendments) for page in shown] == [20, 20, 5]
        assert {page.pages for page in shown} == {3} and {page.total for page in shown} == {45}

    def past_the_end(session):
        return clause_page(session, slug, "1", None, "shuffled", "one visitor", 9)

    last = database.read_call(past_the_end)
    assert last.page == 3 and len(last.amendments) == 5


def test_with_live_results_off_the_ranking_and_counts_are_hidden(database):
    slug = many_amendments(database)
    with organiser_client(database) as organiser:
        saved = post(
            organiser,
            f"/organise/{slug}/details",
            title="Generated guidance",
            live_results="no",
            **DETAILS,
        )
        assert saved.status_code == 303
        app = organiser.app
        with closing(TestClient(app, follow_redirects=False)) as visitor:
            results = visitor.get(f"/consultations/{slug}/results")
            assert results.status_code == 200
            assert "hide results until the outcome is published" in results.text
            assert "All amendments, ranked" not in results.text
            assert "#amendment-" not in results.text and "Carries" not in results.text
            assert "/how-ranking-works" in results.text
            shuffled = clause_order(visitor, slug, "1")
            for sort in ("supported", "ranked"):
                page = visitor.get(f"/consultations/{slug}/clauses/1?sort={sort}").text
                assert '<strong aria-current="true">Shuffled for you</strong>' in page
                assert "Most supported" not in page and "Ranking so far" not in page
                assert "Vote counts are hidden until the outcome is published." in page
                assert not re.search(r'id="vote-\d+-supports"', page)
                assert clause_order(visitor, slug, "1", f"?sort={sort}") == shuffled
            newest = visitor.get(f"/consultations/{slug}/clauses/1?sort=newest").text
            assert '<strong aria-current="true">Newest</strong>' in newest
        # Voting still works, and its answer gives no counts away.
        voter = database.call(
            lambda s: s.exec(select(User.id).where(User.subject == "beta.gov.uk-9")).one()
        )
        target = int(shuffled[0])
        with closing(TestClient(app, follow_redirects=False)) as person:
            csrf = force_login(person, voter)
            answer = person.post(
                f"/amendments/{target}/vote",
                data={"stance": "support"},
                headers={"HX-Request": "true", "X-CSRF-Token": csrf},
            )
            assert answer.status_code == 200
            assert f"Your vote on amendment {target} is now support." in answer.text
            assert " support, " not in answer.text and f'id="vote-{target}-supports"' not in (
                answer.text
            )
        # Once the outcome is published, everything is shown.
        close(organiser, slug)
        decide_everything(organiser, database, slug)
        assert (
            post(organiser, f"/organise/{slug}/status", action="publish", confirm="yes").status_code
            == 303
        )
        with closing(TestClient(app, follow_redirects=False)) as visitor:
            page = visitor.get(f"/consultations/{slug}/clauses/1?sort=supported").text
            assert '<strong aria-current="true">Most supported</strong>' in page
            assert re.search(r'id="vote-\d+-supports"', page)
            report = visitor.get(f"/consultations/{slug}/report")
            assert report.status_code == 200 and "All amendments, ranked" in report.text


def test_live_results_are_shown_while_open_when_the_organisers_allow(database):
    slug = many_amendments(database)
    with organiser_client(database) as organiser:
        visitor = TestClient(organiser.app)
        results = visitor.get(f"/consultations/{slug}/results").text
        assert "All amendments, ranked" in results
        page = visitor.get(f"/consultations/{slug}/clauses/1?sort=supported").text
        assert '<strong aria-current="true">Most supported</strong>' in page
        ids = re.findall(r'<article class="app-amendment" id="amendment-(\d+)"', page)
        supports = [int(re.search(rf'id="vote-{i}-supports">(\d+)<', page).group(1)) for i in ids]
        assert supports == sorted(supports, reverse=True)


# The demo


def test_in_the_demo_nothing_with_too_few_votes_leads(seeded):
    # A brand-new amendment with one vote, as in the report that prompted the new rule.
    author, voter = (
        seeded.call(lambda s, e=e: s.exec(select(User.id).where(User.email == e)).one())
        for e in ("dan.price@cabinetoffice.gov.uk", "amira.shah@hmrc.gov.uk")
    )
    with organiser_client(seeded) as organiser:
        app = organiser.app
        with closing(TestClient(app, follow_redirects=False)) as person:
            csrf = force_login(person, author)
            proposed = person.post(
                f"/consultations/{DEMO}/clauses/2/amend",
                data={
                    "csrf_token": csrf,
                    "kind": "change",
                    "text": "Keep work and personal accounts apart.",
                    "rationale": "Shorter, and it says the same thing.",
                },
            )
            assert proposed.status_code == 303
            newcomer = int(proposed.headers["location"].rsplit("proposed=", 1)[1])
            csrf = force_login(person, voter)
            voted = person.post(
                f"/amendments/{newcomer}/vote", data={"csrf_token": csrf, "stance": "support"}
            )
            assert voted.status_code == 303
        with closing(TestClient(app, follow_redirects=False)) as visitor:
            results = visitor.get(f"/consultations/{DEMO}/results").text
    report = report_of(seeded, DEMO)
    rules = report.rules
    by_ref = {row.ranked.ref: row.ranked for row in report.rows}

    def enough(ref: str) -> bool:
        a = by_ref[ref]
        return a.votes >= rules.min_votes and a.organisations >= rules.min_organisations

    # build_report: every leader, every adopted new clause, every runner-up has enough votes.
    leaders = [r.leading.ref for r in report.outcome.clauses if r.leading]
    assert leaders  # the demo has leading amendments
    assert all(enough(ref) for ref in report.outcome.leading_refs())
    assert all(enough(r.runner_up.ref) for r in report.outcome.clauses if r.runner_up)
    for row in report.rows:
        if not enough(row.ranked.ref):
            assert row.ranked.result == "needs more votes"
            assert not row.leading and not row.too_close_to_call
    assert by_ref[f"A{newcomer}"].result == "needs more votes"
    # The results page says the same.
    shown = ranked_rows_on_page(results)
    assert [r["amendment"] for r in shown] == [row.ranked.ref for row in report.rows][:20]
    for row in shown:
        if row["leading"] == "yes":
            assert enough(row["amendment"]) and row["result"] == "carries"
        if not enough(row["amendment"]):
            assert row["result"] == "needs more votes" and row["leading"] == "no"
    newcomer_row = next(r for r in shown if r["amendment"] == f"A{newcomer}")
    assert (newcomer_row["supports"], newcomer_row["result"]) == ("1", "needs more votes")
    for number, (line, _) in clause_lines_on_page(results).items():
        for ref in re.findall(r"(?:change|delete) by (A\d+)", line):
            assert enough(ref), (number, line)
        assert "too close to call" not in line or all(
            enough(ref) for ref in re.findall(r"A\d+", line)
        )
    assert seeded.call(lambda s: s.exec(select(Consultation.status)).one()) == "open"
