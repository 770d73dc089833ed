"""Pure: the report's opening in plain English, "We asked, you said, we did". No I/O.

Built from the same outcome objects as the outcome table and consolidated text
(app.outcome), so the words cannot disagree with the figures below them. People and
amendments are counted apart ("6 people proposed 9 amendments"), never confused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.outcome import ClauseResult, Outcome


@dataclass(frozen=True)
class ClauseLine:
    """What happened to one clause, and why, in a sentence."""

    number: str
    heading: str
    changed: bool
    # What happened, following "Clause 3 (Heading) ": "changed by amendment 12. Why: ..."
    detail: str

    @property
    def sentence(self) -> str:
        return f"Clause {self.number} ({self.heading}) {self.detail}"


@dataclass(frozen=True)
class PlainSummary:
    """The three parts of the summary and the clause-by-clause lines under "we did"."""

    asked: str
    said: str
    did: str
    changed: list[ClauseLine]
    unchanged: list[ClauseLine]


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _why_unchanged(result: ClauseResult, reasons: Mapping[str, str], proposed: int) -> str:
    if result.unresolved:
        return f"it is unresolved: {result.unresolved}"
    if proposed == 0:
        return "nobody proposed a change to it"
    if result.leading is not None:
        reason = reasons.get(result.leading.ref)
        why = f" because {reason[0].lower()}{reason[1:]}" if reason else ""
        return (
            f"the organisers rejected amendment {result.leading.ref[1:]}, which led the vote{why}"
        )
    if result.too_close_to_call:
        return "the vote was too close to call"
    return f"none of the {_n(proposed, 'proposed change')} carried in the vote"


def _clause_line(
    result: ClauseResult, reasons: Mapping[str, str], proposed: Mapping[str, int]
) -> ClauseLine:
    number, heading = result.clause.number, result.clause.heading
    count = proposed.get(number, 0)
    if result.applied or result.final_wording is not None:
        refs = list(result.final_wording.refs if result.final_wording else result.applied)
        first = result.consolidated[0] if result.consolidated else None
        what = "was removed" if first is not None and first.deleted else "changed"
        if result.final_wording is not None:
            how = "in wording the organisers wrote" + (
                f" from amendment{'s' if len(refs) > 1 else ''} " + ", ".join(r[1:] for r in refs)
                if refs
                else ""
            )
        else:
            how = f"by amendment {refs[0][1:]}"
        reason = next((reasons[r] for r in refs if reasons.get(r)), "")
        detail = f"{what} {how}." + (f" Why: {reason}" if reason else "")
        return ClauseLine(number, heading, True, detail)
    adopted = [q for q in result.new_clauses if q.adopted]
    if adopted:
        refs = ", ".join(q.amendment.ref[1:] for q in adopted)
        return ClauseLine(
            number, heading, True, f"is now followed by a new clause, from amendment {refs}."
        )
    why = _why_unchanged(result, reasons, count)
    return ClauseLine(number, heading, False, f"stands as drafted: {why}.")


def plain_summary(
    title: str,
    outcome: Outcome,
    *,
    participants: int | str,
    proposers: int | None,
    voters: int | None,
    amendments: int,
    votes: int,
    amendments_by_clause: Mapping[str, int],
    reasons: Mapping[str, str],
    published: bool,
) -> PlainSummary:
    """ "We asked, you said, we did" for one consultation's report.

    ``reasons`` maps amendment references ("A12") to the organisers' published reason;
    ``amendments_by_clause`` counts the listed amendments proposed for each clause.
    Turnout figures are as app.disclosure lets them be shown: participants may be
    "at least N", and proposers and voters None (withheld), when exact totals would
    reveal a count below 5 from one organisation.
    """
    clauses = len(outcome.clauses)
    asked = (
        f"We asked public-sector workers to improve the {_n(clauses, 'clause')} of {title}: "
        "to propose better wording and to vote on each other's proposals."
    )
    if proposers is None or voters is None or not isinstance(participants, int):
        took_part = (
            _n(participants, "person", "people")
            if isinstance(participants, int)
            else f"{participants[:1].upper()}{participants[1:]} people"
        )
        said = (
            f"{took_part} took part. They proposed {_n(amendments, 'amendment')} and cast "
            f"{_n(votes, 'vote')} for or against them. How many people proposed and how many "
            "voted is not shown: with fewer than 5 people from some organisations, exact "
            "totals would reveal how many came from which."
        )
    else:
        said = (
            f"{_n(participants, 'person', 'people')} took part. "
            f"{_n(proposers, 'person', 'people')} proposed {_n(amendments, 'amendment')} "
            f"between them, and {_n(voters, 'person', 'people')} cast {_n(votes, 'vote')} "
            "for or against them."
        )
    lines = [_clause_line(r, reasons, amendments_by_clause) for r in outcome.clauses]
    changed = [line for line in lines if line.changed]
    unchanged = [line for line in lines if not line.changed]
    if not outcome.uses_decisions:
        did = (
            "The organisers have not decided yet. Below, the changes that lead the vote "
            f"would change {_n(len(changed), 'clause')}; the other {_n(len(unchanged), 'clause')} "
            "would stand as drafted."
        )
    else:
        verb = "changed" if published else "have decided to change"
        did = (
            f"We {verb} {_n(len(changed), 'clause')} and kept "
            f"{_n(len(unchanged), 'clause')} as drafted. Each decision and its reason is below."
        )
    return PlainSummary(asked, said, did, changed, unchanged)
