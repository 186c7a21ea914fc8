"""Trials API and pages: read, enrol, randomize, allocate, unblind, kits and kit labels."""

from __future__ import annotations

import io

import zxingcpp
from biip import parse
from PIL import Image
from sqlalchemy import func, select

from app.demo.trials import SEPSIS_GTIN, SEPSIS_SUBJECT, SEPSIS_TRIAL, XS228_TRIAL
from custody.trials import Arm, RandomizationSlot, Subject, Trial, Unblinding
from labels.keys import parse_label_keys
from labels.payload import subject_uri
from lots.models import LoginAttempt
from tests.worlds.config import TEST_LABEL_KEYS
from tests.worlds.pages import sign_in

SUBJECT = f"/api/v1/subjects/{SEPSIS_TRIAL}"


def scalar_rows(app, statement) -> list:
    """The rows of one column, read in the test's transaction."""
    with app.extensions["celltrail.db"].sessions() as session:
        return list(session.scalars(statement))


def test_an_open_label_trial_shows_its_arm_products_route_and_visits(client, auth_headers):
    trial = client.get(f"/api/v1/trials/{XS228_TRIAL}", headers=auth_headers("clinician")).json
    assert trial["arms"][0]["products"][0]["code"] == "XS228"
    assert trial["arms"][0]["route"] == "intrathecal"
    assert [visit["day"] for visit in trial["visits"]] == [1, 15, 29, 43]


def test_a_courier_may_not_read_trials(client, auth_headers):
    assert client.get("/api/v1/trials", headers=auth_headers("courier")).status_code == 403


def test_subjects_are_listed_by_site(client, auth_headers):
    mine = client.get("/api/v1/subjects", headers=auth_headers("clinician")).json
    everyone = client.get("/api/v1/subjects", headers=auth_headers("auditor")).json
    assert [s["code"] for s in mine] == ["SCI-001"]
    assert {s["code"] for s in everyone} >= {"SCI-001", "SEP-001"}


def test_a_subject_of_another_hospital_is_404(client, auth_headers):
    response = client.get(f"{SUBJECT}/{SEPSIS_SUBJECT}", headers=auth_headers("clinician"))
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_enrol_randomize_and_dispense_through_the_api(client, auth_headers):
    clinician, pharmacist = auth_headers("amu-clinician"), auth_headers("amu-pharmacist")
    enrolled = client.post(
        "/api/v1/subjects",
        json={"trial": SEPSIS_TRIAL, "code": "SEP-077", "site": "AMU-SW-ICU"},
        headers=clinician,
    )
    randomized = client.post(f"{SUBJECT}/SEP-077/randomization", headers=clinician)
    allocated = client.post(f"{SUBJECT}/SEP-077/allocations", json={"visit": 1}, headers=pharmacist)
    assert (enrolled.status_code, randomized.status_code, allocated.status_code) == (201, 201, 201)
    assert randomized.json["arm"] is None
    assert allocated.json["kit"]
    assert allocated.json["serial"]  # the pharmacist is unblinded


def test_a_blinded_allocation_takes_no_serial(client, auth_headers):
    response = client.post(
        f"{SUBJECT}/{SEPSIS_SUBJECT}/allocations",
        json={"visit": 2, "serial": "UCR-2611-01-V0030"},
        headers=auth_headers("amu-pharmacist"),
    )
    assert response.status_code == 422
    assert "serial" in response.json["errors"]


def test_an_unblinding_with_the_password_shows_the_arm_to_the_clinician(client, auth_headers):
    headers = auth_headers("amu-clinician")
    wrong = client.post(
        f"{SUBJECT}/{SEPSIS_SUBJECT}/unblinding",
        json={"password": "nope", "reason": "Anaphylaxis"},
        headers=headers,
    )
    right = client.post(
        f"{SUBJECT}/{SEPSIS_SUBJECT}/unblinding",
        json={"password": "amu-clinician-demo-2026", "reason": "Anaphylaxis"},
        headers=headers,
    )
    subject = client.get(f"{SUBJECT}/{SEPSIS_SUBJECT}", headers=headers).json
    assert (wrong.status_code, right.status_code) == (403, 201)
    assert subject["arm"] in {"ARM-ACT", "ARM-SHAM"}
    assert subject["unblinding"]["reason"] == "Anaphylaxis"


