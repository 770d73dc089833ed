"""Pure validation of a proposed amendment. No I/O."""

from __future__ import annotations

from dataclasses import dataclass

from app.documents import normalise_wording

MAX_TEXT_CHARS = 5000
MAX_RATIONALE_CHARS = 2000
MAX_HEADING_CHARS = 200
MIN_RATIONALE_CHARS = 10

KIND_LABELS = {
    "change": "Change the wording of this clause",
    "delete": "Delete this clause",
    "insert": "Add a new clause after this one",
}


@dataclass(frozen=True)
class Proposal:
    """A proposal that passed validation, in canonical form."""

    kind: str  # "change" or "insert" as stored; a deletion is a change to empty wording
    heading: str | None
    text: str
    rationale: str


@dataclass(frozen=True)
class ProposalInput:
    """What the participant typed, kept as typed so that the form can show it again."""

    kind: str = "change"
    heading: str = ""
    text: str = ""
    rationale: str = ""


def validate_proposal(
    form: ProposalInput, current_text: str
) -> tuple[Proposal | None, dict[str, str]]:
    """Check a proposal against the clause's current wording.

    Returns the proposal, or None and error messages keyed by form field.
    """
    errors: dict[str, str] = {}
    kind = form.kind if form.kind in KIND_LABELS else ""
    if not kind:
        errors["kind"] = "Select what you want to change"
    text = normalise_wording(form.text)
    heading = " ".join(form.heading.split())
    rationale = normalise_wording(form.rationale)

    if kind == "change":
        if not text:
            errors["text"] = (
                "Enter the wording you propose (to remove the clause, choose 'Delete this clause')"
            )
        elif len(text) > MAX_TEXT_CHARS:
            errors["text"] = f"Proposed wording must be {MAX_TEXT_CHARS:,} characters or fewer"
        elif text == normalise_wording(current_text):
            errors["text"] = "Proposed wording must be different from the current wording"
    elif kind == "insert":
        if not heading:
            errors["heading"] = "Enter a heading for the new clause"
        elif len(heading) > MAX_HEADING_CHARS:
            errors["heading"] = f"Heading must be {MAX_HEADING_CHARS} characters or fewer"
        if not text:
            errors["text"] = "Enter the wording of the new clause"
        elif len(text) > MAX_TEXT_CHARS:
            errors["text"] = f"Wording must be {MAX_TEXT_CHARS:,} characters or fewer"

    if not rationale:
        errors["rationale"] = "Enter why you propose this change"
    elif len(rationale) < MIN_RATIONALE_CHARS:
        errors["rationale"] = f"Rationale must be at least {MIN_RATIONALE_CHARS} characters"
    elif len(rationale) > MAX_RATIONALE_CHARS:
        errors["rationale"] = f"Rationale must be {MAX_RATIONALE_CHARS:,} characters or fewer"

    if errors:
        return None, errors
    if kind == "delete":
        return Proposal(kind="change", heading=None, text="", rationale=rationale), {}
    return Proposal(
        kind=kind, heading=heading if kind == "insert" else None, text=text, rationale=rationale
    ), {}
