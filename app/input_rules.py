"""Pure rules for what typed text and path parameters may hold, checked before any database.

Why here and not only in each form's validator: PostgreSQL refuses a NUL character in
any text value and a string longer than its ``VARCHAR`` column, and both used to come
back as 500s. Every form handler checks its fields against ``FORM_RULES`` first, so a
refusal is a message next to the field; the per-form validators (``app.proposals``,
``app.organising``) then check meaning (empty, unchanged, out of range). The limits
here are the column sizes of ``app.models`` (``Text`` columns get the limit the form
already promises), so nothing that passes can be too long for its column.

No I/O, no web and no database imports (a domain module).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from app.documents import MAX_HEADING_CHARS as MAX_CLAUSE_HEADING_CHARS
from app.documents import MAX_TITLE_CHARS, normalise_wording
from app.proposals import MAX_HEADING_CHARS, MAX_RATIONALE_CHARS, MAX_TEXT_CHARS

# C0 controls other than tab, line feed and carriage return; DEL; the C1 controls; and
# lone surrogates (text decoded leniently from invalid UTF-8), which no engine can store.
_CONTROL_MULTI_LINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# On one line, tab and line ends are refused too.
_CONTROL_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# Slugs as ``documents.slugify`` makes them (and the CLI's ``--slug`` keeps them).
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_SLUG_CHARS = 100  # Consultation.slug
# Clause numbers as ``documents.parse`` numbers them: 3, 3.2, 3.2.1.
_CLAUSE_NUMBER = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6}){0,3}")
MAX_CLAUSE_NUMBER_CHARS = 20  # Clause.number

# Free text without a column limit of its own (Text columns): the size the forms promise.
MAX_REASON_CHARS = 1000  # moderation, decisions, revisions, reports (app.organising checks it too)
MAX_SUMMARY_CHARS = 5000
MAX_CLAUSE_TEXT_CHARS = 50_000  # an imported clause has no limit of its own; this is ample
MAX_DOMAINS_CHARS = 2000
MAX_DOCUMENT_CHARS = 1_000_000  # the typed document; documents.MAX_DOCUMENT_BYTES rules too
MAX_CHOICE_CHARS = 100  # radio buttons and hidden fields: stance, action, persona, dates


@dataclass(frozen=True)
class TextRule:
    """What one form field may hold: its label in messages, a length, and whether lines."""

    label: str
    max_chars: int
    multi_line: bool = False


def _length(value: str, multi_line: bool) -> int:
    """The length the stored value will have: validators fold whitespace before storing."""
    if multi_line:
        # normalise_wording folds runs of spaces and blank lines; counting the folded
        # text keeps this message in step with the per-form validators'.
        return len(normalise_wording(value))
    return len(" ".join(value.split()))


def text_problem(value: str, rule: TextRule) -> str | None:
    """Why ``value`` cannot be accepted for a field with ``rule`` (GOV.UK wording), or None."""
    pattern = _CONTROL_MULTI_LINE if rule.multi_line else _CONTROL_SINGLE_LINE
    if pattern.search(value):
        if rule.multi_line:
            return (
                f"{rule.label} must not contain control characters such as NUL; "
                "remove them and try again"
            )
        return (
            f"{rule.label} must not contain line breaks, tabs or control characters "
            "such as NUL; remove them and try again"
        )
    if _length(value, rule.multi_line) > rule.max_chars:
        return f"{rule.label} must be {rule.max_chars:,} characters or fewer"
    return None


def field_problems(fields: Mapping[str, str], rules: Mapping[str, TextRule]) -> dict[str, str]:
    """Messages keyed by field name for every field in ``rules`` that breaks its rule."""
    problems = {}
    for name, rule in rules.items():
        problem = text_problem(fields.get(name) or "", rule)
        if problem:
            problems[name] = problem
    return problems


def _choice(label: str) -> TextRule:
    return TextRule(label, MAX_CHOICE_CHARS)


# The GOV.UK date input and time field of each closing time, part by part (app.dates).
_DATE_PART_RULES = {
    f"{field}-{part}": _choice(f"{label} ({part})")
    for field, label in (
        ("amendments_close_at", "Amendments close"),
        ("voting_close_at", "Voting closes"),
    )
    for part in ("day", "month", "year", "time")
}


# Every form Redline accepts, by the names its handler reads (see app/views/).
FORM_RULES: dict[str, dict[str, TextRule]] = {
    # Labels as the propose form shows them, so messages match their fields (GOV.UK).
    "propose": {
        "kind": _choice("What you want to change"),
        "heading": TextRule("Heading of the new clause", MAX_HEADING_CHARS),
        "text": TextRule("Proposed wording", MAX_TEXT_CHARS, multi_line=True),
        "rationale": TextRule("Why you propose this", MAX_RATIONALE_CHARS, multi_line=True),
    },
    "flag": {
        "reason": TextRule("Why a moderator should look at it", MAX_REASON_CHARS, multi_line=True)
    },
    "vote": {"stance": _choice("Your vote")},
    "moderate": {
        "action": _choice("Action"),
        "reason": TextRule("Reason", MAX_REASON_CHARS, multi_line=True),
    },
    "decide": {
        "decision": _choice("Decision"),
        "reason": TextRule("Reason", MAX_REASON_CHARS, multi_line=True),
    },
    "details": {
        "title": TextRule("Title", MAX_TITLE_CHARS),
        "summary": TextRule("Summary", MAX_SUMMARY_CHARS, multi_line=True),
        "eligible_domains": TextRule("Who may take part", MAX_DOMAINS_CHARS, multi_line=True),
        **_DATE_PART_RULES,
        "live_results": _choice("Live results"),
        "min_votes": _choice("Votes an amendment needs"),
        "min_organisations": _choice("Organisations those votes must come from"),
    },
    "status": {"action": _choice("Action"), "confirm": _choice("Confirm")},
    "create": {
        "slug": TextRule("Web address", MAX_SLUG_CHARS),
        "eligible": TextRule("Eligible domains", MAX_DOMAINS_CHARS, multi_line=True),
        "document_text": TextRule("The guidance", MAX_DOCUMENT_CHARS, multi_line=True),
        **_DATE_PART_RULES,
    },
    "revise": {
        "heading": TextRule("Heading", MAX_CLAUSE_HEADING_CHARS),
        "text": TextRule("Wording", MAX_CLAUSE_TEXT_CHARS, multi_line=True),
        "reason": TextRule("Reason", MAX_REASON_CHARS, multi_line=True),
    },
    "final_wording": {
        "heading": TextRule("Heading", MAX_CLAUSE_HEADING_CHARS),
        "text": TextRule("Wording", MAX_TEXT_CHARS, multi_line=True),
        "reason": TextRule("Reason", MAX_REASON_CHARS, multi_line=True),
    },
}


def is_slug(value: str) -> bool:
    """True when ``value`` could be a consultation's slug (anything else is a 404)."""
    return len(value) <= MAX_SLUG_CHARS and _SLUG.fullmatch(value) is not None


def is_clause_number(value: str) -> bool:
    """True when ``value`` could be a clause number (anything else is a 404)."""
    return len(value) <= MAX_CLAUSE_NUMBER_CHARS and _CLAUSE_NUMBER.fullmatch(value) is not None
