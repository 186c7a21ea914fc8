"""Label worlds: the demo's label identifiers, a scan through the API, and real decoders.

Labels are read back by zxing-cpp (QR codes) and pdfium (PDF pages), never by re-reading
what our own encoder was given.
"""

from __future__ import annotations

import datetime as dt

import pypdfium2 as pdfium
import zxingcpp
from PIL import Image

from app import demo
from labels.keys import parse_label_keys
from tests.worlds.config import TEST_CONFIG, TEST_LABEL_KEYS

BASE = TEST_CONFIG["PUBLIC_URL"]
NEW_KEY, OLD_KEY = parse_label_keys(TEST_LABEL_KEYS)
RELEASED, QUARANTINED = "XS228-2610-01", "XS228-2611-01"
FIRST = f"{RELEASED}-V0001"
XS228_GTIN = demo.PRODUCTS[0]["gtin"]
UCMSC_GTIN = demo.PRODUCTS[1]["gtin"]
EXPIRY = dt.date(2027, 10, 12)  # the released demo lot: made 2026-10-12, 365 days' shelf life


def scan(client, auth_headers, code, username="qa"):
    """What `POST /api/v1/scans` answers `username` for a scanned code (it must be 200)."""
    response = client.post("/api/v1/scans", json={"code": code}, headers=auth_headers(username))
    assert response.status_code == 200, response.json
    return response.json


def decoded(image: Image.Image) -> list[zxingcpp.Barcode]:
    """Every QR code zxing-cpp reads in the image."""
    return zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)


def pdf_pages(data: bytes, dpi: int = 300) -> list[Image.Image]:
    """A PDF's pages rendered by pdfium at `dpi`."""
    document = pdfium.PdfDocument(data)
    try:
        return [page.render(scale=dpi / 72).to_pil() for page in document]
    finally:
        document.close()
