"""The bedside page in headless Chromium, as on a ward tablet with a keyboard-wedge scanner:
the GO path through to the recorded administration, and NO-GO for a wrong patient, an
expired thaw window and a recalled lot. Each test commits a patient and a vial of its own."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from custody.manufacturing import recall
from lots.accounts import get_user
from lots.base import utcnow
from tests.worlds.bedside import (
    HASHER,
    new_patient,
    released_lot,
    vial_code,
    wristband,
)
from tests.worlds.browser import demo_password
from tests.worlds.manufacturing import own_bank
from tests.worlds.shipping import PASSWORDS


def _committed(app: Flask):
    return app.extensions["celltrail.db"].sessions()


@pytest.fixture
def patient(committed_app: Flask) -> dict[str, str]:
    """A new subject with its allocated vial thawed at the spine ward (committed)."""
    lot = f"XS228-P{secrets.randbelow(10**6):06d}"
    with _committed(committed_app) as db, db.begin():
        # A lot of its own bank: committed doses stay out of the demo banks' recalls.
        released_lot(db, lot, bank_code=own_bank(db, "BP"))
        code, serial = new_patient(db, f"{lot}-V0001")
        return {"subject": code, "vial": vial_code(db, serial), "wristband": wristband(code)}


def _scan(page: Page, text: str) -> None:
    """A keyboard-wedge scanner: it types into the focused field, then sends Enter."""
    page.keyboard.insert_text(text)
    page.keyboard.press("Enter")


def _sign_in_at_the_bedside(page: Page, sign_in, username: str = "clinician") -> None:
    sign_in(username, demo_password(username))
    page.get_by_role("link", name="Bedside").click()
    expect(page.get_by_role("heading", name="Bedside check")).to_be_visible()


def test_a_go_is_confirmed_by_the_pharmacist_on_the_same_tablet(page: Page, sign_in, patient):
    _sign_in_at_the_bedside(page, sign_in)
    expect(page.locator("#wristband")).to_be_focused()
    _scan(page, patient["wristband"])
    expect(page.locator("#vial")).to_be_focused()
    _scan(page, patient["vial"])

    outcome = page.get_by_test_id("outcome")
    expect(outcome).to_have_text("GO")
    expect(outcome).to_have_css("background-color", "rgb(27, 127, 59)")
    page.get_by_label("Your password").fill(demo_password("clinician"))
    page.get_by_label("Username").fill("pharmacist")
    page.get_by_label("Password", exact=True).fill(demo_password("pharmacist"))
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("administered")).to_contain_text("confirmed by Fang Hu")


def test_a_wrong_patient_is_a_red_no_go(page: Page, sign_in, committed_app, patient):
    with _committed(committed_app) as db, db.begin():
        other, _ = new_patient(db, thawed=False)
    _sign_in_at_the_bedside(page, sign_in)
    _scan(page, wristband(other))
    _scan(page, patient["vial"])

    outcome = page.get_by_test_id("outcome")
    expect(outcome).to_have_text("NO-GO")
    expect(outcome).to_have_css("background-color", "rgb(179, 38, 30)")
    expect(page.get_by_test_id("reasons")).to_contain_text(
        "The vial is allocated to another subject."
    )
    expect(page.get_by_test_id("confirm")).to_have_count(0)


def test_a_thaw_window_passed_is_no_go(
    page: Page, sign_in, committed_app: Flask, patient, monkeypatch
):
    later = utcnow() + dt.timedelta(minutes=125)
    monkeypatch.setitem(committed_app.config, "CLOCK", lambda: later)  # the ward clock, 2 h on
    _sign_in_at_the_bedside(page, sign_in)
    _scan(page, patient["wristband"])
    _scan(page, patient["vial"])

    expect(page.get_by_test_id("outcome")).to_have_text("NO-GO")
    expect(page.locator("[data-testid=reasons] [data-check=thaw]")).to_contain_text(
        "its post-thaw window is 120 minutes"
    )


def test_a_recalled_lot_is_no_go(page: Page, sign_in, committed_app):
    lot = f"XS228-B{secrets.randbelow(10**6):06d}"
    with _committed(committed_app) as db, db.begin():
        released_lot(db, lot, bank_code=own_bank(db, "BR"))
        code, serial = new_patient(db, f"{lot}-V0001")
        recall(
            db, HASHER, get_user(db, "qa"), scope="lot", code=lot,
            reason="Sterility failure on the retained sample", password=PASSWORDS["qa"],
        )  # fmt: skip
        scanned = {"vial": vial_code(db, serial), "wristband": wristband(code)}
    _sign_in_at_the_bedside(page, sign_in)
    _scan(page, scanned["wristband"])
    _scan(page, scanned["vial"])

    expect(page.get_by_test_id("outcome")).to_have_text("NO-GO")
    expect(page.locator("[data-testid=reasons] [data-check=recall]")).to_have_text(
        f"Lot {lot} is recalled. Do not use it."
    )
