"""The ballot file: one row per vote, frozen at closing, and its tally. Pure: no I/O.

The file is what makes a published report checkable: `redline tally ballots.csv`
ranks from it with the same code the app uses (app.ranking, app.outcome) and
prints everything the report computes from votes. Each row is amendment, clause,
kind (change, delete or insert), voter, organisation group (as recoded at
closing: organisations with fewer than 5 participants appear as "other"), and
stance. The voter is a keyed hash of the amendment and the person, so a row
shows that one person voted once on that amendment but cannot be linked to the
same person's votes on other amendments (DESIGN.md, "Privacy"). A listed
amendment nobody voted on appears once with voter, organisation and stance
empty, so that the file alone knows every amendment that was ranked.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

from app.cells import CsvWriter, original_text
from app.outcome import ClauseText, Outcome, clause_outcomes
from app.ranking import (
    DEFAULT_RULES,
    AmendmentTally,
    Counts,
    RankedAmendment,
    Rules,
    natural_key,
    rank,
)

HEADER = ("amendment", "clause", "kind", "voter", "organisation", "stance")
KINDS = ("change", "delete", "insert")


class BallotFileError(ValueError):
    """The ballot file cannot be read; the message says where."""


def voter_pseudonym(ballot_key: str, amendment_id: int, user_id: int) -> str:
    """A pseudonym for one person on one amendment: unlinkable across amendments."""
    return pseudonyms(ballot_key)(amendment_id, user_id)


def pseudonyms(ballot_key: str) -> Callable[[int, int], str]:
    """``voter_pseudonym`` for one key, for many lines: (amendment_id, user_id) -> pseudonym.

    The HMAC is keyed once and copied for each line, which gives the same digest as
    keying it afresh at a fraction of the cost (closing hashes every ballot line).
    """
    keyed = hmac.new(ballot_key.encode(), digestmod=hashlib.sha256)

    def pseudonym(amendment_id: int, user_id: int) -> str:
        mac = keyed.copy()
        mac.update(f"{amendment_id}:{user_id}".encode())
        return f"V-{mac.hexdigest()[:16]}"

    return pseudonym


def csv_lines(rows: Iterable[tuple], with_header: bool = True) -> Iterator[bytes]:
    """The ballot file as CSV bytes, a line at a time (header first unless told not to).

    Fields go through app.cells like every CSV: an organisation name starting with
    = + - @ gets a leading apostrophe, which ``read_ballots`` removes again.
    """
    buffer = io.StringIO()
    writer = CsvWriter(buffer, lineterminator="\n")
    if with_header:
        writer.writerow(HEADER)
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
    for row in rows:
        writer.writerow(row)
        yield buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()


def csv_chunk(rows: Iterable[tuple]) -> bytes:
    """Rows of the ballot file as CSV bytes, all at once: ``csv_lines`` without the header,
    joined, but written through one buffer (the ballot file is served and hashed in
    chunks of thousands of lines)."""
    buffer = io.StringIO()
    CsvWriter(buffer, lineterminator="\n").writerows_of_text(rows)
    return buffer.getvalue().encode("utf-8")


def sha256_of(chunks: Iterable[bytes]) -> str:
    """SHA-256 of a stream of bytes, without holding it in memory."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def read_ballots(lines: Iterable[str]) -> list[AmendmentTally]:
    """The tallies of a ballot file's lines (see module docstring), in file order."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or tuple(h.strip().lower() for h in header) != HEADER:
        raise BallotFileError(f"line 1: the header must be {','.join(HEADER)}")
    counts: dict[str, dict[str, Counts]] = defaultdict(dict)
    clauses: dict[str, tuple[str, str]] = {}
    seen: set[tuple[str, str]] = set()
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(HEADER):
            raise BallotFileError(
                f"line {line_no}: expected {len(HEADER)} fields, found {len(row)}"
            )
        amendment, clause, kind, voter, _, stance = (field.strip() for field in row)
        # The only free text: undo the apostrophe the writer adds against formulas.
        organisation = original_text(row[4]).strip()
        if not amendment or not clause:
            raise BallotFileError(f"line {line_no}: amendment and clause are required")
        if kind not in KINDS:
            raise BallotFileError(f"line {line_no}: kind must be one of {', '.join(KINDS)}")
        if clauses.setdefault(amendment, (clause, kind)) != (clause, kind):
            raise BallotFileError(
                f"line {line_no}: amendment {amendment} appears with two clauses or kinds"
            )
        counts[amendment]  # an amendment with no votes still takes part in the ranking
        if not stance and not voter and not organisation:
            continue
        if stance not in ("support", "oppose") or not voter or not organisation:
            raise BallotFileError(
                f"line {line_no}: stance must be support or oppose, with a voter and organisation"
            )
        if (amendment, voter) in seen:
            raise BallotFileError(f"line {line_no}: voter {voter} voted twice on {amendment}")
        seen.add((amendment, voter))
        previous = counts[amendment].get(organisation, Counts())
        counts[amendment][organisation] = previous + (
            Counts(1, 0) if stance == "support" else Counts(0, 1)
        )
    return [
        AmendmentTally(
            ref=amendment,
            clause_ref=clauses[amendment][0],
            by_group=by_org,
            kind=clauses[amendment][1],
        )
        for amendment, by_org in counts.items()
    ]


def tally_file(
    lines: Iterable[str], rules: Rules = DEFAULT_RULES
) -> tuple[list[RankedAmendment], Outcome]:
    """Rank the amendments of a ballot file and work out each clause's outcome, as the report."""
    tallies = read_ballots(lines)
    ranked = rank(tallies, rules)
    clause_refs = sorted({t.clause_ref for t in tallies}, key=natural_key)
    clauses = [ClauseText(ref, "", "") for ref in clause_refs]
    return ranked, clause_outcomes(ranked, clauses, rules=rules)
