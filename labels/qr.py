"""QR symbols for labels: which error-correction level a label size affords, and the matrix."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import qrcode
import qrcode.util
from qrcode.constants import ERROR_CORRECT_H, ERROR_CORRECT_L, ERROR_CORRECT_M, ERROR_CORRECT_Q

# Highest first: a label gets the most error correction that still prints legibly.
EC_LEVELS = {"H": ERROR_CORRECT_H, "Q": ERROR_CORRECT_Q, "M": ERROR_CORRECT_M, "L": ERROR_CORRECT_L}
# ISO/IEC 18004 asks for a 4-module quiet zone; it must lie on the label, not on the tube.
QUIET_MODULES = 4
# The smallest module a thermal printer makes reliably on cryo label stock: 0.25 mm is 3 dots
# at 300 dpi and 2 at 203 dpi, and GS1's smallest X-dimension for 2D symbols in healthcare
# (0.254 mm). Below it, dot gain and smearing at -196 °C cost reads.
MIN_MODULE_MM = 0.25
# ^BQ takes magnifications 1 to 10; PDF, PNG and SVG keep to the same so all formats match.
MAX_DOTS = 10


class LabelTooSmallError(ValueError):
    """The payload needs a bigger QR than the label has room for at a printable module size."""

    def __init__(self, payload: str, box_mm: float, dpi: int) -> None:
        super().__init__(
            f"A {len(payload)}-character code does not fit a {box_mm:g} mm QR area at {dpi} dpi "
            f"with modules of at least {MIN_MODULE_MM} mm, even at error correction L: "
            "shorten the base URL or the identifiers."
        )
        self.payload = payload
        self.box_mm = box_mm
        self.dpi = dpi


@dataclass(frozen=True)
class Fit:
    """Error-correction level, QR version and module size (in printer dots) for one payload."""

    ec: str
    version: int
    dots: int

    @property
    def modules(self) -> int:
        """Modules along one side, without the quiet zone."""
        return 17 + 4 * self.version


def fit(payload: str, box_mm: float, dpi: int) -> Fit:
    """The highest EC level whose modules stay ≥ MIN_MODULE_MM inside a square of `box_mm`."""
    box_dots = math.floor(box_mm * dpi / 25.4)
    min_dots = math.ceil(round(MIN_MODULE_MM * dpi / 25.4, 1))  # 2 at 203 dpi, 3 at 300
    chunks = _chunks(payload)
    for ec in EC_LEVELS:
        version = _version(chunks, ec)
        dots = min(MAX_DOTS, box_dots // (17 + 4 * version + 2 * QUIET_MODULES))
        if dots >= min_dots:
            return Fit(ec, version, dots)
    raise LabelTooSmallError(payload, box_mm, dpi)


def version_for(payload: str, ec: str) -> int:
    """The QR version `qrcode`'s make(fit=True) picks for `payload` at level `ec`."""
    return _version(_chunks(payload), ec)


def matrix(payload: str, qr_fit: Fit) -> list[list[bool]]:
    """The symbol's modules (True is dark), encoded by `qrcode` with its automatic mask."""
    return [list(row) for row in encoder(payload, qr_fit).modules]


def encoder(payload: str, qr_fit: Fit) -> Any:
    """A compiled `qrcode.QRCode` at the fitted version and level, without a border."""
    code = qrcode.QRCode(
        version=qr_fit.version, error_correction=EC_LEVELS[qr_fit.ec], border=0, box_size=10
    )
    code.add_data(payload)
    code.make(fit=False)
    return code


def _chunks(payload: str) -> tuple[tuple[int, int], ...]:
    # The segments qrcode's add_data makes (its default minimum run of 20 for a mode switch).
    return tuple((chunk.mode, len(chunk)) for chunk in qrcode.util.optimal_data_chunks(payload, 20))


@functools.lru_cache(maxsize=4096)
def _version(chunks: tuple[tuple[int, int], ...], ec: str) -> int:
    # qrcode's best_fit writes every bit into a buffer to count them (about 1 ms a payload);
    # the count is plain arithmetic on the segments, so a lot's payloads cost one look-up.
    limits = qrcode.util.BIT_LIMIT_TABLE[EC_LEVELS[ec]]
    for version in range(1, 41):
        bits = sum(
            4 + qrcode.util.length_in_bits(mode, version) + _data_bits(mode, length)
            for mode, length in chunks
        )
        if bits <= limits[version]:
            return version
    return 41  # beyond QR's largest version: fits no label


def _data_bits(mode: int, length: int) -> int:
    # ISO/IEC 18004 §7.4.3–7.4.5: 10 bits per 3 digits, 11 per 2 alphanumerics, 8 per byte.
    if mode == qrcode.util.MODE_NUMBER:
        return 10 * (length // 3) + (0, 4, 7)[length % 3]
    if mode == qrcode.util.MODE_ALPHA_NUM:
        return 11 * (length // 2) + 6 * (length % 2)
    return 8 * length
