"""Where everything sits on a label, in millimetres: one drawing that every format renders."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import reportlab
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

from labels.content import SHORT_STATEMENTS, ShipperLabel, VialLabel, WristbandLabel, storage_line
from labels.linear import MIN_HEIGHT_MM, gs1_128, module_dots
from labels.linear import QUIET_MODULES as LINEAR_QUIET
from labels.qr import QUIET_MODULES, Fit, fit

VIAL_SIZE = (38.0, 13.0)
SHIPPER_SIZE = (100.0, 150.0)
WRISTBAND_SIZE = (80.0, 25.0)
PT = 25.4 / 72  # millimetres per point
# Bitstream Vera ships inside reportlab, so PNG, PDF and the measurements all use one font
# with no download and no system font; SVG names it and its metric twin DejaVu Sans.
FONT_DIR = Path(reportlab.__file__).parent / "fonts"
FONT_FILES = {"Vera": FONT_DIR / "Vera.ttf", "Vera-Bold": FONT_DIR / "VeraBd.ttf"}
_ASCENT, _DESCENT = 0.76, 0.24  # of the font size, Vera's
LOW_HEIGHT_MM = 12.7  # GS1's least bar height for an SSCC not scanned on a conveyor
MIN_VIAL_PT = 3.8  # the smallest text the cryovial label prints: 1.3 mm capitals


class LabelDoesNotFitError(ValueError):
    """A required element does not fit the label; the message says which."""


@dataclass(frozen=True)
class Text:
    """A line of text; (x, y) is the left end of its baseline, in mm from the top left."""

    x: float
    y: float
    text: str
    size: float  # points
    bold: bool = False
    white: bool = False
    upright: bool = False  # turned 90° to read bottom to top

    @property
    def font(self) -> str:
        """The font's name."""
        return "Vera-Bold" if self.bold else "Vera"


@dataclass(frozen=True)
class Bar:
    """A filled black rectangle."""

    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Symbol:
    """The QR code: top-left corner of the symbol (quiet zone outside it) and module size."""

    x: float
    y: float
    payload: str
    fit: Fit
    dpi: int

    @property
    def module(self) -> float:
        """Module size in mm: a whole number of printer dots."""
        return self.fit.dots * 25.4 / self.dpi


@dataclass(frozen=True)
class Drawing:
    """One label, ready for any format."""

    width: float
    height: float
    symbol: Symbol
    bars: tuple[Bar, ...]
    texts: tuple[Text, ...]


def vial_drawing(label: VialLabel, dpi: int) -> Drawing:
    """Cryovial label: the QR on the left at full height, seven lines of text beside it."""
    width, height = VIAL_SIZE
    qr_fit = fit(label.payload, height, dpi)
    symbol, box = _symbol(label.payload, qr_fit, dpi, x=0.0, top=0.0, box=height)
    left, right, margin = box + 0.3, width - 0.6, 0.6
    bars: list[Bar] = []
    texts: list[Text] = []
    if label.quarantined or label.preview:
        mark = "PREVIEW" if label.preview else "QUARANTINE"
        band = Bar(width - 2.4, 0.0, 2.4, height)
        bars.append(band)
        size = fitting_size(mark, 5.0, height - 1.0, bold=True)
        text_length = measure(mark, size, bold=True)
        texts.append(Text(width - 0.7, (height + text_length) / 2, mark, size, True, True, True))
        right = band.x - 0.4
    lines = [
        ("product", label.product_name, True),
        ("lot", f"LOT {label.lot}", False),
        ("serial", f"SN {label.serial}", False),
        ("expiry", f"EXP {label.expiry:%Y-%m-%d}", False),
        (
            "cells per vial",
            "Blinded kit"
            if label.cells_per_vial is None
            else f"{label.cells_per_vial:,} cells/vial",
            False,
        ),
        ("storage", storage_line(label.storage_limit_c, label.storage_condition), False),
        ("statement", statement_that_fits(label.statement, right - left, 4.3), False),
    ]
    pitch = (height - 2 * margin) / len(lines)
    for index, (element, line, bold) in enumerate(lines):
        size = _fitted(element, line, 4.6 if bold else 4.3, right - left, bold=bold)
        baseline = margin + pitch * (index + 1) - _DESCENT * size * PT
        texts.append(Text(left, baseline, line, size, bold))
    return Drawing(width, height, symbol, tuple(bars), tuple(texts))


