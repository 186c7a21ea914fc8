"""The recall trace over HTTP: a bank forward to its lots and vials, a vial back to its line."""

from __future__ import annotations


def test_a_bank_trace_lists_every_lot_and_vial_made_from_it(client, auth_headers):
    answer = client.get("/api/v1/trace/banks/XS-MCB-01", headers=auth_headers("qa"))
    assert answer.status_code == 200
    lots = {lot["number"]: lot["vials"] for lot in answer.json["lots"]}
    assert lots == {"XS228-2610-01": 24, "XS228-2611-01": 24}
    assert answer.json["banks"] == ["XS-MCB-01", "XS-WCB-01"]
    serials = [vial["serial"] for vial in answer.json["vials"]]
    assert len(serials) == 48
    assert serials == sorted(serials)


def test_a_vial_traces_back_through_its_banks_to_the_cell_line(client, auth_headers):
    answer = client.get("/api/v1/trace/vials/XS228-2610-01-V0003", headers=auth_headers("auditor"))
    assert answer.status_code == 200
    assert answer.json["lot"] == "XS228-2610-01"
    assert [bank["code"] for bank in answer.json["banks"]] == [
        "XS-WCB-01",
        "XS-MCB-01",
        "XS-iPSC-L1",
    ]
    assert answer.json["donor"] is None


def test_an_unknown_bank_is_a_problem_not_found(client, auth_headers):
    answer = client.get("/api/v1/trace/banks/NO-SUCH-BANK", headers=auth_headers("qa"))
    assert (answer.status_code, answer.content_type) == (404, "application/problem+json")
