"""QC results, QA's signed release, exceptional release, rejection, recalls and the CoA."""

from __future__ import annotations

import datetime as dt
import io

from pypdf import PdfReader
from sqlalchemy import text

from app import demo
from lots.base import utcnow
from tests.worlds.api import (
    PASSWORDS,
    quarantined_lot,
    recall,
    refused_signatures,
    release,
    row_counts,
)

EXCEPTIONAL = {
    "protocol_id": "NCT06976229",
    "subject_code": "XS228-S-0107",
    "physician_name": "Dr. Dong Jianwen",
    "request_reference": "SYSU3-REQ-2026-031",
    "risk_evaluation": "Viability 65 % against ≥ 70 %; no alternative for this subject.",
}


def enter_result(client, auth_headers, number, test, value, *, unit=None, **extra):
    body = {
        "test": test,
        "value": value,
        "unit": unit,
        "tested_at": (utcnow() - dt.timedelta(hours=2)).isoformat(),
        **extra,
    }
    return client.post(f"/api/v1/lots/{number}/qc-results", json=body, headers=auth_headers("qc"))


def enter_results(client, auth_headers, number, *, skip=(), replace=None):
    """The demo's conforming XS228 results, less `skip`, with some values replaced."""
    for test, value, unit in demo.XS228_RESULTS:
        if test in skip:
            continue
        response = enter_result(
            client, auth_headers, number, test, (replace or {}).get(test, value), unit=unit
        )
        assert response.status_code == 201, response.json


def lot_with_results(client, auth_headers, number="XS228-R1", replace=None):
    quarantined_lot(client, auth_headers, number)
    enter_results(client, auth_headers, number, replace=replace)


def blockers(response) -> list[str]:
    assert (response.status_code, response.json["title"]) == (409, "Release refused")
    return response.json["errors"]["release"]


# --- the happy path ---------------------------------------------------------------------


def test_qc_and_qa_take_a_lot_from_quarantine_to_release_through_the_api(client, auth_headers):
    quarantined_lot(client, auth_headers, "XS228-R1")
    entered = [
        enter_result(client, auth_headers, "XS228-R1", test, value, unit=unit)
        for test, value, unit in demo.XS228_RESULTS
    ]
    response = release(client, auth_headers, "XS228-R1")
    events = client.get("/api/v1/lots/XS228-R1/events", headers=auth_headers("qa")).json
    lot = client.get("/api/v1/lots/XS228-R1", headers=auth_headers("qa")).json
    assert [(r.status_code, r.json["conformance"]) for r in entered] == [(201, "conforms")] * 9
    assert response.status_code == 201
    assert response.json["signature"]["name"] == "Li Wei"
    assert response.json["signature"]["meaning"] == "Released for clinical use (QA)"
    assert response.json["event_hash"] == events[-1]["hash"]
    assert events[-1]["body"]["payload"]["signature"]["name"] == "Li Wei"
    assert lot["status"] == "released"


def test_the_signature_password_is_never_echoed(client, auth_headers):
    lot_with_results(client, auth_headers, "XS228-R2")
    response = release(client, auth_headers, "XS228-R2")
    assert response.status_code == 201
    assert PASSWORDS["qa"] not in response.get_data(as_text=True)
    assert "password" not in response.json


# --- results ----------------------------------------------------------------------------


def test_an_out_of_specification_result_is_flagged_as_it_is_entered(client, auth_headers):
    quarantined_lot(client, auth_headers, "XS228-R3")
    response = enter_result(client, auth_headers, "XS228-R3", "Viability", "65.0", unit="%")
    assert (response.status_code, response.json["conformance"]) == (201, "oos")
    assert response.json["acceptance"] == "≥ 70 %"


