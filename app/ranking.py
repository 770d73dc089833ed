"""Pure ranking of amendments from vote counts (DESIGN.md, "Ranking"). No I/O.

The same functions rank a consultation from the live database, from the ballots
frozen at closing and from an exported ballot file, so anyone can recompute a
published report and get the same order. docs/ranking.md explains the rule in
full and why it has the properties DESIGN.md asks for; in short:

- **Order statistic.** Each organisation group ``g`` that voted on an amendment
  contributes its smoothed odds of support ``r_g = (s_g + 1) / (o_g + 1)``,
  clipped to ``[1/4, 4]``. The score is ``ln(prod r_g)``: a sum over
  organisations of clipped log-odds. The order compares the products as exact
  fractions, so equal scores are equal (no rounding decides a place), and ties
  go to the reference in natural order (A2 before A10).
- **Support share and its interval.** Each group counts for at most
  ``ORGANISATION_VOTE_CAP`` votes (its supports and opposes scaled down in
  proportion); the share is taken over that capped sample and its 95 % interval
  is Wilson's. With no group above the cap, this is the plain share.
- **Enough evidence.** At least ``min_votes`` votes from at least
  ``min_organisations`` groups ("other" counts as one); below that an amendment
  "needs more votes": it is ranked and shown, but never carries or leads.
- **Carries** when it has enough evidence and the lower end of its interval is
  above one half.

The groups are the organisations after recoding those with fewer than
``MIN_GROUP_SIZE`` participants (distinct voters in the consultation) as "other".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction

OTHER = "other"
# Organisations with fewer participants than this are recoded as "other" before ranking,
# and counts below it are never shown broken down by organisation (small-number suppression).
MIN_GROUP_SIZE = 5
SMALL_NUMBER = 5
SINGLE_ORGANISATION_SHARE = 0.7
# The most one organisation can move the score: odds of 4 to 1 either way (ln 4 = 1.386).
RATIO_CLIP = Fraction(4)
# The most votes one organisation contributes to the support share and its interval.
ORGANISATION_VOTE_CAP = 20
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Rules:
    """The thresholds a consultation is ranked with (stated on the report, passed to tally)."""

    min_votes: int = 5
    min_organisations: int = 2


DEFAULT_RULES = Rules()


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
    """Votes on one amendment, broken down by (already recoded) organisation group.

    ``kind`` is "change", "delete" or "insert": changes and deletions of a clause
    compete with each other; each new clause is its own yes/no question.
    """

    ref: str
    clause_ref: str
    by_group: Mapping[str, Counts] = field(default_factory=dict)
    kind: str = "change"

    @property
    def counts(self) -> Counts:
        values = self.by_group.values()
        return Counts(sum(c.supports for c in values), sum(c.opposes for c in values))


@dataclass(frozen=True)
class RankedAmendment:
    """One amendment's figures and place in the ranking."""

    ref: str
    clause_ref: str
    kind: str
    supports: int
    opposes: int
    organisations: int
    support_share: float | None
    interval: tuple[float, float]
    order: Fraction
    enough_evidence: bool
    mostly_one_organisation: bool
    mostly_from: str | None
    by_group: Mapping[str, Counts] = field(default_factory=dict, compare=False, repr=False)
    rank: int = 0

    @property
    def votes(self) -> int:
        return self.supports + self.opposes

    @property
    def score(self) -> float:
        """The order statistic as shown: the sum over organisations of clipped log-odds."""
        return math.log(self.order)

    @property
    def carries(self) -> bool:
        return self.enough_evidence and self.interval[0] > 0.5

    @property
    def result(self) -> str:
        """ "carries", "does not carry" or "needs more votes"."""
        if not self.enough_evidence:
            return "needs more votes"
        return "carries" if self.carries else "does not carry"


