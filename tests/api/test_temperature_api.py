"""POST/GET /api/v1/shipments/{sscc}/temperatures and QA's excursion disposition."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from custody.shipping import packed, ship, vial_states
from lots.accounts import get_user
from tests.worlds.bedside import (
    receive_at_pharmacy,
    released_lot,
    ship_to_pharmacy,
    temperature_record_policy,
)
from tests.worlds.pages import sign_in
from tests.worlds.shipping import AFTER_READINGS, PASSWORDS, readings_csv, sample, sealed_shipment

READINGS_JSON = {
    "logger_id": "DL-0042-7",
    "readings": [
        {"t": "2025-07-14T06:00:00Z", "c": -185.2},
        {"t": "2025-07-14T06:15:00Z", "c": "-184.9"},
        {"t": "2025-07-14T06:30:00+02:00", "c": -185.0},
    ],
}


@pytest.fixture
def shipment(session, clock):
    """Sealed at 05:30 and in the courier's hands since 05:35, on 2025-07-14."""
    shipment = sealed_shipment(session, clock)
    courier_at = clock.advance(minutes=5)
    ship(session, get_user(session, "manufacturing"), shipment.sscc, "courier", now=courier_at)
    session.flush()
    clock.at(AFTER_READINGS)
    return shipment


def url(shipment, rest="temperatures"):
    return f"/api/v1/shipments/{shipment.sscc}/{rest}"


def upload_file(client, auth_headers, shipment, name, *, who="courier"):
    return client.post(
        url(shipment),
        headers=auth_headers(who),
        data={"file": (io.BytesIO(sample(name)), name)},
        content_type="multipart/form-data",
    )


def states(session, shipment):
    session.expire_all()
    return set(vial_states(session, [row.vial for row in packed(session, shipment)]).values())


def test_a_csv_file_upload_attaches_the_readings_and_reports_the_excursion(
    client, auth_headers, shipment, session
):
    response = upload_file(client, auth_headers, shipment, "dry_shipper_preamble.csv")

    assert response.status_code == 201, response.json
    assert response.json["added"] == 8
    (excursion,) = response.json["excursions"]
    assert excursion["kind"] == "temperature"
    assert (excursion["start"], excursion["end"]) == (
        "2025-07-14T06:45:00+00:00",
        "2025-07-14T07:00:00+00:00",
    )
    assert excursion["peak_c"] == "-148.1"
    assert excursion["open"] is True
    assert states(session, shipment) == {"quarantined"}


def test_a_csv_body_is_read_like_a_file(client, auth_headers, shipment):
    response = client.post(
        url(shipment),
        headers={**auth_headers("courier"), "Content-Type": "text/csv"},
        data=sample("semicolon_decimal_comma.csv"),
    )

    assert response.status_code == 201, response.json
    assert response.json["added"] == 8


def test_the_json_api_takes_readings_with_their_logger(client, auth_headers, shipment):
    response = client.post(url(shipment), headers=auth_headers("courier"), json=READINGS_JSON)

    record = client.get(url(shipment), headers=auth_headers("courier")).json
    assert response.status_code == 201, response.json
    assert response.json["excursions"] == []
    assert [(r["t"], r["c"], r["logger_id"]) for r in record["readings"]] == [
        ("2025-07-14T04:30:00+00:00", "-185", "DL-0042-7"),
        ("2025-07-14T06:00:00+00:00", "-185.2", "DL-0042-7"),
        ("2025-07-14T06:15:00+00:00", "-184.9", "DL-0042-7"),
    ]


def test_the_record_shows_readings_limit_window_and_excursions(client, auth_headers, shipment):
    upload_file(client, auth_headers, shipment, "timestamp_celsius.csv")

    record = client.get(url(shipment), headers=auth_headers("manufacturing")).json

    assert record["storage_limit_c"] == "-150"
    assert record["judged_from"] == "2025-07-14T05:30:00+00:00"
    assert record["judged_until"] is None
    assert len(record["readings"]) == 8
    assert [e["peak_c"] for e in record["excursions"]] == ["-148.1"]


