"""Pure validation of a proposed amendment. No I/O."""

from __future__ import annotations

import hashlib
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
    # Each message names its field as the form's label does (GOV.UK error message style).
    errors: dict[str, str] = {}
    kind = form.kind if form.kind in KIND_LABELS else ""
    if not kind:
        errors["kind"] = "Select what you want to change"
    text = normalise_wording(form.text)
    heading = " ".join(form.heading.split())
    rationale = normalise_wording(form.rationale)

    if kind in ("change", "insert"):
        if not text and kind == "change":
            errors["text"] = (
                "Enter the proposed wording, or choose 'Delete this clause' to remove the clause"
            )
        elif not text:
            errors["text"] = "Enter the proposed wording of the new clause"
        elif len(text) > MAX_TEXT_CHARS:
            errors["text"] = f"Proposed wording must be {MAX_TEXT_CHARS:,} characters or fewer"
        elif kind == "change" and text == normalise_wording(current_text):
            errors["text"] = "Proposed wording must be different from the current wording"
    if kind == "insert":
        if not heading:
            errors["heading"] = "Enter the heading of the new clause"
        elif len(heading) > MAX_HEADING_CHARS:
            errors["heading"] = (
                f"Heading of the new clause must be {MAX_HEADING_CHARS} characters or fewer"
            )

    if not rationale:
        errors["rationale"] = "Enter why you propose this change"
    elif len(rationale) < MIN_RATIONALE_CHARS:
        errors["rationale"] = (
            f"Why you propose this must be at least {MIN_RATIONALE_CHARS} characters"
        )
    elif len(rationale) > MAX_RATIONALE_CHARS:
        errors["rationale"] = (
            f"Why you propose this must be {MAX_RATIONALE_CHARS:,} characters or fewer"
        )

    if errors:
        return None, errors
    if kind == "delete":
        return Proposal(kind="change", heading=None, text="", rationale=rationale), {}
    return Proposal(
        kind=kind, heading=heading if kind == "insert" else None, text=text, rationale=rationale
    ), {}


def wording_fingerprint(kind: str, heading: str | None, text: str) -> str:
    """A short fingerprint of what an amendment proposes, sent with each vote form.

    A vote carries the fingerprint of the wording the voter read; the vote is refused
    if the author has edited the amendment since, so no one votes on words they never saw.
    """
    digest = hashlib.sha256("\x1f".join((kind, heading or "", text)).encode())
    return digest.hexdigest()[:16]


def validate_flag_reason(reason: str, max_chars: int) -> tuple[str, dict[str, str]]:
    """A participant's reason for reporting an amendment, normalised, or an error message.

    The messages follow the form's label, "Why should a moderator look at it?".
    """
    cleaned = normalise_wording(reason)
    if not cleaned:
        return cleaned, {"reason": "Enter why a moderator should look at this amendment"}
    if len(cleaned) > max_chars:
        return cleaned, {
            "reason": f"Why a moderator should look at it must be {max_chars:,} characters or fewer"
        }
    return cleaned, {}
