"""Pure ranking of amendments from vote counts (DESIGN.md, "Ranking"). No I/O.

The same functions rank a consultation from the database and from an exported
ballot file, so anyone can recompute a published report and get the same order.

Decisions where DESIGN.md is silent, written down here:

- A *participant* for the small-organisation recoding is a distinct voter in the
  consultation, so that a ballot file carries everything the ranking needs.
- The consultation's groups are its organisations after that recoding. For each
  amendment, a group with at least ``MIN_GROUP_SIZE`` voters on it keeps its own
  factor; every other group (including the recoded "other") is pooled into one
  "other" factor. A pool with no votes still counts, at the neutral (0+1)/(0+2),
  as in Pol.is's group-informed consensus: silence from the rest of the
  consultation is not agreement, so support from one organisation alone cannot
  outrank broad support of the same size.
- An amendment with no votes has consensus 0.5 and confidence 0.
- Ties are broken by the amendment reference in natural order (A2 before A10).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

OTHER = "other"
MIN_GROUP_SIZE = 5
SINGLE_ORGANISATION_SHARE = 0.7
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Counts:
    """Supports and opposes, for one amendment or one group's part of it."""

    supports: int = 0
    opposes: int = 0

    @property
    def total(self) -> int:
        return self.supports + self.opposes

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.supports + other.supports, self.opposes + other.opposes)


@dataclass(frozen=True)
class AmendmentTally:
    """Votes on one amendment, broken down by (already recoded) organisation."""

    ref: str
    clause_ref: str
    by_group: Mapping[str, Counts] = field(default_factory=dict)

    @property
    def counts(self) -> Counts:
        values = self.by_group.values()
        return Counts(sum(c.supports for c in values), sum(c.opposes for c in values))


@dataclass(frozen=True)
class RankedAmendment:
    """One amendment's scores and place in the ranking."""

    ref: str
    clause_ref: str
    supports: int
    opposes: int
    support_share: float | None
    interval: tuple[float, float]
    consensus: float
    single_organisation: str | None
    rank: int = 0

    @property
    def votes(self) -> int:
        return self.supports + self.opposes

    @property
    def confidence(self) -> float:
        """Lower bound of the 95 % Wilson interval of the support share."""
        return self.interval[0]

    @property
    def carries(self) -> bool:
        return self.confidence > 0.5


@dataclass(frozen=True)
class ClauseOutcome:
    """Per clause: the leading amendment (or None: the original stands)."""

    clause_ref: str
    leading: RankedAmendment | None
    runner_up: RankedAmendment | None
    too_close_to_call: bool


