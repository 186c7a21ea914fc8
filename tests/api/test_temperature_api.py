"""POST/GET /api/v1/shipments/{sscc}/temperatures and QA's excursion disposition."""

from __future__ import annotations

import io

import pytest

from custody.shipping import packed, ship, vial_states
from lots.accounts import get_user
from tests.worlds.shipping import AFTER_READINGS, PASSWORDS, sample, sealed_shipment

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
