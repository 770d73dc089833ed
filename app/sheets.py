"""Pure: a workbook described once, written as XLSX (openpyxl) or ODS (odfpy). No database.

A ``Sheet`` is a name, its columns (header, width, wrapping) and an iterable of
rows. Both writers stream the rows: openpyxl in write-only mode writes each row
to its temporary file as it comes; for ODS, odfpy builds the document around one
marker row per sheet, and the real rows, each built and serialised by odfpy,
are spliced in where the marker was, so no writer holds a whole table in memory.

Every cell goes through ``app.cells.cell``: text becomes a string cell, never a
formula; numbers, percentages and times become typed numbers. Each sheet gets a
bold, shaded header row that stays in view when scrolling (frozen), repeats on
every printed page (XLSX), and carries filter buttons when ``filter`` is set.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from app.cells import Cell, cell, xml_text

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODS_TYPE = "application/vnd.oasis.opendocument.spreadsheet"
HEADER_FILL = "1D70B8"  # GOV.UK blue, with white bold text: contrast 5.2:1
DATETIME_FORMAT = "d mmmm yyyy hh:mm"


@dataclass(frozen=True)
class Column:
    """One column: its header, width in characters, and whether long text wraps."""

    header: str
    width: float = 12
    wrap: bool = False

    @property
    def shown_width(self) -> float:
        """The width, widened so that no word of the header is cut."""
        return max(self.width, max(len(word) for word in self.header.split()) + 3)


@dataclass
class Sheet:
    """One sheet: ``rows`` is consumed once, as the file is written."""

    name: str
    columns: Sequence[Column]
    rows: Iterable[Sequence[object]]
    # ODS states a filter's range before the rows are written, so it needs the count.
    row_count: int = 0
    filter: bool = True
    notes: list[str] = field(default_factory=list)


MAX_LINES = 27  # the tallest row is 27 lines (Excel allows 409 points)


def header_lines(columns: Sequence[Column]) -> int:
    """Lines the header row needs: every header wraps."""
    wrapped = [Column(c.header, c.shown_width, True) for c in columns]
    return row_lines([c.header for c in columns], wrapped)


def row_lines(values: Sequence[object], columns: Sequence[Column]) -> int:
    """About how many lines the row's wrapped text needs at the columns' widths.

    Spreadsheets do not all fit row heights to wrapped text when they open a file
    (LibreOffice does not for XLSX), so both writers state the height.
    """
    lines = 1
    for column, value in zip(columns, values, strict=True):
        if not column.wrap or not isinstance(value, str) or not value:
            continue
        per_line = max(1, int(column.shown_width * 1.1))
        needed = sum(-(-len(part) // per_line) or 1 for part in value.splitlines() or [""])
        lines = max(lines, needed)
    return min(lines, MAX_LINES)


def _letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index)


def write_xlsx(sheets: Sequence[Sheet], path: str) -> None:
    """Write the sheets as an Excel workbook at ``path``."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font, PatternFill

    workbook = Workbook(write_only=True)
    header_font = Font(bold=True, color="FFFFFF")
    header_fill = PatternFill("solid", fgColor=HEADER_FILL)
    header_alignment = Alignment(wrap_text=True, vertical="top")
    wrapped = Alignment(wrap_text=True, vertical="top")
    top = Alignment(vertical="top")

    for sheet in sheets:
        ws = workbook.create_sheet(sheet.name)
        for i, column in enumerate(sheet.columns, start=1):
            ws.column_dimensions[_letter(i)].width = column.shown_width
        ws.freeze_panes = "A2"
        ws.print_title_rows = "1:1"
        ws.page_setup.orientation = "landscape"
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        header = []
        lines = header_lines(sheet.columns)
        if lines > 1:
            ws.row_dimensions[1].height = 15 * lines
        for column in sheet.columns:
            c = WriteOnlyCell(ws, value=xml_text(column.header))
            c.data_type = "s"
            c.font, c.fill, c.alignment = header_font, header_fill, header_alignment
            header.append(c)
        ws.append(header)
        written = 0
        for row in sheet.rows:
            lines = row_lines(row, sheet.columns)
            if lines > 1:
                ws.row_dimensions[written + 2].height = 15 * lines
            cells = []
            for column, value in zip(sheet.columns, row, strict=True):
                typed = cell(value)
                c = WriteOnlyCell(ws, value=_xlsx_value(typed))
                if typed.kind == "text":
                    # openpyxl takes any string starting with "=" for a formula; text is text.
                    c.data_type = "s"
                elif typed.kind == "percent":
                    c.number_format = "0.0%"
                elif typed.kind == "datetime":
                    c.number_format = DATETIME_FORMAT
                c.alignment = wrapped if column.wrap else top
                cells.append(c)
            ws.append(cells)
            # The row is on disk now: forget its height, so memory stays flat.
            ws.row_dimensions.pop(written + 2, None)
            written += 1
        if sheet.filter:
            ws.auto_filter.ref = f"A1:{_letter(len(sheet.columns))}{written + 1}"
    workbook.save(path)


