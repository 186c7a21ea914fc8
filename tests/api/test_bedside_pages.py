"""The bedside page through the Flask test client: one scan at a time (wedge scanner), GO and
NO-GO pages, the two-person confirmation on the same device, and the home page tile."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from custody.trials import Administration
from lots.batch import Vial
from tests.worlds.bedside import VIAL, enrol_patient, thawed_at_the_ward, vial_code, wristband
from tests.worlds.pages import sign_in
from tests.worlds.shipping import PASSWORDS


@pytest.fixture
def codes(session) -> dict[str, str]:
    enrol_patient(session)
    thawed_at_the_ward(session)
    scanned = {"vial": vial_code(session), "wristband": wristband()}
    session.commit()
    return scanned


def _check(client, token, **fields):
    return client.post("/bedside", data={"csrf_token": token, **fields})


def test_the_home_page_shows_the_bedside_tile_to_clinicians_only(client):
    sign_in(client, "clinician")
    assert 'href="/bedside"' in client.get("/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": sign_in(client, "courier")})
    assert 'href="/bedside"' not in client.get("/").get_data(as_text=True)


def test_the_wristband_scanned_first_keeps_it_and_asks_for_the_vial(client, codes):
    token = sign_in(client, "clinician")
    page = _check(client, token, wristband=codes["wristband"]).get_data(as_text=True)
    assert f'value="{codes["wristband"]}"' in page.replace("&amp;", "&")
    assert 'id="vial"' in page
    assert page.index("autofocus") > page.index('id="vial"')


def test_both_scans_give_a_go_page_and_the_confirmation_records_the_dose(client, app, codes):
    token = sign_in(client, "clinician")
    response = _check(client, token, **codes)
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="outcome">GO<' in page
    assert "Confirm and record the administration" in page
    confirmed = client.post(
        response.headers["Location"] + "/administration",
        data={
            "csrf_token": token,
            "route": "intrathecal",
            "password": PASSWORDS["clinician"],
            "witness": "pharmacist",
            "witness_password": PASSWORDS["pharmacist"],
        },
    )
    assert confirmed.status_code == 303
    done = client.get(confirmed.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="administered"' in done
    assert "confirmed by Fang Hu" in done
    with app.extensions["celltrail.db"].sessions() as db:
        assert (
            db.scalar(
                select(func.count())
                .select_from(Administration)
                .join(Vial)
                .where(Vial.serial == VIAL)
            )
            == 1
        )


def test_a_wrong_patient_gives_a_red_no_go_with_the_reason(client, codes):
    token = sign_in(client, "clinician")
    response = _check(client, token, vial=codes["vial"], wristband="SCI-404")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'class="bedside-outcome no-go"' in page
    assert "No subject of this site matches this wristband" in page
    assert "Confirm and record" not in page


def test_a_wrong_witness_password_shows_the_refusal_on_the_page(client, app, codes):
    token = sign_in(client, "clinician")
    location = _check(client, token, **codes).headers["Location"]
    refused = client.post(
        location + "/administration",
        data={
            "csrf_token": token,
            "route": "intrathecal",
            "password": PASSWORDS["clinician"],
            "witness": "pharmacist",
            "witness_password": "guess",
        },
    )
    assert refused.status_code == 403
    assert "nothing was signed" in refused.get_data(as_text=True)
    with app.extensions["celltrail.db"].sessions() as db:
        assert (
            db.scalar(
                select(func.count())
                .select_from(Administration)
                .join(Vial)
                .where(Vial.serial == VIAL)
            )
            == 0
        )


def test_a_pharmacist_sees_the_go_but_no_confirmation_form(client, codes):
    token = sign_in(client, "pharmacist")
    location = _check(client, token, **codes).headers["Location"]
    page = client.get(location).get_data(as_text=True)
    assert 'data-testid="outcome">GO<' in page
    assert "A clinician gives the dose" in page
