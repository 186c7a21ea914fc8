"""GS1-128, the linear symbol a GS1 logistic label carries for the SSCC (AI 00).

GS1-128 is Code 128 with FNC1 in first position. reportlab (already the PDF renderer)
encodes Code 128 with FNC1 and the shortest code-set changes; its widths are turned here into
bars of whole printer dots, so that every format (PDF, SVG, PNG, ZPL) prints the same symbol.
"""

from __future__ import annotations

from dataclasses import dataclass

from reportlab.graphics.barcode.code128 import Code128

FNC1 = "\xf1"
QUIET_MODULES = 10  # ISO/IEC 15417: at least ten X each side
# GS1 General Specifications §5.4.3.7 (logistic labels, SSCC): X from 0.495 mm, bar height
# at least 31.75 mm (12.7 mm allowed where the symbol is not scanned in transport).
MIN_MODULE_MM = 0.495
MIN_HEIGHT_MM = 31.75


@dataclass(frozen=True)
class LinearSymbol:
    """A GS1-128 symbol as runs of modules: (is a bar, width in modules), left to right."""

    element_string: str
    runs: tuple[tuple[bool, int], ...]

    @property
    def modules(self) -> int:
        """The symbol's width in modules, without its quiet zones."""
        return sum(width for _, width in self.runs)


def gs1_128(element_string: str) -> LinearSymbol:
    """The GS1-128 symbol of an element string such as "00" + SSCC (no parentheses)."""
    if not element_string.isascii() or not element_string.isdigit():
        raise ValueError("A GS1-128 element string here is digits only (AI 00 and its SSCC).")
    symbol = Code128(FNC1 + element_string, quiet=0)
    symbol.validate()
    symbol.encode()
    symbol.decompose()
    # reportlab writes each element as a letter: upper case a bar, lower case a space,
    # A–D for one to four modules.
    runs = tuple((letter.isupper(), ord(letter.upper()) - 64) for letter in symbol.decomposed)
    return LinearSymbol(element_string, runs)


def module_dots(dpi: int) -> int:
    """The narrowest whole number of printer dots that is at least the minimum X."""
    dot = 25.4 / dpi
    dots = 1
    while dots * dot < MIN_MODULE_MM:
        dots += 1
    return dots
