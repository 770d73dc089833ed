"""The per-visitor order of a clause's amendments (DESIGN.md, "Fair exposure").

Each visitor sees the amendments in an order of their own, the same on every visit, in
which neither age nor support has any part, and an amendment keeps its place among the
others when new ones arrive. The order sorts amendments by ``position(id)`` under
coefficients drawn from the visitor's seed: two rounds of an affine map and a cube
modulo a prime p with p % 3 == 2, each a bijection of the integers modulo p, so no two
ids below p share a position and which comes first is as good as random per seed.

It is integer arithmetic whose every product stays below 2**62 so that the database
can do it in the query, on SQLite and PostgreSQL alike (app.queries), ordering and
paging a clause's hundreds of amendments before any row reaches Python; ``position``
is the same arithmetic here, to test against and to document it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import NamedTuple

# The largest prime below 2**31 with p % 3 == 2: cubing permutes the integers modulo p
# (gcd(3, p - 1) == 1), and (p - 1)**2 and id * k (ids below 2**31) fit in 63 bits.
MODULUS = 2_147_483_579


class Coefficients(NamedTuple):
    """The two affine maps' multipliers (never 0) and offsets of one visitor's order."""

    scale: int
    shift: int
    rescale: int
    reshift: int


def coefficients(seed: str) -> Coefficients:
    """The coefficients of the order of the visitor whose seed this is (BLAKE2b of it)."""
    digest = hashlib.blake2b(seed.encode(), digest_size=32, person=b"redline-order").digest()
    parts = [int.from_bytes(digest[i : i + 8], "big") for i in range(0, 32, 8)]
    return Coefficients(
        scale=1 + parts[0] % (MODULUS - 1),
        shift=parts[1] % MODULUS,
        rescale=1 + parts[2] % (MODULUS - 1),
        reshift=parts[3] % MODULUS,
    )


def position(amendment_id: int, k: Coefficients) -> int:
    """Where ``amendment_id`` comes in the order of ``k``: sort by it, then by id."""
    p = MODULUS
    x = (amendment_id * k.scale + k.shift) % p
    y = x * x % p * x % p
    z = (y * k.rescale + k.reshift) % p
    return z * z % p * z % p


def shuffle_key(seed: str) -> Callable[[int], tuple[int, int]]:
    """A sort key of amendment ids: the order of the visitor whose seed this is."""
    k = coefficients(seed)
    return lambda amendment_id: (position(amendment_id, k), amendment_id)
