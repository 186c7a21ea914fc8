"""The scan page and the shipment pages through the Flask test client: typed serials, scanned
links and shippers, taking custody, receiving, and pictures decoded by zxing-cpp."""

from __future__ import annotations

import io
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.keys import label_keys
from custody.ledger import chain_events
from custody.manufacturing import get_lot, lot_vials
from custody.shipping import create_shipment, pack_vials, seal, ship, vial_states
from labels.content import VialLabel
from labels.payload import vial_uri
from labels.render import render
from lots.accounts import get_user
from lots.base import utcnow
from lots.models import LoginAttempt
from tests.worlds.labels import decoded
from tests.worlds.pages import TOKEN, sign_in

BASE = "https://trail.example.org"
RELEASED = "XS228-2610-01"
VIAL = f"{RELEASED}-V0001"
SEAL = "SEAL-20261122-07"


def scan(client, code: str) -> str:
    response = client.get("/scan", query_string={"code": code})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def in_stock(db: Session, count: int) -> list[str]:
    """Serials of the released demo lot still in stock (demo shipments may use the first)."""
    vials = lot_vials(db, get_lot(db, RELEASED))
    states = vial_states(db, vials)
    return [vial.serial for vial in vials if states[vial.serial] == "in_stock"][-count:]


@pytest.fixture
def serials(app: Flask) -> list[str]:
    with app.extensions["celltrail.db"].sessions() as db:
        return in_stock(db, 3)


@pytest.fixture
def sscc(app: Flask, serials: list[str]) -> str:
    """A shipper of three released vials, sealed and shipped to the courier Kai Lin."""
    with app.extensions["celltrail.db"].sessions() as db:
        maker = get_user(db, "manufacturing")
        shipment = create_shipment(
            db, maker, to_site_code="SYSU3-PH", hold_time_hours=72, now=utcnow()
        )
        pack_vials(db, maker, shipment.sscc, serials, now=utcnow())
        seal(db, maker, shipment.sscc, SEAL, now=utcnow())
        ship(db, maker, shipment.sscc, "courier", now=utcnow())
        db.commit()
        return shipment.sscc


def take_custody(client, token: str, sscc: str, giver: str, password: str | None = None):
    data = {"csrf_token": token, "giver": giver, "code": sscc}
    if password is not None:
        data["password"] = password
    return client.post(f"/shipments/{sscc}/custody", data=data)


def label_png(app: Flask, db: Session, serial: str) -> bytes:
    """The PNG label celltrail prints for the vial, payload signed with the current key."""
    lot = get_lot(db, RELEASED)
    version = lot.product_version
    label = VialLabel(
        product_name=version.label_name or version.name,
        lot=lot.number,
        serial=serial,
        expiry=lot.expires_on,
        storage_condition=version.storage_condition,
        storage_limit_c=version.storage_limit_c,
        cells_per_vial=lot.cells_per_vial,
        payload=vial_uri(
            base=BASE,
            gtin=lot.product.gtin,
            lot=lot.number,
            serial=serial,
            expiry=lot.expires_on,
            key=label_keys(app)[0],
        ),
    )
    return render([label], "png", dpi=203)


# --- What a scan shows --------------------------------------------------------------------------


def test_a_typed_vial_serial_shows_the_vial_its_state_and_a_link_to_its_page(client):
    sign_in(client, "manufacturing")

    page = scan(client, VIAL)

    assert f'data-testid="serial">{VIAL}<' in page
    assert 'data-testid="vial-state">' in page
    assert f'href="/vials/{VIAL}"' in page
    assert "a typed serial proves nothing about the label" in page


def test_a_scanned_digital_link_of_a_vial_shows_the_vial(client, session, app):
    sign_in(client, "qa")
    lot = get_lot(session, RELEASED)
    link = vial_uri(
        base=BASE,
        gtin=lot.product.gtin,
        lot=RELEASED,
        serial=VIAL,
        expiry=lot.expires_on,
        key=label_keys(app)[0],
    )

    page = scan(client, link)

    assert f'data-testid="serial">{VIAL}<' in page
    assert 'data-testid="scan-refusal"' not in page


