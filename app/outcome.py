"""Pure: the outcome per clause and the consolidated text, from one function. No I/O.

DESIGN.md, "Outcome per clause". The alternatives for a clause are keeping the
current wording and each change or deletion of it; each proposed new clause is a
separate yes/no question. The table of outcomes and the consolidated text are
two views of the same ``ClauseResult`` objects, so they cannot disagree.

Before any decision the text shows every leading change and every carried new
clause. Once organisers have decided anything, it shows exactly what they
accepted, and a clause whose accepted changes conflict (two changes, or one
written against an older version of the clause) keeps its current wording and
is marked unresolved until an organiser writes its final wording.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from operator import attrgetter
from typing import NamedTuple

from app.ranking import (
    DEFAULT_RULES,
    OTHER,
    RATIO_CLIP,
    SMALL_NUMBER,
    AmendmentTally,
    RankedAmendment,
    Rules,
    group_odds,
    natural_key,
    score,
)
from app.textdiff import Segment, word_diff


@dataclass(frozen=True)
class ClauseText:
    """A clause's current wording."""

    number: str
    heading: str
    text: str
    version: int = 1


class Proposal(NamedTuple):
    """What an amendment proposes, and the organisers' decision on it (None: undecided).

    A named tuple rather than a dataclass (as app.ranking.Counts): a report makes one per
    amendment, tens of thousands, and a tuple is several times cheaper to make.
    """

    ref: str
    clause_ref: str
    kind: str  # "change", "delete" or "insert"
    heading: str | None
    # None where the wording is read only for the proposals applied (clause_outcomes' texts).
    text: str | None
    target_version: int = 1
    decision: str | None = None  # "accepted" or "rejected"


# Reads the proposed wording of the amendments with the given references, by reference.
TextReader = Callable[[Sequence[str]], Mapping[str, str]]


@dataclass(frozen=True)
class FinalWording:
    """Wording an organiser wrote for a clause after closing, reconciling amendments."""

    clause_ref: str
    heading: str
    text: str
    refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Robustness:
    """Whether a lead survives removing any one organisation's votes.

    ``named`` are the organisations it depends on that gave at least SMALL_NUMBER votes
    on the leading amendment; ``unnamed`` counts the others (never named: too few).
    """

    holds: bool
    named: tuple[str, ...] = ()
    unnamed: int = 0

    @property
    def summary(self) -> str:
        """In words; an organisation is named only when it gave 5 or more of the votes."""
        if self.holds:
            return "Still leads with any one organisation's votes removed"
        others = f"{self.unnamed} other organisation" + ("s" if self.unnamed > 1 else "")
        if self.named:
            text = "This lead depends on votes from " + " and ".join(self.named)
            return text + (f", and on {others}" if self.unnamed else "")
        if self.unnamed == 1:
            return "This lead depends on one organisation"
        return f"This lead depends on each of {self.unnamed} organisations"


@dataclass(frozen=True)
class ConsolidatedClause:
    """One clause of the consolidated text, as clean text and as tracked changes.

    ``replaces`` is the clause's wording before a change (None when the clause is kept
    as it is, or is a new clause); the tracked changes, ``segments``, are worked out from
    it on first use and kept.
    """

    number: str
    heading: str
    text: str
    replaces: str | None = None
    amendments: list[str] = field(default_factory=list)
    deleted: bool = False
    inserted: bool = False
    by_organisers: bool = False

    @cached_property
    def segments(self) -> list[Segment]:
        """The clause as tracked changes against the wording it replaces.

        Lazy because only the pages and exports that show tracked changes read them: a
        word diff per changed clause was a tenth of building a large report that, most
        of the time, nobody reads the consolidated text of. (cached_property writes the
        instance's __dict__ directly, so it works on a frozen dataclass.)
        """
        if self.inserted:
            return [Segment("insert", self.text)]
        if self.replaces is None:
            return [Segment("equal", self.text)]
        if self.deleted:
            return [Segment("delete", self.replaces)]
        return word_diff(self.replaces, self.text)


@dataclass(frozen=True)
class NewClauseQuestion:
    """A proposed new clause: adopted or not, by votes or by decision."""

    amendment: RankedAmendment
    adopted: bool
    robustness: Robustness | None