def _fitted(element: str, text: str, size: float, width: float, *, bold: bool) -> float:
    """The largest size down to `MIN_VIAL_PT` at which `text` fits in full; a required
    element that does not fit even then refuses the label (nothing is ever cut)."""
    while size > MIN_VIAL_PT and measure(text, size, bold=bold) > width:
        size = round(size - 0.1, 1)
    if measure(text, size, bold=bold) > width:
        raise LabelDoesNotFitError(
            f"The {element} {text!r} does not fit the {VIAL_SIZE[0]:g} x {VIAL_SIZE[1]:g} mm "
            f"vial label even at {MIN_VIAL_PT:g} pt: give the product a shorter label name "
            "or shorten it."
        )
    return size


def shipper_drawing(label: ShipperLabel, dpi: int) -> Drawing:
    """Shipper label, as a GS1 logistic label: destination and handling text on top, the QR
    with the SSCC beside it, the full investigational statement, and at the foot the SSCC as
    GS1-128 with its human-readable interpretation below."""
    width, height = SHIPPER_SIZE
    margin, inner = 6.0, SHIPPER_SIZE[0] - 12.0
    bars: list[Bar] = []
    texts: list[Text] = []
    y = margin
    if label.quarantined:
        bars.append(Bar(margin, y, inner, 12.0))
        banner = "QUARANTINE · DO NOT USE"
        size = fitting_size(banner, 18, inner - 6, bold=True)
        texts.append(
            Text(margin + 3, y + 6 + _ASCENT * size * PT / 2 - 0.3, banner, size, True, True)
        )
        y += 15.0
    flow = _Flow(texts, margin, inner, y)
    flow.line(f"Shipper {label.shipper_id}", 16, bold=True)
    flow.caption("From")
    flow.paragraph(label.from_site, 11)
    flow.caption("To")
    flow.paragraph(label.to_site, 13, bold=True)
    flow.caption("Storage")
    flow.paragraph(label.storage_limit, 12, bold=True)
    flow.caption("Contents")
    vials = "1 vial" if label.contents_count == 1 else f"{label.contents_count} vials"
    flow.paragraph(" · ".join(part for part in (vials, label.product_name, label.lot) if part), 10)
    box = 36.0
    top = flow.y + 1.0
    qr_fit = fit(label.payload, box, dpi)
    symbol, _ = _symbol(label.payload, qr_fit, dpi, x=margin - 1.0, top=top, box=box)
    hri = f"(00) {label.sscc}"
    texts.append(Text(margin + box + 2.0, top + 10.0, "SSCC", 7))
    texts.append(Text(margin + box + 2.0, top + 15.0, hri, fitting_size(hri, 10, inner - box - 2)))
    statement = _Flow(texts, margin, inner, top + box + 1.0)
    statement.paragraph(label.statement, 9, bold=True)
    bars += _gs1_128(f"00{label.sscc}", dpi, top=statement.y + 2.0, bottom=height - margin - 5.0)
    hri_size = 10.0
    texts.append(Text((width - measure(hri, hri_size)) / 2, height - margin - 0.8, hri, hri_size))
    return Drawing(width, height, symbol, tuple(bars), tuple(texts))


def _gs1_128(element_string: str, dpi: int, *, top: float, bottom: float) -> list[Bar]:
    """The GS1-128 bars, centred, in whole printer dots, from `top` down to `bottom` (at
    most the GS1 logistic-label height); a label with no room for the symbol is refused."""
    symbol = gs1_128(element_string)
    module = module_dots(dpi) * 25.4 / dpi
    bar_height = min(MIN_HEIGHT_MM, bottom - top)
    span = (symbol.modules + 2 * LINEAR_QUIET) * module
    if bar_height < LOW_HEIGHT_MM or span > SHIPPER_SIZE[0]:
        raise LabelDoesNotFitError(
            f"The GS1-128 SSCC symbol needs {LOW_HEIGHT_MM} mm of height and {span:.1f} mm "
            f"of width; {bottom - top:.1f} mm by {SHIPPER_SIZE[0]} mm is left."
        )
    x = (SHIPPER_SIZE[0] - symbol.modules * module) / 2
    bars = []
    for is_bar, width in symbol.runs:
        if is_bar:
            bars.append(Bar(x, bottom - bar_height, width * module, bar_height))
        x += width * module
    return bars