def test_an_altered_link_is_refused_in_plain_words(client, session, app):
    sign_in(client, "qa")
    lot = get_lot(session, RELEASED)
    link = vial_uri(
        base=BASE,
        gtin=lot.product.gtin,
        lot=RELEASED,
        serial=VIAL,
        expiry=lot.expires_on,
        key=label_keys(app)[0],
    ).replace("V0001", "V0002")

    page = scan(client, link)

    assert 'data-testid="scan-refusal"' in page
    assert "this label was altered or forged" in page
    assert f'href="/vials/{RELEASED}-V0002"' not in page


def test_a_code_nobody_knows_is_refused(client):
    sign_in(client, "courier")

    page = scan(client, "NO-SUCH-VIAL-0001")

    assert "celltrail has no record of a vial, shipment or subject NO-SUCH-VIAL-0001." in page


def test_a_typed_sscc_shows_the_shipper_its_custodian_and_the_take_custody_form(client, sscc):
    sign_in(client, "courier2")

    page = scan(client, sscc)

    assert f'data-testid="sscc">{sscc}<' in page
    assert 'data-testid="shipment-status">IN TRANSIT<' in page
    assert "Kai Lin" in page.split('data-testid="custodian">')[1].split("</dd>")[0]
    form = page.split('data-testid="custody-form"')[1].split("</form>")[0]
    assert 'name="giver"' in form
    assert 'value="courier"' in form
    assert 'name="password"' not in form  # a courier depot does not sign


def test_the_pharmacist_is_asked_for_the_password_to_take_custody(client, sscc):
    sign_in(client, "pharmacist")

    page = scan(client, sscc)

    form = page.split('data-testid="custody-form"')[1].split("</form>")[0]
    assert 'type="password"' in form


def test_a_pharmacist_of_another_hospital_is_not_offered_the_custody_form(client, sscc):
    sign_in(client, "amu-pharmacist")

    page = scan(client, sscc)

    assert f'data-testid="sscc">{sscc}<' in page
    assert 'data-testid="custody-form"' not in page


def test_a_vial_in_a_shipper_names_the_shipper(client, sscc, serials):
    sign_in(client, "manufacturing")

    page = scan(client, serials[0])

    assert f'data-testid="in-shipper">{sscc}<' in page


# --- Taking custody -----------------------------------------------------------------------------


def test_a_courier_takes_custody_from_the_holder_and_sees_it_is_his(client, sscc):
    token = sign_in(client, "courier2")

    response = take_custody(client, token, sscc, "courier")

    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="custody-yours">In your custody since' in page
    assert 'data-testid="custody-form"' not in page


def test_take_custody_from_someone_who_does_not_hold_the_shipper_is_refused_and_recorded(
    client, sscc, session
):
    token = sign_in(client, "courier2")

    response = take_custody(client, token, sscc, "clinician")

    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert 'data-testid="custody-errors"' in page
    assert f"clinician does not hold shipper {sscc}; it is in the custody of Kai Lin." in page
    events = chain_events(session, f"shipment:{sscc}")
    assert events[-1].event_type == "HANDOFF_REFUSED"


def test_the_pharmacist_without_the_password_is_refused(client, sscc):
    token = sign_in(client, "pharmacist")

    response = take_custody(client, token, sscc, "courier")

    assert response.status_code == 409
    assert "requires the receiver to sign: re-enter your password" in response.get_data(
        as_text=True
    )


def test_a_wrong_signature_password_is_refused_and_the_attempt_kept(client, sscc, session):
    token = sign_in(client, "pharmacist")

    response = take_custody(client, token, sscc, "courier", password="not-my-password")

    assert response.status_code == 403
    assert 'data-testid="custody-errors"' in response.get_data(as_text=True)
    attempts = session.scalars(
        select(LoginAttempt).where(
            LoginAttempt.username == "pharmacist", LoginAttempt.channel == "signature"
        )
    ).all()
    assert attempts
    assert not attempts[-1].succeeded


