"""Rendered labels, read back by a real decoder (zxing-cpp) and a GS1 parser (biip)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
import string
import xml.etree.ElementTree as ET
from decimal import Decimal

import pypdfium2 as pdfium
import pytest
import qrcode
import resvg_py
import zplkit
import zxingcpp
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from labels.keys import LabelKey
from labels.layout import FONT_FILES, MIN_VIAL_PT, VIAL_SIZE, LabelDoesNotFitError, measure
from labels.payload import shipper_uri, sscc_from, vial_uri
from labels.qr import MIN_MODULE_MM, QUIET_MODULES, LabelTooSmallError, fit, version_for
from labels.render import (
    INVESTIGATIONAL_STATEMENT,
    ShipperLabel,
    VialLabel,
    drawing,
    media_type,
    render,
)
from tests.worlds.labels import decoded, pdf_pages

BASE = "https://celltrail.example.org"
KEY = LabelKey("1", bytes(range(32)))
GTIN = "09506000100104"
LOT = "XS228-2610-01"
EXPIRY = dt.date(2027, 10, 12)


def a_vial_label(number: int = 1, **changes: object) -> VialLabel:
    serial = f"{LOT}-V{number:04d}"
    label = VialLabel(
        product_name="XS228 Cell Injection",  # the product version's label name
        lot=LOT,
        serial=serial,
        expiry=EXPIRY,
        storage_condition="Vapour phase of liquid nitrogen, at or below -150 °C",
        storage_limit_c=Decimal("-150.0"),
        cells_per_vial=10_000_000,
        payload=vial_uri(base=BASE, gtin=GTIN, lot=LOT, serial=serial, expiry=EXPIRY, key=KEY),
    )
    return dataclasses.replace(label, **changes)  # type: ignore[arg-type]


def a_shipper_label(**changes: object) -> ShipperLabel:
    sscc = sscc_from("9506000", 42)
    label = ShipperLabel(
        shipper_id="DS-0042",
        sscc=sscc,
        payload=shipper_uri(base=BASE, sscc=sscc, key=KEY),
        from_site="XS Medical Cell Manufacturing, Shenzhen",
        to_site="Ruijin Hospital Cell Therapy Unit, Shanghai",
        storage_limit="Store at or below -150 °C (vapour phase of LN2)",
        contents_count=12,
        product_name="XS228 Cell Injection",
        lot=LOT,
    )
    return dataclasses.replace(label, **changes)  # type: ignore[arg-type]


SVG_NS = "http://www.w3.org/2000/svg"


# zplkit draws text from bitmap strikes captured from real printers, which lack "°" and "—";
# Zebra's resident fonts have both (code page 1252). ZPL read-backs use ASCII text for that.
ASCII_TEXT = {
    "storage_condition": "LN2 vapour, at or below -150 C",
    "storage_limit_c": None,
    "statement": "Caution: New Drug - Limited by Federal (or United States) law to "
    "investigational use.",
}


def assert_reads_back_as(barcode: zxingcpp.Barcode, label: VialLabel) -> None:
    assert barcode.bytes == label.payload.encode("ascii")
    values = {
        element.ai.ai: element.value
        for element in GS1DigitalLinkURI.parse(barcode.text).element_strings
    }
    assert values == {"01": GTIN, "10": label.lot, "21": label.serial, "17": f"{EXPIRY:%y%m%d}"}


def pdf_text(data: bytes) -> str:
    document = pdfium.PdfDocument(data)
    try:
        return "\n".join(page.get_textpage().get_text_range() for page in document)
    finally:
        document.close()


def zpl_image(zpl: bytes, dpi: int, index: int = 0) -> Image.Image:
    document = zplkit.render(zpl, zplkit.Options(profile="specification", dpi=dpi))
    raster = document.labels[index].rasterize()
    return Image.frombytes("L", (raster.width, raster.height), raster.pixels)


# Every format decodes


@pytest.mark.parametrize("dpi", [203, 300])
def test_a_vial_png_decodes_to_its_payload_byte_for_byte(dpi: int) -> None:
    label = a_vial_label()
    image = Image.open(io.BytesIO(render([label], "png", dpi=dpi)))
    assert image.size == (round(38 / 25.4 * dpi), round(13 / 25.4 * dpi))
    [barcode] = decoded(image)
    assert_reads_back_as(barcode, label)


def test_a_vial_svg_rasterised_decodes_to_its_payload() -> None:
    label = a_vial_label(quarantined=True)
    png = resvg_py.svg_to_bytes(
        svg_string=render([label], "svg").decode("utf-8"),
        dpi=300,
        skip_system_fonts=True,
        font_files=[str(path) for path in FONT_FILES.values()],
    )
    [barcode] = decoded(Image.open(io.BytesIO(bytes(png))))
    assert_reads_back_as(barcode, label)


def test_a_roll_pdf_has_one_label_sized_page_per_vial_and_each_decodes() -> None:
    labels = [a_vial_label(number) for number in (1, 2, 3)]
    pages = pdf_pages(render(labels, "pdf", layout="roll"))
    assert [page.size for page in pages] == [(449, 154)] * 3
    for page, label in zip(pages, labels, strict=True):
        [barcode] = decoded(page)
        assert_reads_back_as(barcode, label)


@pytest.mark.parametrize("layout", ["a4", "letter"])
def test_every_label_on_an_office_sheet_decodes(layout: str) -> None:
    labels = [a_vial_label(number) for number in range(1, 31)]
    [page] = pdf_pages(render(labels, "pdf", layout=layout))
    by_payload = {label.payload: label for label in labels}
    barcodes = decoded(page)
    assert sorted(barcode.text for barcode in barcodes) == sorted(by_payload)
    for barcode in barcodes:
        assert_reads_back_as(barcode, by_payload[barcode.text])


@pytest.mark.parametrize("dpi", [203, 300])
def test_zpl_rendered_offline_decodes_to_its_payload(dpi: int) -> None:
    labels = [a_vial_label(number, quarantined=number == 2, **ASCII_TEXT) for number in (1, 2)]
    zpl = render(labels, "zpl", dpi=dpi)
    for index, label in enumerate(labels):
        image = zpl_image(zpl, dpi, index)
        assert image.size == (round(38 / 25.4 * dpi), round(13 / 25.4 * dpi))
        [barcode] = decoded(image)
        assert_reads_back_as(barcode, label)


def test_a_shipper_label_decodes_in_every_format() -> None:
    label = a_shipper_label(quarantined=True)
    ascii_label = dataclasses.replace(
        label, storage_limit="Store at or below -150 C", statement=ASCII_TEXT["statement"]
    )
    images = [
        Image.open(io.BytesIO(render([label], "png", dpi=203))),
        pdf_pages(render([label], "pdf", layout="a4"), dpi=150)[0],
        zpl_image(render([ascii_label], "zpl", dpi=203), 203),
    ]
    for image in images:
        [barcode] = decoded(image)
        assert barcode.bytes == label.payload.encode("ascii")
        assert GS1DigitalLinkURI.parse(barcode.text).element_strings[0].value == label.sscc


# ZPL structure


@pytest.mark.parametrize(("dpi", "width", "length"), [(203, 304, 104), (300, 449, 154)])
def test_zpl_sets_utf8_label_size_and_sends_the_qr_as_a_bitmap(
    dpi: int, width: int, length: int
) -> None:
    label = a_vial_label()
    zpl = render([label], "zpl", dpi=dpi).decode("utf-8")
    assert zpl.startswith("^XA\n^CI28\n")
    assert f"^PW{width}\n^LL{length}\n" in zpl
    assert "^GFA," in zpl
    assert "^BQ" not in zpl  # the printer never re-encodes the payload with its own modes
    assert zpl.rstrip().endswith("^XZ")


@pytest.mark.parametrize("profile", ["specification", "zd621"])
@pytest.mark.parametrize("dpi", [203, 300])
def test_the_vial_qr_keeps_four_modules_of_quiet_zone_as_a_zebra_prints_it(
    profile: str, dpi: int
) -> None:
    label = a_vial_label(**ASCII_TEXT)
    zpl = render([label], "zpl", dpi=dpi)
    raster = zplkit.render(zpl, zplkit.Options(profile=profile, dpi=dpi)).labels[0].rasterize()
    image = Image.frombytes("L", (raster.width, raster.height), raster.pixels)
    pixels = image.load()
    dark = [[pixels[x, y] < 128 for x in range(raster.width)] for y in range(raster.height)]
    symbol = drawing(label, dpi).symbol
    dots = symbol.fit.dots
    right = round((symbol.x + symbol.fit.modules * symbol.module) * dpi / 25.4) + 2
    rows = [y for y in range(raster.height) if any(dark[y][:right])]
    columns = [x for x in range(right) if any(dark[y][x] for y in range(raster.height))]
    # ISO/IEC 18004: four modules of light margin on every side, measured on the printout.
    assert rows[0] / dots >= 4
    assert (raster.height - 1 - rows[-1]) / dots >= 4
    assert columns[0] / dots >= 4
    [barcode] = decoded(image)
    assert barcode.bytes == label.payload.encode("ascii")


def test_zpl_keeps_a_label_per_format_and_escapes_printer_control_characters() -> None:
    labels = [a_vial_label(1, product_name="Cells ^XZ ~JA"), a_vial_label(2)]
    zpl = render(labels, "zpl").decode("utf-8")
    assert zpl.count("^XA") == zpl.count("^XZ") == 2
    assert r"Cells \5EXZ \7EJA" in zpl


def test_zebra_printers_only_print_at_203_or_300_dpi() -> None:
    with pytest.raises(ValueError, match="203 or 300"):
        render([a_vial_label()], "zpl", dpi=600)


# What the label says


# Every required element, read back in full from each format's own text.
REQUIRED = (
    "XS228 Cell Injection",
    f"LOT {LOT}",
    f"SN {LOT}-V0001",
    "EXP 2027-10-12",
    "10,000,000 cells/vial",
    "≤ −150 °C vapour LN2",
    "Investigational use only",
)


def svg_text(data: bytes) -> list[str]:
    root = ET.fromstring(data)  # noqa: S314 - the SVG celltrail itself just rendered
    return [element.text or "" for element in root.iter(f"{{{SVG_NS}}}text")]


def zpl_fields(data: bytes) -> list[str]:
    fields = re.findall(r"\^FD(.*?)\^FS", data.decode("utf-8"), flags=re.S)
    return [re.sub(r"\\([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), f) for f in fields]


@pytest.mark.parametrize("fmt", ["pdf", "svg", "zpl"])
def test_a_vial_label_prints_every_required_element_in_full(fmt: str) -> None:
    data = render([a_vial_label()], fmt)
    if fmt == "pdf":
        lines = pdf_text(data).splitlines()
    elif fmt == "svg":
        lines = svg_text(data)
    else:  # Zebra's resident fonts have "°" but not "≤" or "−": their ASCII spelling
        lines = zpl_fields(data)
    for element in REQUIRED:
        expected = element.replace("≤", "<=").replace("−", "-") if fmt == "zpl" else element
        assert expected in lines, (element, lines)
    assert not any(line.endswith("...") for line in lines)


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(alphabet=string.ascii_letters + string.digits + " +()", min_size=1, max_size=70)
    .map(str.strip)
    .filter(bool)
)
def test_a_product_name_is_printed_in_full_or_the_label_is_refused(name: str) -> None:
    refusal, data = None, b""
    try:
        data = render([a_vial_label(product_name=name)], "pdf")
    except LabelDoesNotFitError as refused:
        refusal = str(refused)
    if refusal is not None:
        assert "does not fit the 38 x 13 mm vial label" in refusal
        # Refused only when too wide: the text column is over 20 mm beside the QR.
        assert measure(name, MIN_VIAL_PT, bold=True) > 20.0
    else:
        assert name in pdf_text(data).splitlines()


def test_the_full_product_name_of_xs228_does_not_fit_and_is_refused_naming_it() -> None:
    long_name = "XS228 Cell Injection (iPSC-derived spinal neural progenitor cells)"
    with pytest.raises(LabelDoesNotFitError, match="give the product a shorter label name"):
        render([a_vial_label(product_name=long_name)], "pdf")


def test_a_shipper_label_carries_the_full_investigational_statement() -> None:
    text = " ".join(pdf_text(render([a_shipper_label()], "pdf")).split())
    assert INVESTIGATIONAL_STATEMENT in text
    for fact in ("Shipper DS-0042", "Ruijin Hospital", "12 vials", "(00) 0950600000000"):
        assert fact in text


def test_a_quarantined_vial_label_says_quarantine_and_a_released_one_does_not() -> None:
    quarantined = pdf_text(render([a_vial_label(quarantined=True)], "pdf"))
    released = pdf_text(render([a_vial_label()], "pdf"))
    assert ("QUARANTINE" in quarantined, "QUARANTINE" in released) == (True, False)


def test_the_quarantine_mark_is_a_black_band_across_the_vial_label() -> None:
    def ink(label: VialLabel) -> float:
        image = Image.open(io.BytesIO(render([label], "png", dpi=300))).convert("L")
        band = image.crop((image.width - 25, 0, image.width, image.height))
        return sum(band.histogram()[:128]) / (band.width * band.height)

    assert ink(a_vial_label(quarantined=True)) > 0.6
    assert ink(a_vial_label()) < 0.05


def test_zpl_prints_quarantine_reversed_out_of_a_black_band() -> None:
    zpl = render([a_vial_label(quarantined=True)], "zpl").decode("utf-8")
    assert re.search(r"\^GB\d+,\d+,\d+\^FS", zpl)
    assert "^FR^FH\\^FDQUARANTINE^FS" in zpl


# The QR's size and error correction


def test_the_vial_qr_gets_the_highest_error_correction_that_keeps_modules_printable() -> None:
    # The realistic payload: a 29-character base, a lot like XS228-2610-01, a 19-character
    # serial. At 300 dpi a 0.25 mm module is 3 dots; the 13 mm label height holds
    # 153 dots = 51 modules with the 4-module quiet zones, so version 6 (41) at most.
    payload = a_vial_label().payload
    chosen = fit(payload, VIAL_SIZE[1], 300)
    assert (chosen.ec, chosen.version, chosen.dots) == ("M", 6, 3)
    one_level_up = version_for(payload, "Q")
    dots_at_q = 153 // (17 + 4 * one_level_up + 2 * QUIET_MODULES)
    assert dots_at_q * 25.4 / 300 < MIN_MODULE_MM


@pytest.mark.parametrize("dpi", [203, 300])
def test_the_printed_vial_qr_really_is_at_level_m_with_modules_of_a_quarter_millimetre(
    dpi: int,
) -> None:
    image = Image.open(io.BytesIO(render([a_vial_label()], "png", dpi=dpi)))
    [barcode] = decoded(image)
    module_mm = drawing(a_vial_label(), dpi).symbol.module
    assert (barcode.ec_level, round(module_mm, 2)) == ("M", 0.25)


def test_a_payload_too_long_for_the_vial_label_is_refused_with_a_sentence() -> None:
    label = a_vial_label(payload=a_vial_label().payload + "&x=" + "y" * 150)
    with pytest.raises(LabelTooSmallError, match="does not fit a 13 mm QR area"):
        render([label], "png")


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + "/:.?=&%-_", max_size=200))
def test_the_cached_version_is_the_version_qrcode_itself_picks(payload: str) -> None:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(payload)
    assert version_for(payload, "M") == code.best_fit()


# The entry point


def test_progress_is_reported_after_every_label() -> None:
    seen: list[tuple[int, int]] = []
    labels = [a_vial_label(number) for number in (1, 2, 3)]
    render(labels, "pdf", progress=lambda done, total: seen.append((done, total)))
    render(labels, "zpl", progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)] * 2


def test_png_and_svg_hold_exactly_one_label() -> None:
    with pytest.raises(ValueError, match="holds one label"):
        render([a_vial_label(1), a_vial_label(2)], "svg")


def test_vial_and_shipper_labels_are_not_mixed_in_one_document() -> None:
    with pytest.raises(ValueError, match="render them separately"):
        render([a_vial_label(), a_shipper_label()], "pdf")


def test_each_format_names_its_media_type() -> None:
    assert [media_type(fmt) for fmt in ("png", "svg", "pdf", "zpl")] == [
        "image/png",
        "image/svg+xml",
        "application/pdf",
        "application/vnd.zebra.zpl",
    ]
