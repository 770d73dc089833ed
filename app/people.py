"""Pure: how a participant is shown in public, and the "Your details" form's rules. No I/O.

DESIGN.md, "Privacy": public pages and exports show a participant by the display
name they chose or by their stable pseudonym, never by e-mail; they choose whether
their organisation is shown on what they write. ``author_label`` is the one place
that rule is applied: every page, export and the audit log go through it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_DISPLAY_NAME_CHARS = 80  # User.display_name's column
MIN_DISPLAY_NAME_CHARS = 2
NAME_CHOICES = ("pseudonym", "display_name")
_EMAIL_LIKE = re.compile(r"\S+@\S+\.\S+")
# Pseudonyms are two words and a number ("Alder Wren 123", app.services): a chosen name
# shaped like one could pass for someone else's.
_PSEUDONYM_LIKE = re.compile(r"^\w+ \w+ \d{3}$")


@dataclass(frozen=True)
class AuthorLabel:
    """How an author is shown in public: chosen display name or pseudonym, never e-mail."""

    name: str
    organisation: str | None

    def __str__(self) -> str:
        """The label as one line of text: "Name, Organisation" when they show it."""
        return f"{self.name}, {self.organisation}" if self.organisation else self.name


def public_name(display_name: str | None, pseudonym: str) -> str:
    """The name a person is shown by: the one they chose, else their pseudonym."""
    return display_name or pseudonym


def author_label(
    display_name: str | None,
    pseudonym: str,
    show_organisation: bool,
    organisation: str | None,
) -> AuthorLabel:
    """The public label of an author: their name, and their organisation if they chose so."""
    return AuthorLabel(
        name=public_name(display_name, pseudonym),
        organisation=organisation if show_organisation else None,
    )


@dataclass(frozen=True)
class Details:
    """A valid "Your details" choice: ``display_name`` None means "show my pseudonym"."""

    display_name: str | None
    show_organisation: bool


def validate_details(
    choice: str, display_name: str, show_organisation: str
) -> tuple[Details | None, dict[str, str]]:
    """Check the "Your details" form; returns the details, or None and messages per field."""
    errors: dict[str, str] = {}
    if choice not in NAME_CHOICES:
        errors["name_choice"] = "Select how you want to be shown"
        return None, errors
    name = " ".join(display_name.split())
    if choice == "display_name":
        if not name:
            errors["display_name"] = "Enter the name you want to be shown by"
        elif any(unicodedata.category(ch).startswith("C") for ch in display_name):
            errors["display_name"] = "Name must only use letters, numbers, spaces and punctuation"
        elif len(name) < MIN_DISPLAY_NAME_CHARS:
            errors["display_name"] = f"Name must be {MIN_DISPLAY_NAME_CHARS} characters or more"
        elif len(name) > MAX_DISPLAY_NAME_CHARS:
            errors["display_name"] = f"Name must be {MAX_DISPLAY_NAME_CHARS} characters or fewer"
        elif _EMAIL_LIKE.search(name):
            errors["display_name"] = "Enter a name, not an e-mail address"
        elif _PSEUDONYM_LIKE.match(name):
            errors["display_name"] = (
                "Enter a name that does not look like a pseudonym (two words and a number)"
            )
    if show_organisation not in ("yes", "no"):
        errors["show_organisation"] = "Select whether to show your organisation"
    if errors:
        return None, errors
    return Details(name if choice == "display_name" else None, show_organisation == "yes"), {}
