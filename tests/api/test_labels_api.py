"""Vial labels through the API, read back by zxing-cpp and biip; reconciliation; and scans of
what a phone camera, a DataMatrix scanner and a person typing send."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
import resvg_py
import zplkit
from biip.gs1_digital_link_uris import GS1DigitalLinkURI
from PIL import Image
from pypdf import PdfReader
from sqlalchemy import func, select

from custody.manufacturing import LabelPrint, LabelPrintJob
from labels.layout import FONT_FILES
from labels.payload import shipper_uri, sscc_from, subject_uri, vial_uri
from tests.api.test_auth import XS228_V2
from tests.worlds.api import COUNTED, make_lot, recall, release, scalar
from tests.worlds.labels import (
    BASE,
    EXPIRY,
    FIRST,
    NEW_KEY,
    OLD_KEY,
    QUARANTINED,
    RELEASED,
    UCMSC_GTIN,
    XS228_GTIN,
    decoded,
    pdf_pages,
    scan,
)
from tests.worlds.pages import sign_in

GS = "\x1d"
COUNTED_HERE = {**COUNTED, "label_print_jobs": LabelPrintJob, "label_prints": LabelPrint}


def row_counts(app) -> dict[str, int]:
    return {
        name: scalar(app, select(func.count()).select_from(model))
        for name, model in COUNTED_HERE.items()
    }


def print_labels(client, auth_headers, number=RELEASED, username="qa", **params):
    params.setdefault("format", "pdf")
    return client.get(
        f"/api/v1/lots/{number}/labels", query_string=params, headers=auth_headers(username)
    )


def reconciliation(client, auth_headers, number=RELEASED, username="qa"):
    response = client.get(
        f"/api/v1/lots/{number}/labels/reconciliation", headers=auth_headers(username)
    )
    assert response.status_code == 200, response.json
    return response.json


def uri_of(serial=FIRST, *, lot=RELEASED, gtin=XS228_GTIN, expiry=EXPIRY, key=NEW_KEY) -> str:
    return vial_uri(base=BASE, gtin=gtin, lot=lot, serial=serial, expiry=expiry, key=key)


def element_string(serial=FIRST, *, lot=RELEASED, gtin=XS228_GTIN, expiry=EXPIRY) -> str:
    """What a DataMatrix handheld sends: the AIM prefix, fixed-length AIs, GS after a lot."""
    return f"]d201{gtin}17{expiry:%y%m%d}10{lot}{GS}21{serial}"


def parsed(text: str) -> dict[str, str]:
    return {e.ai.ai: e.value for e in GS1DigitalLinkURI.parse(text).element_strings}


def png_of(response) -> Image.Image:
    return Image.open(io.BytesIO(response.get_data()))


def svg_raster(svg: str) -> Image.Image:
    png = resvg_py.svg_to_bytes(
        svg_string=svg,
        dpi=300,
        skip_system_fonts=True,
        font_files=[str(path) for path in FONT_FILES.values()],
    )
    return Image.open(io.BytesIO(bytes(png)))


def black_band(image: Image.Image) -> float:
    """The share of dark pixels at the label's right edge, where the QUARANTINE band goes."""
    grey = image.convert("L")
    band = grey.crop((grey.width - 25, 0, grey.width, grey.height))
    return sum(band.histogram()[:128]) / (band.width * band.height)


# --- every format decodes ---------------------------------------------------------------


def test_the_released_demo_lot_prints_as_a_pdf_whose_first_label_reads_back_as_its_vial(
    client, auth_headers
):
    response = print_labels(client, auth_headers, format="pdf", layout="roll")
    pages = pdf_pages(response.get_data())
    [barcode] = decoded(pages[0])
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == f'inline; filename="{RELEASED}-labels.pdf"'
    assert len(pages) == 24
    assert barcode.bytes == uri_of().encode("ascii")
    assert parsed(barcode.text) == {
        "01": XS228_GTIN,
        "10": RELEASED,
        "21": FIRST,
        "17": f"{EXPIRY:%y%m%d}",
    }


def test_the_lots_expiry_is_the_one_on_the_label(client, auth_headers):
    lot = client.get(f"/api/v1/lots/{RELEASED}", headers=auth_headers("qa")).json
    assert lot["expires_on"] == EXPIRY.isoformat()


