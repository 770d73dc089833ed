"""Pure: everything a report computes from votes, as plain lines. No I/O.

`redline tally` prints these lines from a ballot file; tests build the same
lines from the report's data and from every export and compare them, so the
three cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from app.outcome import Outcome
from app.ranking import RankedAmendment, Rules, natural_key

AMENDMENT_FIELDS = (
    "rank",
    "amendment",
    "clause",
    "kind",
    "supports",
    "opposes",
    "organisations",
    "support_share",
    "interval_low",
    "interval_high",
    "score",
    "result",
    "leading",
    "too_close_to_call",
    "mostly_one_organisation",
    "mostly_from",
    "robustness",
)


def percent(value: float | None) -> str:
    """A share as a whole percentage, or "-" for no votes."""
    return "-" if value is None else f"{value * 100:.1f}%"


def amendment_facts(
    a: RankedAmendment, leading: bool, too_close: bool, robustness: str
) -> dict[str, object]:
    """One amendment's vote-computed figures, formatted as every output states them."""
    return {
        "rank": a.rank,
        "amendment": a.ref,
        "clause": a.clause_ref,
        "kind": a.kind,
        "supports": a.supports,
        "opposes": a.opposes,
        "organisations": a.organisations,
        "support_share": percent(a.support_share),
        "interval_low": percent(a.interval[0]),
        "interval_high": percent(a.interval[1]),
        "score": f"{a.score:+.3f}",
        "result": a.result,
        "leading": "yes" if leading else "no",
        "too_close_to_call": "yes" if too_close else "no",
        "mostly_one_organisation": "yes" if a.mostly_one_organisation else "no",
        "mostly_from": a.mostly_from or "",
        "robustness": robustness,
    }


def facts_by_ref(outcome: Outcome) -> dict[str, tuple[bool, bool, str]]:
    """For each amendment that leads (or is an adopted new clause): (leading, close, robustness)."""
    facts: dict[str, tuple[bool, bool, str]] = {}
    for result in outcome.clauses:
        if result.leading is not None:
            facts[result.leading.ref] = (
                True,
                result.too_close_to_call,
                result.robustness.summary if result.robustness else "",
            )
        for question in result.new_clauses:
            if question.adopted:
                facts[question.amendment.ref] = (
                    True,
                    False,
                    question.robustness.summary if question.robustness else "",
                )
    return facts


def clause_line(result) -> str:
    """The vote-based outcome of one clause, in words."""
    parts = [f"clause {result.clause.number}:"]
    if result.leading is None:
        parts.append("current wording stands")
    else:
        verb = "delete" if result.leading.kind == "delete" else "change"
        parts.append(f"{verb} by {result.leading.ref}")
        if result.too_close_to_call and result.runner_up is not None:
            parts.append(f"(too close to call with {result.runner_up.ref})")
    for question in result.new_clauses:
        state = "adopted" if question.adopted else question.amendment.result
        parts.append(f"; new clause {question.amendment.ref}: {state}")
    return " ".join(parts).replace(" ;", ";")


def summary_lines(
    ranked: Sequence[RankedAmendment], outcome: Outcome, rules: Rules
) -> Iterable[str]:
    """The lines `redline tally` prints: rules, every amendment, then every clause."""
    yield (
        f"rules: at least {rules.min_votes} votes from at least "
        f"{rules.min_organisations} organisations"
    )
    yield "\t".join(AMENDMENT_FIELDS)
    facts = facts_by_ref(outcome)
    for a in ranked:
        leading, close, robust = facts.get(a.ref, (False, False, ""))
        row = amendment_facts(a, leading, close, robust)
        yield "\t".join(str(row[f]) for f in AMENDMENT_FIELDS)
    for result in sorted(outcome.clauses, key=lambda r: natural_key(r.clause.number)):
        if (
            result.leading is not None
            or result.new_clauses
            or any(a.clause_ref == result.clause.number for a in ranked)
        ):
            yield clause_line(result)
