"""POST /bedside/checks, GET /bedside/checks/{reference}, POST /administrations and
GET /administrations/{id}: site-scoped, problem+json errors, Idempotency-Key replays."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from custody.shipping import dispense, thaw
from custody.trials import Administration
from lots.accounts import get_user
from lots.base import utcnow
from lots.batch import Vial
from tests.worlds.bedside import (
    SEPSIS_SUBJECT,
    SEPSIS_TRIAL,
    VIAL,
    enrol_patient,
    kit_code,
    sepsis_kit,
    thawed_at_the_ward,
    vial_code,
    wristband,
)
from tests.worlds.shipping import PASSWORDS


@pytest.fixture
def thawed(session) -> dict[str, str]:
    """SCI-901's vial thawed at the spine ward (committed to the test's transaction)."""
    enrol_patient(session)
    thawed_at_the_ward(session)
    body = {"vial_code": vial_code(session), "wristband_code": wristband(), "visit": 1}
    session.commit()
    return body


@pytest.fixture
def api(client, auth_headers):
    def call(username, method, path, body=None, **headers):
        return client.open(
            f"/api/v1{path}",
            method=method,
            json=body,
            headers={**auth_headers(username), **headers},
        )

    return call


def _administration(reference: str, **changes) -> dict[str, object]:
    return {
        "check": reference,
        "password": PASSWORDS["clinician"],
        "witness": "pharmacist",
        "witness_password": PASSWORDS["pharmacist"],
        "route": "intrathecal",
        "dose_cells": 10_000_000,
        "volume_ml": "1.0",
        **changes,
    }


def test_a_go_check_answers_201_with_every_check_and_a_reference(api, thawed):
    response = api("clinician", "POST", "/bedside/checks", thawed)
    assert response.status_code == 201, response.json
    body = response.json
    assert body["outcome"] == "GO"
    assert body["item"] == f"vial {VIAL}"
    assert len(body["checks"]) == 16
    assert all(line["passed"] and line["sentence"] for line in body["checks"])
    assert body["expires_at"] > body["checked_at"]


def test_a_forged_label_answers_201_no_go_not_an_error(api, thawed):
    forged = {**thawed, "vial_code": thawed["vial_code"][:-3] + "AAA"}
    response = api("clinician", "POST", "/bedside/checks", forged)
    assert response.status_code == 201
    assert response.json["outcome"] == "NO-GO"
    assert response.json["checks"][0]["name"] == "label"
    assert not response.json["checks"][0]["passed"]


def test_a_check_without_a_wristband_is_422_problem_json(api, thawed):
    response = api("clinician", "POST", "/bedside/checks", {"vial_code": thawed["vial_code"]})
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert "wristband_code" in response.json["errors"]


def test_a_check_is_read_back_at_its_site_and_hidden_from_another(api, thawed):
    reference = api("clinician", "POST", "/bedside/checks", thawed).json["reference"]
    mine = api("pharmacist", "GET", f"/bedside/checks/{reference}")
    theirs = api("amu-clinician", "GET", f"/bedside/checks/{reference}")
    assert (mine.status_code, mine.json["outcome"]) == (200, "GO")
    assert theirs.status_code == 404
    assert theirs.mimetype == "application/problem+json"


def test_a_go_confirmed_by_the_pharmacist_is_recorded_and_read_back(api, thawed):
    reference = api("clinician", "POST", "/bedside/checks", thawed).json["reference"]
    response = api("clinician", "POST", "/administrations", _administration(reference))
    assert response.status_code == 201, response.json
    body = response.json
    assert (body["administered_by"]["name"], body["witness"]["name"]) == (
        "Dong Jianwen",
        "Fang Hu",
    )
    assert "password" not in body
    assert "witness_password" not in body
    read = api("pharmacist", "GET", f"/administrations/{body['id']}")
    assert read.json == body
    assert api("amu-pharmacist", "GET", f"/administrations/{body['id']}").status_code == 404
    check = api("clinician", "GET", f"/bedside/checks/{reference}").json
    assert check["administration"] == body["id"]


def test_a_second_administration_of_the_vial_is_409_naming_the_first(api, thawed):
    first_check = api("clinician", "POST", "/bedside/checks", thawed).json["reference"]
    second_check = api("clinician", "POST", "/bedside/checks", thawed).json["reference"]
    first = api("clinician", "POST", "/administrations", _administration(first_check)).json
    response = api("clinician", "POST", "/administrations", _administration(second_check))
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert f"administration {first['id']}" in response.json["detail"]


def test_an_administration_retried_with_its_key_replays_the_first_answer(api, app, thawed):
    reference = api("clinician", "POST", "/bedside/checks", thawed).json["reference"]
    key = {"Idempotency-Key": f"administer-{reference}"}
    first = api("clinician", "POST", "/administrations", _administration(reference), **key)
    replay = api("clinician", "POST", "/administrations", _administration(reference), **key)
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.get_data() == first.get_data()
    assert replay.headers["Idempotent-Replayed"] == "true"
    with app.extensions["celltrail.db"].sessions() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(Administration)
                .join(Vial)
                .where(Vial.serial == VIAL)
            )
            == 1
        )


def test_the_same_person_as_witness_is_422_and_records_nothing(api, thawed):
    reference = api("clinician", "POST", "/bedside/checks", thawed).json["reference"]
    body = _administration(reference, witness="clinician", witness_password=PASSWORDS["clinician"])
    response = api("clinician", "POST", "/administrations", body)
    assert response.status_code == 422
    assert "witness" in response.json["errors"]


def test_a_wrong_witness_password_is_403_and_records_nothing(api, app, thawed):
    reference = api("clinician", "POST", "/bedside/checks", thawed).json["reference"]
    response = api(
        "clinician", "POST", "/administrations", _administration(reference, witness_password="x")
    )
    assert response.status_code == 403
    with app.extensions["celltrail.db"].sessions() as session:
        assert (
            session.scalar(
                select(func.count())
                .select_from(Administration)
                .join(Vial)
                .where(Vial.serial == VIAL)
            )
            == 0
        )


def test_a_blinded_clinicians_kit_check_never_shows_the_arm(api, session):
    kit = sepsis_kit(session)
    dispense(
        session,
        get_user(session, "amu-pharmacist"),
        [kit.vial.serial],
        ward_code="AMU-SW-ICU",
        now=utcnow(),
    )
    thaw(session, get_user(session, "amu-clinician"), kit.vial.serial, now=utcnow())
    body = {
        "vial_code": kit_code(session, kit),
        "wristband_code": wristband(SEPSIS_SUBJECT, SEPSIS_TRIAL),
    }
    session.commit()
    response = api("amu-clinician", "POST", "/bedside/checks", body)
    assert response.status_code == 201
    assert response.json["outcome"] == "GO", response.json
    assert response.json["item"] == f"kit {kit.number}"
    text = response.get_data(as_text=True)
    for secret in ("UCR-2611-01", "CTRL-2611-01", "ARM-", "Sham", "MSC", "control", "arm"):
        assert secret not in text


def test_a_check_with_a_stray_wristband_shows_no_foreign_vial_to_the_checker(
    client, auth_headers, session
):
    """A vial of another hospital scanned with a band that names nobody here: the NO-GO is
    kept on the checker's site chain, so the vial stays as unknown to that site as before."""
    headers = auth_headers("amu-clinician")
    events = "/api/v1/vials/XS228-2610-01-V0003/events"
    assert client.get(events, headers=headers).status_code == 404
    checked = client.post(
        "/api/v1/bedside/checks",
        headers=headers,
        json={
            "vial_code": vial_code(session, "XS228-2610-01-V0003"),
            "wristband_code": "garbage-not-a-band",
        },
    )
    assert checked.status_code == 201
    assert checked.json["outcome"] == "NO-GO"
    assert client.get(events, headers=headers).status_code == 404
