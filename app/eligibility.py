"""Pure rules of who may propose and vote, and organisations from e-mail domains. No I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime


def email_domain(email: str) -> str:
    """The lower-cased domain of an e-mail address ('' when there is none)."""
    _, at, domain = email.strip().rpartition("@")
    return domain.lower().rstrip(".") if at else ""


def parse_domain_patterns(text: str) -> list[str]:
    """Split an eligibility list (commas, spaces or new lines) into lower-cased patterns."""
    return [p.strip().lower() for p in text.replace(",", "\n").split() if p.strip()]


def domain_matches(domain: str, pattern: str) -> bool:
    """``*.gov.uk`` matches any subdomain of gov.uk (not gov.uk itself); others match exactly."""
    domain, pattern = domain.lower(), pattern.lower()
    if pattern.startswith("*."):
        return domain.endswith(pattern[1:]) and len(domain) > len(pattern) - 1
    return domain == pattern


def domain_eligible(domain: str, patterns: Iterable[str]) -> bool:
    """True when the domain matches any pattern of the consultation's list."""
    return bool(domain) and any(domain_matches(domain, p) for p in patterns)


def organisation_for_domain(domain: str, known: Mapping[str, str]) -> str:
    """The organisation of a domain: the nearest known parent domain's name, else the domain."""
    labels = domain.lower().split(".")
    for i in range(len(labels) - 1):
        candidate = ".".join(labels[i:])
        if candidate in known:
            return known[candidate]
    return domain.lower()


@dataclass(frozen=True)
class Participant:
    """What the rules need to know about the person asking."""

    email: str
    email_verified: bool


@dataclass(frozen=True)
class Window:
    """What the rules need to know about the consultation."""

    status: str
    eligible_domains: tuple[str, ...]
    amendments_close_at: datetime | None
    voting_close_at: datetime | None


def identity_refusal(participant: Participant | None, window: Window) -> str | None:
    """Why this person may not take part at all, or None when they may."""
    if participant is None:
        return "Sign in with your work account to take part."
    if not participant.email_verified:
        return (
            "Your identity provider has not confirmed your e-mail address, so you can read "
            "but not take part. Ask your IT team to verify it, then sign in again."
        )
    if not domain_eligible(email_domain(participant.email), window.eligible_domains):
        allowed = ", ".join(window.eligible_domains) or "no domains yet"
        return (
            f"This consultation is open to work e-mail addresses ending {allowed}. "
            "Sign in with your work account to take part."
        )
    return None


def proposals_closed(window: Window, now: datetime) -> str | None:
    """Why no one may propose an amendment now, or None while proposals are open."""
    if window.status == "closed":
        return "This consultation has closed; the outcome will be published here."
    if window.status == "published":
        return "This consultation has closed and its outcome is published."
    if window.status != "open":
        return "This consultation is not open for amendments."
    if window.amendments_close_at is not None and now >= window.amendments_close_at:
        return "The amendment window has closed; you can still vote on amendments."
    return None


def voting_closed(window: Window, amendment_status: str, now: datetime) -> str | None:
    """Why no one may vote on this amendment now, or None while it takes votes."""
    if window.status != "open":
        return "Voting is closed for this consultation."
    if window.voting_close_at is not None and now >= window.voting_close_at:
        return "Voting is closed for this consultation."
    if amendment_status != "open":
        return f"This amendment is {amendment_status} and no longer takes votes."
    return None


def proposal_refusal(participant: Participant | None, window: Window, now: datetime) -> str | None:
    """Why this person may not propose an amendment now, or None when they may."""
    return proposals_closed(window, now) or identity_refusal(participant, window)


def vote_refusal(
    participant: Participant | None, window: Window, amendment_status: str, now: datetime
) -> str | None:
    """Why this person may not vote on this amendment now, or None when they may."""
    return voting_closed(window, amendment_status, now) or identity_refusal(participant, window)