def test_an_open_label_enrolment_with_a_bad_body_is_422(client, auth_headers):
    response = client.post(
        "/api/v1/subjects", json={"trial": XS228_TRIAL}, headers=auth_headers("clinician")
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_a_kit_label_decodes_to_the_blinded_gtin_packaging_lot_and_kit_number(client, auth_headers):
    response = client.get(
        f"/api/v1/trials/{SEPSIS_TRIAL}/kits/labels?format=png&kit=000003",
        headers=auth_headers("manufacturing"),
    )
    assert response.status_code == 200
    (barcode,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(response.data)))
    result = parse(barcode.text)
    elements = {e.ai.ai: e.value for e in result.gs1_digital_link_uri.element_strings}
    assert elements["01"] == SEPSIS_GTIN
    assert elements["10"] == "PK-2611-01"
    assert elements["21"] == "000003"


def test_a_scanned_kit_label_resolves_to_the_kit_and_nothing_more(client, auth_headers):
    png = client.get(
        f"/api/v1/trials/{SEPSIS_TRIAL}/kits/labels?format=png&kit=000002",
        headers=auth_headers("manufacturing"),
    )
    (barcode,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.data)))
    answer = client.post(
        "/api/v1/scans", json={"code": barcode.text}, headers=auth_headers("amu-clinician")
    ).json
    assert answer["kind"] == "kit"
    assert answer["authentication"] == "valid"
    assert answer["item"] == {
        "kit": "000002",
        "trial": SEPSIS_TRIAL,
        "packaging_lot": "PK-2611-01",
        "state": answer["item"]["state"],
    }


def test_a_scanned_wristband_resolves_to_its_subject(client, auth_headers):
    band = subject_uri(
        base="https://trail.example.org",
        key=parse_label_keys(TEST_LABEL_KEYS)[0],
        subject="SEP-001",
        trial=SEPSIS_TRIAL,
    )
    answer = client.post(
        "/api/v1/scans", json={"code": band}, headers=auth_headers("amu-clinician")
    ).json
    assert answer["item"]["subject"] == "SEP-001"


def test_the_trial_page_shows_arms_only_to_the_unblinded(client):
    sign_in(client, "amu-clinician")
    blinded = client.get(f"/trials/{SEPSIS_TRIAL}").get_data(as_text=True)
    sign_in(client, "amu-pharmacist")
    unblinded = client.get(f"/trials/{SEPSIS_TRIAL}").get_data(as_text=True)
    assert 'data-subject="SEP-001"' in blinded
    assert "ARM-ACT" not in blinded
    assert 'data-testid="arm"' in unblinded
    assert 'data-testid="no-unblindings"' in unblinded


def test_the_trials_page_lists_both_trials(client):
    sign_in(client, "clinician")
    page = client.get("/trials").get_data(as_text=True)
    assert f'data-protocol="{XS228_TRIAL}"' in page
    assert f'data-protocol="{SEPSIS_TRIAL}"' in page


def _unblind_on_the_page(client, reason: str, password: str):
    token = sign_in(client, "amu-clinician")
    return client.post(
        f"/trials/{SEPSIS_TRIAL}/unblinding",
        data={
            "csrf_token": token,
            "subject": SEPSIS_SUBJECT,
            "reason": reason,
            "password": password,
        },
    )


def test_an_unblinding_on_the_page_without_a_reason_is_422_and_unblinds_nobody(client, session):
    response = _unblind_on_the_page(client, reason="   ", password="amu-clinician-demo-2026")
    assert response.status_code == 422
    assert session.scalar(select(func.count()).select_from(Unblinding)) == 0


def test_a_wrong_password_on_the_unblinding_page_is_kept_as_a_failed_signature(client, session):
    _unblind_on_the_page(client, reason="Anaphylaxis", password="not-my-password")
    failed = session.scalars(
        select(LoginAttempt).where(
            LoginAttempt.username == "amu-clinician", LoginAttempt.channel == "signature"
        )
    ).all()
    assert [attempt.succeeded for attempt in failed] == [False]
    assert session.scalar(select(func.count()).select_from(Unblinding)) == 0


# --- withdrawal --------------------------------------------------------------------------

WITHDRAWAL = {"reason": "Withdrew consent at the day-3 visit.", "consent_withdrawn": True}


