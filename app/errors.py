"""Refusals that services raise and the web layer turns into 403/404/409/503 pages."""

from __future__ import annotations


class RedlineError(Exception):
    """A request that cannot be carried out; ``status`` is the HTTP status it maps to."""

    status = 400
    title = "There is a problem"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(RedlineError):
    """A submitted form has errors; ``errors`` maps field names to messages."""

    status = 400

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class NotFound(RedlineError):
    status = 404
    title = "Page not found"


class NotAllowed(RedlineError):
    status = 403
    title = "You cannot do that"


class Conflict(RedlineError):
    status = 409
    title = "That cannot be done now"


class AmendmentHasVotes(Conflict):
    """An author tried to edit an amendment that someone has voted on: it needs a new one."""


class WordingChanged(Conflict):
    """A vote sent from a page showing an amendment's wording from before its author's edit."""


class Busy(RedlineError):
    """The database could not give this request its lock in time; the client should retry.

    Raised for SQLite's "database is locked" after the busy timeout, and for PostgreSQL's
    lock timeout, serialization failure or deadlock. Nothing was written: the transaction
    was rolled back as a whole.
    """

    status = 503
    title = "Sorry, the service is busy"
    # Seconds, sent as Retry-After: long enough for a queue of writers to drain.
    retry_after = 5

    def __init__(
        self,
        message: str = "Too many people are doing this at once; try again in a few seconds. "
        "Nothing you sent has been saved.",
    ) -> None:
        super().__init__(message)