def test_sending_the_same_file_again_is_a_200_that_adds_nothing(client, auth_headers, shipment):
    upload_file(client, auth_headers, shipment, "timestamp_celsius.csv")

    again = upload_file(client, auth_headers, shipment, "timestamp_celsius.csv")

    assert again.status_code == 200
    assert (again.json["added"], again.json["already_recorded"]) == (0, 8)
    assert again.json["excursions"] == []


def test_a_bad_file_is_a_422_naming_the_line(client, auth_headers, shipment):
    response = upload_file(client, auth_headers, shipment, "sensor_error.csv")

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["detail"] == "Line 6: the temperature 'Err' is not a number."
    assert response.json["errors"] == {"file": [response.json["detail"]]}


def test_times_without_an_offset_take_the_zone_given_in_the_query(client, auth_headers, shipment):
    local = "Time,Temp (°C)\n2025-07-14 14:00,-185.1\n"
    response = client.post(
        url(shipment) + "?timezone=Asia/Shanghai",
        headers={**auth_headers("courier"), "Content-Type": "text/csv"},
        data=local,
    )
    record = client.get(url(shipment), headers=auth_headers("courier")).json

    assert response.status_code == 201, response.json
    assert record["readings"][0]["t"] == "2025-07-14T06:00:00+00:00"


def test_an_unknown_zone_is_refused(client, auth_headers, shipment):
    response = client.post(
        url(shipment) + "?timezone=Mars/Olympus", headers=auth_headers("courier"), json={}
    )

    assert response.status_code == 422
    assert "timezone" in response.json["errors"]


def test_a_body_that_is_no_logger_file_is_a_415(client, auth_headers, shipment):
    response = client.post(
        url(shipment),
        headers={**auth_headers("courier"), "Content-Type": "application/pdf"},
        data=b"%PDF-1.7",
    )

    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"


def test_a_clinician_may_not_upload_readings(client, auth_headers, shipment):
    response = upload_file(client, auth_headers, shipment, "timestamp_celsius.csv", who="clinician")

    assert response.status_code == 403


def test_another_hospital_does_not_see_the_shipper(client, auth_headers, shipment):
    response = client.get(url(shipment), headers=auth_headers("amu-pharmacist"))

    assert response.status_code == 404


@pytest.fixture
def excursion(client, auth_headers, shipment):
    response = upload_file(client, auth_headers, shipment, "timestamp_celsius.csv")
    return response.json["excursions"][0]["id"]


def disposition(client, auth_headers, shipment, excursion, *, who="qa", **body):
    body = {
        "decision": "use",
        "reason": "Within stability data.",
        "password": PASSWORDS[who],
    } | body
    return client.post(
        url(shipment, f"excursions/{excursion}/disposition"), headers=auth_headers(who), json=body
    )


def test_qa_signs_a_use_disposition_and_the_vials_leave_quarantine(
    client, auth_headers, shipment, excursion, session
):
    response = disposition(client, auth_headers, shipment, excursion)

    assert response.status_code == 200, response.json
    assert response.json["disposition"] == "use"
    assert response.json["disposed_by_name"] == "Li Wei"
    assert response.json["open"] is False
    assert "password" not in response.json
    assert states(session, shipment) == {"in_transit"}


def test_qa_signs_a_destroy_disposition_and_the_vials_are_destroyed(
    client, auth_headers, shipment, excursion, session
):
    response = disposition(client, auth_headers, shipment, excursion, decision="destroy")

    assert response.status_code == 200, response.json
    assert states(session, shipment) == {"destroyed"}


def test_a_disposition_with_the_wrong_password_signs_nothing(
    client, auth_headers, shipment, excursion, session
):
    response = disposition(client, auth_headers, shipment, excursion, password="guess")

    assert response.status_code == 403
    assert response.json["title"] == "Signature refused"
    assert states(session, shipment) == {"quarantined"}


def test_only_qa_disposes(client, auth_headers, shipment, excursion):
    response = disposition(client, auth_headers, shipment, excursion, who="pharmacist")

    assert response.status_code == 403


def test_a_second_disposition_is_a_409(client, auth_headers, shipment, excursion):
    disposition(client, auth_headers, shipment, excursion)

    again = disposition(client, auth_headers, shipment, excursion, decision="destroy")

    assert again.status_code == 409
    assert "already disposed of" in again.json["detail"]


