"""Which actions are rate limited, how much by default, and reading limits from settings.

Pure: no web, no database. The limits are strings in the ``limits`` library's notation
("60/minute", "1000 per hour", "10/second;100/minute"), or "off".

Each action has a limit per user and a limit per client address. The per-address limit
is the wider one because a whole department can reach Redline from one address (a
proxy or NAT), and because per-user limits already bound what one account can do.
Sign-in has no user before it succeeds: its "per user" limit counts sign-ins into one
demo persona; starting a provider sign-in is limited per address.

Per-address defaults are sized for a department behind one proxy: 300 sign-ins a
minute (everyone arriving at nine), 6,000 votes a minute (500 people voting every
five seconds). Sign-in is through the identity provider, so there is no password
to guess here; its limit is against floods, not brute force.

Defaults were chosen against what people do and what the tests and the load test do:
voting is clicks, and a person changing their mind on 30 amendments in a minute is
plausible, so 120 votes a minute per person, and tests/test_concurrency.py (200 votes
by one person in one burst) configures its own limit; ``make bench`` votes from one
address as 64 connections at once, so it turns the per-address vote limit off.
"""

from __future__ import annotations

from collections.abc import Mapping

from limits import RateLimitItem, parse_many

# Setting key -> REDLINE_ variable suffix, for each action and scope.
ACTIONS = ("sign_in", "proposals", "reports", "votes")
SCOPES = ("user", "address")

DEFAULT_RATE_LIMITS: dict[str, str] = {
    "sign_in": "10/minute",
    "sign_in_per_address": "300/minute",
    "proposals": "10/minute;60/hour",
    "proposals_per_address": "120/minute",
    "reports": "20/minute",
    "reports_per_address": "200/minute",
    "votes": "120/minute",
    "votes_per_address": "6000/minute",
}
OFF = "off"


def setting_key(action: str, scope: str) -> str:
    """The key of one limit in ``Settings.rate_limits``: 'votes' or 'votes_per_address'."""
    return action if scope == "user" else f"{action}_per_address"


def variable_name(key: str) -> str:
    """The environment variable that sets limit ``key``: REDLINE_RATE_LIMIT_VOTES, ..."""
    return f"REDLINE_RATE_LIMIT_{key.upper()}"


def parse_limit(text: str) -> tuple[RateLimitItem, ...]:
    """The limits a setting names (none for 'off'); ValueError when it is not readable."""
    text = text.strip()
    if text.lower() == OFF:
        return ()
    items = tuple(parse_many(text))
    if not items:
        raise ValueError(text)
    return items


def rate_limits_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """Every limit, from REDLINE_RATE_LIMIT_* or its default; ValueError naming the variable."""
    chosen = {}
    for key, default in DEFAULT_RATE_LIMITS.items():
        name = variable_name(key)
        raw = env.get(name, "").strip() or default
        try:
            parse_limit(raw)
        except ValueError:
            raise ValueError(
                f'{name} must be a rate such as "60/minute" or "10/second;100/hour", '
                f"or off; not {raw!r}"
            ) from None
        chosen[key] = raw
    return chosen
