"""Pure parsing of a Markdown guidance document into a consultation and its clauses. No I/O.

The format, kept small on purpose so that organisers can write it in any editor:

    # Title of the consultation

    An optional summary, one or more paragraphs.

    ## 1. First clause heading

    Clause text, one or more paragraphs.

    ### 1.1 A sub-clause heading

    ...

A ``#`` heading gives the title; every deeper heading starts a clause. A heading
that starts with a number ("3", "3.2", "3.2.") keeps it; one without gets the
next number at its level (after ``## 3``, a bare ``###`` becomes ``3.1``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

MAX_DOCUMENT_BYTES = 1_000_000
MAX_CLAUSES = 500
MAX_HEADING_CHARS = 200
MAX_TITLE_CHARS = 200

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")
_NUMBERED = re.compile(r"^(\d+(?:\.\d+)*)\.?[ \t]+(.+)$")


class DocumentError(ValueError):
    """The document cannot be imported; ``line`` says where (1-based), when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.message = message
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


@dataclass(frozen=True)
class ParsedClause:
    """One clause as written in the document."""

    number: str
    heading: str
    text: str
    line: int


@dataclass(frozen=True)
class ParsedDocument:
    """A consultation as written in the document."""

    title: str
    summary: str
    clauses: list[ParsedClause] = field(default_factory=list)


def decode(data: bytes) -> str:
    """Decode UTF-8 (with or without a byte-order mark), refusing anything else clearly."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DocumentError(
            f"the file is {len(data):,} bytes; the largest document Redline imports is "
            f"{MAX_DOCUMENT_BYTES:,} bytes (about 1 MB)"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise DocumentError(
            f"the file is not UTF-8 text (byte {error.start + 1} cannot be read); "
            "save it as UTF-8 and try again",
            line,
        ) from None


def parse(data: bytes | str) -> ParsedDocument:
    """Parse a Markdown document; raise DocumentError saying what is wrong and where."""
    text = decode(data) if isinstance(data, bytes) else data
    if len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        decode(text.encode("utf-8"))
    if "\x00" in text:
        raise DocumentError("the file contains NUL characters; is it really a text file?")
    if not text.strip():
        raise DocumentError("the file is empty")

    title: str | None = None
    title_line = 0
    summary_lines: list[str] = []
    clauses: list[tuple[str, str, int, list[str]]] = []
    counters: dict[int, int] = {}
    parents: dict[int, str] = {}
    seen: dict[str, int] = {}

    for line_no, raw in enumerate(text.splitlines(), start=1):
        match = _HEADING.match(raw)
        if match is None:
            if clauses:
                clauses[-1][3].append(raw)
            elif title is not None:
                summary_lines.append(raw)
            elif raw.strip():
                raise DocumentError(
                    "text before the title: the document must start with a '# Title' line",
                    line_no,
                )
            continue
        level, heading = len(match.group(1)), match.group(2).strip()
        if not heading:
            raise DocumentError("a heading has no text", line_no)
        if level == 1:
            if title is not None:
                raise DocumentError(
                    f"a second '# ' title (the first is on line {title_line}); "
                    "use '## ' for clause headings",
                    line_no,
                )
            if clauses:
                raise DocumentError("the '# ' title must come before the clauses", line_no)
            if len(heading) > MAX_TITLE_CHARS:
                raise DocumentError(
                    f"the title is longer than {MAX_TITLE_CHARS} characters", line_no
                )
            title, title_line = heading, line_no
            continue
        if title is None:
            raise DocumentError("the document must start with a '# Title' line", line_no)
        number, heading = _number_for(level, heading, counters, parents, line_no)
        if len(heading) > MAX_HEADING_CHARS:
            raise DocumentError(
                f"the heading of clause {number} is longer than {MAX_HEADING_CHARS} characters",
                line_no,
            )
        if number in seen:
            raise DocumentError(
                f"clause number {number} is used twice (first on line {seen[number]})", line_no
            )
        seen[number] = line_no
        clauses.append((number, heading, line_no, []))
        if len(clauses) > MAX_CLAUSES:
            raise DocumentError(f"more than {MAX_CLAUSES} clauses", line_no)

    if title is None:
        raise DocumentError("no '# Title' line: the first heading gives the consultation's title")
    if not clauses:
        raise DocumentError(
            "no clause headings: start each clause with a '## ' heading such as '## 1. Scope'",
            title_line,
        )
    parsed = []
    for number, heading, line_no, body in clauses:
        body_text = _paragraphs(body)
        if not body_text:
            raise DocumentError(f"clause {number} ({heading!r}) has no text", line_no)
        parsed.append(ParsedClause(number, heading, body_text, line_no))
    return ParsedDocument(title=title, summary=_paragraphs(summary_lines), clauses=parsed)


def _number_for(
    level: int, heading: str, counters: dict[int, int], parents: dict[int, str], line_no: int
) -> tuple[str, str]:
    numbered = _NUMBERED.match(heading)
    if numbered:
        number, heading = numbered.group(1), numbered.group(2).strip()
        parts = number.split(".")
        counters[level] = int(parts[-1])
    else:
        counters[level] = counters.get(level, 0) + 1
        parent = parents.get(level - 1) if level > 2 else None
        if level > 2 and parent is None:
            raise DocumentError(
                "a sub-clause heading comes before any clause heading of the level above", line_no
            )
        number = f"{parent}.{counters[level]}" if parent else str(counters[level])
    parents[level] = number
    for deeper in [lvl for lvl in counters if lvl > level]:
        del counters[deeper]
        parents.pop(deeper, None)
    return number, heading


def _paragraphs(lines: list[str]) -> str:
    """Normalise a block of lines: paragraphs joined by one blank line, no trailing space."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines + [""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(" ".join(current).split()))
            current = []
    return "\n\n".join(paragraphs)


def normalise_wording(text: str) -> str:
    """The canonical form of typed wording: paragraphs kept, runs of spaces and line ends folded."""
    return _paragraphs(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def slugify(title: str) -> str:
    """A URL slug from a title: lower-case ASCII words joined by hyphens."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:80].rstrip("-") or "consultation"


def render(document: ParsedDocument) -> str:
    """Write a parsed document back to Markdown (parse(render(d)) == d)."""
    out = [f"# {document.title}", ""]
    if document.summary:
        out += [document.summary, ""]
    for clause in document.clauses:
        level = "#" * (1 + len(clause.number.split(".")))
        out += [f"{level} {clause.number}. {clause.heading}", "", clause.text, ""]
    return "\n".join(out)
