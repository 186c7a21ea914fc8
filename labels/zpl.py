"""Labels as ZPL II for Zebra printers: the printer draws the QR itself from ^BQ."""

from __future__ import annotations

import re

from labels.layout import PT, Drawing, Text

_SPECIAL = re.compile(r"[\^~\\]")


def zpl(drawing: Drawing, dpi: int) -> str:
    """One label format, ^XA to ^XZ, in printer dots at `dpi` (203 or 300)."""
    scale = dpi / 25.4
    symbol = drawing.symbol
    ec = symbol.fit.ec
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
    # ^BQ: normal orientation, model 2, magnification = dots per module, EC level; the field
    # data repeats the level and selects automatic input ("MA," for level M).
    commands.append(
        f"^FO{round(symbol.x * scale)},{round(symbol.y * scale)}"
        f"^BQN,2,{symbol.fit.dots},{ec}^FH\\^FD{ec}A,{_escape(symbol.payload)}^FS"
    )
    commands.extend(_text(text, scale) for text in drawing.texts)
    commands.append("^XZ")
    return "\n".join(commands) + "\n"


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
