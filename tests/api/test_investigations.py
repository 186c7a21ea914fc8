"""Out-of-specification investigations through the API and the lot page: opened by the OOS
result itself, the laboratory's cause recorded by QC, QA's signed outcome, the retest, every
refusal as problem+json (API) or on the page, nothing half-recorded."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from lots.base import utcnow
from tests.worlds.api import PASSWORDS, quarantined_lot, row_counts
from tests.worlds.pages import sign_in

LOT = "XS228-OOS1"
API = f"/api/v1/lots/{LOT}/investigations"


def _result(client, auth_headers, value: str, **extra):
    body = {
        "test": "Viability",
        "value": value,
        "unit": "%",
        "tested_at": (utcnow() - dt.timedelta(hours=1)).isoformat(),
        **extra,
    }
    return client.post(f"/api/v1/lots/{LOT}/qc-results", json=body, headers=auth_headers("qc"))


@pytest.fixture
def oos(client, auth_headers) -> int:
    """The lot's viability out of specification; the id of that result."""
    quarantined_lot(client, auth_headers, LOT)
    response = _result(client, auth_headers, "19.5")
    assert (response.status_code, response.json["conformance"]) == (201, "oos")
    return response.json["id"]


def _closure(**changes):
    return {
        "outcome": "invalidated",
        "reason": "Dilution error confirmed from the raw counts.",
        "password": PASSWORDS["qa"],
        "meaning": "OOS result invalidated (QA)",
        **changes,
    }


def test_the_oos_result_opens_an_investigation_and_it_runs_to_a_retest(client, auth_headers, oos):
    (opened,) = client.get(API, headers=auth_headers("qa")).json
    assert (opened["label"], opened["status"], opened["phase"], opened["result"]) == (
        f"OOS-{LOT}-01",
        "open",
        "laboratory",
        oos,
    )
    refused = _result(client, auth_headers, "91.5", supersedes=oos, reason="Typo")
    assert refused.status_code == 409
    assert refused.mimetype == "application/problem+json"
    assert refused.json["title"] == "Out-of-specification result under investigation"

    cause = {"cause": "Haemocytometer counted at the wrong dilution."}
    found = client.post(f"{API}/1/laboratory-cause", json=cause, headers=auth_headers("qc"))
    assert (found.status_code, found.json["cause_by"]) == (200, "qc")
    closed = client.post(f"{API}/1/closure", json=_closure(), headers=auth_headers("qa"))
    assert closed.status_code == 200, closed.json
    assert (closed.json["status"], closed.json["signature"]["name"]) == (
        "closed: invalidated",
        "Li Wei",
    )
    assert "password" not in closed.json["signature"]
    retest = _result(client, auth_headers, "91.5", supersedes=oos)
    assert (retest.status_code, retest.json["conformance"]) == (201, "conforms")
    assert retest.json["supersede_reason"].startswith(f"Retest after OOS-{LOT}-01 invalidated")
    events = client.get(f"/api/v1/lots/{LOT}/events", headers=auth_headers("qa")).json
    assert [e["type"] for e in events if e["type"].startswith("OOS_")] == [
        "OOS_INVESTIGATION_OPENED",
        "OOS_LABORATORY_CAUSE_FOUND",
        "OOS_INVESTIGATION_CLOSED",
    ]


@pytest.mark.parametrize(
    "case",
    [
        ("qc", "closure", _closure(), 403),  # QC never signs the outcome
        ("manufacturing", "laboratory-cause", {"cause": "x"}, 403),
        ("qa", "closure", _closure(outcome="averaged"), 422),
        ("qa", "closure", _closure(reason=""), 422),
        ("qa", "closure", _closure(), 409),  # no laboratory cause recorded in phase I
        ("qc", "phase-two", {"finding": "Lab checks clean.", "deviation": 1}, 422),  # none raised
        ("qc", "laboratory-cause", {"cause": "   "}, 422),
    ],
)
def test_every_refused_step_answers_problem_json_and_records_nothing(
    client, auth_headers, app, oos, case
):
    del oos
    who, path, body, status = case
    before = row_counts(app)
    response = client.post(f"{API}/1/{path}", json=body, headers=auth_headers(who))
    assert response.status_code == status, response.json
    assert response.mimetype == "application/problem+json"
    assert row_counts(app) == before
    (still,) = client.get(API, headers=auth_headers("qa")).json
    assert (still["status"], still["cause"]) == ("open", None)


def test_an_investigation_that_does_not_exist_is_404(client, auth_headers, oos):
    del oos
    for number in (2, 2**31, 2**40):
        response = client.post(
            f"{API}/{number}/laboratory-cause", json={"cause": "x"}, headers=auth_headers("qc")
        )
        assert response.status_code == 404, (number, response.json)


def test_qc_and_qa_work_the_investigation_from_the_lot_page(client, oos):
    token = sign_in(client, "qc")
    page = client.get(f"/lots/{LOT}").get_data(as_text=True)
    assert 'data-testid="investigation-1-status">OPEN<' in page
    assert "Record the assignable laboratory cause" in page
    assert "QA: sign the outcome" not in page  # QC does not sign
    posted = client.post(
        f"/lots/{LOT}/investigations/1/laboratory-cause",
        data={"csrf_token": token, "cause": "Wrong dilution factor in the count."},
    )
    assert posted.status_code == 303
    assert posted.headers["Location"].endswith("#investigation-1")

    token = sign_in(client, "qa")
    url = f"/lots/{LOT}/investigations/1/closure"
    form = {"csrf_token": token, "outcome": "invalidated", "reason": "Raw counts reviewed."}
    wrong = client.post(url, data={**form, "password": "not-the-password"})
    assert wrong.status_code == 403
    assert "investigation-1-errors" in wrong.get_data(as_text=True)
    signed = client.post(url, data={**form, "password": PASSWORDS["qa"]})
    assert signed.status_code == 303
    page = client.get(f"/lots/{LOT}").get_data(as_text=True)
    assert 'data-testid="investigation-1-status">INVALIDATED<' in page
    assert "Wrong dilution factor in the count." in page
    assert re.search(r"signed by Li Wei", page)
    assert f"#{oos}" in page