def _enrolled(client, auth_headers, code="WD-201"):
    response = client.post(
        "/api/v1/subjects",
        json={"trial": SEPSIS_TRIAL, "code": code, "site": "AMU-SW-ICU"},
        headers=auth_headers("amu-clinician"),
    )
    assert response.status_code == 201, response.json
    return f"{SUBJECT}/{code}"


def test_a_subject_is_withdrawn_through_the_api_and_stays_readable(client, auth_headers):
    subject = _enrolled(client, auth_headers)
    headers = auth_headers("amu-clinician")
    response = client.post(f"{subject}/withdrawal", json=WITHDRAWAL, headers=headers)
    assert response.status_code == 201, response.json
    read = client.get(subject, headers=auth_headers("qa")).json
    assert read["status"] == "withdrawn"
    assert {k: read["withdrawal"][k] for k in ("by", "reason", "consent_withdrawn")} == {
        "by": "amu-clinician",
        "reason": WITHDRAWAL["reason"],
        "consent_withdrawn": True,
    }
    again = client.post(f"{subject}/withdrawal", json=WITHDRAWAL, headers=headers)
    assert (again.status_code, again.mimetype) == (409, "application/problem+json")
    refused = client.post(f"{subject}/randomization", headers=headers)
    assert refused.status_code == 409
    assert "withdrawn" in refused.json["detail"]


def test_a_withdrawal_without_a_reason_is_422_and_changes_nothing(client, auth_headers):
    subject = _enrolled(client, auth_headers)
    headers = auth_headers("amu-clinician")
    response = client.post(f"{subject}/withdrawal", json={"reason": ""}, headers=headers)
    assert (response.status_code, response.mimetype) == (422, "application/problem+json")
    assert client.get(subject, headers=headers).json["status"] == "active"


def test_a_clinician_withdraws_a_subject_on_the_trial_page(client, auth_headers):
    _enrolled(client, auth_headers, "WD-202")
    token = sign_in(client, "amu-clinician")
    page = client.get(f"/trials/{SEPSIS_TRIAL}").get_data(as_text=True)
    assert 'id="withdrawal"' in page
    response = client.post(
        f"/trials/{SEPSIS_TRIAL}/withdrawal",
        data={"subject": "WD-202", "reason": "Investigator's decision", "csrf_token": token},
    )
    assert response.status_code == 303
    page = client.get(f"/trials/{SEPSIS_TRIAL}").get_data(as_text=True)
    row = page[page.index('data-subject="WD-202"') :].split("</tr>")[0]
    assert "withdrawn" in row
    assert "Investigator&#39;s decision" in row
    blank = client.post(
        f"/trials/{SEPSIS_TRIAL}/withdrawal",
        data={"subject": SEPSIS_SUBJECT, "reason": " ", "csrf_token": token},
    )
    assert blank.status_code == 422
    assert 'data-testid="withdrawal-errors"' in blank.get_data(as_text=True)


# --- blindability ------------------------------------------------------------------------


def _blinded_trial(**control_changes):
    arm = {"route": "intravenous", "volume_ml": "100.00", "doses": 3}
    return {
        "protocol_id": "BLIND-CHECK-1",
        "title": "Blindability",
        "phase": "Phase I",
        "sponsor": "Sponsor",
        "blinded": True,
        "arms": [
            {"code": "ACT", "name": "Active", "products": ["UCMSC-REG"], **arm, "ratio": 1},
            {
                "code": "CTL",
                "name": "Control",
                "products": ["CTRL-SOL"],
                "control": True,
                **{**arm, **control_changes},
            },
        ],
        "visits": [{"number": 1, "name": "Infusion", "day": 1}],
        "sites": [{"site": "AMU-SW-ICU", "pharmacy": "AMU-SW-PH"}],
        "blinded_gtin": "09506000100975",
        "blinded_name": "Blinded infusion",
    }


def test_a_blinded_trial_whose_arms_look_different_is_refused(client, auth_headers):
    headers = auth_headers("admin")
    refused = client.post(
        "/api/v1/trials", json=_blinded_trial(volume_ml="50.00", route="oral"), headers=headers
    )
    assert (refused.status_code, list(refused.json["errors"])) == (422, ["arms"])
    assert "dose volume" in refused.json["detail"]
    assert "route" in refused.json["detail"]
    assert client.get("/api/v1/trials/BLIND-CHECK-1", headers=headers).status_code == 404
    accepted = client.post("/api/v1/trials", json=_blinded_trial(), headers=headers)
    assert accepted.status_code == 201, accepted.json