def wilson_interval(supports: float, total: float, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of supports/total; (0, 1) when there are no votes.

    Counts may be fractional: the interval is taken over the organisation-capped sample.
    """
    if total < 0 or supports < 0 or supports > total + 1e-9:
        raise ValueError(f"impossible counts: {supports} supports of {total}")
    if total == 0:
        return (0.0, 1.0)
    p = min(1.0, supports / total)
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


def group_odds(counts: Counts) -> Fraction:
    """One group's smoothed odds of support, (s + 1) / (o + 1), clipped to [1/4, 4]."""
    odds = Fraction(counts.supports + 1, counts.opposes + 1)
    return min(RATIO_CLIP, max(1 / RATIO_CLIP, odds))


def order_statistic(by_group: Mapping[str, Counts]) -> Fraction:
    """The product of every voting group's clipped odds (its log is the score).

    A group with no votes has odds 1 and changes nothing, so organisations that voted
    on nothing cannot move the order. Multiplied as integers and reduced once: the
    same exact value as multiplying ``group_odds``, at a fraction of the cost.
    """
    clip = RATIO_CLIP.numerator
    numerator = denominator = 1
    for counts in by_group.values():
        if not counts.total:
            continue
        s, o = counts.supports + 1, counts.opposes + 1
        if s >= clip * o:
            numerator *= clip
        elif o >= clip * s:
            denominator *= clip
        else:
            numerator *= s
            denominator *= o
    return Fraction(numerator, denominator)


def capped_share(
    by_group: Mapping[str, Counts], cap: int = ORGANISATION_VOTE_CAP
) -> tuple[float, float]:
    """(supports, votes) with each group counting for at most ``cap`` votes, in proportion."""
    supports = votes = 0.0
    for _, counts in sorted(by_group.items()):
        if not counts.total:
            continue
        weight = min(1.0, cap / counts.total)
        supports += counts.supports * weight
        votes += counts.total * weight
    return supports, votes


def single_organisation(by_group: Mapping[str, Counts]) -> tuple[bool, str | None]:
    """Whether more than 70 % of the support comes from one organisation, and its name.

    The name is given only when that organisation gave at least SMALL_NUMBER of the
    supports; "other" (many small organisations) is never one organisation.
    """
    supports = sum(c.supports for c in by_group.values())
    if supports == 0:
        return False, None
    for group, counts in sorted(by_group.items()):
        if group != OTHER and counts.supports / supports > SINGLE_ORGANISATION_SHARE:
            return True, group if counts.supports >= SMALL_NUMBER else None
    return False, None


def natural_key(ref: str) -> tuple:
    """Sort key that orders "A2" before "A10" and "3.2" before "3.10"."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", ref)
        if part
    )


def score(tally: AmendmentTally, rules: Rules = DEFAULT_RULES) -> RankedAmendment:
    """Figures of one amendment, unranked."""
    counts = tally.counts
    voting_groups = sum(1 for c in tally.by_group.values() if c.total)
    capped_supports, capped_votes = capped_share(tally.by_group)
    flagged, named = single_organisation(tally.by_group)
    return RankedAmendment(
        ref=tally.ref,
        clause_ref=tally.clause_ref,
        kind=tally.kind,
        supports=counts.supports,
        opposes=counts.opposes,
        organisations=voting_groups,
        support_share=capped_supports / capped_votes if capped_votes else None,
        interval=wilson_interval(capped_supports, capped_votes),
        order=order_statistic(tally.by_group),
        enough_evidence=counts.total >= rules.min_votes
        and voting_groups >= rules.min_organisations,
        mostly_one_organisation=flagged,
        mostly_from=named,
        by_group=dict(tally.by_group),
    )


def rank(tallies: Iterable[AmendmentTally], rules: Rules = DEFAULT_RULES) -> list[RankedAmendment]:
    """Rank by the order statistic, highest first; ties by reference. Ranks start at 1."""
    scored = [score(t, rules) for t in tallies]
    scored.sort(key=lambda a: (-a.order, natural_key(a.ref)))
    return [replace(a, rank=i) for i, a in enumerate(scored, start=1)]


def without_group(tally: AmendmentTally, group: str) -> AmendmentTally:
    """The same amendment as if one group's votes had never been cast (for robustness)."""
    return replace(tally, by_group={g: c for g, c in tally.by_group.items() if g != group})
