"""A QC analyst and a QA user take a lot from quarantine to release on the pages."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session

from app.db import database
from app.demo import XS228_RESULTS
from custody.manufacturing import create_lot, record_result, record_step
from lots.accounts import create_user, get_site, get_user, password_hasher
from tests.worlds.browser import demo_password
from tests.worlds.manufacturing import TEST_PASSWORD, own_bank

pytestmark = pytest.mark.browser

# Viability below the XS228 limit of ≥ 70 %.
OOS_VIABILITY = "65"
CAUSE = "Haemocytometer counted at 1:10 where the worksheet says 1:2."
RETEST_REASON = "Retest of the retained sample after the dilution error."


@pytest.fixture
def lot_number(committed_app: Flask) -> Iterator[str]:
    """A fresh XS228 lot in quarantine, committed: the browser tests never touch demo lots."""
    number = f"XS228-B{secrets.token_hex(3).upper()}"
    end = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    with Session(database(committed_app).engine) as session, session.begin():
        maker = get_user(session, "manufacturing")
        create_lot(
            session,
            maker,
            number=number,
            product_code="XS228",
            bank_code=own_bank(session, "BO"),
            manufacture_start=end - dt.timedelta(days=28),
            manufacture_end=end,
            vials_filled=4,
            cells_per_vial=10_000_000,
            volume_ml=Decimal("1.0"),
            qc_site=get_site(session, "XSM-QC"),
            now=end,
        )
        record_step(
            session,
            password_hasher("cheapest"),
            maker,
            number,
            step="batch_record_completed",
            occurred_at=end,
            password=demo_password("manufacturing"),
            now=end,
        )
    return number


@pytest.fixture
def tested_lot(committed_app: Flask, lot_number: str) -> str:
    """The fresh lot with every XS228 result entered by QC, viability out of specification."""
    with Session(database(committed_app).engine) as session, session.begin():
        analyst = get_user(session, "qc")
        for test, value, unit in XS228_RESULTS:
            record_result(
                session,
                analyst,
                lot_number,
                test=test,
                value=OOS_VIABILITY if test == "Viability" else value,
                unit=unit,
                method=None,
                tested_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
            )
    return lot_number


@pytest.fixture
def act_as(page: Page, sign_in: Callable[[str, str], None]) -> Callable[[str], None]:
    """Sign out whoever is signed in, and sign a demo user in."""

    def switch(username: str) -> None:
        sign_out = page.get_by_role("button", name="Sign out")
        if sign_out.count():
            sign_out.click()
        sign_in(username, demo_password(username))
        expect(page.get_by_test_id("who")).to_contain_text(username)

    return switch


def spec_row(page: Page, test: str):
    return page.get_by_test_id("specification").locator(f'tr[data-test="{test}"]')


def test_qc_enters_the_xs228_results_and_sees_the_out_of_specification_one_highlighted(
    page: Page, act_as, lot_number
):
    act_as("qc")
    page.goto(f"/lots/{lot_number}")

    form = page.locator("#result-form")
    for test, value, unit in XS228_RESULTS:
        form.locator("select[name=test]").select_option(test)
        expect(form.get_by_label("Unit")).to_have_value(unit or "")
        form.get_by_label("Value").fill(OOS_VIABILITY if test == "Viability" else value)
        form.get_by_role("button", name="Record result").click()
        expect(spec_row(page, test).get_by_test_id("conformance")).not_to_have_text("No result yet")

    for test, _, _ in XS228_RESULTS:
        if test != "Viability":
            expect(spec_row(page, test).get_by_test_id("conformance")).to_have_text("Conforms")
    expect(spec_row(page, "Viability")).to_have_class(re.compile(r"\boos\b"))
    expect(spec_row(page, "Viability").get_by_test_id("conformance")).to_have_text("OOS")
    expect(page.locator("#result-form")).to_have_count(0)


@pytest.fixture
def second_qa(committed_app: Flask) -> str:
    """Another QA person, committed: the one who invalidates an OOS result may not release."""
    username = f"qa-{secrets.token_hex(3)}"
    with Session(database(committed_app).engine) as session, session.begin():
        create_user(
            session,
            password_hasher("cheapest"),
            actor="admin",
            username=username,
            full_name="Qing Second",
            role="qa",
            site_code="XSM-SZ",
            password=TEST_PASSWORD,
        )
    return username


def test_an_oos_is_investigated_invalidated_retested_and_the_lot_released_on_the_pages(
    page: Page, act_as, sign_in, tested_lot, second_qa
):
    act_as("qa")
    page.goto(f"/lots/{tested_lot}")
    decision = page.locator("#decision")
    decision.get_by_label("Password, re-entered to sign").fill(demo_password("qa"))
    decision.get_by_role("button", name="Sign the decision").click()
    expect(page.get_by_test_id("blockers").get_by_role("listitem")).to_have_text(
        [
            "Out of specification: Viability 65 % (≥ 70 %).",
            f"Out-of-specification investigation OOS-{tested_lot}-01 (Viability) is still open.",
        ]
    )
    expect(page.get_by_test_id("lot-status")).to_have_text("QUARANTINE")

    act_as("qc")
    page.goto(f"/lots/{tested_lot}")
    investigation = page.get_by_test_id("investigation-1")
    expect(investigation.get_by_test_id("investigation-1-status")).to_have_text("OPEN")
    investigation.get_by_text("Record the assignable laboratory cause").click()
    investigation.get_by_label("Cause found in phase I").fill(CAUSE)
    investigation.get_by_role("button", name="Record the cause").click()
    expect(page.get_by_test_id("investigation-1")).to_contain_text(CAUSE)

    sign_out(page)
    sign_in(second_qa, TEST_PASSWORD)
    page.goto(f"/lots/{tested_lot}")
    investigation = page.get_by_test_id("investigation-1")
    investigation.get_by_text("QA: sign the outcome").click()
    investigation.get_by_label("Invalidate the result (a retest may follow)").check()
    investigation.get_by_label("Reason").fill("Raw counts show the dilution error.")
    investigation.get_by_label("Password, re-entered to sign").fill(TEST_PASSWORD)
    investigation.get_by_role("button", name="Sign the outcome").click()
    expect(page.get_by_test_id("investigation-1-status")).to_have_text("INVALIDATED")

    act_as("qc")
    page.goto(f"/lots/{tested_lot}")
    correction = page.locator("#correct-form")
    expect(correction.locator("select[name=supersedes]")).to_contain_text("Viability: 65 % (OOS)")
    viability = correction.locator("option", has_text="Viability").get_attribute("value")
    correction.locator("select[name=supersedes]").select_option(viability)
    correction.get_by_label("Corrected value").fill("91.5")
    correction.get_by_label("Reason for the correction").fill(RETEST_REASON)
    correction.get_by_role("button", name="Record correction").click()
    expect(spec_row(page, "Viability").get_by_test_id("conformance")).to_have_text("Conforms")
    superseded = page.locator('tr[data-superseded="Viability"]')
    expect(superseded.locator("del")).to_have_text("65 %")
    expect(superseded).to_contain_text(RETEST_REASON)

    act_as("qa")
    page.goto(f"/lots/{tested_lot}")
    decision.get_by_label("Password, re-entered to sign").fill(demo_password("qa"))
    decision.get_by_role("button", name="Sign the decision").click()

    expect(page.get_by_test_id("lot-status")).to_have_text("RELEASED")
    expect(page.get_by_test_id("manifestation")).to_contain_text("Li Wei")
    expect(page.get_by_test_id("manifestation")).to_contain_text("Released for clinical use")
    expect(page.get_by_test_id("decisions").get_by_test_id("signer")).to_have_text(["Li Wei"])
    expect(page.get_by_test_id("coa")).to_have_attribute("href", f"/lots/{tested_lot}/coa.pdf")
    if screenshot := os.environ.get("CELLTRAIL_LOT_SCREENSHOT"):
        page.screenshot(path=screenshot, full_page=True)


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()


def test_the_lot_list_filters_to_the_lots_in_quarantine(page: Page, act_as, lot_number):
    act_as("qc")
    page.goto("/lots")

    page.get_by_role("link", name="Quarantine", exact=True).click()

    lots = page.get_by_test_id("lots")
    expect(lots.locator(f'tr[data-lot="{lot_number}"]')).to_contain_text("QUARANTINE")
    expect(lots.get_by_text("RELEASED", exact=True)).to_have_count(0)