def test_every_label_of_the_lot_on_an_a4_sheet_decodes(client, auth_headers):
    response = print_labels(client, auth_headers, format="pdf", layout="a4")
    [page] = pdf_pages(response.get_data())
    texts = sorted(barcode.text for barcode in decoded(page))
    assert texts == sorted(uri_of(f"{RELEASED}-V{n:04d}") for n in range(1, 25))


@pytest.mark.parametrize("dpi", [203, 300])
def test_the_lot_prints_as_zpl_whose_labels_decode_on_a_zd621_to_each_payload(
    client, auth_headers, dpi
):
    response = print_labels(client, auth_headers, format="zpl", dpi=dpi)
    zpl = response.get_data(as_text=True)
    assert response.mimetype == "application/vnd.zebra.zpl"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="{RELEASED}-labels.zpl"'
    )
    assert zpl.count("^XA") == 24
    assert zpl.count("^CI28") == 24
    assert re.search(r"\^PW\d+\n\^LL\d+\n", zpl)
    assert "QUARANTINE" not in zpl
    printed = zplkit.render(
        zpl.replace("°", " ").replace("≤", "<").encode(), zplkit.Options(profile="zd621", dpi=dpi)
    )
    for number in (1, 24):
        raster = printed.labels[number - 1].rasterize()
        image = Image.frombytes("L", (raster.width, raster.height), raster.pixels)
        [barcode] = decoded(image)
        assert barcode.text == uri_of(f"{RELEASED}-V{number:04d}")


def test_one_vials_label_as_png_decodes_to_its_uri(client, auth_headers):
    response = print_labels(client, auth_headers, format="png", serial=FIRST)
    [barcode] = decoded(png_of(response))
    assert (response.status_code, response.mimetype) == (200, "image/png")
    assert response.headers["Content-Disposition"] == f'inline; filename="{FIRST}-label.png"'
    assert barcode.bytes == uri_of().encode("ascii")


def test_one_vials_label_as_svg_rasterised_decodes_to_its_uri(client, auth_headers):
    serial = f"{RELEASED}-V0007"
    response = print_labels(client, auth_headers, format="svg", serial=serial)
    [barcode] = decoded(svg_raster(response.get_data(as_text=True)))
    assert response.mimetype == "image/svg+xml"
    assert barcode.text == uri_of(serial)
    assert parsed(barcode.text)["21"] == serial


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_a_png_or_svg_names_exactly_one_vial_and_a_refusal_records_nothing(
    client, auth_headers, app, fmt
):
    before = row_counts(app)
    alone = print_labels(client, auth_headers, format=fmt)
    two = print_labels(client, auth_headers, format=fmt, serial=[FIRST, f"{RELEASED}-V0002"])
    assert (alone.status_code, list(alone.json["errors"])) == (422, ["serial"])
    assert (two.status_code, list(two.json["errors"])) == (422, ["serial"])
    assert row_counts(app) == before


def test_a_serial_of_another_lot_is_not_printed(client, auth_headers):
    response = print_labels(client, auth_headers, serial=f"{QUARANTINED}-V0001")
    assert response.status_code == 422
    assert response.json["errors"]["serial"] == [
        f"Not vials of lot {RELEASED}: {QUARANTINED}-V0001."
    ]


# --- which lots print -------------------------------------------------------------------


def test_a_quarantined_lot_prints_with_a_visible_quarantine_mark(client, auth_headers):
    serial = f"{QUARANTINED}-V0001"
    quarantined = png_of(
        print_labels(client, auth_headers, QUARANTINED, format="png", serial=serial)
    )
    released = png_of(print_labels(client, auth_headers, format="png", serial=FIRST))
    zpl = print_labels(
        client, auth_headers, QUARANTINED, format="zpl", reason="The sample label went to QC."
    ).get_data(as_text=True)
    [barcode] = decoded(quarantined)
    assert (black_band(quarantined) > 0.6, black_band(released) < 0.05) == (True, True)
    assert parsed(barcode.text)["21"] == serial
    assert zpl.count("^FR^FH\\^FDQUARANTINE^FS") == 24


