"""Banks, donors, lots, vials, signed steps and deviations through the JSON API."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from custody.ledger import CustodyEvent
from lots.base import utcnow
from lots.batch import Lot, Vial
from tests.worlds.api import (
    PASSWORDS,
    make_lot,
    quarantined_lot,
    refused_signatures,
    row_counts,
    scalar,
    sign_step,
)

# --- banks and donors -------------------------------------------------------------------


def test_a_working_bank_registered_under_the_master_bank_shows_its_genealogy(client, auth_headers):
    created = client.post(
        "/api/v1/banks",
        json={"code": "XS-WCB-02", "kind": "working", "parent": "XS-MCB-01", "passage": 21},
        headers=auth_headers("manufacturing"),
    )
    bank = client.get("/api/v1/banks/XS-WCB-02", headers=auth_headers("qa")).json
    assert created.status_code == 201
    assert [ancestor["code"] for ancestor in bank["genealogy"]] == ["XS-MCB-01", "XS-iPSC-L1"]
    assert (bank["site"], bank["created_by"]) == ("XSM-SZ", "manufacturing")


def test_a_donors_working_bank_names_the_donor_and_their_eligibility(client, auth_headers):
    bank = client.get("/api/v1/banks/UC-D017-WCB-01", headers=auth_headers("qc")).json
    assert (bank["donor"], bank["donor_eligibility"]) == ("UCD-2025-017", "eligible")
    assert bank["genealogy"] == [{"code": "UC-D017-MCB", "kind": "donor", "passage": 2}]


def test_a_working_bank_cannot_be_made_from_a_cell_line(client, auth_headers):
    response = client.post(
        "/api/v1/banks",
        json={"code": "XS-WCB-09", "kind": "working", "parent": "XS-iPSC-L1"},
        headers=auth_headers("manufacturing"),
    )
    assert response.status_code == 422
    assert response.json["errors"] == {"parent": ["A working bank cannot be made from cell line."]}


def test_manufacturing_registers_a_donor_as_pending_but_may_not_declare_them_eligible(
    client, auth_headers
):
    eligible = client.post(
        "/api/v1/donors",
        json={"code": "UCD-2026-101", "eligibility": "eligible"},
        headers=auth_headers("manufacturing"),
    )
    pending = client.post(
        "/api/v1/donors", json={"code": "UCD-2026-101"}, headers=auth_headers("manufacturing")
    )
    assert eligible.status_code == 403
    assert (pending.status_code, pending.json["eligibility"]) == (201, "pending")


def test_qa_determines_a_donor_eligible_and_the_audit_keeps_the_pending_determination(
    client, auth_headers
):
    response = client.post(
        "/api/v1/donors/UCD-2025-023/eligibility",
        json={"eligibility": "eligible", "note": "Infectious-disease markers negative."},
        headers=auth_headers("qa"),
    )
    audit = client.get(
        "/api/v1/audit?entity_type=donor&entity_key=UCD-2025-023", headers=auth_headers("qa")
    ).json
    assert (response.status_code, response.json["determined_by"]) == (200, "qa")
    assert audit[0]["old"]["eligibility"] == "pending"
    assert audit[0]["new"]["eligibility"] == "eligible"


def test_only_qa_determines_a_donors_eligibility(client, auth_headers):
    response = client.post(
        "/api/v1/donors/UCD-2025-023/eligibility",
        json={"eligibility": "eligible", "note": "Looks fine."},
        headers=auth_headers("manufacturing"),
    )
    assert response.status_code == 403


def test_a_donor_lists_every_bank_made_from_them(client, auth_headers):
    donor = client.get("/api/v1/donors/UCD-2025-017", headers=auth_headers("manufacturing")).json
    assert donor["banks"] == ["UC-D017-MCB", "UC-D017-WCB-01"]


# --- lots and vials ---------------------------------------------------------------------


def test_manufacturing_creates_a_lot_in_process_with_its_vials_commissioned(client, auth_headers):
    lot = make_lot(client, auth_headers, "XS228-T1", vials=3)
    vials = client.get("/api/v1/lots/XS228-T1/vials", headers=auth_headers("qc")).json
    assert (lot["status"], lot["product"], lot["product_version"], lot["vial_count"]) == (
        "in_process",
        "XS228",
        1,
        3,
    )
    assert vials == [
        {"serial": f"XS228-T1-V000{n}", "position": n, "state": "in_stock"} for n in (1, 2, 3)
    ]


@pytest.mark.parametrize(
    ("utc_time", "days_after_the_utc_date"), [(dt.time(15, 59), 0), (dt.time(16, 0), 1)]
)
def test_a_lot_expires_a_shelf_life_after_its_manufacture_day_at_the_site(
    client, auth_headers, utc_time, days_after_the_utc_date
):
    """XSM-SZ keeps Asia/Shanghai time (UTC+8): a lot ending 16:00 UTC ends the next day there."""
    utc_day = utcnow().date() - dt.timedelta(days=10)
    end = dt.datetime.combine(utc_day, utc_time, tzinfo=dt.UTC)
    lot = make_lot(
        client,
        auth_headers,
        "XS228-T2",
        manufacture_start=(end - dt.timedelta(days=28)).isoformat(),
        manufacture_end=end.isoformat(),
    )
    expected = utc_day + dt.timedelta(days=days_after_the_utc_date + 365)
    assert dt.date.fromisoformat(lot["expires_on"]) == expected
    assert lot["expired"] is False


def test_a_1000_vial_lot_is_created_in_one_request_with_1000_commissioning_events(
    client, auth_headers, app
):
    make_lot(client, auth_headers, "XS228-K1", vials=1000)
    commissioned = scalar(
        app,
        select(func.count())
        .select_from(CustodyEvent)
        .where(
            CustodyEvent.chain.startswith("vial:XS228-K1-V"),
            CustodyEvent.event_type == "COMMISSIONED",
        ),
    )
    last_page = client.get(
        "/api/v1/lots/XS228-K1/vials?limit=10&offset=990", headers=auth_headers("manufacturing")
    )
    assert commissioned == 1000
    assert last_page.headers["X-Total-Count"] == "1000"
    assert [vial["serial"] for vial in last_page.json][-1] == "XS228-K1-V1000"


def test_a_lot_from_a_pending_donors_bank_needs_a_written_justification(client, auth_headers, app):
    body = {
        "number": "UCR-T1",
        "product": "UCMSC-REG",
        "bank": "UC-D023-MCB",
        "manufacture_start": (utcnow() - dt.timedelta(days=30)).isoformat(),
        "manufacture_end": (utcnow() - dt.timedelta(days=1)).isoformat(),
        "vials_filled": 4,
        "cells_per_vial": 100_000_000,
        "volume_ml": 20,
    }
    before = row_counts(app)
    refused = client.post("/api/v1/lots", json=body, headers=auth_headers("manufacturing"))
    assert (refused.status_code, refused.json["title"]) == (409, "Donor not eligible")
    assert row_counts(app) == before
    justified = client.post(
        "/api/v1/lots",
        json={**body, "donor_eligibility_justification": "Urgent medical need; IRB approved."},
        headers=auth_headers("manufacturing"),
    )
    assert justified.status_code == 201


def test_only_manufacturing_creates_lots(client, auth_headers, app):
    before = row_counts(app)
    response = client.post("/api/v1/lots", json={"number": "XS228-T9"}, headers=auth_headers("qa"))
    assert response.status_code == 403
    assert row_counts(app) == before


def test_an_unknown_field_in_a_lot_is_refused_not_dropped(client, auth_headers):
    end = utcnow() - dt.timedelta(days=1)
    response = client.post(
        "/api/v1/lots",
        json={
            "number": "XS228-T3",
            "product": "XS228",
            "bank": "XS-WCB-01",
            "manufacture_start": end.isoformat(),
            "manufacture_end": end.isoformat(),
            "vials_filled": 1,
            "cells_per_vial": 1,
            "volume_ml": 1,
            "status": "released",
        },
        headers=auth_headers("manufacturing"),
    )
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert "status" in response.json["errors"]


def test_a_lot_created_twice_with_one_idempotency_key_is_made_once(client, auth_headers, app):
    end = utcnow() - dt.timedelta(days=1)
    body = {
        "number": "XS228-T4",
        "product": "XS228",
        "bank": "XS-WCB-01",
        "manufacture_start": end.isoformat(),
        "manufacture_end": end.isoformat(),
        "vials_filled": 2,
        "cells_per_vial": 10_000_000,
        "volume_ml": "1.0",
    }
    headers = {**auth_headers("manufacturing"), "Idempotency-Key": "lot-XS228-T4"}
    first = client.post("/api/v1/lots", json=body, headers=headers)
    again = client.post("/api/v1/lots", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true"
    vials = select(func.count()).select_from(Vial).join(Lot).where(Lot.number == "XS228-T4")
    assert scalar(app, vials) == 2


def test_the_lot_list_filters_by_status_and_product(client, auth_headers):
    released = client.get("/api/v1/lots?status=released", headers=auth_headers("qa")).json
    msc = client.get("/api/v1/lots?product=UCMSC-REG", headers=auth_headers("qa")).json
    quarantined = client.get("/api/v1/lots?status=quarantine", headers=auth_headers("qa")).json
    # The sepsis trial's kits need its active and control lots released; XS228-2611-01 waits.
    assert sorted(lot["number"] for lot in released) == [
        "CTRL-2611-01",
        "UCR-2611-01",
        "XS228-2610-01",
    ]
    assert [lot["number"] for lot in quarantined] == ["XS228-2611-01"]
    assert [lot["number"] for lot in msc] == ["UCR-2611-01"]


def test_a_courier_of_another_site_neither_sees_nor_lists_a_lot(client, auth_headers):
    lot = client.get("/api/v1/lots/XS228-2611-01", headers=auth_headers("courier"))
    listed = client.get("/api/v1/lots", headers=auth_headers("courier"))
    vial = client.get("/api/v1/vials/XS228-2611-01-V0001", headers=auth_headers("courier"))
    assert (lot.status_code, lot.json["title"]) == (404, "Not found")
    assert listed.json == []
    assert vial.status_code == 404


def test_the_qc_lab_sees_the_lots_it_tests(client, auth_headers):
    listed = client.get("/api/v1/lots", headers=auth_headers("qc")).json
    assert {lot["number"] for lot in listed} == {"XS228-2610-01", "XS228-2611-01", "UCR-2611-01"}


def test_a_released_lot_shows_its_results_and_its_signed_release(client, auth_headers):
    lot = client.get("/api/v1/lots/XS228-2610-01", headers=auth_headers("auditor")).json
    release = lot["decisions"][0]
    assert lot["status"] == "released"
    assert all(line["result"]["conformance"] == "conforms" for line in lot["specification"])
    assert (release["decision"], release["signature"]["name"]) == ("released", "Li Wei")
    assert len(release["event_hash"]) == 64


def test_a_lots_events_are_its_ledger_chain(client, auth_headers):
    events = client.get("/api/v1/lots/XS228-2610-01/events", headers=auth_headers("qa")).json
    assert [event["type"] for event in events] == [
        "LOT_CREATED",
        "BATCH_RECORD_COMPLETED",
        *["QC_RESULT_RECORDED"] * 9,
        "RELEASED",
    ]
    assert events[-1]["prev_hash"] == events[-2]["hash"]


def test_a_vial_shows_its_state_lot_and_product_and_its_own_chain(client, auth_headers):
    vial = client.get("/api/v1/vials/XS228-2610-01-V0007", headers=auth_headers("qa")).json
    events = client.get("/api/v1/vials/XS228-2610-01-V0007/events", headers=auth_headers("qa")).json
    assert (vial["state"], vial["lot"], vial["lot_status"], vial["product"]) == (
        "in_stock",
        "XS228-2610-01",
        "released",
        "XS228",
    )
    assert [event["type"] for event in events] == ["COMMISSIONED"]


def test_an_unknown_vial_is_404(client, auth_headers):
    assert client.get("/api/v1/vials/NOPE-V0001", headers=auth_headers("qa")).status_code == 404


# --- the manufacturing record -----------------------------------------------------------


def test_an_expansion_step_is_signed_with_the_printed_name_and_meaning(client, auth_headers):
    make_lot(client, auth_headers, "XS228-T5")
    response = sign_step(client, auth_headers, "XS228-T5", "expansion", details={"passage": 23})
    signature = response.json["body"]["payload"]["signature"]
    assert response.status_code == 201
    assert (signature["name"], signature["meaning"]) == ("Meng Zhao", "Performed by")
    assert PASSWORDS["manufacturing"] not in response.get_data(as_text=True)


def test_an_expansion_beyond_the_products_maximum_passage_is_refused(client, auth_headers, app):
    make_lot(client, auth_headers, "XS228-T6")
    before = row_counts(app)
    response = sign_step(client, auth_headers, "XS228-T6", "expansion", details={"passage": 51})
    assert (response.status_code, response.json["title"]) == (409, "Passage limit exceeded")
    assert row_counts(app) == before


def test_completing_the_batch_record_puts_the_lot_in_quarantine(client, auth_headers):
    quarantined_lot(client, auth_headers, "XS228-T7")
    lot = client.get("/api/v1/lots/XS228-T7", headers=auth_headers("qa")).json
    assert lot["status"] == "quarantine"


def test_a_step_signed_with_a_wrong_password_is_refused_and_the_attempt_is_recorded(
    client, auth_headers, app
):
    make_lot(client, auth_headers, "XS228-T8")
    before, attempts = row_counts(app), refused_signatures(app, "manufacturing")
    response = sign_step(client, auth_headers, "XS228-T8", "harvest", password="not-my-password-1")
    assert (response.status_code, response.json["title"]) == (403, "Signature refused")
    assert "not-my-password-1" not in response.get_data(as_text=True)
    assert row_counts(app) == before
    assert refused_signatures(app, "manufacturing") == attempts + 1


def test_qa_closes_a_deviation_with_a_signature(client, auth_headers):
    make_lot(client, auth_headers, "XS228-D1")
    raised = client.post(
        "/api/v1/lots/XS228-D1/deviations",
        json={"description": "Incubator CO2 at 6.2 % for 40 min", "severity": "minor"},
        headers=auth_headers("manufacturing"),
    )
    closed = client.post(
        "/api/v1/lots/XS228-D1/deviations/1/close",
        json={"note": "No impact on viability.", "password": PASSWORDS["qa"], "meaning": "Closed"},
        headers=auth_headers("qa"),
    )
    assert (raised.status_code, raised.json["label"], raised.json["open"]) == (
        201,
        "DEV-XS228-D1-01",
        True,
    )
    assert (closed.status_code, closed.json["open"], closed.json["closed_by"]) == (200, False, "qa")


def test_closing_a_deviation_number_beyond_any_column_is_404(client, auth_headers):
    response = client.post(
        f"/api/v1/lots/XS228-2611-01/deviations/{10**20}/close",
        json={"note": "Fine.", "password": PASSWORDS["qa"], "meaning": "Closed"},
        headers=auth_headers("qa"),
    )
    assert response.status_code == 404


def test_manufacturing_may_not_close_a_deviation(client, auth_headers):
    response = client.post(
        "/api/v1/lots/XS228-2611-01/deviations/1/close",
        json={"note": "Fine.", "password": PASSWORDS["manufacturing"], "meaning": "Closed"},
        headers=auth_headers("manufacturing"),
    )
    assert response.status_code == 403