def wristband_drawing(label: WristbandLabel, dpi: int) -> Drawing:
    """Wristband: the QR at full height on the left, the subject's code large beside it."""
    width, height = WRISTBAND_SIZE
    margin = 1.0
    qr_fit = fit(label.payload, height - 2 * margin, dpi)
    symbol, right_of_qr = _symbol(
        label.payload, qr_fit, dpi, x=margin, top=margin, box=height - 2 * margin
    )
    left = right_of_qr + 1.5
    flow = _Flow([], left, width - left - margin, margin)
    flow.line(f"Subject {label.subject}", fitting_size(f"Subject {label.subject}", 14,
              width - left - margin, bold=True), bold=True)  # fmt: skip
    flow.line(f"Trial {label.trial}", 8)
    flow.line(label.site, 7)
    flow.line(label.statement, fitting_size(label.statement, 6, width - left - margin))
    return Drawing(width, height, symbol, (), tuple(flow.texts))


def measure(text: str, size: float, *, bold: bool = False) -> float:
    """Width of `text` in mm."""
    register_fonts()
    return float(pdfmetrics.stringWidth(text, "Vera-Bold" if bold else "Vera", size)) * PT


@functools.lru_cache(maxsize=4096)
def truncate(text: str, size: float, width: float, *, bold: bool = False) -> str:
    """`text`, cut with an ellipsis if it is wider than `width` mm."""
    if measure(text, size, bold=bold) <= width:
        return text
    while text and measure(text + "...", size, bold=bold) > width:
        text = text[:-1]
    return text.rstrip() + "..."


@functools.lru_cache(maxsize=256)
def statement_that_fits(statement: str, width: float, size: float) -> str:
    """The longest form of the investigational statement that fits one line."""
    for candidate in (statement, *SHORT_STATEMENTS):
        if measure(candidate, size) <= width:
            return candidate
    return SHORT_STATEMENTS[-1]


def fitting_size(text: str, size: float, width: float, *, bold: bool = False) -> float:
    """`size`, or smaller in half points until `text` fits `width` mm."""
    while size > 4 and measure(text, size, bold=bold) > width:
        size -= 0.5
    return size


def wrap(text: str, size: float, width: float, *, bold: bool = False) -> list[str]:
    """Greedy word wrap to `width` mm."""
    lines: list[str] = []
    for word in text.split():
        if lines and measure(f"{lines[-1]} {word}", size, bold=bold) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


@functools.cache
def register_fonts() -> None:
    for name, path in FONT_FILES.items():
        pdfmetrics.registerFont(TTFont(name, str(path)))


class _Flow:
    """Text set top to bottom in one column."""

    def __init__(self, texts: list[Text], x: float, width: float, y: float) -> None:
        self.texts, self.x, self.width, self.y = texts, x, width, y

    def line(self, text: str, size: float, *, bold: bool = False) -> None:
        self.y += _ASCENT * size * PT
        fitted = truncate(text, size, self.width, bold=bold)
        self.texts.append(Text(self.x, self.y, fitted, size, bold))
        self.y += (_DESCENT + 0.25) * size * PT

    def caption(self, text: str) -> None:
        self.y += 1.2
        self.line(text.upper(), 7)

    def paragraph(self, text: str, size: float, *, bold: bool = False) -> None:
        # Every line of it: what runs out of room is refused by the layout, never dropped.
        for line in wrap(text, size, self.width, bold=bold):
            self.line(line, size, bold=bold)


def _symbol(
    payload: str, qr_fit: Fit, dpi: int, *, x: float, top: float, box: float
) -> tuple[Symbol, float]:
    module = qr_fit.dots * 25.4 / dpi
    outer = (qr_fit.modules + 2 * QUIET_MODULES) * module
    offset = (box - outer) / 2 + QUIET_MODULES * module
    return Symbol(x + offset, top + offset, payload, qr_fit, dpi), x + (box + outer) / 2