# --- the randomization seed --------------------------------------------------------------


def test_nobody_supplies_a_randomization_seed(client, auth_headers):
    body = {**_blinded_trial(), "randomization_seed": "0123456789abcdef"}
    response = client.post("/api/v1/trials", json=body, headers=auth_headers("admin"))
    assert (response.status_code, list(response.json["errors"])) == (422, ["randomization_seed"])


def _slot_arms(app, protocol_id: str) -> list[int]:
    rows = scalar_rows(
        app,
        select(Arm.code)
        .join(RandomizationSlot, RandomizationSlot.arm_id == Arm.id)
        .join(Trial, Trial.id == RandomizationSlot.trial_id)
        .where(Trial.protocol_id == protocol_id)
        .order_by(RandomizationSlot.sequence),
    )
    return list(rows)


def test_each_trial_draws_its_own_seed_keeps_only_its_digest_and_shows_neither(
    app, client, auth_headers
):
    headers = auth_headers("admin")
    for number, gtin in (("1", "09506000100975"), ("2", "09506000100982")):
        body = {
            **_blinded_trial(),
            "protocol_id": f"SEED-{number}",
            "blinded_gtin": gtin,
            "planned_subjects": 60,
        }
        response = client.post("/api/v1/trials", json=body, headers=headers)
        assert response.status_code == 201, response.json
        assert "seed" not in response.get_data(as_text=True)
        read = client.get(f"/api/v1/trials/SEED-{number}", headers=auth_headers("amu-pharmacist"))
        assert "seed" not in read.get_data(as_text=True)
    first, second = _slot_arms(app, "SEED-1"), _slot_arms(app, "SEED-2")
    assert len(first) == len(second) == 60
    assert first != second  # two lists alike by chance: about 1 in 10^15
    commitments = scalar_rows(
        app, select(Trial.randomization_commitment).where(Trial.protocol_id.like("SEED-%"))
    )
    assert len(set(commitments)) == 2
    assert all(len(digest or "") == 64 for digest in commitments)
    assert not hasattr(Trial, "randomization_seed")


def test_a_randomization_records_its_slots_commitment(app, client, auth_headers):
    subject = _enrolled(client, auth_headers, "SEED-301")
    response = client.post(f"{subject}/randomization", headers=auth_headers("amu-clinician"))
    assert response.status_code == 201, response.json
    chain = client.get(
        f"/api/v1/ledger/chains/subject:{SEPSIS_TRIAL}:SEED-301", headers=auth_headers("qa")
    ).json
    (randomized,) = [event for event in chain if event["type"] == "RANDOMIZED"]
    stored = scalar_rows(
        app,
        select(RandomizationSlot.arm_commitment)
        .join(Subject, Subject.id == RandomizationSlot.subject_id)
        .where(Subject.code == "SEED-301"),
    )
    assert [randomized["body"]["payload"]["arm_commitment"]] == stored
    assert len(stored[0]) == 64


# --- wristbands --------------------------------------------------------------------------


def test_a_clinician_prints_a_subjects_wristband_from_the_api_and_the_trial_page(
    client, auth_headers
):
    path = f"{SUBJECT}/{SEPSIS_SUBJECT}/wristband"
    png = client.get(f"{path}?format=png", headers=auth_headers("amu-clinician"))
    assert (png.status_code, png.mimetype) == (200, "image/png")
    (code,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.data)))
    scanned = client.post(
        "/api/v1/scans", json={"code": code.text}, headers=auth_headers("amu-clinician")
    ).json
    assert (scanned["kind"], scanned["authentication"]) == ("subject", "valid")
    assert client.get(path, headers=auth_headers("auditor")).status_code == 403
    chain = client.get(
        f"/api/v1/ledger/chains/subject:{SEPSIS_TRIAL}:{SEPSIS_SUBJECT}",
        headers=auth_headers("qa"),
    ).json
    assert "WRISTBAND_PRINTED" in [event["type"] for event in chain]
    sign_in(client, "amu-clinician")
    page = client.get(f"/trials/{SEPSIS_TRIAL}").get_data(as_text=True)
    assert 'data-testid="wristband"' in page
    pdf = client.get(f"/trials/{SEPSIS_TRIAL}/subjects/{SEPSIS_SUBJECT}/wristband.pdf")
    assert (pdf.status_code, pdf.mimetype, pdf.data[:4]) == (200, "application/pdf", b"%PDF")
