"""Reads for the public pages after closing: the outcome of one clause, once published.

The adopted wording comes from the same report as the report page
(app.reporting.frozen_report, kept per change), so the clause page and the report
never disagree. Before publication nothing of the outcome is shown in public.
"""

from __future__ import annotations

from sqlmodel import Session

from app.models import Consultation
from app.outcome import ClauseResult
from app.reporting import frozen_report


def clause_result(session: Session, consultation: Consultation, number: str) -> ClauseResult | None:
    """The published outcome of clause ``number``, or None before publication."""
    if consultation.status != "published":
        return None
    report = frozen_report(session, consultation)
    return next((r for r in report.outcome.clauses if r.clause.number == number), None)