def _xlsx_value(typed: Cell):
    if typed.kind == "text":
        return xml_text(typed.value)
    if typed.kind == "empty":
        return None
    return typed.value


class _OdsStyles:
    """The few named styles every ODS sheet uses (kept in styles.xml, so rows can use them)."""

    def __init__(self, document) -> None:
        from odf import number
        from odf.style import Style, TableCellProperties, TextProperties

        percent = number.PercentageStyle(name="N-percent")
        percent.addElement(number.Number(decimalplaces=1, minintegerdigits=1))
        percent.addElement(number.Text(text="%"))
        when = number.DateStyle(name="N-datetime")
        for part in (
            number.Day(),
            number.Text(text=" "),
            number.Month(style="long", textual="true"),
            number.Text(text=" "),
            number.Year(style="long"),
            number.Text(text=" "),
            number.Hours(style="long"),
            number.Text(text=":"),
            number.Minutes(style="long"),
        ):
            when.addElement(part)
        document.styles.addElement(percent)
        document.styles.addElement(when)

        def cell_style(name: str, wrap: bool, background: str | None = None, **extra) -> Style:
            style = Style(name=name, family="table-cell", **extra)
            properties = {"verticalalign": "top"}
            if wrap:
                properties["wrapoption"] = "wrap"
            if background:
                properties["backgroundcolor"] = background
            # One properties element per kind: LibreOffice reads only one.
            style.addElement(TableCellProperties(**properties))
            document.styles.addElement(style)
            return style

        self.header = cell_style("Header", True, background="#" + HEADER_FILL)
        self.header.addElement(TextProperties(fontweight="bold", color="#ffffff"))
        self.plain = cell_style("Plain", False)
        self.wrapped = cell_style("Wrapped", True)
        self.percent = cell_style("Percent", False, datastylename="N-percent")
        self.datetime = cell_style("DateTime", False, datastylename="N-datetime")


def _ods_cell(typed: Cell, styles: _OdsStyles, wrap: bool, text_style=None):
    from odf import teletype
    from odf.table import TableCell
    from odf.text import P

    if typed.kind == "empty":
        return TableCell()
    if typed.kind == "number":
        element = TableCell(valuetype="float", value=typed.value, stylename=styles.plain)
        text = str(typed.value)
    elif typed.kind == "percent":
        element = TableCell(valuetype="percentage", value=typed.value, stylename=styles.percent)
        text = f"{typed.value * 100:.1f}%"
    elif typed.kind == "datetime":
        element = TableCell(
            valuetype="date", datevalue=typed.value.isoformat(), stylename=styles.datetime
        )
        text = typed.value.strftime("%d %B %Y %H:%M")
    else:
        style = text_style or (styles.wrapped if wrap else styles.plain)
        element = TableCell(valuetype="string", stylename=style)
        paragraph = P()
        # ODF text has line breaks but no carriage returns: a CR (or CRLF) is a line break.
        lines = typed.value.replace("\r\n", "\n").replace("\r", "\n")
        teletype.addTextToElement(paragraph, xml_text(lines))
        element.addElement(paragraph)
        return element
    element.addElement(P(text=text))
    return element


ROW_CM = 0.452  # LibreOffice's height of one line of 10-point text


def _row_styles() -> str:
    """Automatic styles "ro1".."ro27": rows one to MAX_LINES lines high."""
    from odf.style import Style, TableRowProperties

    styles = []
    for lines in range(1, MAX_LINES + 1):
        style = Style(name=f"ro{lines}", family="table-row")
        style.addElement(TableRowProperties(rowheight=f"{ROW_CM * lines:.3f}cm"))
        styles.append(_serialised(style))
    return "".join(styles)


def _ods_row(values: Sequence[object], sheet: Sheet, styles: _OdsStyles):
    from odf.table import TableRow

    row = TableRow(stylename=f"ro{row_lines(values, sheet.columns)}")
    for column, value in zip(sheet.columns, values, strict=True):
        row.addElement(_ods_cell(cell(value), styles, column.wrap))
    return row


def _quoted(name: str) -> str:
    return "'" + name.replace("'", "''") + "'" if not name.isalnum() else name