def test_a_rejected_lot_does_not_print(client, auth_headers, app):
    rejected = release(
        client,
        auth_headers,
        QUARANTINED,
        decision="reject",
        meaning="Rejected (QA)",
        reason="Freezer excursion to -120 °C during storage.",
    )
    assert rejected.status_code == 201
    before = row_counts(app)
    response = print_labels(client, auth_headers, QUARANTINED)
    assert (response.status_code, response.json["title"]) == (409, "Lot not printable")
    assert response.json["detail"] == (
        f"Lot {QUARANTINED} is rejected: only released or quarantined lots print labels."
    )
    assert row_counts(app) == before


def test_a_recalled_lot_does_not_print(client, auth_headers, app):
    assert recall(client, auth_headers, "lot", RELEASED).status_code == 201
    before = row_counts(app)
    response = print_labels(client, auth_headers, format="zpl")
    assert (response.status_code, response.json["title"]) == (409, "Lot not printable")
    assert row_counts(app) == before


def test_a_lot_still_in_process_does_not_print(client, auth_headers):
    make_lot(client, auth_headers, "XS228-T1")
    response = print_labels(client, auth_headers, "XS228-T1", username="manufacturing")
    assert (response.status_code, response.json["title"]) == (409, "Lot not printable")


def test_an_unknown_lot_is_404(client, auth_headers):
    assert print_labels(client, auth_headers, "XS228-9999-99").status_code == 404


def test_a_manufacturer_at_another_site_finds_no_such_lot(client, auth_headers):
    created = client.post(
        "/api/v1/users",
        json={
            "username": "amu-maker",
            "full_name": "Ma Ke",
            "role": "manufacturing",
            "site": "AMU-CTC",
            "password": "amu-maker-demo-2026",
        },
        headers=auth_headers("admin"),
    )
    token = client.post(
        "/api/v1/auth/tokens", json={"username": "amu-maker", "password": "amu-maker-demo-2026"}
    ).json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    hidden = client.get(f"/api/v1/lots/{RELEASED}/labels?format=pdf", headers=headers)
    missing = client.get("/api/v1/lots/XS228-9999-99/labels?format=pdf", headers=headers)
    assert created.status_code == 201
    assert (hidden.status_code, missing.status_code) == (404, 404)
    assert hidden.json["detail"] == missing.json["detail"].replace("XS228-9999-99", RELEASED)


def test_only_manufacturing_and_qa_print_labels(client, auth_headers, app):
    before = row_counts(app)
    statuses = {
        username: print_labels(client, auth_headers, username=username, format="zpl").status_code
        for username in ("qc", "courier", "pharmacist", "auditor", "admin")
    }
    assert set(statuses.values()) == {403}
    assert print_labels(client, auth_headers, username="manufacturing").status_code == 200
    assert row_counts(app)["label_print_jobs"] == before["label_print_jobs"] + 1


def test_a_signed_in_browser_prints_from_celltrails_pages_but_not_from_another_sites_link(
    client, app
):
    sign_in(client, "qa")
    url = f"/api/v1/lots/{RELEASED}/labels?format=zpl&serial={FIRST}"
    before = row_counts(app)
    lured = client.get(url, headers={"Sec-Fetch-Site": "cross-site"})
    assert (lured.status_code, row_counts(app)) == (400, before)
    own = client.get(url, headers={"Sec-Fetch-Site": "same-origin"})
    assert own.status_code == 200
    assert row_counts(app)["label_print_jobs"] == before["label_print_jobs"] + 1


# --- reprints and reconciliation --------------------------------------------------------


def test_a_second_print_without_a_reason_is_refused_naming_the_vials_and_records_nothing(
    client, auth_headers, app
):
    assert print_labels(client, auth_headers, format="zpl").status_code == 200
    before = row_counts(app)
    response = print_labels(client, auth_headers, format="pdf", serial=[FIRST])
    blank = print_labels(client, auth_headers, format="pdf", serial=[FIRST], reason="   ")
    assert (response.status_code, response.json["title"]) == (409, "Reprint needs a reason")
    assert response.json["errors"]["reason"] == [
        f"1 vial(s) of lot {RELEASED} already have a label ({FIRST}); a reprint states its reason."
    ]
    assert blank.status_code == 409
    assert row_counts(app) == before