@dataclass(frozen=True)
class ClauseResult:
    """Everything the outcome table says about one clause, and its consolidated text."""

    clause: ClauseText
    leading: RankedAmendment | None
    runner_up: RankedAmendment | None
    too_close_to_call: bool
    robustness: Robustness | None
    new_clauses: list[NewClauseQuestion]
    applied: list[str]
    final_wording: FinalWording | None
    unresolved: str | None
    consolidated: list[ConsolidatedClause]

    @property
    def summary(self) -> str:
        """The outcome in words, as the table shows it."""
        if self.unresolved:
            return f"Unresolved: {self.unresolved}"
        if self.final_wording is not None:
            refs = ", ".join(self.final_wording.refs)
            return "Final wording written by the organisers" + (f" from {refs}" if refs else "")
        if self.applied:
            ref = self.applied[0]
            deleted = self.consolidated and self.consolidated[0].deleted
            return f"{'Deleted' if deleted else 'Changed'} by amendment {ref[1:]}"
        return "Current wording stands"


@dataclass(frozen=True)
class Outcome:
    """The whole consultation's outcome: one result per clause, in clause order."""

    clauses: list[ClauseResult]
    uses_decisions: bool

    @property
    def consolidated(self) -> list[ConsolidatedClause]:
        return [c for result in self.clauses for c in result.consolidated]

    @property
    def unresolved(self) -> list[ClauseResult]:
        return [r for r in self.clauses if r.unresolved]

    def leading_refs(self) -> set[str]:
        refs = {r.leading.ref for r in self.clauses if r.leading}
        refs |= {q.amendment.ref for r in self.clauses for q in r.new_clauses if q.adopted}
        return refs


# The kinds that compete for a clause: changes and deletions (new clauses stand alone).
COMPETING = frozenset(("change", "delete"))


def _without(amendment: RankedAmendment, group: str, rules: Rules) -> RankedAmendment:
    """The amendment's figures as if ``group`` had not voted on it."""
    if group not in amendment.by_group:
        return amendment
    by_group = {g: c for g, c in amendment.by_group.items() if g != group}
    return score(
        AmendmentTally(amendment.ref, amendment.clause_ref, by_group, amendment.kind), rules
    )


def _below(a: Fraction, a_float: float, b: Fraction, b_float: float) -> bool:
    """a < b, from the correctly rounded floats of both where they differ, exactly otherwise.

    Equal counts share one cached order (app.ranking), so the same object is never below
    itself: that settles most exact ties without comparing the fractions.
    """
    if a_float != b_float:
        return a_float < b_float
    return a is not b and a < b


# group_odds' clip as a float, and how far (relatively) a float estimate of an order must be
# below another for the exact order to be below it for certain (see robustness).
CLIP = float(RATIO_CLIP)
_MARGIN = 1e-12
# Far above the smallest normal float (2.2e-308): the estimate's error bound holds here.
_NORMAL = 1e-300