def test_a_result_in_the_wrong_unit_is_refused_and_nothing_is_recorded(client, auth_headers, app):
    quarantined_lot(client, auth_headers, "XS228-R4")
    before = row_counts(app)
    response = enter_result(client, auth_headers, "XS228-R4", "Viability", "0.91", unit="fraction")
    assert response.status_code == 422
    assert response.json["errors"] == {
        "unit": ["Viability is specified in %; a result in 'fraction' is refused."]
    }
    assert row_counts(app) == before


def test_a_result_too_large_to_record_is_refused_not_a_server_error(client, auth_headers):
    quarantined_lot(client, auth_headers, "XS228-R20")
    response = enter_result(client, auth_headers, "XS228-R20", "Viability", "1e30", unit="%")
    assert (response.status_code, list(response.json["errors"])) == (422, ["value"])


def test_a_result_for_a_test_outside_the_specification_is_refused(client, auth_headers):
    quarantined_lot(client, auth_headers, "XS228-R5")
    response = enter_result(client, auth_headers, "XS228-R5", "Potency", "42", unit="%")
    assert (response.status_code, list(response.json["errors"])) == (422, ["test"])


def test_only_qc_enters_results(client, auth_headers):
    response = client.post(
        "/api/v1/lots/XS228-2611-01/qc-results",
        json={"test": "Viability", "value": "90", "unit": "%", "tested_at": utcnow().isoformat()},
        headers=auth_headers("qa"),
    )
    assert response.status_code == 403


def test_a_correction_supersedes_a_result_and_both_stay_visible(client, auth_headers):
    quarantined_lot(client, auth_headers, "XS228-R6")
    first = enter_result(client, auth_headers, "XS228-R6", "Viability", "95.1", unit="%")
    correction = enter_result(
        client,
        auth_headers,
        "XS228-R6",
        "Viability",
        "91.5",
        unit="%",
        supersedes=first.json["id"],
        reason="Transcription error: digits swapped.",
    )
    history = client.get("/api/v1/lots/XS228-R6/qc-results", headers=auth_headers("qa")).json
    assert [(r["value"], r["conformance"], r["superseded_by"]) for r in history] == [
        ("95.1", "conforms", correction.json["id"]),
        ("91.5", "conforms", None),
    ]
    assert (history[1]["supersedes"], history[1]["supersede_reason"], history[1]["analyst"]) == (
        first.json["id"],
        "Transcription error: digits swapped.",
        "qc",
    )


def test_a_second_result_for_a_test_must_name_the_one_it_supersedes(client, auth_headers):
    quarantined_lot(client, auth_headers, "XS228-R7")
    enter_result(client, auth_headers, "XS228-R7", "Viability", "91.5", unit="%")
    response = enter_result(client, auth_headers, "XS228-R7", "Viability", "92.0", unit="%")
    assert (response.status_code, list(response.json["errors"])) == (422, ["supersedes"])


def test_a_lot_page_shows_each_specification_line_with_its_current_result(client, auth_headers):
    quarantined_lot(client, auth_headers, "XS228-R8")
    enter_result(client, auth_headers, "XS228-R8", "Sterility", "No growth")
    lot = client.get("/api/v1/lots/XS228-R8", headers=auth_headers("qc")).json
    lines = {line["test"]: line for line in lot["specification"]}
    assert len(lines) == 9
    assert lines["Sterility"]["result"]["conformance"] == "conforms"
    assert lines["Karyotype"]["result"] is None


# --- refusals ---------------------------------------------------------------------------


def test_release_is_refused_while_a_result_is_missing(client, auth_headers, app):
    quarantined_lot(client, auth_headers, "XS228-R9")
    enter_results(client, auth_headers, "XS228-R9", skip={"Karyotype"})
    before = row_counts(app)
    response = release(client, auth_headers, "XS228-R9")
    assert blockers(response) == ["No result for: Karyotype."]
    assert row_counts(app) == before


