"""Labels as ZPL II for Zebra printers.

The QR goes to the printer as a ^GF bitmap of celltrail's own symbol, in whole printer dots
per module: Zebra's ^BQ would encode the payload again with its own mode choices and place
the symbol several dots lower than its field origin (ZD621: 9 dots, which left 1-2 modules
of quiet zone below a cryovial's QR, where ISO/IEC 18004 asks for 4).
"""

from __future__ import annotations

import re

from labels.layout import PT, Drawing, Symbol, Text
from labels.qr import encoder

_SPECIAL = re.compile(r"[\^~\\]")


def zpl(drawing: Drawing, dpi: int) -> str:
    """One label format, ^XA to ^XZ, in printer dots at `dpi` (203 or 300)."""
    scale = dpi / 25.4
    symbol = drawing.symbol
    commands = [
        "^XA",
        "^CI28",  # field data is UTF-8
        f"^PW{round(drawing.width * scale)}",
        f"^LL{round(drawing.height * scale)}",
        "^LH0,0",
    ]
    for bar in drawing.bars:
        width, height = round(bar.width * scale), round(bar.height * scale)
        thickness = min(width, height)  # a box as thick as it is narrow is filled
        commands.append(
            f"^FO{round(bar.x * scale)},{round(bar.y * scale)}^GB{width},{height},{thickness}^FS"
        )
    commands.append(f"^FO{round(symbol.x * scale)},{round(symbol.y * scale)}{_bitmap(symbol)}^FS")
    commands.extend(_text(text, scale) for text in drawing.texts)
    commands.append("^XZ")
    return "\n".join(commands) + "\n"


def _bitmap(symbol: Symbol) -> str:
    """^GFA: the symbol's modules as rows of printer dots, hex, one bit a dot."""
    dots = symbol.fit.dots
    matrix = encoder(symbol.payload, symbol.fit).get_matrix()
    row_bytes = (len(matrix[0]) * dots + 7) // 8
    rows = []
    for modules in matrix:
        bits = "".join(("1" if dark else "0") * dots for dark in modules)
        row = f"{int(bits.ljust(row_bytes * 8, '0'), 2):0{row_bytes * 2}X}"
        rows.extend([row] * dots)
    total = row_bytes * len(rows)
    return f"^GFA,{total},{total},{row_bytes},{''.join(rows)}"


def _text(text: Text, scale: float) -> str:
    height = max(10, round(text.size * PT * scale))
    orientation = "B" if text.upright else "N"
    reverse = "^FR" if text.white else ""
    # ^FT places the field by its baseline, as the drawing does.
    return (
        f"^FT{round(text.x * scale)},{round(text.y * scale)}^A0{orientation},{height},{height}"
        f"{reverse}^FH\\^FD{_escape(_printable(text.text))}^FS"
    )


def _printable(text: str) -> str:
    # Zebra's resident fonts cover code page 1252 (°, µ, é, the dashes); anything beyond it
    # would print as a blank box, so it gets its plain-ASCII spelling.
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return "".join(_plain(char) for char in text)
    return text


def _plain(char: str) -> str:
    try:
        char.encode("cp1252")
    except UnicodeEncodeError:
        return _ASCII.get(char, "?")
    return char


_ASCII = {"≤": "<=", "≥": ">=", "−": "-", "→": "->", "⁷": "7", "⁶": "6", "⁹": "9"}


def _escape(text: str) -> str:
    # ^FH\ makes \hh a hex byte, so the prefix and control characters can appear in text.
    if not _SPECIAL.search(text):
        return text
    return _SPECIAL.sub(lambda match: f"\\{ord(match.group()):02X}", text)
