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
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from operator import itemgetter
from types import MappingProxyType
from typing import NamedTuple

from app.numbers import is_whole_number

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


class Counts(NamedTuple):
    """Supports and opposes, for one amendment or one group's part of it.

    A named tuple rather than a dataclass: a large consultation builds hundreds of
    thousands of these per report, and a tuple is several times cheaper to make.
    """

    supports: int = 0
    opposes: int = 0

    @property
    def total(self) -> int:
        return self.supports + self.opposes

    def __add__(self, other: tuple) -> Counts:  # type: ignore[override]
        return Counts(self.supports + other[0], self.opposes + other[1])


# A large consultation's tallies hold hundreds of thousands of per-group counts, nearly
# all of a few small values: reading them through this shares one tuple per value (a
# tuple is immutable, so sharing it changes nothing) rather than making one per group,
# which is both cheaper to make and far fewer objects for the cyclic collector to walk.
shared_counts = lru_cache(maxsize=1 << 14)(Counts)


# The default of an empty breakdown: one shared mapping, read-only so that sharing is safe.
NO_GROUPS: Mapping[str, Counts] = MappingProxyType({})


class AmendmentTally(NamedTuple):
    """Votes on one amendment, broken down by (already recoded) organisation group.

    ``kind`` is "change", "delete" or "insert": changes and deletions of a clause
    compete with each other; each new clause is its own yes/no question. A named tuple
    (as ``Counts``): a large consultation makes one per amendment for every report.
    """

    ref: str
    clause_ref: str
    by_group: Mapping[str, Counts] = NO_GROUPS
    kind: str = "change"

    @property
    def counts(self) -> Counts:
        values = self.by_group.values()
        return Counts(sum(c.supports for c in values), sum(c.opposes for c in values))


class RankedAmendment(NamedTuple):
    """One amendment's figures and place in the ranking.

    A named tuple rather than a frozen dataclass (as ``Counts``): a large report makes one
    per amendment, and a frozen dataclass sets each of its 14 fields through
    ``object.__setattr__``, which made building them a tenth of the whole report. Equality,
    hashing and repr stay those of the dataclass it was: ``by_group`` takes no part.
    """

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
    by_group: Mapping[str, Counts] = NO_GROUPS
    rank: int = 0

    def _compared(self) -> tuple:
        return (*self[:12], self.rank)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not RankedAmendment:
            return NotImplemented
        return self._compared() == other._compared()  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(self._compared())

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={value!r}"
            for name, value in zip(self._fields, self, strict=True)
            if name != "by_group"
        )
        return f"RankedAmendment({shown})"

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


_DIGITS = re.compile(r"(\d+)")
# The usual reference, letters then a number ("A123"): its key without the general split.
_LETTERS_NUMBER = re.compile(r"(\D+)([0-9]{1,18})")


def natural_key(ref: str) -> tuple:
    """Sort key that orders "A2" before "A10" and "3.2" before "3.10"."""
    simple = _LETTERS_NUMBER.fullmatch(ref)
    if simple is not None:  # the same key as the general case below, made directly
        return ((1, 0, simple[1]), (0, int(simple[2]), ""))
    return tuple(
        (0, int(part), "") if is_whole_number(part, 18) else (1, 0, part)
        for part in _DIGITS.split(ref)
        if part
    )


# Most amendments of a large consultation have few votes, so the same small counts, and
# so the same intervals and orders, come up again and again: each is worked out once.
# Both are pure functions of their arguments, so a cached result is the same result.
_interval = lru_cache(maxsize=1 << 14)(wilson_interval)
_order = lru_cache(maxsize=1 << 14)(Fraction)