def test_a_reprint_with_a_reason_replaces_the_live_labels_and_the_lot_reconciles(
    client, auth_headers
):
    print_labels(client, auth_headers, format="zpl")
    reason = "Labels smudged by frost in the rate-controlled freezer."
    reprint = print_labels(client, auth_headers, format="pdf", layout="a4", reason=reason)
    result = reconciliation(client, auth_headers)
    first, second = result["print_jobs"]
    assert reprint.status_code == 200
    assert reprint.headers["X-Label-Print-Job"] == str(second["id"])
    assert {key: result[key] for key in ("vials", "labels_printed", "reprints")} == {
        "vials": 24,
        "labels_printed": 48,
        "reprints": 24,
    }
    assert (result["reconciled"], result["unlabelled"], result["several_live"]) == (True, [], [])
    assert (first["format"], first["reason"], first["reprinted"], first["labels"]) == (
        "zpl",
        None,
        0,
        24,
    )
    assert (second["format"], second["layout"], second["reason"], second["reprinted"]) == (
        "pdf",
        "a4",
        reason,
        24,
    )
    assert (second["printed_by"], second["printed_by_name"]) == ("qa", "Li Wei")
    assert second["serials"][0] == FIRST
    assert len(second["serials"]) == 24


def test_a_reprint_supersedes_the_label_it_replaces_and_the_reprint_scans_as_authentic(
    client, auth_headers
):
    [old] = decoded(png_of(print_labels(client, auth_headers, format="png", serial=FIRST)))
    again = print_labels(client, auth_headers, format="png", serial=FIRST, reason="Smudged.")
    [new] = decoded(png_of(again))
    assert new.text != old.text
    superseded = scan(client, auth_headers, old.text)
    assert (superseded["recognised"], superseded["problem"]) == (False, "label_superseded")
    assert superseded["reason"].startswith("Superseded label — use the reprint:")
    assert superseded["actions"] == []  # nothing may be done from a retired label
    live = scan(client, auth_headers, new.text)
    assert (live["recognised"], live["problem"], live["item"]["serial"]) == (True, None, FIRST)
    # A shipper's or another vial's code is judged as before: only this vial was reprinted.
    assert scan(client, auth_headers, uri_of(f"{RELEASED}-V0024"))["recognised"] is True


def test_reconciliation_flags_the_vials_left_without_a_label(client, auth_headers):
    unprinted = reconciliation(client, auth_headers)
    print_labels(client, auth_headers, format="zpl", serial=[FIRST, f"{RELEASED}-V0002"])
    partial = reconciliation(client, auth_headers)
    assert (unprinted["labels_printed"], len(unprinted["unlabelled"])) == (0, 24)
    assert unprinted["reconciled"] is False
    assert (partial["labels_printed"], partial["reconciled"]) == (2, False)
    assert partial["unlabelled"] == [f"{RELEASED}-V{n:04d}" for n in range(3, 25)]
    assert partial["print_jobs"][0]["serials"] == [FIRST, f"{RELEASED}-V0002"]


def test_a_print_is_a_ledger_event_on_the_lots_chain(client, auth_headers):
    print_labels(client, auth_headers, format="zpl", serial=[FIRST])
    events = client.get(f"/api/v1/lots/{RELEASED}/events", headers=auth_headers("qa")).json
    job = reconciliation(client, auth_headers)["print_jobs"][0]
    assert events[-1]["type"] == "LABELS_PRINTED"
    assert events[-1]["hash"] == job["event_hash"]


def test_the_reconciliation_of_a_lot_at_another_site_is_not_found(client, auth_headers):
    response = client.get(
        f"/api/v1/lots/{RELEASED}/labels/reconciliation", headers=auth_headers("courier")
    )
    assert response.status_code == 404


# --- scans ------------------------------------------------------------------------------


