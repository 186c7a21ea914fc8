"""Render labels to bytes: PNG or SVG of one label, a PDF or ZPL II of many."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum

from labels.content import (
    INVESTIGATIONAL_STATEMENT,
    SHORT_STATEMENTS,
    Label,
    ShipperLabel,
    VialLabel,
    WristbandLabel,
)
from labels.layout import (
    SHIPPER_SIZE,
    VIAL_SIZE,
    WRISTBAND_SIZE,
    Drawing,
    LabelDoesNotFitError,
    shipper_drawing,
    vial_drawing,
    wristband_drawing,
)
from labels.payload import InvalidIdentifierError
from labels.pdf import pdf
from labels.qr import LabelTooSmallError
from labels.raster import png
from labels.svg import svg
from labels.zpl import zpl

__all__ = [
    "INVESTIGATIONAL_STATEMENT",
    "NOT_RENDERABLE",
    "SHORT_STATEMENTS",
    "Format",
    "LabelTooSmallError",
    "Layout",
    "Progress",
    "ShipperLabel",
    "VialLabel",
    "WristbandLabel",
    "drawing",
    "media_type",
    "render",
]

# What building or rendering a label raises when it cannot be laid out in full: an identifier
# GS1 does not allow, a code too long for its QR, a required element with no room. Callers
# turn it into their own refusal; nothing is ever printed cut.
NOT_RENDERABLE = (InvalidIdentifierError, LabelTooSmallError, LabelDoesNotFitError)

Progress = Callable[[int, int], None]
"""Called as `progress(done, total)` after each label, e.g. to move a CLI progress bar."""


class Format(StrEnum):
    """Output formats."""

    PNG = "png"
    SVG = "svg"
    PDF = "pdf"
    ZPL = "zpl"


class Layout(StrEnum):
    """How a PDF places labels: one per page at label size, or a grid on office paper."""

    ROLL = "roll"
    A4 = "a4"
    LETTER = "letter"


ZPL_DPI = (203, 300)
_MEDIA_TYPES = {
    Format.PNG: "image/png",
    Format.SVG: "image/svg+xml",
    Format.PDF: "application/pdf",
    Format.ZPL: "application/vnd.zebra.zpl",
}


def render(
    labels: Sequence[Label],
    fmt: Format | str,
    *,
    layout: Layout | str = Layout.ROLL,
    dpi: int = 300,
    progress: Progress | None = None,
) -> bytes:
    """The labels in `fmt`. PNG and SVG take exactly one label; PDF and ZPL take many.

    `dpi` is the printer's: it sets the QR module to whole printer dots in every format
    (and the pixel grid of a PNG). ZPL takes 203 or 300.
    """
    fmt, layout = Format(fmt), Layout(layout)
    total = len(labels)
    if not labels:
        raise ValueError("There are no labels to render.")
    if len({type(label) for label in labels}) > 1:
        raise ValueError(
            "Vial, shipper and wristband labels differ in size; render them separately."
        )
    if fmt in (Format.PNG, Format.SVG) and total != 1:
        raise ValueError(f"{fmt.upper()} holds one label; use PDF or ZPL for {total}.")
    if not 100 <= dpi <= 1200:
        raise ValueError(f"A label printer's resolution is 100 to 1200 dpi, not {dpi}.")
    if fmt is Format.ZPL and dpi not in ZPL_DPI:
        raise ValueError(f"Zebra printers here print at 203 or 300 dpi, not {dpi}.")
    report = progress or _quiet
    drawings = (drawing(label, dpi) for label in labels)
    if fmt is Format.PNG:
        return png(next(drawings), dpi)
    if fmt is Format.SVG:
        return svg(next(drawings))
    if fmt is Format.PDF:
        size = (
            VIAL_SIZE
            if isinstance(labels[0], VialLabel)
            else WRISTBAND_SIZE
            if isinstance(labels[0], WristbandLabel)
            else SHIPPER_SIZE
        )
        return pdf(drawings, layout, size, lambda done: report(done, total))
    return "".join(_zpl(drawings, dpi, report, total)).encode("utf-8")


def drawing(label: Label, dpi: int = 300) -> Drawing:
    """Where everything on `label` goes, in mm (the layout every format shares)."""
    if isinstance(label, VialLabel):
        return vial_drawing(label, dpi)
    if isinstance(label, WristbandLabel):
        return wristband_drawing(label, dpi)
    return shipper_drawing(label, dpi)


def media_type(fmt: Format | str) -> str:
    """The HTTP media type of a format."""
    return _MEDIA_TYPES[Format(fmt)]


def _zpl(drawings: Iterator[Drawing], dpi: int, report: Progress, total: int) -> Iterator[str]:
    for done, each in enumerate(drawings, start=1):
        yield zpl(each, dpi)
        report(done, total)


def _quiet(done: int, total: int) -> None:
    del done, total