def robustness(
    leader: RankedAmendment, rivals: Sequence[RankedAmendment], rules: Rules
) -> Robustness:
    """Remove each organisation's votes in turn (from every rival too): does it still lead?

    It still leads when it still carries and no rival that carries ranks above it.
    Removing one organisation divides an order statistic by exactly that
    organisation's clipped odds, at most 4 either way, so rivals are visited from the
    highest order down and only while one could still reach the leader; a rival is
    scored afresh only when its reduced order would put it above. "other" is many
    small organisations, not one, so it is not removed.
    """
    # Exact comparisons of big fractions are the cost here; each value also carries its
    # correctly rounded float, which decides every comparison where the floats differ
    # (rounding can make unequal values equal, never reverse them): see _below.
    # Rivals are visited from the highest order down, ties as given. They usually come in
    # rank order already (clause_outcomes passes them so), which a pass over neighbours
    # confirms mostly from the floats; only otherwise are they sorted, stably.
    pairs = [(rival, float(rival.order)) for rival in rivals]
    if any(
        _below(a.order, a_float, b.order, b_float)
        for (a, a_float), (b, b_float) in zip(pairs, pairs[1:], strict=False)
    ):
        pairs.sort(key=lambda pair: pair[0].order, reverse=True)  # stable: ties as given
    # "order × 16 >= the leader's" and "order × 4 < the reduced leader's" are compared
    # as order against the leader's divided once, rather than each order multiplied.
    sixteenth = leader.order / 16
    sixteenth_float = float(sixteenth)
    rows, reachable = [], []
    for rival, order_float in pairs:
        rows.append((rival, rival.order, order_float))
        if not _below(rival.order, order_float, sixteenth, sixteenth_float):
            reachable.append(rival)
    groups = sorted({g for a in (leader, *reachable) for g in a.by_group if g != OTHER})
    # The rivals each group voted on, in the order of ``rows``: only their orders change
    # when that group is removed. Every other rival keeps its order, so it can be above the
    # reduced leader only if it already is: one of the first few of ``rows``.
    voted_on: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        for group, counts in row[0].by_group.items():
            if counts.total:
                voted_on[group].append(row)
    leader_key = natural_key(leader.ref)

    def above(rival: RankedAmendment, order, order_float: float, target, target_float) -> bool:
        """A higher order than the reduced leader's, or the same and an earlier reference."""
        if order_float != target_float:
            return order_float > target_float
        # The references' keys are made only here, for the rare exact tie.
        return order > target or (order == target and natural_key(rival.ref) < leader_key)

    named: list[str] = []
    unnamed = 0
    for group in groups:
        reduced = _without(leader, group, rules)
        survives = reduced.carries
        target, target_float = reduced.order, float(reduced.order)
        quarter = target / 4
        quarter_float = float(quarter)
        for rival, order, order_float in rows if survives else ():
            if _below(order, order_float, target, target_float):
                break  # this rival and every one after it are below the leader as they are
            counts = rival.by_group.get(group)
            if counts and counts.total or not rival.carries:
                continue  # the rivals it voted on are the next loop's
            if above(rival, order, order_float, target, target_float):
                survives = False
                break
        for rival, order, order_float in voted_on.get(group, ()) if survives else ():
            if _below(order, order_float, quarter, quarter_float):
                break  # neither this rival nor any after it can reach the leader
            counts = rival.by_group[group]
            # Most rivals end up far below the leader: a float estimate of the reduced
            # order settles those without dividing fractions. It is within 4e-16 of the
            # exact value (three correctly rounded steps), so below the leader's by more
            # than _MARGIN it is surely below; only the rest are done exactly. (Not among
            # subnormal floats, where that bound does not hold.)
            s1, o1 = counts[0] + 1, counts[1] + 1
            odds = CLIP if s1 >= CLIP * o1 else 1 / CLIP if o1 >= CLIP * s1 else s1 / o1
            if target_float > _NORMAL and order_float / odds < target_float * (1 - _MARGIN):
                continue
            order = order / group_odds(counts)
            order_float = float(order)
            if above(rival, order, order_float, target, target_float) and (
                _without(rival, group, rules).carries
            ):
                survives = False
                break
        if not survives:
            if leader.by_group.get(group) and leader.by_group[group].total >= SMALL_NUMBER:
                named.append(group)
            else:
                unnamed += 1
    return Robustness(holds=not named and not unnamed, named=tuple(named), unnamed=unnamed)


def leading_change(
    ranked: Sequence[RankedAmendment],
) -> tuple[RankedAmendment | None, RankedAmendment | None, bool]:
    """(leading change, next alternative with enough evidence, too close to call).

    ``ranked`` are one clause's changes and deletions in rank order. The leader is the
    highest-ranked that carries; the next alternative is the next-ranked with enough
    evidence; too close when their intervals overlap.
    """
    leader = next((a for a in ranked if a.carries), None)
    if leader is None:
        return None, None, False
    runner_up = next((a for a in ranked if a is not leader and a.enough_evidence), None)
    close = runner_up is not None and leader.interval[0] <= runner_up.interval[1]
    return leader, runner_up, close


def _clause_vote_result(changes: list[RankedAmendment], rules: Rules):
    leader, runner_up, close = leading_change(changes)
    if leader is None:
        return leader, runner_up, close, None
    rivals = [a for a in changes if a is not leader]
    return leader, runner_up, close, robustness(leader, rivals, rules)


def _new_clause_question(amendment: RankedAmendment, rules: Rules) -> NewClauseQuestion:
    if not amendment.carries:
        return NewClauseQuestion(amendment, False, None)
    return NewClauseQuestion(amendment, True, robustness(amendment, [], rules))


def _changed(clause: ClauseText, heading: str, text: str, refs, by_organisers=False):
    if not text:
        return ConsolidatedClause(
            clause.number,
            clause.heading,
            "",
            clause.text,
            list(refs),
            deleted=True,
            by_organisers=by_organisers,
        )
    return ConsolidatedClause(
        clause.number,
        heading or clause.heading,
        text,
        clause.text,
        list(refs),
        by_organisers=by_organisers,
    )