def test_a_clinician_may_not_take_custody(client, sscc):
    token = sign_in(client, "clinician")

    assert take_custody(client, token, sscc, "courier").status_code == 403


# --- Receiving ----------------------------------------------------------------------------------


@pytest.fixture
def held_by_pharmacist(client, sscc) -> str:
    token = sign_in(client, "pharmacist")
    response = take_custody(client, token, sscc, "courier", password="pharmacist-demo-2026")
    assert response.status_code == 303, response.get_data(as_text=True)
    return token


def test_the_holder_pharmacist_receives_with_one_vial_missing_and_sees_it_listed(
    client, sscc, serials, held_by_pharmacist
):
    page = scan(client, sscc)
    assert f'href="/shipments/{sscc}/receive"' in page
    step = client.get(f"/shipments/{sscc}/receive").get_data(as_text=True)
    assert all(f'data-serial="{serial}"' in step for serial in serials)

    response = client.post(
        f"/shipments/{sscc}/receive",
        data={
            "csrf_token": held_by_pharmacist,
            "seal": SEAL,
            "vials": "\r\n".join(serials[:2]) + "\r\n",
        },
    )

    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Received with discrepancies" in page
    missing = page.split('data-testid="missing"')[1].split("</ul>")[0]
    assert serials[2] in missing
    assert serials[0] not in missing


