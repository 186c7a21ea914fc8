"""The shipper's GS1 logistic label through the API, read back by zxing-cpp: the SSCC as
GS1-128 for AI (00) and as the authenticated QR, in every format, at 203 and 300 dpi."""

from __future__ import annotations

import io
import re

import pytest
import resvg_py
import zplkit
import zxingcpp
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import update

from labels.layout import FONT_FILES
from labels.payload import shipper_uri
from lots.models import Site
from tests.worlds.labels import BASE, NEW_KEY, pdf_pages, scan
from tests.worlds.pages import sign_in

RELEASED = "XS228-2610-01"


@pytest.fixture
def sscc(client, auth_headers) -> str:
    """A shipment of two released vials from the manufacturer to the SYSU3 pharmacy."""
    made = client.post(
        "/api/v1/shipments",
        json={"to_site": "SYSU3-PH", "hold_time_hours": 72, "asset_id": "DS-31"},
        headers=auth_headers("manufacturing"),
    )
    assert made.status_code == 201, made.json
    number = made.json["sscc"]
    serials = [f"{RELEASED}-V0020", f"{RELEASED}-V0021"]
    packed = client.post(
        f"/api/v1/shipments/{number}/vials",
        json={"serials": serials},
        headers=auth_headers("manufacturing"),
    )
    assert packed.status_code == 200, packed.json
    return number


def label(client, auth_headers, sscc, username="manufacturing", **query):
    return client.get(
        f"/api/v1/shipments/{sscc}/label", query_string=query, headers=auth_headers(username)
    )


def images(response, fmt: str, dpi: int) -> list[Image.Image]:
    data = response.get_data()
    if fmt == "pdf":
        return pdf_pages(data, dpi)
    if fmt == "png":
        return [Image.open(io.BytesIO(data))]
    png = resvg_py.svg_to_bytes(
        svg_string=data.decode(),
        dpi=dpi,
        skip_system_fonts=True,
        font_files=[str(path) for path in FONT_FILES.values()],
    )
    return [Image.open(io.BytesIO(bytes(png)))]


@pytest.mark.parametrize("dpi", [203, 300])
@pytest.mark.parametrize("fmt", ["pdf", "png", "svg"])
def test_the_sscc_reads_back_as_gs1_128_and_as_the_authenticated_qr(
    client, auth_headers, sscc, fmt, dpi
):
    response = label(client, auth_headers, sscc, format=fmt, dpi=dpi)
    assert response.status_code == 200, response.get_data(as_text=True)
    (image,) = images(response, fmt, dpi)
    found = {
        barcode.format: barcode
        for barcode in zxingcpp.read_barcodes(
            image, formats=(zxingcpp.BarcodeFormat.Code128, zxingcpp.BarcodeFormat.QRCode)
        )
    }
    linear = found[zxingcpp.BarcodeFormat.Code128]
    assert (linear.content_type, linear.text) == (zxingcpp.ContentType.GS1, f"(00){sscc}")
    qr = found[zxingcpp.BarcodeFormat.QRCode]
    assert qr.text == shipper_uri(base=BASE, sscc=sscc, key=NEW_KEY)
    assert scan(client, auth_headers, qr.text)["kind"] == "shipper"


def test_the_label_prints_route_storage_contents_and_the_full_statement(client, auth_headers, sscc):
    response = label(client, auth_headers, sscc, format="pdf")
    text = " ".join(PdfReader(io.BytesIO(response.get_data())).pages[0].extract_text().split())
    for element in (
        "Shipper DS-31",
        "Third Affiliated Hospital of Sun Yat-sen University",
        "2 vials",
        RELEASED,
        f"(00) {sscc}",
        "Caution: New Drug — Limited by Federal (or United States) law to investigational use.",
    ):
        assert element in text, element
    assert response.headers["Content-Disposition"] == f'inline; filename="{sscc}-label.pdf"'


@pytest.mark.parametrize("dpi", [203, 300])
def test_the_zpl_label_decodes_as_a_zebra_zd621_prints_it(client, auth_headers, sscc, dpi):
    zpl = label(client, auth_headers, sscc, format="zpl", dpi=dpi).get_data()
    assert zpl.count(b"^GB") > 25  # the GS1-128 bars as boxes of whole printer dots
    assert "Store at or below -150 °C".encode() in zpl
    # zplkit draws text from bitmap strikes captured from printers, which lack the "°" and
    # "—" that Zebra's resident fonts print: those glyphs are blanked for the read-back.
    printable = zpl.replace("°".encode(), b" ").replace("—".encode(), b"-")
    printed = zplkit.render(printable, zplkit.Options(profile="zd621", dpi=dpi))
    raster = printed.labels[0].rasterize()
    image = Image.frombytes("L", (raster.width, raster.height), raster.pixels)
    (linear,) = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.Code128)
    assert (linear.content_type, linear.text) == (zxingcpp.ContentType.GS1, f"(00){sscc}")


def test_each_print_is_recorded_on_the_shipment_chain(client, auth_headers, sscc):
    label(client, auth_headers, sscc, format="pdf")
    chain = client.get(f"/api/v1/ledger/chains/shipment:{sscc}", headers=auth_headers("qa")).json
    assert chain[-1]["type"] == "SHIPPER_LABEL_PRINTED"
    assert chain[-1]["body"]["payload"]["format"] == "pdf"


@pytest.mark.parametrize(
    "case",
    [
        ("amu-pharmacist", {"format": "pdf"}, 404),  # another site's shipment
        ("manufacturing", {"format": "gif"}, 422),
        ("manufacturing", {"format": "zpl", "dpi": 150}, 422),
    ],
)
def test_a_label_that_cannot_be_printed_is_refused(client, auth_headers, sscc, case):
    who, query, status = case
    response = label(client, auth_headers, sscc, who, **query)
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"


def test_the_shipment_page_links_the_label_and_a_signed_in_browser_prints_it(client, sscc):
    sign_in(client, "manufacturing")
    page = client.get(f"/shipments/{sscc}").get_data(as_text=True)
    link = re.search(r'href="([^"]+)" data-testid="shipper-label"', page).group(1)
    printed = client.get(link.replace("&amp;", "&"))
    assert (printed.status_code, printed.mimetype) == (200, "application/pdf")


def test_a_label_with_no_room_left_for_the_gs1_128_symbol_is_refused_and_not_recorded(
    client, auth_headers, sscc, session
):
    long_name = " ".join(["Third Affiliated Hospital of Sun Yat-sen University"] * 3)
    session.execute(
        update(Site).where(Site.code.in_(["SYSU3-PH", "XSM-SZ"])).values(name=long_name)
    )
    session.commit()
    chain = f"/api/v1/ledger/chains/shipment:{sscc}"
    before = len(client.get(chain, headers=auth_headers("qa")).json)
    response = label(client, auth_headers, sscc, format="pdf")
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.json["detail"].startswith(f"The label of shipper {sscc} cannot be rendered:")
    assert "GS1-128 SSCC symbol needs 12.7 mm of height" in response.json["detail"]
    assert len(client.get(chain, headers=auth_headers("qa")).json) == before