def test_a_camera_uri_a_datamatrix_element_string_the_printed_form_and_a_typed_serial_agree(
    client, auth_headers
):
    printed = print_labels(client, auth_headers, format="png", serial=FIRST)
    [barcode] = decoded(png_of(printed))
    forms = {
        "digital_link": barcode.text,
        "element_string": element_string(),
        "human_readable": f"(01){XS228_GTIN}(17){EXPIRY:%y%m%d}(10){RELEASED}(21){FIRST}",
        "typed": f"{FIRST}\r\n",  # a keyboard-wedge scanner ends with Enter
    }
    answers = {form: scan(client, auth_headers, code) for form, code in forms.items()}
    assert {form: answer["source"] for form, answer in answers.items()} == {
        form: form for form in forms
    }
    assert {answer["kind"] for answer in answers.values()} == {"vial"}
    assert {answer["recognised"] for answer in answers.values()} == {True}
    assert [answer["item"] for answer in answers.values()] == [answers["typed"]["item"]] * 4
    assert answers["typed"]["item"] == {
        "serial": FIRST,
        "lot": RELEASED,
        "product": "XS228",
        "product_name": "XS228 Cell Injection (iPSC-derived spinal neural progenitor cells)",
        "state": "in_stock",
        "lot_status": "released",
        "expires_on": EXPIRY.isoformat(),
        "expired": dt.datetime.now(dt.UTC).date() > EXPIRY,
    }
    assert answers["digital_link"]["authentication"] == "valid"
    assert answers["element_string"]["authentication"] == "missing"
    assert answers["digital_link"]["reason"] == (
        f"Vial {FIRST} of lot {RELEASED}: authentic celltrail label."
    )


def test_the_element_string_keeps_its_group_separators_through_the_json_body(client, auth_headers):
    without_gs = element_string().replace(GS, "")
    kept = scan(client, auth_headers, element_string())
    lost = scan(client, auth_headers, without_gs)
    assert kept["identifiers"]["lot"] == RELEASED
    assert lost["recognised"] is False  # without GS the lot swallows the serial's AI


def test_a_nul_in_the_scan_is_refused_and_an_overlong_scan_too(client, auth_headers):
    nul = client.post("/api/v1/scans", json={"code": f"{FIRST}\x00"}, headers=auth_headers("qa"))
    long = client.post("/api/v1/scans", json={"code": "9" * 2001}, headers=auth_headers("qa"))
    assert (nul.status_code, long.status_code) == (422, 422)


def test_a_forged_label_one_character_of_its_code_changed_is_flagged(client, auth_headers):
    genuine = uri_of()
    mac_start = genuine.index("ac=t1.") + len("ac=t1.")
    changed = "A" if genuine[mac_start] != "A" else "B"
    forged = genuine[:mac_start] + changed + genuine[mac_start + 1 :]
    answer = scan(client, auth_headers, forged)
    assert (answer["recognised"], answer["problem"]) == (False, "authentication_wrong")
    assert answer["authentication"] == "wrong"
    assert "altered or forged" in answer["reason"]
    assert (answer["item"], answer["actions"]) == (None, [])


def test_a_label_signed_with_the_previous_key_still_verifies(client, auth_headers):
    answer = scan(client, auth_headers, uri_of(key=OLD_KEY))
    assert (answer["recognised"], answer["authentication"], answer["key_id"]) == (
        True,
        "valid",
        "t0",
    )


def test_a_gtin_of_another_product_is_refused_for_that_vial(client, auth_headers):
    answer = scan(client, auth_headers, element_string(gtin=UCMSC_GTIN))
    assert (answer["recognised"], answer["problem"]) == (False, "gtin_not_the_vials_product")
    assert answer["reason"] == f"The GTIN {UCMSC_GTIN} is not the product of vial {FIRST}."


def test_a_serial_of_another_lot_is_refused(client, auth_headers):
    answer = scan(client, auth_headers, element_string(f"{QUARANTINED}-V0001"))
    assert (answer["recognised"], answer["problem"]) == (False, "serial_not_in_lot")
    assert answer["reason"] == f"Vial {QUARANTINED}-V0001 does not belong to lot {RELEASED}."


def test_an_unknown_serial_is_refused(client, auth_headers):
    answer = scan(client, auth_headers, element_string(f"{RELEASED}-V0999"))
    typed = scan(client, auth_headers, "XS228-0000-00-V0001")
    assert (answer["recognised"], answer["problem"]) == (False, "unknown_identifier")
    assert answer["reason"] == f"celltrail has no record of vial {RELEASED}-V0999."
    assert typed["reason"] == (
        "celltrail has no record of a vial, shipment or subject XS228-0000-00-V0001."
    )


def test_an_expiry_that_is_not_the_lots_is_refused(client, auth_headers):
    answer = scan(client, auth_headers, element_string(expiry=dt.date(2028, 10, 12)))
    assert (answer["recognised"], answer["problem"]) == (False, "expiry_not_the_lots")
    assert answer["reason"] == (
        f"The code gives expiry 2028-10-12, but lot {RELEASED} expires on 2027-10-12: the code "
        "is not this vial's, or was altered."
    )


