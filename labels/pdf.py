"""Many labels as one PDF with reportlab: sheets of A4 or US Letter, or a roll."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reportlab.lib.colors import black, white
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from labels.layout import Drawing, register_fonts
from labels.qr import matrix

_DARK_RUN = re.compile(b"\x01+")
SHEETS = {"a4": A4, "letter": LETTER}
SHEET_MARGIN = 10.0  # mm, inside every office printer's unprintable edge
GAP = 2.0  # mm between labels, room for scissors or a die-cut's bridge


@dataclass(frozen=True)
class Grid:
    """Where labels go on a page: columns, rows and the first label's corner (mm)."""

    page: tuple[float, float]  # points
    columns: int
    rows: int
    left: float
    top: float

    @property
    def per_page(self) -> int:
        """Labels on one page."""
        return self.columns * self.rows


def grid(layout: str, size: tuple[float, float]) -> Grid:
    """A roll (one label per page, page = label) or a sheet grid, centred on the page."""
    width, height = size
    if layout == "roll":
        return Grid((width * mm, height * mm), 1, 1, 0.0, 0.0)
    page = SHEETS[layout]
    page_w, page_h = page[0] / mm, page[1] / mm
    columns = max(1, int((page_w - 2 * SHEET_MARGIN + GAP) // (width + GAP)))
    rows = max(1, int((page_h - 2 * SHEET_MARGIN + GAP) // (height + GAP)))
    used_w = columns * width + (columns - 1) * GAP
    used_h = rows * height + (rows - 1) * GAP
    return Grid(page, columns, rows, (page_w - used_w) / 2, (page_h - used_h) / 2)


def pdf(
    drawings: Iterable[Drawing],
    layout: str,
    size: tuple[float, float],
    progress: Callable[[int], None],
) -> bytes:
    """The drawings laid out on pages; `progress(n)` after each label drawn."""
    register_fonts()
    out = io.BytesIO()
    sheet = grid(layout, size)
    canvas = Canvas(out, pagesize=sheet.page, pageCompression=1, invariant=1)
    canvas.setTitle("celltrail labels")
    canvas.setCreator("celltrail")
    index = -1
    for index, drawing in enumerate(drawings):
        slot = index % sheet.per_page
        if index and slot == 0:
            canvas.showPage()
        column, row = slot % sheet.columns, slot // sheet.columns
        x = sheet.left + column * (size[0] + GAP)
        y = sheet.top + row * (size[1] + GAP)
        _draw(canvas, drawing, x, sheet.page[1] / mm - y)
        progress(index + 1)
    if index < 0:
        raise ValueError("A PDF needs at least one label.")
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def _draw(canvas: Canvas, drawing: Drawing, left: float, top: float) -> None:
    """Draw one label whose top-left corner is at (left, top) mm, PDF y pointing up."""
    canvas.setFillColor(black)
    for bar in drawing.bars:
        canvas.rect(
            (left + bar.x) * mm,
            (top - bar.y - bar.height) * mm,
            bar.width * mm,
            bar.height * mm,
            stroke=0,
            fill=1,
        )
    symbol = drawing.symbol
    module = symbol.module * mm
    x0, y0 = (left + symbol.x) * mm, (top - symbol.y) * mm
    path = canvas.beginPath()
    for row, modules in enumerate(matrix(symbol.payload, symbol.fit)):
        # One rectangle per horizontal run of dark modules keeps the page stream small.
        bottom = y0 - (row + 1) * module
        for run in _DARK_RUN.finditer(bytes(modules)):
            start, end = run.span()
            path.rect(x0 + start * module, bottom, (end - start) * module, module)
    canvas.drawPath(path, stroke=0, fill=1)
    for text in drawing.texts:
        canvas.setFillColor(white if text.white else black)
        canvas.setFont(text.font, text.size)
        if text.upright:
            canvas.saveState()
            canvas.translate((left + text.x) * mm, (top - text.y) * mm)
            canvas.rotate(90)
            canvas.drawString(0, 0, text.text)
            canvas.restoreState()
        else:
            canvas.drawString((left + text.x) * mm, (top - text.y) * mm, text.text)
