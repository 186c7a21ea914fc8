"""One label as a PNG at printer resolution, drawn with Pillow."""

from __future__ import annotations

import functools
import io

from PIL import Image, ImageDraw, ImageFont

from labels.layout import FONT_FILES, PT, Drawing, Text
from labels.qr import matrix


def png(drawing: Drawing, dpi: int) -> bytes:
    """The label as a greyscale PNG, one pixel per printer dot."""
    scale = dpi / 25.4
    image = Image.new("L", (round(drawing.width * scale), round(drawing.height * scale)), 255)
    draw = ImageDraw.Draw(image)
    for bar in drawing.bars:
        draw.rectangle(
            (
                round(bar.x * scale),
                round(bar.y * scale),
                round((bar.x + bar.width) * scale) - 1,
                round((bar.y + bar.height) * scale) - 1,
            ),
            fill=0,
        )
    _symbol(draw, drawing, scale)
    for text in drawing.texts:
        _text(image, draw, text, scale)
    out = io.BytesIO()
    image.save(out, format="PNG", dpi=(dpi, dpi), optimize=True)
    return out.getvalue()


def _symbol(draw: ImageDraw.ImageDraw, drawing: Drawing, scale: float) -> None:
    symbol = drawing.symbol
    dots = symbol.fit.dots
    x0, y0 = round(symbol.x * scale), round(symbol.y * scale)
    for row, modules in enumerate(matrix(symbol.payload, symbol.fit)):
        for column, dark in enumerate(modules):
            if dark:
                x, y = x0 + column * dots, y0 + row * dots
                draw.rectangle((x, y, x + dots - 1, y + dots - 1), fill=0)


def _text(image: Image.Image, draw: ImageDraw.ImageDraw, text: Text, scale: float) -> None:
    font = _font(text.font, round(text.size * PT * scale))
    fill = 255 if text.white else 0
    if not text.upright:
        draw.text((text.x * scale, text.y * scale), text.text, font=font, fill=fill, anchor="ls")
        return
    # Draw the line level on its own layer, turn it to read bottom to top, and paste it with
    # its own shape as the mask, so white text on a black band stays white.
    left, top, right, bottom = (round(edge) for edge in font.getbbox(text.text, anchor="ls"))
    layer = Image.new("L", (right - left + 2, bottom - top + 2), 0)
    ImageDraw.Draw(layer).text((1 - left, 1 - top), text.text, font=font, fill=255, anchor="ls")
    turned = layer.rotate(90, expand=True)
    ink = Image.new("L", turned.size, fill)
    # Turning maps the layer's point (1 - left, 1 - top), the baseline's left end, to column
    # 1 - top and row width - 2 + left of the turned layer.
    x = round(text.x * scale) - (1 - top)
    y = round(text.y * scale) - (turned.size[1] - 2 + left)
    image.paste(ink, (x, y), turned)


@functools.lru_cache(maxsize=64)
def _font(name: str, pixels: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_FILES[name]), max(pixels, 1))
