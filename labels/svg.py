"""One label as SVG: the QR path from qrcode's SVG image factory, the rest via ElementTree."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from qrcode.image.svg import SvgPathImage

from labels.layout import PT, Drawing, Text
from labels.qr import encoder

SVG = "http://www.w3.org/2000/svg"
FONT_FAMILY = "'Bitstream Vera Sans', 'DejaVu Sans', Verdana, sans-serif"


def svg(drawing: Drawing) -> bytes:
    """The label as a standalone SVG document in millimetres."""
    root = ET.Element(
        "svg",
        xmlns=SVG,
        version="1.1",
        width=f"{drawing.width:g}mm",
        height=f"{drawing.height:g}mm",
        viewBox=f"0 0 {drawing.width:g} {drawing.height:g}",
    )
    ET.SubElement(root, "rect", width="100%", height="100%", fill="#ffffff")
    for bar in drawing.bars:
        ET.SubElement(
            root,
            "rect",
            x=_n(bar.x),
            y=_n(bar.y),
            width=_n(bar.width),
            height=_n(bar.height),
            fill="#000000",
        )
    root.append(_symbol(drawing))
    for text in drawing.texts:
        root.append(_text(text))
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def _symbol(drawing: Drawing) -> ET.Element:
    symbol = drawing.symbol
    # box_size 10 makes one module one user unit in qrcode's path; the group scales it to mm.
    image = encoder(symbol.payload, symbol.fit).make_image(image_factory=SvgPathImage)
    group = ET.Element(
        "g",
        transform=f"translate({_n(symbol.x)} {_n(symbol.y)}) scale({_n(symbol.module)})",
    )
    path = ET.SubElement(group, "path", dict(image.path.attrib))
    path.set("shape-rendering", "crispEdges")
    path.attrib.pop("id", None)
    return group


def _text(text: Text) -> ET.Element:
    element = ET.Element(
        "text",
        x=_n(text.x),
        y=_n(text.y),
        fill="#ffffff" if text.white else "#000000",
        style=f"font-family: {FONT_FAMILY}; font-size: {_n(text.size * PT)}px;"
        + (" font-weight: bold;" if text.bold else ""),
    )
    if text.upright:
        element.set("transform", f"rotate(-90 {_n(text.x)} {_n(text.y)})")
    element.text = text.text
    return element


def _n(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")