def test_an_unknown_excursion_is_a_404(client, auth_headers, shipment, excursion):
    response = disposition(client, auth_headers, shipment, excursion + 1000)

    assert response.status_code == 404


def test_a_disposition_names_a_known_decision(client, auth_headers, shipment, excursion):
    response = disposition(client, auth_headers, shipment, excursion, decision="keep")

    assert response.status_code == 422
    assert "decision" in response.json["errors"]


# A product whose version requires a temperature record of every transit


def test_a_receipt_without_the_required_record_is_not_complete_and_nothing_is_dispensed(
    client, auth_headers, session
):
    temperature_record_policy(session, required=True)
    released_lot(session, "XS228-LOG-02", vials=1)
    serial = "XS228-LOG-02-V0001"
    shipment = ship_to_pharmacy(session, [serial])
    session.commit()
    pharmacist = auth_headers("pharmacist")
    taken = client.post(
        url(shipment, "handoffs"),
        headers=pharmacist,
        json={"giver": "courier2", "password": PASSWORDS["pharmacist"]},
    )
    assert taken.status_code == 201, taken.json
    sign_in(client, "pharmacist")
    step = client.get(f"/shipments/{shipment.sscc}/receive").get_data(as_text=True)
    assert 'data-testid="temperature-record-required"' in step  # warned before receiving
    receipt = client.post(
        url(shipment, "receipt"),
        headers=pharmacist,
        json={"seal_number": shipment.seal_number, "serials": [serial]},
    )
    assert receipt.status_code == 201, receipt.json
    record = receipt.json["temperature_record"]
    assert (receipt.json["complete"], receipt.json["reconciled"]) == (False, True)
    assert (record["required"], record["covered"], record["missing"]) == (True, False, True)
    assert record["problem"] == (
        f"No temperature record is attached to shipper {shipment.sscc}: its product requires "
        "logger readings covering the transit from sealing to receipt."
    )
    stored = client.post(
        "/api/v1/vials/store", headers=pharmacist, json={"serials": [serial], "location": "LN2"}
    )
    assert stored.status_code == 200, stored.json  # the cells go into the freezer at once
    body = {"serials": [serial], "ward": "SYSU3-SPINE"}
    refused = client.post("/api/v1/vials/dispense", headers=pharmacist, json=body)
    assert refused.status_code == 409
    assert refused.mimetype == "application/problem+json"
    assert refused.json["detail"] == (
        f"{record['problem']} Attach the logger readings before dispensing these vials."
    )
    page = client.get(f"/shipments/{shipment.sscc}").get_data(as_text=True)
    assert 'data-testid="temperature-record-missing"' in page
    assert "Received with discrepancies" in page

    start = (shipment.sealed_at - dt.timedelta(minutes=10)).replace(microsecond=0)
    readings = readings_csv(start, ["-180.0"] * 11, minutes=1)  # up to sealing, in the past
    attached = client.post(
        url(shipment),
        headers=auth_headers("courier2"),
        data={"file": (io.BytesIO(readings.encode()), "logger.csv")},
        content_type="multipart/form-data",
    )
    assert attached.status_code == 201, attached.json
    detail = client.get(url(shipment, "")[:-1], headers=pharmacist).json
    assert detail["receipt"]["complete"] is True
    assert detail["temperature_record"]["covered"] is True
    assert detail["temperature_record"]["problem"] is None
    page = client.get(f"/shipments/{shipment.sscc}").get_data(as_text=True)
    assert 'data-testid="temperature-record-missing"' not in page
    assert "Received complete" in page
    dispensed = client.post("/api/v1/vials/dispense", headers=pharmacist, json=body)
    assert dispensed.status_code == 200, dispensed.json


def test_a_shipper_without_the_policy_needs_no_record(client, auth_headers, session):
    temperature_record_policy(session, required=False)
    released_lot(session, "XS228-LOG-03", vials=1)
    shipment = ship_to_pharmacy(session, ["XS228-LOG-03-V0001"])
    receive_at_pharmacy(session, shipment)
    session.commit()
    detail = client.get(url(shipment, "")[:-1], headers=auth_headers("pharmacist")).json
    record = detail["temperature_record"]
    assert (record["required"], record["missing"], detail["receipt"]["complete"]) == (
        False,
        False,
        True,
    )