def test_the_refusals_are_distinct(client, auth_headers):
    codes = [
        uri_of()[:-1] + ("A" if uri_of()[-1] != "A" else "B"),
        element_string(gtin=UCMSC_GTIN),
        element_string(f"{QUARANTINED}-V0001"),
        element_string(f"{RELEASED}-V0999"),
    ]
    answers = [scan(client, auth_headers, code) for code in codes]
    assert len({answer["problem"] for answer in answers}) == 4
    assert len({answer["reason"] for answer in answers}) == 4


def test_a_courier_elsewhere_scanning_a_manufacturers_vial_gets_the_unknown_answer(
    client, auth_headers
):
    # Decided: a vial whose lot has not reached the courier's site reads exactly like one
    # that does not exist, so a scan cannot probe another site's records. Once the vial's
    # chain has an event at the courier's site, the courier sees it.
    hidden = scan(client, auth_headers, uri_of(), username="courier")
    absent = scan(client, auth_headers, uri_of(f"{RELEASED}-V0999"), username="courier")
    assert hidden == {
        **absent,
        "reason": absent["reason"].replace("V0999", "V0001"),
        "identifiers": {**absent["identifiers"], "serial": FIRST},
    }
    assert (hidden["recognised"], hidden["problem"]) == (False, "unknown_identifier")


def test_a_shipper_sscc_answers_that_no_shipment_is_known(client, auth_headers):
    sscc = sscc_from("9506000", 42)
    answer = scan(client, auth_headers, shipper_uri(base=BASE, sscc=sscc, key=NEW_KEY))
    typed = scan(client, auth_headers, f"]d200{sscc}")
    assert (answer["kind"], answer["recognised"], answer["authentication"]) == (
        "shipper",
        False,
        "valid",
    )
    assert answer["reason"] == f"No shipment with SSCC {sscc} is known."
    assert typed["reason"] == answer["reason"]


def test_a_subject_wristband_answers_that_no_subject_is_known(client, auth_headers):
    code = subject_uri(base=BASE, key=NEW_KEY, subject="XS228-S-0107", trial="XS228-P1")
    answer = scan(client, auth_headers, code, username="clinician")
    assert (answer["kind"], answer["recognised"]) == ("subject", False)
    assert answer["reason"] == "No subject XS228-S-0107 in trial XS228-P1 is known."


@pytest.mark.parametrize(
    "code",
    [
        "",
        "]Q1",
        "]",
        "https://trail.example.org/01/09506000100105/21/X?ac=t1.AAAAAAAAAAAAA",
        "(01)123",
        "https://[broken/01/x",
        "\x1d\x1d\x04",
        "ünïcode ☃",
    ],
)
def test_anything_unreadable_answers_with_a_sentence_never_a_500(client, auth_headers, code):
    answer = scan(client, auth_headers, code)
    assert (answer["recognised"], answer["item"]) == (False, None)
    assert answer["problem"] is not None
    assert answer["reason"][0].isupper()


def test_a_scan_records_nothing(client, auth_headers, app):
    before = row_counts(app)
    scan(client, auth_headers, uri_of())
    scan(client, auth_headers, element_string(gtin=UCMSC_GTIN))
    assert row_counts(app) == before


# --- what the scanning user may do next --------------------------------------------------


def actions(answer) -> list[str]:
    return [action["action"] for action in answer["actions"]]


def test_qa_scanning_a_quarantined_vial_may_release_or_recall_its_lot(client, auth_headers):
    answer = scan(client, auth_headers, f"{QUARANTINED}-V0003")
    assert answer["item"]["lot_status"] == "quarantine"
    assert actions(answer) == [
        "view_vial",
        "view_lot",
        "print_label",
        "release_lot",
        "recall_lot",
    ]
    assert answer["actions"][3] == {
        "action": "release_lot",
        "method": "POST",
        "href": f"/api/v1/lots/{QUARANTINED}/release",
        "label": f"Release or reject lot {QUARANTINED}",
    }