def test_release_is_refused_with_a_result_out_of_specification(client, auth_headers, app):
    lot_with_results(client, auth_headers, "XS228-R10", replace={"Viability": "65"})
    before = row_counts(app)
    response = release(client, auth_headers, "XS228-R10")
    assert blockers(response) == [
        "Out of specification: Viability 65 % (≥ 70 %).",
        "Out-of-specification investigation OOS-XS228-R10-01 (Viability) is still open.",
    ]
    assert row_counts(app) == before


def test_a_qa_user_who_entered_a_result_may_not_release_the_lot(client, auth_headers, app):
    lot_with_results(client, auth_headers, "XS228-R11")
    moved = client.patch("/api/v1/users/qc", json={"role": "qa"}, headers=auth_headers("admin"))
    before = row_counts(app)
    response = release(client, auth_headers, "XS228-R11", username="qc")
    assert moved.status_code == 200
    assert len(blockers(response)) == 1
    assert "someone who entered no result must release" in blockers(response)[0]
    assert row_counts(app) == before


def test_a_qa_user_who_manufactured_the_lot_may_not_release_it(client, auth_headers, app):
    lot_with_results(client, auth_headers, "XS228-R12")
    client.patch("/api/v1/users/manufacturing", json={"role": "qa"}, headers=auth_headers("admin"))
    before = row_counts(app)
    response = release(client, auth_headers, "XS228-R12", username="manufacturing")
    assert blockers(response) == [
        "You took part in manufacturing this lot; someone independent of it must release."
    ]
    assert row_counts(app) == before


def test_an_open_deviation_blocks_release_until_qa_closes_it(client, auth_headers):
    lot_with_results(client, auth_headers, "XS228-R13")
    client.post(
        "/api/v1/lots/XS228-R13/deviations",
        json={"description": "Fill volume 1.1 mL in 3 vials", "severity": "major"},
        headers=auth_headers("qc"),
    )
    refused = release(client, auth_headers, "XS228-R13")
    client.post(
        "/api/v1/lots/XS228-R13/deviations/1/close",
        json={"note": "Within dose tolerance.", "password": PASSWORDS["qa"], "meaning": "Closed"},
        headers=auth_headers("qa"),
    )
    released = release(client, auth_headers, "XS228-R13")
    assert blockers(refused) == ["Deviation DEV-XS228-R13-01 (major) is still open."]
    assert released.status_code == 201


def test_an_expired_lot_cannot_be_released(client, auth_headers, app):
    quarantined_lot(client, auth_headers, "XS228-R14", ended_days_ago=400)
    enter_results(client, auth_headers, "XS228-R14")
    lot = client.get("/api/v1/lots/XS228-R14", headers=auth_headers("qa")).json
    before = row_counts(app)
    response = release(client, auth_headers, "XS228-R14")
    assert lot["expired"] is True
    assert blockers(response) == [f"Lot XS228-R14 expired on {lot['expires_on']}."]
    assert row_counts(app) == before


def test_a_release_signed_with_a_wrong_password_is_refused_and_the_attempt_is_recorded(
    client, auth_headers, app
):
    lot_with_results(client, auth_headers, "XS228-R15")
    before, attempts = row_counts(app), refused_signatures(app, "qa")
    response = release(client, auth_headers, "XS228-R15", password="guessed-password-1")
    lot = client.get("/api/v1/lots/XS228-R15", headers=auth_headers("qa")).json
    assert (response.status_code, response.json["title"]) == (403, "Signature refused")
    assert "guessed-password-1" not in response.get_data(as_text=True)
    assert row_counts(app) == before
    assert refused_signatures(app, "qa") == attempts + 1
    assert lot["status"] == "quarantine"


def test_only_qa_releases(client, auth_headers, app):
    lot_with_results(client, auth_headers, "XS228-R16")
    before = row_counts(app)
    by_qc = release(client, auth_headers, "XS228-R16", username="qc")
    by_manufacturing = release(client, auth_headers, "XS228-R16", username="manufacturing")
    assert (by_qc.status_code, by_manufacturing.status_code) == (403, 403)
    assert row_counts(app) == before


