"""Path parameter convertors: ids that both database engines can hold, or a 404.

Starlette's ``{name:int}`` matches any run of digits, so ``/amendments/99999999999999999999/vote``
reached the database as an integer wider than 64 bits and failed there (a 500 on both
engines), and ``0`` looked up a row that cannot exist. ``{name:id}`` matches 1 to 18
digits without a leading zero: every id either engine will ever hand out (both count
from 1 and stop at 2**63 - 1, about 9.2 * 10**18), and nothing that could overflow.
Anything else does not match the route, so routing answers 404 before any handler runs.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class IdConvertor(Convertor[int]):
    """A row id: a positive integer of at most 18 digits."""

    regex = "[1-9][0-9]{0,17}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 1 <= value < 10**18:
            raise ValueError(f"{value} is not a row id")
        return str(value)


# Registered when this module is imported, before app.main builds its routes.
register_url_convertor("id", IdConvertor())