def wilson_interval(supports: int, total: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of supports/total; (0, 1) when there are no votes."""
    if total < 0 or supports < 0 or supports > total:
        raise ValueError(f"impossible counts: {supports} supports of {total}")
    if total == 0:
        return (0.0, 1.0)
    p = supports / total
    z2 = z * z
    denominator = 1 + z2 / total
    centre = (p + z2 / (2 * total)) / denominator
    margin = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / denominator
    return (max(0.0, centre - margin), min(1.0, centre + margin))


def recode_small_organisations(
    voters_by_organisation: Mapping[str, int], minimum: int = MIN_GROUP_SIZE
) -> dict[str, str]:
    """Map each organisation to itself, or to "other" when it has fewer than ``minimum`` voters."""
    return {
        organisation: organisation if count >= minimum and organisation != OTHER else OTHER
        for organisation, count in voters_by_organisation.items()
    }


def pooled_groups(
    by_group: Mapping[str, Counts], consultation_groups: Iterable[str]
) -> list[Counts]:
    """The groups an amendment's consensus is taken over (see module docstring)."""
    kept: list[tuple[str, Counts]] = []
    pool_supports = pool_opposes = 0
    # Only the groups that voted are visited: the rest of the consultation's groups can only
    # ever join the pool, and all the pool needs to know is whether it has any member.
    for group, counts in by_group.items():
        if group != OTHER and counts.supports + counts.opposes >= MIN_GROUP_SIZE:
            kept.append((group, counts))
        else:
            pool_supports += counts.supports
            pool_opposes += counts.opposes
    result = [counts for _, counts in sorted(kept)]
    kept_names = {group for group, _ in kept}
    groups = (
        consultation_groups
        if isinstance(consultation_groups, frozenset | set)
        else set(consultation_groups)
    )
    pool_has_members = len(kept_names) < len(groups | kept_names) or any(
        group not in kept_names for group in by_group
    )
    if pool_has_members:
        result.append(Counts(pool_supports, pool_opposes))
    return result


def consensus(by_group: Mapping[str, Counts], consultation_groups: Iterable[str]) -> float:
    """Geometric mean over groups of (s_g + 1) / (n_g + 2)."""
    groups = pooled_groups(by_group, consultation_groups)
    if not groups:
        return 0.5
    log_sum = sum(math.log((g.supports + 1) / (g.total + 2)) for g in groups)
    return math.exp(log_sum / len(groups))


def single_organisation(by_group: Mapping[str, Counts]) -> str | None:
    """The organisation giving more than 70 % of an amendment's support, if any."""
    supports = sum(c.supports for c in by_group.values())
    if supports == 0:
        return None
    for group, counts in sorted(by_group.items()):
        if group != OTHER and counts.supports / supports > SINGLE_ORGANISATION_SHARE:
            return group
    return None


def natural_key(ref: str) -> tuple:
    """Sort key that orders "A2" before "A10" and "3.2" before "3.10"."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", ref))


def score(tally: AmendmentTally, consultation_groups: Iterable[str]) -> RankedAmendment:
    """Scores of one amendment, unranked."""
    counts = tally.counts
    return RankedAmendment(
        ref=tally.ref,
        clause_ref=tally.clause_ref,
        supports=counts.supports,
        opposes=counts.opposes,
        support_share=counts.supports / counts.total if counts.total else None,
        interval=wilson_interval(counts.supports, counts.total),
        consensus=consensus(tally.by_group, consultation_groups),
        single_organisation=single_organisation(tally.by_group),
    )


def rank(
    tallies: Iterable[AmendmentTally], consultation_groups: Iterable[str] | None = None
) -> list[RankedAmendment]:
    """Rank by consensus, then confidence, then votes; ties by reference. Ranks start at 1.

    ``consultation_groups`` defaults to every group that appears in the tallies.
    """
    tallies = list(tallies)
    if consultation_groups is None:
        consultation_groups = {group for t in tallies for group in t.by_group}
    groups = frozenset(consultation_groups)
    scored = [score(t, groups) for t in tallies]
    scored.sort(key=lambda a: (-a.consensus, -a.confidence, -a.votes, natural_key(a.ref)))
    return [replace(a, rank=i) for i, a in enumerate(scored, start=1)]


def clause_outcomes(
    ranked: Sequence[RankedAmendment], clause_refs: Iterable[str]
) -> dict[str, ClauseOutcome]:
    """Per clause, the leading amendment (highest-ranked that carries) and whether it is too close.

    A clause is too close to call when the leading amendment's interval overlaps
    that of the next-ranked amendment on the same clause.
    """
    by_clause: dict[str, list[RankedAmendment]] = {ref: [] for ref in clause_refs}
    for amendment in sorted(ranked, key=lambda a: a.rank):
        by_clause.setdefault(amendment.clause_ref, []).append(amendment)
    outcomes = {}
    for clause_ref, amendments in by_clause.items():
        leading = next((a for a in amendments if a.carries), None)
        runner_up = None
        close = False
        if leading is not None:
            runner_up = next((a for a in amendments if a.rank > leading.rank), None)
            if runner_up is not None:
                close = leading.interval[0] <= runner_up.interval[1]
        outcomes[clause_ref] = ClauseOutcome(clause_ref, leading, runner_up, close)
    return outcomes