def test_a_released_lot_cannot_be_released_again(client, auth_headers, app):
    before = row_counts(app)
    response = release(client, auth_headers, "XS228-2610-01")
    assert blockers(response) == [
        "Lot XS228-2610-01 is released; only a lot in quarantine can be released."
    ]
    assert row_counts(app) == before


# --- exceptional release and rejection --------------------------------------------------


def test_an_out_of_specification_lot_is_released_exceptionally_for_one_named_subject(
    client, auth_headers
):
    lot_with_results(client, auth_headers, "XS228-R17", replace={"Viability": "65"})
    confirmed = client.post(
        "/api/v1/lots/XS228-R17/investigations/1/closure",
        json={
            "outcome": "confirmed",
            "reason": "No laboratory error: the result stands.",
            "password": PASSWORDS["qa"],
            "meaning": "OOS confirmed (QA)",
        },
        headers=auth_headers("qa"),
    )
    assert confirmed.status_code == 200, confirmed.json
    response = release(
        client,
        auth_headers,
        "XS228-R17",
        decision="exceptional_release",
        meaning="Exceptional release for one subject (QA)",
        exceptional=EXCEPTIONAL,
    )
    lot = client.get("/api/v1/lots/XS228-R17", headers=auth_headers("qa")).json
    assert (response.status_code, response.json["decision"]) == (201, "exceptionally_released")
    assert response.json["exceptional"] == EXCEPTIONAL
    assert (lot["status"], lot["exceptional_trial"], lot["exceptional_subject"]) == (
        "exceptionally_released",
        "NCT06976229",
        "XS228-S-0107",
    )


def test_an_exceptional_release_needs_the_physicians_request(client, auth_headers):
    lot_with_results(client, auth_headers, "XS228-R18", replace={"Viability": "65"})
    response = release(client, auth_headers, "XS228-R18", decision="exceptional_release")
    assert (response.status_code, list(response.json["errors"])) == (422, ["exceptional"])


def test_a_conforming_lot_is_not_released_exceptionally(client, auth_headers):
    lot_with_results(client, auth_headers, "XS228-R19")
    response = release(
        client, auth_headers, "XS228-R19", decision="exceptional_release", exceptional=EXCEPTIONAL
    )
    assert blockers(response) == [
        "Every result conforms: an exceptional release is only for an out-of-specification lot."
    ]


def test_qa_rejects_a_lot_with_a_reason_and_its_vials_are_quarantined(client, auth_headers):
    response = release(
        client,
        auth_headers,
        "XS228-2611-01",
        decision="reject",
        meaning="Rejected (QA)",
        reason="Freezer excursion to -120 °C during storage.",
    )
    vial = client.get("/api/v1/vials/XS228-2611-01-V0001", headers=auth_headers("qa")).json
    assert (response.status_code, response.json["decision"]) == (201, "rejected")
    assert response.json["reason"] == "Freezer excursion to -120 °C during storage."
    assert vial["state"] == "quarantined"


def test_a_rejection_states_its_reason(client, auth_headers, app):
    before = row_counts(app)
    response = release(client, auth_headers, "XS228-2611-01", decision="reject")
    assert (response.status_code, list(response.json["errors"])) == (422, ["reason"])
    assert row_counts(app) == before


# --- recalls ----------------------------------------------------------------------------


def test_recalling_bank_xs_wcb_01_recalls_every_lot_made_from_it(client, auth_headers):
    response = recall(client, auth_headers, "bank", "XS-WCB-01")
    vial = client.get("/api/v1/vials/XS228-2610-01-V0001", headers=auth_headers("qa")).json
    recalls = client.get("/api/v1/recalls", headers=auth_headers("qa")).json
    assert response.status_code == 201
    assert sorted(row["lot"] for row in response.json) == ["XS228-2610-01", "XS228-2611-01"]
    assert {row["recall_scope"] for row in response.json} == {"bank:XS-WCB-01"}
    assert vial["state"] == "quarantined"
    assert sorted(row["lot"] for row in recalls) == ["XS228-2610-01", "XS228-2611-01"]


