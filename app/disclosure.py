"""Pure: small-number suppression of counts by organisation, and of the totals over them. No I/O.

DESIGN.md, "Privacy": any count broken down by organisation that is below 5 is shown
as "fewer than 5", and no total or difference may reveal it. The rule, applied once
here for the report page, the live results and every export:

1. **Primary suppression.** A count below ``SMALL_NUMBER`` (5) is shown as "fewer than 5".
2. **Secondary suppression by withholding totals.** A total over counts of which any
   is suppressed is not shown exactly: it is shown as "at least N", where N adds the
   shown counts and the smallest value each suppressed count can have (a row exists
   only for an organisation with someone in it, so 1). That bound is what a reader
   could work out from the table anyway, so it reveals nothing; any other total
   that the same people make up (for example how many voted, and how many proposed)
   is withheld altogether for the same reason.

Why not the alternatives: suppressing a second cell beside an exact total still gives
away the sum of the two, which pins both when it is small (2 = 1 + 1); rounding an
exact total to a multiple of 5 or 10 pins a suppressed count whenever the rounding
interval meets 1–4 at a single value. Withholding is the one rule under which no
suppressed count can be recovered from what is shown (``tests/test_disclosure.py``
checks that by enumeration). In practice organisations with fewer than 5 voters are
pooled as "other" before anything is counted (app.ranking), so only "other" can be
small, and only in a small consultation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.ranking import SMALL_NUMBER


def suppress_small(count: int, threshold: int = SMALL_NUMBER) -> int | str:
    """Primary suppression: a count below the threshold is shown as "fewer than 5"."""
    return count if count >= threshold else f"fewer than {threshold}"


@dataclass(frozen=True)
class Disclosed:
    """Counts by organisation as they may be shown, and their total."""

    cells: dict[str, int | str]
    # The exact total, or None when a suppressed count would be revealed by it.
    total: int | None
    # What may be said of the total when it is withheld: "at least N".
    lower_bound: int

    @property
    def suppressed(self) -> bool:
        """True when any count was suppressed (and so the total is withheld)."""
        return self.total is None

    @property
    def total_label(self) -> int | str:
        """The total for display: exact, or "at least N"."""
        return self.total if self.total is not None else f"at least {self.lower_bound}"


def disclose(
    counts: Mapping[str, int], threshold: int = SMALL_NUMBER, minimum: int = 1
) -> Disclosed:
    """Apply the suppression rule (module docstring) to counts by organisation.

    ``minimum`` is the least value a listed count can have (1 for people counted in
    an organisation's row); it makes the "at least" bound say nothing new.
    """
    cells = {name: suppress_small(n, threshold) for name, n in counts.items()}
    shown = [v for v in cells.values() if isinstance(v, int)]
    hidden = len(cells) - len(shown)
    exact = sum(counts.values())
    return Disclosed(
        cells=cells,
        total=None if hidden else exact,
        lower_bound=sum(shown) + hidden * minimum,
    )


WITHHELD = "withheld"


def disclose_beside_public_total(counts: Mapping[str, int], threshold: int = SMALL_NUMBER) -> dict:
    """Counts by organisation whose total is published elsewhere (an amendment's supports).

    With the total public, showing the large counts would let a reader subtract them
    and learn the sum of the small ones, and with it often each one (a single small
    count, or a sum of 0). So when any count is below the threshold, every count of
    the column is withheld: the reader learns the published total and nothing more.
    """
    if all(n >= threshold for n in counts.values()):
        return dict(counts)
    return {name: WITHHELD for name in counts}
