"""The ballot file: one row per vote, voters as per-consultation pseudonyms, and its tally.

The file is what makes a published report checkable: `redline tally ballots.csv`
ranks from it with the same code the app uses (app.ranking) and prints the same
order. Each row is amendment, clause, voter pseudonym (a keyed hash that cannot
be reversed without the consultation's secret key), organisation after the
small-organisation recoding, and stance. A listed amendment nobody voted on
appears once with the voter, organisation and stance left empty, so that the
file alone knows every amendment that was ranked.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections import defaultdict
from collections.abc import Iterable, Iterator

from app.ranking import (
    AmendmentTally,
    Counts,
    RankedAmendment,
    rank,
    recode_small_organisations,
)

HEADER = ("amendment", "clause", "voter", "organisation", "stance")


class BallotFileError(ValueError):
    """The ballot file cannot be read; the message says where."""


def voter_pseudonym(ballot_key: str, user_id: int) -> str:
    """A stable, per-consultation pseudonym: the keyed hash of a user id, shortened."""
    digest = hmac.new(ballot_key.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()
    return f"V-{digest[:16]}"


def csv_lines(rows: Iterable[tuple[str, str, str, str, str]]) -> Iterator[bytes]:
    """The ballot file as CSV bytes, a line at a time (header first)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in _with_header(rows):
        writer.writerow(row)
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()


def _with_header(rows):
    yield HEADER
    yield from rows


def sha256_of(chunks: Iterable[bytes]) -> str:
    """SHA-256 of a stream of bytes, without holding it in memory."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def read_ballots(lines: Iterable[str]) -> tuple[list[AmendmentTally], frozenset[str]]:
    """Tallies and consultation groups from a ballot file's lines (see module docstring)."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or tuple(h.strip().lower() for h in header) != HEADER:
        raise BallotFileError(f"line 1: the header must be {','.join(HEADER)}")
    counts: dict[str, dict[str, Counts]] = defaultdict(dict)
    clauses: dict[str, str] = {}
    voters: dict[str, set[str]] = defaultdict(set)
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(HEADER):
            raise BallotFileError(
                f"line {line_no}: expected {len(HEADER)} fields, found {len(row)}"
            )
        amendment, clause, voter, organisation, stance = (field.strip() for field in row)
        if not amendment or not clause:
            raise BallotFileError(f"line {line_no}: amendment and clause are required")
        if clauses.setdefault(amendment, clause) != clause:
            raise BallotFileError(f"line {line_no}: amendment {amendment} is on two clauses")
        counts[amendment]  # an amendment with no votes still takes part in the ranking
        if not stance and not voter:
            continue
        if stance not in ("support", "oppose") or not voter or not organisation:
            raise BallotFileError(
                f"line {line_no}: stance must be support or oppose, with a voter and organisation"
            )
        voters[organisation].add(voter)
        previous = counts[amendment].get(organisation, Counts())
        counts[amendment][organisation] = previous + (
            Counts(1, 0) if stance == "support" else Counts(0, 1)
        )
    recode = recode_small_organisations({org: len(v) for org, v in voters.items()})
    tallies = []
    for amendment, by_org in counts.items():
        grouped: dict[str, Counts] = {}
        for organisation, c in by_org.items():
            group = recode[organisation]
            grouped[group] = grouped.get(group, Counts()) + c
        tallies.append(
            AmendmentTally(ref=amendment, clause_ref=clauses[amendment], by_group=grouped)
        )
    return tallies, frozenset(recode.values())


def tally_file(lines: Iterable[str]) -> list[RankedAmendment]:
    """Rank the amendments of a ballot file exactly as the report does."""
    tallies, groups = read_ballots(lines)
    return rank(tallies, groups)