def test_recalling_a_donor_recalls_the_lots_of_their_banks(client, auth_headers):
    response = recall(client, auth_headers, "donor", "UCD-2025-017")
    lot = client.get("/api/v1/lots/UCR-2611-01", headers=auth_headers("qa")).json
    assert [row["lot"] for row in response.json] == ["UCR-2611-01"]
    assert lot["status"] == "recalled"


def test_a_recall_is_one_ledger_event_per_lot(client, auth_headers):
    response = recall(client, auth_headers, "lot", "XS228-2610-01")
    events = client.get("/api/v1/lots/XS228-2610-01/events", headers=auth_headers("qa")).json
    assert [event["type"] for event in events][-2:] == ["RELEASED", "RECALLED"]
    assert response.json[0]["event_hash"] == events[-1]["hash"]


def test_only_qa_recalls(client, auth_headers, app):
    before = row_counts(app)
    response = recall(client, auth_headers, "bank", "XS-WCB-01", username="qc")
    assert response.status_code == 403
    assert row_counts(app) == before


def test_a_recall_signed_with_a_wrong_password_changes_nothing(client, auth_headers, app):
    before = row_counts(app)
    response = recall(client, auth_headers, "bank", "XS-WCB-01", password="guessed-password-1")
    lot = client.get("/api/v1/lots/XS228-2610-01", headers=auth_headers("qa")).json
    assert (response.status_code, response.json["title"]) == (403, "Signature refused")
    assert row_counts(app) == before
    assert lot["status"] == "released"


# --- certificate of analysis ------------------------------------------------------------


def test_the_certificate_of_analysis_is_a_pdf_naming_the_lot_and_the_release_hash(
    client, auth_headers
):
    lot = client.get("/api/v1/lots/XS228-2610-01", headers=auth_headers("qa")).json
    response = client.get("/api/v1/lots/XS228-2610-01/coa", headers=auth_headers("qa"))
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    assert (response.status_code, response.mimetype) == (200, "application/pdf")
    assert "XS228-2610-01" in text
    assert lot["decisions"][0]["event_hash"] in text.replace("\n", "")


def test_another_sites_courier_gets_no_certificate(client, auth_headers):
    response = client.get("/api/v1/lots/XS228-2610-01/coa", headers=auth_headers("courier"))
    assert response.status_code == 404


def test_a_time_sent_with_an_offset_is_answered_in_utc_by_the_post_and_the_get(
    client, auth_headers
):
    quarantined_lot(client, auth_headers, "XS228-R40")
    guangzhou = dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    posted = enter_result(
        client, auth_headers, "XS228-R40", "Sterility", "No growth", tested_at=guangzhou.isoformat()
    )
    assert posted.status_code == 201, posted.json
    (read,) = client.get("/api/v1/lots/XS228-R40/qc-results", headers=auth_headers("qc")).json
    assert dt.datetime.fromisoformat(posted.json["tested_at"]) == guangzhou
    assert posted.json["tested_at"] == read["tested_at"]
    assert posted.json["tested_at"].endswith(("Z", "+00:00"))


def test_a_lot_whose_status_was_edited_outside_the_ledger_is_refused_as_problem_json(
    client, auth_headers, app
):
    """Issue 16, defect 1, over HTTP: a conforming lot whose row was set back to in process
    behind the ledger's back is not released; nothing is written."""
    lot_with_results(client, auth_headers, "XS228-R31")
    with app.extensions["celltrail.db"].sessions() as db, db.begin():
        db.execute(text("UPDATE lots SET status = 'in_process' WHERE number = 'XS228-R31'"))
    before = row_counts(app)
    response = release(client, auth_headers, "XS228-R31")
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert response.json["title"] == "Record disagrees with the ledger"
    assert "reads in process but its ledger says quarantine" in response.json["detail"]
    assert row_counts(app) == before
