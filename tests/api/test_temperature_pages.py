"""The shipment page's temperature section: the curve as SVG, the excursions, QA's form."""

from __future__ import annotations

import io

import pytest

from custody.shipping import import_readings, packed, ship, shipment_excursions, vial_states
from lots.accounts import get_user
from tests.worlds.pages import sign_in
from tests.worlds.shipping import AFTER_READINGS, PASSWORDS, sample, sealed_shipment


@pytest.fixture
def shipment(session, clock):
    """In the courier's hands, its logger showing the sample files' warm half hour."""
    shipment = sealed_shipment(session, clock)
    ship(session, get_user(session, "manufacturing"), shipment.sscc, "courier", now=clock())
    import_readings(
        session,
        get_user(session, "courier"),
        shipment.sscc,
        sample("timestamp_celsius.csv"),
        now=clock.at(AFTER_READINGS),
    )
    session.flush()
    return shipment


def test_the_chart_is_an_svg_with_the_limit_and_the_excursion(client, shipment):
    sign_in(client, "manufacturing")

    response = client.get(f"/shipments/{shipment.sscc}/temperature.svg")

    svg = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.mimetype == "image/svg+xml"
    assert svg.lstrip().startswith("<?xml")
    assert "limit ≤ −150 °C" in svg
    assert "excursion" in svg
    assert "<script" not in svg


def test_the_page_shows_the_curve_the_hold_and_the_excursion(client, shipment):
    sign_in(client, "courier")

    page = client.get(f"/shipments/{shipment.sscc}").get_data(as_text=True)

    assert 'data-testid="temperature-chart"' in page
    assert "every vial in this shipper is quarantined" in page
    assert 'data-testid="awaiting-qa"' in page
    assert 'data-testid="disposition-form"' not in page  # a courier does not decide
    assert 'data-testid="readings-upload"' in page


def test_qa_decides_from_the_page_and_the_vials_leave_quarantine(client, session, shipment):
    token = sign_in(client, "qa")
    (excursion,) = shipment_excursions(session, shipment)
    page = client.get(f"/shipments/{shipment.sscc}").get_data(as_text=True)
    assert 'data-testid="disposition-form"' in page

    response = client.post(
        f"/shipments/{shipment.sscc}/excursions/{excursion.id}/disposition",
        data={
            "csrf_token": token,
            "decision": "use",
            "reason": "Stability data cover 2 h at −140 °C.",
            "password": PASSWORDS["qa"],
        },
    )

    assert response.status_code == 303
    session.expire_all()
    vials = [row.vial for row in packed(session, shipment)]
    assert set(vial_states(session, vials).values()) == {"in_transit"}


def test_a_wrong_password_shows_the_refusal_and_keeps_the_reason(client, session, shipment):
    token = sign_in(client, "qa")
    (excursion,) = shipment_excursions(session, shipment)

    response = client.post(
        f"/shipments/{shipment.sscc}/excursions/{excursion.id}/disposition",
        data={"csrf_token": token, "decision": "destroy", "reason": "Too warm.", "password": "x"},
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 403
    assert "Signature refused" in page
    assert "Too warm." in page


def test_a_bad_upload_from_the_page_names_the_line(client, shipment):
    token = sign_in(client, "courier")

    response = client.post(
        f"/shipments/{shipment.sscc}/temperatures",
        data={"csrf_token": token, "file": (io.BytesIO(sample("sensor_error.csv")), "e.csv")},
        content_type="multipart/form-data",
    )

    assert response.status_code == 422
    assert "Line 6: the temperature &#39;Err&#39; is not a number." in response.get_data(
        as_text=True
    )
