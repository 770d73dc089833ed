"""Small-number suppression holds under subtraction (app.disclosure), pure and on the report.

The property: whatever the counts, for every suppressed count there are at least two
values it could have that would make everything shown (cells and total) the same, so
a reader cannot recover it. Checked by enumerating every alternative a reader must
consider, against generated tables.
"""

from __future__ import annotations

import itertools
import json
from functools import partial

from hypothesis import given, settings
from hypothesis import strategies as st

from app.disclosure import Disclosed, disclose, suppress_small
from app.ranking import SMALL_NUMBER

counts_by_organisation = st.dictionaries(
    st.sampled_from(["alpha", "beta", "gamma", "delta", "other"]),
    st.integers(min_value=1, max_value=30),
    min_size=1,
)


def consistent_values(counts: dict[str, int], rule) -> dict[str, set[int]]:
    """For each suppressed count, every value it could have given what ``rule`` shows."""
    shown = rule(counts)
    hidden = [name for name, v in shown.cells.items() if not isinstance(v, int)]
    possible: dict[str, set[int]] = {name: set() for name in hidden}
    # A reader knows a suppressed count is between 1 and 4 (the row exists, it is below 5).
    for values in itertools.product(range(1, SMALL_NUMBER), repeat=len(hidden)):
        alternative = {**counts, **dict(zip(hidden, values, strict=True))}
        if rule(alternative) == shown:
            for name, value in zip(hidden, values, strict=True):
                possible[name].add(value)
    return possible


@settings(max_examples=300, deadline=None)
@given(counts_by_organisation)
def test_no_suppressed_count_can_be_recovered_from_what_is_shown(counts):
    for name, values in consistent_values(counts, disclose).items():
        assert counts[name] in values
        assert len(values) >= 2, (name, counts, disclose(counts))


@settings(max_examples=300, deadline=None)
@given(counts_by_organisation)
def test_counts_of_5_or_more_and_totals_without_suppression_are_exact(counts):
    shown = disclose(counts)
    for name, n in counts.items():
        assert shown.cells[name] == (n if n >= SMALL_NUMBER else "fewer than 5")
    if all(n >= SMALL_NUMBER for n in counts.values()):
        assert shown.total == shown.total_label == sum(counts.values())
    else:
        assert shown.total is None
        # The bound says only what the cells say: shown counts plus 1 per suppressed one.
        assert shown.lower_bound <= sum(counts.values())
        assert shown.total_label == f"at least {shown.lower_bound}"


def exact_total_with_a_second_cell_suppressed(counts: dict[str, int]) -> Disclosed:
    """The rule this module replaced: suppress one more cell, keep the exact total."""
    cells: dict[str, int | str] = {name: suppress_small(n) for name, n in counts.items()}
    hidden = [name for name, v in cells.items() if isinstance(v, str)]
    if len(hidden) == 1:
        others = sorted((n, name) for name, n in counts.items() if name not in hidden)
        if others:
            cells[others[0][1]] = "withheld"
    return Disclosed(cells, sum(counts.values()), 0)


def test_the_enumeration_catches_a_rule_that_leaks():
    # The control: with two organisations of 1 participant each, an exact total of 12
    # beside 10 shown gives both away; the old rule leaked, the enumeration sees it.
    counts = {"alpha": 10, "beta": 1, "gamma": 1}
    leaked = consistent_values(counts, exact_total_with_a_second_cell_suppressed)
    assert leaked == {"beta": {1}, "gamma": {1}}
    assert all(len(v) >= 2 for v in consistent_values(counts, disclose).values())


def test_one_participant_from_a_small_organisation_is_not_revealed_by_the_report(seeded):
    """The issue's case, through the real app: one more participant from a small body."""
    from app.queries import consultation_by_slug
    from app.reporting import build_report, wordings

    report = seeded.call(
        lambda s: build_report(s, consultation_by_slug(s, "social-media-guidance"))
    )
    cells = {t.organisation: t.participants for t in report.turnout_by_organisation}
    suppressed = [name for name, v in cells.items() if not isinstance(v, int)]
    assert suppressed, cells  # the demo has organisations with fewer than 5
    assert report.turnout["voters"] is None and report.turnout["proposers"] is None
    assert str(report.turnout["participants"]).startswith("at least ")
    from app.exports import export_stream

    read = partial(seeded.call, wordings)
    document = json.loads(b"".join(export_stream(report, "json", None, wordings=read)))
    assert document["turnout"] == report.turnout
    for row in document["turnout_by_organisation"]:
        assert set(row) == {"organisation", "participants"}


def test_the_ballot_file_names_only_organisations_with_5_or_more_voters(database):
    """No per-organisation figure the pages suppress can be recounted from the ballot file.

    Organisations with fewer than 5 voters appear only inside "other"; every named
    group has at least 5 voters; and pseudonyms are per amendment, so distinct voters
    per group cannot be counted at all (tests/test_report_agreement.py checks that).
    """
    import csv
    import io
    from collections import Counter

    from sqlmodel import select

    from app.models import Organisation, Voter
    from app.ranking import OTHER
    from tests.test_report_agreement import PEOPLE, close, generate, organiser_client

    generated = generate(database, "generated", extra=8, seed_value=3)
    with organiser_client(database) as client:
        close(client, generated.slug)
        body = client.get(f"/consultations/{generated.slug}/ballots.csv").text
    named = {row["organisation"] for row in csv.DictReader(io.StringIO(body))} - {"", OTHER}
    voters = Counter(
        database.call(
            lambda s: s.exec(
                select(Organisation.name)
                .join(Voter, Voter.organisation_id == Organisation.id)
                .where(Voter.votes > 0)
            ).all()
        )
    )
    small = {domain for domain, size in PEOPLE.items() if size < SMALL_NUMBER}
    assert named and not named & small
    assert all(voters[name] >= SMALL_NUMBER for name in named), voters


@given(st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 12), min_size=1))
def test_beside_a_public_total_no_small_count_can_be_recovered(counts):
    """With the column's total published elsewhere, either every count is at least 5
    (nothing to hide) or nothing but the total can be read: every cell is withheld."""
    from app.disclosure import WITHHELD, disclose_beside_public_total

    shown = disclose_beside_public_total(counts)
    if all(n >= 5 for n in counts.values()):
        assert shown == counts
    else:
        assert set(shown.values()) == {WITHHELD}