def test_a_wrong_seal_is_refused_and_the_scans_are_kept(client, sscc, serials, held_by_pharmacist):
    response = client.post(
        f"/shipments/{sscc}/receive",
        data={"csrf_token": held_by_pharmacist, "seal": "SEAL-0000", "vials": serials[0]},
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "do not open the shipper" in page
    assert serials[0] in page.split("<textarea")[1].split("</textarea>")[0]


def test_accepting_the_manifest_receives_every_vial(client, sscc, held_by_pharmacist):
    response = client.post(
        f"/shipments/{sscc}/receive",
        data={"csrf_token": held_by_pharmacist, "seal": SEAL, "manifest": "1"},
    )

    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Received complete" in page
    assert 'data-testid="received-count">3<' in page


def test_the_receipt_step_without_scans_asks_for_them(client, sscc, held_by_pharmacist):
    response = client.post(
        f"/shipments/{sscc}/receive", data={"csrf_token": held_by_pharmacist, "seal": SEAL}
    )

    assert response.status_code == 422
    assert "Scan each vial, or accept the manifest." in response.get_data(as_text=True)


def test_a_superseded_label_scanned_at_receipt_is_refused_and_nothing_received(
    client, sscc, serials, held_by_pharmacist, auth_headers
):
    def label(**reason):
        response = client.get(
            f"/api/v1/lots/{RELEASED}/labels",
            query_string={"format": "png", "serial": serials[0], **reason},
            headers=auth_headers("qa"),
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return decoded(Image.open(io.BytesIO(response.get_data())))[0].text

    old, new = label(), label(reason="Label smudged by frost.")
    response = client.post(
        f"/shipments/{sscc}/receive",
        data={"csrf_token": held_by_pharmacist, "seal": SEAL, "vials": f"{old}\r\n{serials[1]}"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Scan 1" in page
    assert "Superseded label — use the reprint" in page
    assert client.get(f"/api/v1/shipments/{sscc}", headers=auth_headers("qa")).json["status"] == (
        "in_transit"
    )
    received = client.post(
        f"/shipments/{sscc}/receive",
        data={"csrf_token": held_by_pharmacist, "seal": SEAL, "vials": f"{new}\r\n{serials[1]}"},
    )
    assert received.status_code == 303


def test_the_receipt_step_of_a_shipper_not_held_goes_back_to_the_scan(client, sscc):
    sign_in(client, "pharmacist")

    response = client.get(f"/shipments/{sscc}/receive")

    assert response.status_code == 303
    assert parse_qs(urlsplit(response.headers["Location"]).query)["code"] == [sscc]


# --- Pictures -----------------------------------------------------------------------------------


def test_a_photo_of_a_printed_label_decodes_to_the_vial(client, session, app):
    token = sign_in(client, "qa")
    image = label_png(app, session, VIAL)

    response = client.post(
        "/scan/image",
        data={"csrf_token": token, "image": (io.BytesIO(image), "label.png", "image/png")},
        content_type="multipart/form-data",
    )

    assert response.status_code == 303
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    assert code.startswith(f"{BASE}/01/")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'data-testid="serial">{VIAL}<' in page


def test_the_camera_gets_the_decoded_code_as_json(client, session, app):
    token = sign_in(client, "qa")
    image = label_png(app, session, VIAL)

    response = client.post(
        "/scan/image",
        data={"image": (io.BytesIO(image), "frame.png", "image/png")},
        headers={"Accept": "application/json", "X-CSRFToken": token},
        content_type="multipart/form-data",
    )

    assert response.status_code == 200
    assert f"/21/{VIAL}?" in response.json["code"]


def test_a_picture_without_a_barcode_says_so(client):
    token = sign_in(client, "courier")
    blank = io.BytesIO()
    Image.new("RGB", (640, 480), "white").save(blank, format="PNG")
    blank.seek(0)

    response = client.post(
        "/scan/image",
        data={"csrf_token": token, "image": (blank, "frame.png", "image/png")},
        content_type="multipart/form-data",
    )

    assert response.status_code == 422
    assert "No barcode found in the picture" in response.get_data(as_text=True)


def test_a_file_that_is_not_a_picture_says_so(client):
    token = sign_in(client, "courier")

    response = client.post(
        "/scan/image",
        data={"image": (io.BytesIO(b"%PDF-1.7 not an image"), "x.png", "image/png")},
        headers={"Accept": "application/json", "X-CSRFToken": token},
        content_type="multipart/form-data",
    )

    assert response.status_code == 422
    assert "not a picture" in response.json["reason"]


# --- Shipment pages -----------------------------------------------------------------------------


def test_the_shipment_page_shows_route_seal_vials_and_handoffs(client, sscc, serials):
    token = sign_in(client, "courier2")
    take_custody(client, token, sscc, "courier")

    page = client.get(f"/shipments/{sscc}").get_data(as_text=True)

    assert f'data-testid="seal">{SEAL}' in page
    assert all(f'data-serial="{serial}"' in page for serial in serials)
    handoffs = page.split('data-testid="handoffs"')[1].split("</ol>")[0]
    assert "Kai Lin</strong> → <strong>Bo Yang" in handoffs
    assert "HANDED_OFF" in page


def test_the_shipment_list_shows_the_shipments_a_user_sent_holds_or_receives(client, sscc):
    sign_in(client, "courier")
    assert f'data-sscc="{sscc}"' in client.get("/shipments").get_data(as_text=True)
    sign_in(client, "pharmacist")
    assert f'data-sscc="{sscc}"' in client.get("/shipments").get_data(as_text=True)

    sign_in(client, "amu-pharmacist")
    assert f'data-sscc="{sscc}"' not in client.get("/shipments").get_data(as_text=True)
    assert client.get(f"/shipments/{sscc}").status_code == 404


def test_a_courier_may_scan_a_shipper_in_transit_before_he_may_open_its_page(client, sscc):
    sign_in(client, "courier2")

    page = scan(client, sscc)

    assert 'data-testid="custody-form"' in page
    assert f'href="/shipments/{sscc}"' not in page
    assert client.get(f"/shipments/{sscc}").status_code == 404


def test_someone_who_may_neither_see_nor_take_the_shipper_reads_it_as_unknown(client, sscc):
    sign_in(client, "amu-clinician")

    assert "celltrail has no record of a vial, shipment or subject" in scan(client, sscc)


def test_the_shipment_page_lists_refused_handoffs(client, sscc):
    take_custody(client, sign_in(client, "courier2"), sscc, "clinician")
    sign_in(client, "courier")

    page = client.get(f"/shipments/{sscc}").get_data(as_text=True)

    refused = page.split('data-testid="refused-handoffs"')[1].split("</ul>")[0]
    assert "courier2 named clinician as the giver" in refused
    assert "does not hold shipper" in refused


def test_the_scan_tile_comes_first_on_a_couriers_home_page(client):
    sign_in(client, "courier")

    page = client.get("/").get_data(as_text=True)

    assert page.index('href="/scan"') < page.index('href="/lots"')
    assert TOKEN.search(page)


# Storing, dispensing and thawing a vial from its scan


@pytest.fixture
def received(client, sscc, serials, held_by_pharmacist) -> str:
    """The shipper received by the pharmacist, every vial scanned; the CSRF token."""
    response = client.post(
        f"/shipments/{sscc}/receive",
        data={"csrf_token": held_by_pharmacist, "seal": SEAL, "manifest": "1"},
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    return held_by_pharmacist


def _step(client, token: str, serial: str, step: str, **form):
    return client.post(
        f"/vials/{serial}/{step}", data={"csrf_token": token, "code": serial, **form}
    )


def test_the_pharmacist_stores_dispenses_and_the_clinician_thaws_from_the_scan(
    client, serials, received, app
):
    serial = serials[0]
    page = scan(client, serial)
    assert 'data-testid="store-vial"' in page
    assert 'data-testid="dispense-vial"' not in page  # not stored yet
    stored = _step(client, received, serial, "store", location="LN2-02 rack C/3")
    assert stored.status_code == 303
    assert urlsplit(stored.headers["Location"]).path == "/scan"
    page = scan(client, serial)
    assert 'data-testid="vial-state">STORED<' in page
    assert 'data-testid="dispense-vial"' in page
    assert 'data-testid="thaw-vial"' in page  # a pharmacy may thaw what it stores
    assert '<option value="SYSU3-SPINE">' in page  # the wards this pharmacy supplies
    assert _step(client, received, serial, "dispense", ward="SYSU3-SPINE").status_code == 303

    token = sign_in(client, "clinician")
    page = scan(client, serial)
    assert 'data-testid="vial-state">DISPENSED<' in page
    assert 'data-testid="thaw-vial"' in page
    assert 'data-testid="store-vial"' in page  # the ward may put it in its own freezer
    assert _step(client, token, serial, "thaw").status_code == 303
    with app.extensions["celltrail.db"].sessions() as db:
        types = [event.event_type for event in chain_events(db, f"vial:{serial}")]
    assert types[-3:] == ["STORED", "DISPENSED", "THAWED"]


def test_a_vial_step_that_custody_does_not_allow_is_refused_on_the_page(
    client, serials, received, app
):
    serial = serials[0]
    with app.extensions["celltrail.db"].sessions() as db:
        before = len(chain_events(db, f"vial:{serial}"))
    refused = _step(client, received, serial, "dispense", ward="SYSU3-SPINE")  # not stored
    assert refused.status_code == 409
    assert f"{serial} is received." in refused.get_data(as_text=True)
    blank = _step(client, received, serial, "store", location="  ")
    assert blank.status_code == 422
    assert "Location" in blank.get_data(as_text=True)
    token = sign_in(client, "amu-clinician")  # another hospital's ward
    assert 'data-testid="thaw-vial"' not in scan(client, serial)
    elsewhere = _step(client, token, serial, "thaw")
    assert elsewhere.status_code in {404, 409}
    with app.extensions["celltrail.db"].sessions() as db:
        assert len(chain_events(db, f"vial:{serial}")) == before  # nothing was recorded