def _figures(tally: AmendmentTally, rules: Rules) -> tuple[tuple, float]:
    """The fields of one amendment's ``RankedAmendment`` (but its rank), and its order as a float.

    One pass over the groups, in exact arithmetic wherever the order of the groups
    could otherwise change the last bit of a float (the result must not depend on
    whether the counts came from the database or from a ballot file). The odds are
    ``group_odds``'s, multiplied as integers and reduced once; the capped supports are
    summed as an unreduced integer fraction. Both floats are the exact quotient
    correctly rounded (int / int), so reducing first would not change a bit.
    """
    clip = RATIO_CLIP.numerator
    supports = opposes = voting_groups = 0
    numerator = denominator = 1
    # Capped supports as the fraction capped_over / capped_under, capped votes an integer.
    capped_over, capped_under, capped_votes = 0, 1, 0
    top_group, top_supports = None, 0
    for group, (s_g, o_g) in tally.by_group.items():
        n_g = s_g + o_g
        if not n_g:
            continue  # organisations that did not vote on it change nothing
        voting_groups += 1
        supports += s_g
        opposes += o_g
        s1, o1 = s_g + 1, o_g + 1
        if s1 >= clip * o1:
            numerator *= clip
        elif o1 >= clip * s1:
            denominator *= clip
        else:
            numerator *= s1
            denominator *= o1
        if n_g > ORGANISATION_VOTE_CAP:
            # + CAP * s_g / n_g
            capped_over = capped_over * n_g + ORGANISATION_VOTE_CAP * s_g * capped_under
            capped_under *= n_g
            capped_votes += ORGANISATION_VOTE_CAP
        else:
            capped_over += s_g * capped_under
            capped_votes += n_g
        if s_g > top_supports and group != OTHER:
            top_group, top_supports = group, s_g
    # More than 70 % of the supports from one organisation (at most one can have that),
    # named only when it gave at least SMALL_NUMBER of them; "other" is never one.
    flagged = supports > 0 and top_supports / supports > SINGLE_ORGANISATION_SHARE
    share_supports = capped_over / capped_under
    share_votes = float(capped_votes)
    figures = (
        tally.ref,
        tally.clause_ref,
        tally.kind,
        supports,
        opposes,
        voting_groups,
        share_supports / share_votes if share_votes else None,
        _interval(share_supports, share_votes),
        _order(numerator, denominator),
        supports + opposes >= rules.min_votes and voting_groups >= rules.min_organisations,
        flagged,
        top_group if flagged and top_supports >= SMALL_NUMBER else None,
        tally.by_group,
    )
    return figures, numerator / denominator


def score(tally: AmendmentTally, rules: Rules = DEFAULT_RULES) -> RankedAmendment:
    """Figures of one amendment, unranked (see ``_figures``)."""
    return RankedAmendment(*_figures(tally, rules)[0])


def rank(tallies: Iterable[AmendmentTally], rules: Rules = DEFAULT_RULES) -> list[RankedAmendment]:
    """Rank by the order statistic, highest first; ties by reference. Ranks start at 1."""
    # A correctly rounded float never reverses two orders; it can only make unequal ones
    # look equal. Sort by reference, then (stably) by the float, highest first: that is
    # the order by (float, reference), with two sorts on plain keys rather than one on
    # tuples. Then put each run of equal floats in exact order (a stable sort, so equal
    # orders keep the reference order): the exact order, at float speed.
    keyed = [_figures(tally, rules) for tally in tallies]
    keyed.sort(key=lambda k: natural_key(k[0][0]))
    keyed.sort(key=itemgetter(1), reverse=True)  # stable, also with reverse
    ordered = [k[0] for k in keyed]
    # Equal counts share one cached order (_order), so a run of equal floats holding one
    # object is already in exact order; only a run holding different fractions is sorted.
    # Such runs are found from the neighbours that differ, then widened to the whole run.
    count = len(keyed)
    unsettled = [
        i
        for i, (a, b) in enumerate(zip(keyed, keyed[1:], strict=False))
        if a[1] == b[1] and a[0][8] is not b[0][8]
    ]
    end = 0
    for i in unsettled:
        if i < end:
            continue  # inside a run already sorted
        start, end = i, i + 1
        while start > 0 and keyed[start - 1][1] == keyed[i][1]:
            start -= 1
        while end < count and keyed[end][1] == keyed[i][1]:
            end += 1
        ordered[start:end] = sorted(ordered[start:end], key=itemgetter(8), reverse=True)
    make = tuple.__new__  # RankedAmendment's fields in order, as _figures gives them
    return [make(RankedAmendment, (*figures, n)) for n, figures in enumerate(ordered, start=1)]


def without_group(tally: AmendmentTally, group: str) -> AmendmentTally:
    """The same amendment as if one group's votes had never been cast (for robustness)."""
    return tally._replace(by_group={g: c for g, c in tally.by_group.items() if g != group})
