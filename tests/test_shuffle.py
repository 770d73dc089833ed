"""The per-visitor order's arithmetic (app.shuffle), which the database also does."""

from __future__ import annotations

from math import isqrt

from hypothesis import given
from hypothesis import strategies as st

from app.shuffle import MODULUS, coefficients, position, shuffle_key

ids = st.integers(min_value=1, max_value=2**31 - 1)


def test_the_modulus_makes_each_step_a_permutation_that_fits_in_63_bits():
    assert MODULUS % 3 == 2  # cubing permutes the integers modulo a prime p iff 3 ∤ p - 1
    assert MODULUS % 2 and all(MODULUS % d for d in range(3, isqrt(MODULUS) + 1, 2))  # prime
    # The largest products the SQL forms (app.queries._shuffled_position): a signed
    # 64-bit integer on both engines (SQLite turns an overflow into a float).
    assert (MODULUS - 1) ** 2 < 2**62
    assert (2**31 - 1) * (MODULUS - 1) + (MODULUS - 1) < 2**63


@given(st.text(max_size=40), st.sets(ids, min_size=2, max_size=50))
def test_no_two_amendments_share_a_place(seed, some):
    k = coefficients(seed)
    assert len({position(i, k) for i in some}) == len(some)
    assert 1 <= k.scale < MODULUS and 1 <= k.rescale < MODULUS


@given(st.text(max_size=40), st.sets(ids, max_size=30), ids)
def test_a_new_amendment_takes_a_place_without_reordering_the_others(seed, some, new):
    key = shuffle_key(seed)
    before = sorted(some - {new}, key=key)
    after = sorted(some | {new}, key=key)
    assert [i for i in after if i != new] == before


@given(st.text(max_size=40))
def test_the_same_seed_gives_the_same_order(seed):
    assert sorted(range(1, 60), key=shuffle_key(seed)) == sorted(
        range(1, 60), key=shuffle_key(seed)
    )


def test_each_amendment_precedes_its_neighbour_for_about_half_the_visitors():
    # Consecutive ids (amendments proposed one after another) are not kept together.
    earlier = sum(
        position(7, coefficients(f"seed-{v}")) < position(8, coefficients(f"seed-{v}"))
        for v in range(2000)
    )
    assert 900 <= earlier <= 1100, earlier
