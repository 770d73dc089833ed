"""Pure: the consolidated final text as a Word (DOCX) or OpenDocument text (ODT) file.

The clauses come from the function that builds the consolidated text on the report
page (app.outcome.clause_outcomes, via the report), so the documents and the page
cannot disagree. Changes are real revision marks, not formatting: DOCX gets
``w:ins`` and ``w:del`` runs (python-docx has no API for them, so they are built
with its oxml helpers), ODT gets ``text:tracked-changes`` regions (odfpy). Word and
LibreOffice show insertions underlined and deletions struck through, list each
change in their review pane, and "Accept all" leaves exactly the clean final text.

A paragraph break inside a change starts a new paragraph; the break itself is not
marked as changed (neither format can mark it without splitting the revision).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.outcome import ConsolidatedClause
from app.textdiff import Segment

ODT_TYPE = "application/vnd.oasis.opendocument.text"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
AUTHOR = "Redline"


@dataclass(frozen=True)
class FinalText:
    """What the documents say: a title, lines of introduction, and the clauses."""

    title: str
    introduction: Sequence[str]
    clauses: Sequence[ConsolidatedClause]
    when: datetime


def _utc(when: datetime) -> datetime:
    """Stored times are UTC; SQLite gives them back without a zone."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def clause_note(clause: ConsolidatedClause) -> str:
    """Where a clause's wording came from, as the report page says it ("" if unchanged)."""
    if not (clause.amendments or clause.by_organisers):
        return ""
    refs = ", ".join(clause.amendments)
    if clause.by_organisers:
        source = "final wording by the organisers" + (f" from {refs}" if refs else "")
    else:
        source = f"amendment {refs}"
    if clause.deleted:
        source += ": clause deleted"
    elif clause.inserted:
        source += ": new clause"
    return f"({source})"


def _pieces(segments: Sequence[Segment]) -> list[list[Segment]]:
    """Segments split into paragraphs at blank lines, each paragraph a list of segments."""
    paragraphs: list[list[Segment]] = [[]]
    for segment in segments:
        for i, part in enumerate(segment.text.split("\n\n")):
            if i:
                paragraphs.append([])
            if part:
                paragraphs[-1].append(Segment(segment.op, part))
    return [p for p in paragraphs if p]


def write_docx(text: FinalText, path: str) -> None:
    """The consolidated text as a Word document with tracked changes, at ``path``."""
    from docx import Document
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    document = Document()
    document.core_properties.title = text.title
    document.core_properties.author = AUTHOR
    document.add_heading(text.title, level=0)
    for line in text.introduction:
        document.add_paragraph(line)
    date = _utc(text.when).strftime("%Y-%m-%dT%H:%M:%SZ")
    revision = 0

    def run(content: str, deleted: bool = False):
        r = OxmlElement("w:r")
        for i, line in enumerate(content.split("\n")):
            if i:
                r.append(OxmlElement("w:br"))
            t = OxmlElement("w:delText" if deleted else "w:t")
            t.set(qn("xml:space"), "preserve")
            t.text = line
            r.append(t)
        return r

    for clause in text.clauses:
        document.add_heading(f"{clause.number}. {clause.heading}", level=2)
        note = clause_note(clause)
        if note:
            document.add_paragraph(note).runs[0].italic = True
        for paragraph_segments in _pieces(clause.segments):
            paragraph = document.add_paragraph()._p
            for segment in paragraph_segments:
                if segment.op == "equal":
                    paragraph.append(run(segment.text))
                    continue
                revision += 1
                mark = OxmlElement("w:ins" if segment.op == "insert" else "w:del")
                mark.set(qn("w:id"), str(revision))
                mark.set(qn("w:author"), AUTHOR)
                mark.set(qn("w:date"), date)
                mark.append(run(segment.text, deleted=segment.op == "delete"))
                paragraph.append(mark)
    document.save(path)


def write_odt(text: FinalText, path: str) -> None:
    """The consolidated text as an OpenDocument text with tracked changes, at ``path``."""
    from odf import dc, teletype
    from odf.namespaces import TEXTNS, XMLNS
    from odf.office import ChangeInfo
    from odf.opendocument import OpenDocumentText
    from odf.style import ParagraphProperties, Style, TextProperties
    from odf.text import (
        Change,
        ChangedRegion,
        ChangeEnd,
        ChangeStart,
        Deletion,
        H,
        Insertion,
        P,
        Span,
        TrackedChanges,
    )

    document = OpenDocumentText()
    document.meta.addElement(dc.Title(text=text.title))
    italic = Style(name="Note", family="text")
    italic.addElement(TextProperties(fontstyle="italic"))
    document.automaticstyles.addElement(italic)
    title_style = Style(name="Title", family="paragraph")
    title_style.addElement(TextProperties(fontsize="20pt", fontweight="bold"))
    title_style.addElement(ParagraphProperties(marginbottom="0.4cm"))
    heading_style = Style(name="Clause heading", family="paragraph")
    heading_style.addElement(TextProperties(fontsize="14pt", fontweight="bold"))
    heading_style.addElement(ParagraphProperties(margintop="0.5cm", marginbottom="0.2cm"))
    body_style = Style(name="Clause text", family="paragraph")
    body_style.addElement(ParagraphProperties(marginbottom="0.25cm"))
    for style in (title_style, heading_style, body_style):
        document.styles.addElement(style)
    date = _utc(text.when).strftime("%Y-%m-%dT%H:%M:%S")

    changes = TrackedChanges()
    body: list = [H(outlinelevel=1, stylename=title_style, text=text.title)]
    body += [P(stylename=body_style, text=line) for line in text.introduction]

    def info():
        element = ChangeInfo()
        element.addElement(dc.Creator(text=AUTHOR))
        element.addElement(dc.Date(text=date))
        return element

    def add_text(element, content: str) -> None:
        teletype.addTextToElement(element, content)

    for clause in text.clauses:
        body.append(
            H(outlinelevel=2, stylename=heading_style, text=f"{clause.number}. {clause.heading}")
        )
        note = clause_note(clause)
        if note:
            paragraph = P(stylename=body_style)
            paragraph.addElement(Span(stylename=italic, text=note))
            body.append(paragraph)
        for paragraph_segments in _pieces(clause.segments):
            paragraph = P(stylename=body_style)
            for segment in paragraph_segments:
                if segment.op == "equal":
                    add_text(paragraph, segment.text)
                    continue
                change_id = f"ct{len(changes.childNodes) + 1}"
                # LibreOffice reads text:id, ODF 1.2 requires xml:id: give both.
                region = ChangedRegion(
                    qattributes={(XMLNS, "id"): change_id, (TEXTNS, "id"): change_id}
                )
                if segment.op == "insert":
                    mark = Insertion()
                    mark.addElement(info())
                    paragraph.addElement(ChangeStart(changeid=change_id))
                    add_text(paragraph, segment.text)
                    paragraph.addElement(ChangeEnd(changeid=change_id))
                else:
                    mark = Deletion()
                    mark.addElement(info())
                    removed = P()
                    add_text(removed, segment.text)
                    mark.addElement(removed)
                    paragraph.addElement(Change(changeid=change_id))
                region.addElement(mark)
                changes.addElement(region)
            body.append(paragraph)
    if changes.hasChildNodes():
        document.text.addElement(changes)  # tracked changes come first in office:text
    for element in body:
        document.text.addElement(element)
    document.save(path)
