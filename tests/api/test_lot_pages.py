"""The lot pages through the Flask test client: list, visibility, QC entry and QA refusals."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from custody.manufacturing import raise_deviation
from lots.accounts import get_user
from lots.models import LoginAttempt
from tests.worlds.pages import sign_in

QUARANTINED = "XS228-2611-01"
RELEASED = "XS228-2610-01"


def post_result(client: FlaskClient, token: str, lot: str, **fields: str):
    data = {"csrf_token": token, "tested_at": "2026-11-20T10:00", **fields}
    return client.post(f"/lots/{lot}/qc-results", data=data)


def test_the_lot_list_filters_by_status(client):
    sign_in(client, "qa")
    page = client.get("/lots?status=released").get_data(as_text=True)
    assert f'data-lot="{RELEASED}"' in page
    assert f'data-lot="{QUARANTINED}"' not in page


def test_the_lot_list_filters_by_product(client):
    sign_in(client, "qc")
    page = client.get("/lots?product=UCMSC-REG").get_data(as_text=True)
    assert 'data-lot="UCR-2611-01"' in page
    assert f'data-lot="{QUARANTINED}"' not in page


def test_a_pharmacist_sees_neither_the_list_entry_nor_the_page_of_a_lot_never_sent_to_him(client):
    sign_in(client, "pharmacist")
    listing = client.get("/lots").get_data(as_text=True)
    response = client.get(f"/lots/{QUARANTINED}")
    assert QUARANTINED not in listing
    assert response.status_code == 404


def test_the_released_lot_shows_its_signature_manifestation(client):
    sign_in(client, "qc")
    page = client.get(f"/lots/{RELEASED}").get_data(as_text=True)
    assert "RELEASED" in page
    assert "Li Wei" in page
    assert "Released for clinical use (QA)" in page


def test_a_refused_release_lists_every_blocker(client):
    token = sign_in(client, "qa")
    response = client.post(
        f"/lots/{QUARANTINED}/release",
        data={
            "csrf_token": token,
            "decision": "release",
            "meaning": "Released for clinical use",
            "password": "qa-demo-2026",
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "<li>No result for: Sterility, Mycoplasma, Bacterial endotoxin, Viability," in page
    assert "QUARANTINE" in page


def test_a_wrong_signature_password_is_refused_and_nothing_is_signed(client):
    token = sign_in(client, "qa")
    response = client.post(
        f"/lots/{QUARANTINED}/release",
        data={
            "csrf_token": token,
            "decision": "reject",
            "reason": "Broken seal",
            "meaning": "Rejected: not for clinical use",
            "password": "guess",
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "Signature refused" in page
    assert "QUARANTINE" in page
    assert "Broken seal" in page


def test_a_refused_signature_is_kept_as_a_failed_attempt(client, connection):
    token = sign_in(client, "qa")
    client.post(
        f"/lots/{QUARANTINED}/release",
        data={
            "csrf_token": token,
            "decision": "reject",
            "reason": "Broken seal",
            "meaning": "Rejected: not for clinical use",
            "password": "guess",
        },
    )
    failed = connection.scalars(
        select(LoginAttempt.id).where(
            LoginAttempt.username == "qa",
            LoginAttempt.channel == "signature",
            LoginAttempt.succeeded.is_(False),
        )
    ).all()
    assert len(failed) == 1


def test_a_rejection_carrying_the_release_meaning_is_refused(client):
    token = sign_in(client, "qa")
    response = client.post(
        f"/lots/{QUARANTINED}/release",
        data={
            "csrf_token": token,
            "decision": "reject",
            "reason": "Broken seal",
            "meaning": "Released for clinical use",
            "password": "qa-demo-2026",
        },
    )
    assert response.status_code == 422
    assert "State what your signature of a rejection means." in response.get_data(as_text=True)


def test_qa_rejects_a_lot_with_a_reason(client):
    token = sign_in(client, "qa")
    response = client.post(
        f"/lots/{QUARANTINED}/release",
        data={
            "csrf_token": token,
            "decision": "reject",
            "reason": "Broken seal",
            "meaning": "Rejected: not for clinical use",
            "password": "qa-demo-2026",
        },
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "REJECTED" in page
    assert "Broken seal" in page


def test_a_qc_result_entered_on_the_page_shows_with_its_conformance(client):
    token = sign_in(client, "qc")
    response = post_result(client, token, QUARANTINED, test="Viability", value="65", unit="%")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert response.status_code == 303
    row = re.search(r'<tr class="oos" data-test="Viability">.*?</tr>', page, re.S).group(0)
    assert "OOS" in row


def test_a_result_in_the_wrong_unit_is_refused_with_the_values_kept(client):
    token = sign_in(client, "qc")
    response = post_result(client, token, QUARANTINED, test="Viability", value="91", unit="pct")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Viability is specified in %; a result in &#39;pct&#39; is refused." in page
    assert 'name="unit" value="pct"' in page


def test_a_correction_without_a_reason_is_refused(client):
    token = sign_in(client, "qc")
    post_result(client, token, QUARANTINED, test="Karyotype", value="Abnormal")
    page = client.get(f"/lots/{QUARANTINED}").get_data(as_text=True)
    result_id = re.search(r'<option value="(\d+)"[^>]*>#\d+ Karyotype', page).group(1)
    response = post_result(client, token, QUARANTINED, supersedes=result_id, value="Normal")
    assert response.status_code == 422
    assert "A correction states why" in response.get_data(as_text=True)


def test_a_correction_shows_the_superseded_result_struck_through_with_its_reason(client):
    token = sign_in(client, "qc")
    post_result(client, token, QUARANTINED, test="Viability", value="95.1", unit="%")
    page = client.get(f"/lots/{QUARANTINED}").get_data(as_text=True)
    result_id = re.search(r'<option value="(\d+)"[^>]*>#\d+ Viability', page).group(1)
    post_result(
        client,
        token,
        QUARANTINED,
        supersedes=result_id,
        value="91.5",
        unit="%",
        reason="Slide of another lot read",
    )
    page = client.get(f"/lots/{QUARANTINED}").get_data(as_text=True)
    assert "<del>95.1 %</del>" in page
    assert "Slide of another lot read" in page


@pytest.mark.parametrize("path", ["/release", "/qc-results"])
def test_a_manufacturing_user_may_not_post_results_or_decisions(client, path):
    token = sign_in(client, "manufacturing")
    response = client.post(f"/lots/{QUARANTINED}{path}", data={"csrf_token": token})
    assert response.status_code == 403


def test_the_qc_form_is_not_shown_to_qa_and_the_decision_form_not_to_qc(client):
    sign_in(client, "qc")
    qc_page = client.get(f"/lots/{QUARANTINED}").get_data(as_text=True)
    assert 'id="result-form"' in qc_page
    assert 'id="decision"' not in qc_page


def test_the_certificate_of_analysis_of_a_released_lot_is_a_pdf(client):
    sign_in(client, "qc")
    response = client.get(f"/lots/{RELEASED}/coa.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")


def test_the_certificate_of_analysis_of_another_sites_lot_is_not_found(client):
    sign_in(client, "pharmacist")
    assert client.get(f"/lots/{RELEASED}/coa.pdf").status_code == 404


@pytest.fixture
def open_deviation(app) -> str:
    """A minor deviation raised by manufacturing against the quarantined lot."""
    with app.extensions["celltrail.db"].sessions() as db:
        raise_deviation(
            db,
            get_user(db, "manufacturing"),
            QUARANTINED,
            description="Freezer door alarm for 4 minutes",
            severity="minor",
        )
        db.commit()
    return f"DEV-{QUARANTINED}-01"


def test_a_refused_release_names_the_open_deviation(client, open_deviation):
    token = sign_in(client, "qa")
    response = client.post(
        f"/lots/{QUARANTINED}/release",
        data={
            "csrf_token": token,
            "decision": "release",
            "meaning": "Released for clinical use",
            "password": "qa-demo-2026",
        },
    )
    assert f"<li>Deviation {open_deviation} (minor) is still open.</li>" in response.get_data(
        as_text=True
    )


def test_qa_closes_an_open_deviation_with_a_signature(client, open_deviation):
    token = sign_in(client, "qa")
    response = client.post(
        f"/lots/{QUARANTINED}/deviations/1/close",
        data={"csrf_token": token, "note": "No impact: 4 min", "password": "qa-demo-2026"},
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "Closed by Li Wei" in page
    assert ">OPEN<" not in page
