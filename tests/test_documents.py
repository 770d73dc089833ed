"""Parsing guidance documents (the importer's pure half)."""

from __future__ import annotations

import pytest

from app.documents import MAX_DOCUMENT_BYTES, DocumentError, parse, render, slugify
from tests.conftest import SEED_DIR

GOOD = """# Guidance on posting

Why this exists.

## 1. Scope
Applies to everyone.

## 2. Accounts
Keep them separate.
Second line of the same paragraph.

Second paragraph.

### Corporate accounts
Run by the comms team.

## Replies
Answer quickly.
"""


def test_headings_become_numbered_clauses():
    document = parse(GOOD.encode())
    assert document.title == "Guidance on posting"
    assert document.summary == "Why this exists."
    assert [(c.number, c.heading) for c in document.clauses] == [
        ("1", "Scope"),
        ("2", "Accounts"),
        ("2.1", "Corporate accounts"),
        ("3", "Replies"),
    ]
    assert document.clauses[1].text == (
        "Keep them separate. Second line of the same paragraph.\n\nSecond paragraph."
    )


def test_render_round_trips():
    document = parse(GOOD)
    again = parse(render(document))
    assert [(c.number, c.heading, c.text) for c in again.clauses] == [
        (c.number, c.heading, c.text) for c in document.clauses
    ]


def test_the_seed_guidance_parses_into_ten_to_fifteen_clauses():
    document = parse((SEED_DIR / "social-media-guidance.md").read_bytes())
    assert 10 <= len(document.clauses) <= 15


@pytest.mark.parametrize(
    ("data", "message", "line"),
    [
        (b"", "the file is empty", None),
        (b"   \n\n", "the file is empty", None),
        (b"# Title\n\nJust a summary.\n", "no clause headings", 1),
        (b"Intro first\n# Title\n## 1. A\ntext\n", "text before the title", 1),
        (
            b"# T\n## 1. A\ntext\n## 1. B\ntext\n",
            "clause number 1 is used twice (first on line 2)",
            4,
        ),
        (b"# T\n## 1. A\n## 2. B\ntext\n", "clause 1 ('A') has no text", 2),
        (b"# T\n## 1. A\ntext\n# Another\n", "a second '# ' title", 4),
        (b"# T\n## 1. A\ntext\n\xff\xfe bad\n", "not UTF-8", 4),
        (b"## 1. A\ntext\n", "must start with a '# Title' line", 1),
        (b"# T\n\x00\n## 1. A\ntext\n", "NUL characters", None),
    ],
)
def test_malformed_documents_say_what_is_wrong_and_where(data, message, line):
    with pytest.raises(DocumentError) as caught:
        parse(data)
    assert message in caught.value.message
    assert caught.value.line == line


def test_a_huge_file_is_refused_before_parsing():
    with pytest.raises(DocumentError, match="largest document"):
        parse(b"# T\n## 1. A\n" + b"x" * (MAX_DOCUMENT_BYTES + 1))


def test_a_byte_order_mark_is_accepted():
    assert parse("\ufeff# T\n## 1. A\ntext\n".encode()).title == "T"


def test_slugify():
    assert slugify("Social media guidance: 2026 draft!") == "social-media-guidance-2026-draft"
    assert slugify("Ünïcode café") == "unicode-cafe"
    assert slugify("!!!") == "consultation"