def write_ods(sheets: Sequence[Sheet], path: str) -> None:
    """Write the sheets as an OpenDocument spreadsheet at ``path``."""
    from odf.config import (
        ConfigItem,
        ConfigItemMapEntry,
        ConfigItemMapIndexed,
        ConfigItemMapNamed,
        ConfigItemSet,
    )
    from odf.namespaces import LOEXTNS
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.style import MasterPage, PageLayout, PageLayoutProperties, Style, TableColumnProperties
    from odf.table import DatabaseRange, DatabaseRanges, Table, TableColumn, TableRow

    document = OpenDocumentSpreadsheet()
    styles = _OdsStyles(document)
    page = PageLayout(name="Landscape")
    page.addElement(
        PageLayoutProperties(
            printorientation="landscape",
            pagewidth="29.7cm",
            pageheight="21cm",
            qattributes={(LOEXTNS, "scale-to-X"): "1", (LOEXTNS, "scale-to-Y"): "0"},
        )
    )
    document.automaticstyles.addElement(page)
    document.masterstyles.addElement(MasterPage(name="Default", pagelayoutname=page))
    markers: list[tuple[str, Sheet]] = []
    ranges = DatabaseRanges()
    frozen = ConfigItemMapNamed(name="Tables")
    for index, sheet in enumerate(sheets):
        table = Table(name=sheet.name)
        for i, column in enumerate(sheet.columns):
            width = Style(name=f"co{index}-{i}", family="table-column")
            centimetres = column.shown_width * 0.21  # a character of 10-point text, bold
            width.addElement(TableColumnProperties(columnwidth=f"{centimetres:.2f}cm"))
            document.automaticstyles.addElement(width)
            table.addElement(TableColumn(stylename=width))
        header = TableRow(stylename=f"ro{header_lines(sheet.columns)}")
        for column in sheet.columns:
            header.addElement(_ods_cell(Cell("text", column.header), styles, True, styles.header))
        table.addElement(header)
        marker = TableRow()
        marker.addElement(_ods_cell(Cell("text", f"redline-rows-{index}"), styles, False))
        table.addElement(marker)
        markers.append((f"redline-rows-{index}", sheet))
        document.spreadsheet.addElement(table)
        if sheet.filter:
            last = _letter(len(sheet.columns))
            ranges.addElement(
                DatabaseRange(
                    name=f"__Anonymous_Sheet_DB__{index}",
                    targetrangeaddress=f"{_quoted(sheet.name)}.A1:{last}{sheet.row_count + 1}",
                    displayfilterbuttons="true",
                )
            )
        entry = ConfigItemMapEntry(name=sheet.name)
        for name, kind, value in (
            ("HorizontalSplitMode", "short", "0"),
            ("HorizontalSplitPosition", "int", "0"),
            ("VerticalSplitMode", "short", "2"),
            ("VerticalSplitPosition", "int", "1"),
            ("ActiveSplitRange", "short", "2"),
            ("PositionTop", "int", "0"),
            ("PositionBottom", "int", "1"),
        ):
            item = ConfigItem(name=name, type=kind)
            item.addText(value)
            entry.addElement(item)
        frozen.addElement(entry)
    if ranges.hasChildNodes():
        document.spreadsheet.addElement(ranges)
    view = ConfigItemMapEntry()
    view_id = ConfigItem(name="ViewId", type="string")
    view_id.addText("view1")  # as LibreOffice writes it
    view.addElement(view_id)
    view.addElement(frozen)
    views = ConfigItemMapIndexed(name="Views")
    views.addElement(view)
    view_settings = ConfigItemSet(name="ooo:view-settings")
    view_settings.addElement(views)
    document.settings.addElement(view_settings)

    skeleton = io.BytesIO()
    document.write(skeleton)
    with (
        zipfile.ZipFile(skeleton) as built,
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
    ):
        for info in built.infolist():
            if info.filename != "content.xml":
                archive.writestr(info, built.read(info.filename))
                continue
            content = built.read(info.filename).decode("utf-8")
            # Row styles are added here: odfpy keeps only styles its own tree uses.
            content = content.replace(
                "</office:automatic-styles>", _row_styles() + "</office:automatic-styles>", 1
            )
            with archive.open("content.xml", "w") as out:
                for marker, sheet in markers:
                    found = content.index(marker)
                    start = content.rindex("<table:table-row", 0, found)
                    end = content.index("</table:table-row>", found) + len("</table:table-row>")
                    out.write(content[:start].encode("utf-8"))
                    content = content[end:]
                    for values in sheet.rows:
                        out.write(_serialised(_ods_row(values, sheet, styles)).encode("utf-8"))
                out.write(content.encode("utf-8"))


def _serialised(element) -> str:
    buffer = io.StringIO()
    element.toXml(1, buffer)  # level 0 would repeat the namespaces
    return buffer.getvalue()