def clause_outcomes(
    ranked: Sequence[RankedAmendment],
    clauses: Sequence[ClauseText],
    proposals: Mapping[str, Proposal] | None = None,
    final_wordings: Iterable[FinalWording] = (),
    rules: Rules = DEFAULT_RULES,
    texts: TextReader | None = None,
) -> Outcome:
    """The outcome per clause and the consolidated text, one ``ClauseResult`` per clause.

    Without ``proposals`` (as from a ballot file alone) the vote-based outcome is
    complete but the consolidated text keeps every clause's current wording. ``texts``,
    where given, reads the wording of just the proposals the consolidated text applies,
    once for all of them (a large report's other proposals need none); without it,
    each proposal's own ``text`` is used.
    """
    proposals = proposals or {}
    finals = {f.clause_ref: f for f in final_wordings}
    uses_decisions = any(p.decision for p in proposals.values()) or bool(finals)
    by_clause: dict[str, list[RankedAmendment]] = {c.number: [] for c in clauses}
    for amendment in sorted(ranked, key=attrgetter("rank")):
        by_clause.setdefault(amendment.clause_ref, []).append(amendment)
    # First what each clause's outcome is; then its consolidated text, once the wording
    # of every proposal applied has been read at once.
    decided = []
    for clause in clauses:
        amendments = by_clause.get(clause.number, [])
        changes = [a for a in amendments if a.kind in COMPETING]
        leader, runner_up, close, robust = _clause_vote_result(changes, rules)
        questions = [_new_clause_question(a, rules) for a in amendments if a.kind == "insert"]

        unresolved = None
        applied: list[str] = []
        final = finals.get(clause.number)
        if uses_decisions:
            accepted = [
                a.ref
                for a in changes
                if a.ref in proposals and proposals[a.ref].decision == "accepted"
            ]
            if final is not None:
                applied = list(final.refs)
            elif len(accepted) > 1:
                unresolved = (
                    f"amendments {', '.join(r[1:] for r in accepted)} were all accepted; "
                    "an organiser must reject one or write the final wording"
                )
            elif accepted and proposals[accepted[0]].target_version != clause.version:
                unresolved = (
                    f"amendment {accepted[0][1:]} was written against version "
                    f"{proposals[accepted[0]].target_version} of the clause, which has since "
                    "been revised; an organiser must choose the final wording"
                )
            elif accepted:
                applied = accepted
            inserts = [
                q.amendment.ref
                for q in questions
                if proposals.get(q.amendment.ref)
                and proposals[q.amendment.ref].decision == "accepted"
            ]
        else:
            if leader is not None and leader.ref in proposals:
                applied = [leader.ref]
            inserts = [q.amendment.ref for q in questions if q.adopted]
        result = {
            "clause": clause,
            "leading": leader,
            "runner_up": runner_up,
            "too_close_to_call": close,
            "robustness": robust,
            "new_clauses": questions,
            "applied": applied,
            "final_wording": final if uses_decisions else None,
            "unresolved": unresolved,
        }
        written = final if final is not None and uses_decisions else None  # by the organisers
        changed_by = applied[0] if applied and written is None else None
        decided.append((result, written, changed_by, [r for r in inserts if r in proposals]))

    needed = [
        ref
        for _, _, changed_by, inserted in decided
        for ref in (changed_by, *inserted)
        if ref is not None
    ]
    if texts is not None:
        text_of = texts(needed) if needed else {}
    else:
        text_of = {ref: proposals[ref].text for ref in needed}
    results = []
    for result, written, changed_by, inserted in decided:
        clause = result["clause"]
        if written is not None:
            body = _changed(clause, written.heading, written.text, written.refs, by_organisers=True)
        elif changed_by is not None:
            heading = proposals[changed_by].heading or ""
            body = _changed(clause, heading, text_of[changed_by], result["applied"])
        else:
            body = ConsolidatedClause(clause.number, clause.heading, clause.text)
        consolidated = [body]
        for i, ref in enumerate(inserted):
            letter = chr(ord("A") + i) if i < 26 else str(i + 1)
            consolidated.append(
                ConsolidatedClause(
                    f"{clause.number}.{letter}",
                    proposals[ref].heading or "New clause",
                    text_of[ref],
                    None,
                    [ref],
                    inserted=True,
                )
            )
        results.append(ClauseResult(**result, consolidated=consolidated))
    return Outcome(results, uses_decisions)
