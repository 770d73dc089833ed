"""Validation of proposed amendments."""

from __future__ import annotations

from app.proposals import MAX_TEXT_CHARS, ProposalInput, validate_proposal

CURRENT = "Keep corporate accounts separate.\n\nTreat mixed accounts as professional."


def test_a_valid_change_is_normalised():
    proposal, errors = validate_proposal(
        ProposalInput("change", "", "Keep  corporate\r\naccounts apart.", "Because it is clearer."),
        CURRENT,
    )
    assert errors == {}
    assert proposal.text == "Keep corporate accounts apart."


def test_everything_missing_gives_a_message_per_field():
    _, errors = validate_proposal(ProposalInput("", "", "", ""), CURRENT)
    assert set(errors) == {"kind", "rationale"}
    _, errors = validate_proposal(ProposalInput("change", "", "", ""), CURRENT)
    assert set(errors) == {"text", "rationale"}
    _, errors = validate_proposal(ProposalInput("insert", "", "", "a good reason"), CURRENT)
    assert set(errors) == {"heading", "text"}


def test_wording_must_differ_from_the_current_text():
    _, errors = validate_proposal(
        ProposalInput(
            "change",
            "",
            "Keep corporate accounts separate.\n\n\nTreat mixed accounts as professional.  ",
            "A reason long enough",
        ),
        CURRENT,
    )
    assert errors == {"text": "Proposed wording must be different from the current wording"}


def test_length_limits():
    _, errors = validate_proposal(
        ProposalInput("change", "", "x" * (MAX_TEXT_CHARS + 1), "short"), CURRENT
    )
    assert "5,000 characters or fewer" in errors["text"]
    assert errors["rationale"] == "Why you propose this must be at least 10 characters"


def test_a_deletion_is_a_change_to_empty_wording():
    proposal, errors = validate_proposal(
        ProposalInput("delete", "", "ignored", "This clause is not needed."), CURRENT
    )
    assert errors == {}
    assert (proposal.kind, proposal.text) == ("change", "")


def test_an_insertion_keeps_its_heading():
    proposal, _ = validate_proposal(
        ProposalInput("insert", " Live  streams ", "Say when you go live.", "Nothing covers it."),
        CURRENT,
    )
    assert (proposal.kind, proposal.heading) == ("insert", "Live streams")
