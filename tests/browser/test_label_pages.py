"""QA prints a released lot's labels from its page; a phone camera opens a vial's label."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from collections.abc import Callable
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from app.db import database
from app.demo import XS228_RESULTS
from app.keys import label_keys
from custody.manufacturing import Decision, create_lot, decide, get_lot, record_result, record_step
from labels.payload import vial_uri
from lots.accounts import get_site, get_user, password_hasher
from tests.worlds.browser import demo_password
from tests.worlds.config import TEST_CONFIG
from tests.worlds.manufacturing import own_bank

pytestmark = pytest.mark.browser

VIALS = 3


@pytest.fixture
def released_lot(committed_app: Flask) -> str:
    """A fresh XS228 lot, tested and released by QA through the services, committed."""
    number = f"XS228-L{secrets.token_hex(3).upper()}"
    end = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    hasher = password_hasher("cheapest")
    with Session(database(committed_app).engine) as session, session.begin():
        maker = get_user(session, "manufacturing")
        create_lot(
            session,
            maker,
            number=number,
            product_code="XS228",
            bank_code=own_bank(session, "BL"),
            manufacture_start=end - dt.timedelta(days=28),
            manufacture_end=end,
            vials_filled=VIALS,
            cells_per_vial=10_000_000,
            volume_ml=Decimal("1.0"),
            qc_site=get_site(session, "XSM-QC"),
            now=end,
        )
        record_step(
            session,
            hasher,
            maker,
            number,
            step="batch_record_completed",
            occurred_at=end,
            password=demo_password("manufacturing"),
            now=end,
        )
        analyst = get_user(session, "qc")
        for test, value, unit in XS228_RESULTS:
            record_result(
                session,
                analyst,
                number,
                test=test,
                value=value,
                unit=unit,
                method=None,
                tested_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
            )
        decide(
            session,
            hasher,
            get_user(session, "qa"),
            number,
            decision=Decision.RELEASE,
            password=demo_password("qa"),
            meaning="Released for clinical use",
        )
    return number


@pytest.fixture
def act_as(page: Page, sign_in: Callable[[str, str], None]) -> Callable[[str], None]:
    """Sign a demo user in."""

    def switch(username: str) -> None:
        sign_in(username, demo_password(username))
        expect(page.get_by_test_id("who")).to_contain_text(username)

    return switch


def test_qa_prints_a_released_lots_labels_and_sees_every_vial_labelled(
    page: Page, act_as, released_lot
):
    act_as("qa")
    page.goto(f"/lots/{released_lot}")
    labels = page.locator("#labels")
    expect(labels.get_by_test_id("label-verdict")).to_contain_text("No labels printed yet")

    form = labels.get_by_test_id("print-form")
    form.get_by_label("Format").select_option("pdf")
    form.get_by_label("Layout").select_option("a4")
    with page.expect_download() as arrival:
        form.get_by_role("button", name="Print labels").click()
    download = arrival.value

    assert re.fullmatch(rf"labels-{released_lot}-job\d+\.pdf", download.suggested_filename)
    assert download.failure() is None
    with open(download.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"
    page.reload()
    expect(labels.get_by_test_id("label-verdict")).to_have_text(
        "✓ Reconciled: every vial labelled, one live label each."
    )
    expect(labels.get_by_test_id("labels-printed")).to_have_text(str(VIALS))
    expect(labels.get_by_test_id("print-jobs").locator("tbody tr")).to_have_count(1)
    expect(labels.get_by_test_id("print-jobs")).to_contain_text("Li Wei")
    if screenshot := os.environ.get("CELLTRAIL_LABELS_SCREENSHOT"):
        labels.screenshot(path=screenshot)


def test_a_reprint_without_a_reason_is_refused_on_the_page(page: Page, act_as, released_lot):
    act_as("qa")
    page.goto(f"/lots/{released_lot}")
    form = page.get_by_test_id("print-form")
    with page.expect_download():
        form.get_by_role("button", name="Print labels").click()

    page.get_by_test_id("print-form").get_by_role("button", name="Print labels").click()

    expect(page.get_by_test_id("labels-errors")).to_contain_text("a reprint states its reason")


def test_a_phone_camera_opens_a_vials_label_signs_in_and_lands_on_the_vial_page(
    page: Page, committed_app: Flask, released_lot
):
    serial = f"{released_lot}-V0002"
    with Session(database(committed_app).engine) as session:
        lot = get_lot(session, released_lot)
        printed = vial_uri(
            base=TEST_CONFIG["PUBLIC_URL"],
            gtin=lot.product.gtin,
            lot=lot.number,
            serial=serial,
            expiry=lot.expires_on,
            key=label_keys(committed_app)[0],
        )
    # The phone opens the printed https://trail.example.org/… link; here the live server
    # stands in for that host, so only the path and query travel.
    parts = urlsplit(printed)
    page.goto(f"{parts.path}?{parts.query}")

    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Username").fill("pharmacist")  # wrong site: the vial stays unknown
    page.get_by_label("Password").fill(demo_password("pharmacist"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("refusal")).to_contain_text(f"no record of vial {serial}")
    page.get_by_role("button", name="Sign out").click()

    page.goto(f"{parts.path}?{parts.query}")
    page.get_by_label("Username").fill("manufacturing")
    page.get_by_label("Password").fill(demo_password("manufacturing"))
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(re.compile(rf"/vials/{serial}$"))
    expect(page.get_by_test_id("serial")).to_have_text(serial)
    expect(page.get_by_test_id("vial-state")).to_have_text("IN STOCK")
    expect(page.get_by_test_id("vial-timeline")).to_contain_text("COMMISSIONED")
    if screenshot := os.environ.get("CELLTRAIL_VIAL_SCREENSHOT"):
        page.screenshot(path=screenshot, full_page=True)