def test_once_labelled_the_print_action_becomes_a_reprint(client, auth_headers):
    print_labels(client, auth_headers, format="zpl", serial=[FIRST])
    answer = scan(client, auth_headers, uri_of(), username="manufacturing")
    assert actions(answer) == ["view_vial", "view_lot", "reprint_label"]
    assert answer["actions"][0]["href"] == f"/vials/{FIRST}"
    # A reprint needs its reason: the lot page's label form, with this vial chosen.
    reprint = answer["actions"][2]["href"]
    assert reprint == f"/lots/{RELEASED}?reprint={FIRST}#labels"
    sign_in(client, "manufacturing")
    page = client.get(reprint).get_data(as_text=True)
    assert f'name="serials" value="{FIRST}"' in page


def test_an_auditor_may_only_look(client, auth_headers):
    answer = scan(client, auth_headers, uri_of(), username="auditor")
    assert actions(answer) == ["view_vial", "view_lot"]


def test_a_recalled_vial_offers_no_release_recall_or_print(client, auth_headers):
    recall(client, auth_headers, "lot", RELEASED)
    answer = scan(client, auth_headers, uri_of())
    assert answer["item"]["state"] == "quarantined"
    assert actions(answer) == ["view_vial", "view_lot"]


# --- previews ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_a_preview_records_nothing_says_preview_and_its_code_never_scans(
    client, auth_headers, app, fmt
):
    before = row_counts(app)
    response = print_labels(client, auth_headers, format=fmt, serial=FIRST, preview="1")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "X-Label-Print-Job" not in response.headers
    assert response.headers["Content-Disposition"].startswith('inline; filename="preview-')
    assert row_counts(app) == before  # no print job, no label, no ledger event
    if fmt == "png":
        [barcode] = decoded(png_of(response))
        code = barcode.text
    elif fmt == "svg":
        assert "PREVIEW" in response.get_data(as_text=True)
        [barcode] = decoded(svg_raster(response.get_data(as_text=True)))
        code = barcode.text
    else:
        assert "PREVIEW" in " ".join(pdf_text_of(response.get_data()))
        [barcode] = decoded(pdf_pages(response.get_data())[0])
        code = barcode.text
    assert "ac=" not in code
    refused = scan(client, auth_headers, code)
    assert (refused["recognised"], refused["problem"]) == (False, "authentication_missing")
    # A preview does not count as the vial's label: the first real print needs no reason.
    assert print_labels(client, auth_headers, format="png", serial=FIRST).status_code == 200


def test_a_preview_of_a_lot_that_does_not_print_is_refused(client, auth_headers, app):
    recall(client, auth_headers, "lot", RELEASED)
    response = print_labels(client, auth_headers, format="png", serial=FIRST, preview="1")
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"


def test_the_lot_and_vial_pages_show_the_label_preview_to_those_who_print(client):
    sign_in(client, "qa")
    for path in (f"/lots/{RELEASED}", f"/vials/{FIRST}"):
        page = client.get(path).get_data(as_text=True)
        src = re.search(r'<img src="([^"]+preview=1)"', page).group(1).replace("&amp;", "&")
        image = client.get(src)
        assert (image.status_code, image.mimetype) == (200, "image/png"), path
        assert decoded(Image.open(io.BytesIO(image.get_data())))
    sign_in(client, "qc")  # QC reads lots but prints no labels: no preview offered
    assert "preview=1" not in client.get(f"/vials/{FIRST}").get_data(as_text=True)


def pdf_text_of(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


def test_a_product_version_names_its_label_name_and_the_label_prints_it_in_full(
    client, auth_headers
):
    too_long = {**XS228_V2, "label_name": "X" * 41}
    refused = client.post(
        "/api/v1/products/XS228/versions", json=too_long, headers=auth_headers("qa")
    )
    assert (refused.status_code, list(refused.json["errors"])) == (422, ["label_name"])
    added = client.post(
        "/api/v1/products/XS228/versions",
        json={**XS228_V2, "label_name": "XS228 Injection"},
        headers=auth_headers("qa"),
    )
    assert (added.status_code, added.json["label_name"]) == (201, "XS228 Injection")
    versions = client.get("/api/v1/products/XS228/versions", headers=auth_headers("qa")).json
    assert [v["label_name"] for v in versions] == ["XS228 Cell Injection", "XS228 Injection"]
    # The demo lot was made under version 1: its labels keep version 1's label name.
    pdf = print_labels(client, auth_headers, format="pdf", serial=FIRST).get_data()
    assert "XS228 Cell Injection" in " ".join(pdf_text_of(pdf))
