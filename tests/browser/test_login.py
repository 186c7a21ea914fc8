"""Signing in and out in a real browser, and what each role finds on its home page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.worlds.browser import demo_password

pytestmark = pytest.mark.browser

SIGN_IN_URL = re.compile(r"/login(\?.*)?$")

XSM = "XellSmart Biopharmaceutical, Suzhou (manufacturing)"
SYSU3 = "Third Affiliated Hospital of Sun Yat-sen University"

# Each demo role: its site, and the tiles its permissions put on its home page.
EVERYONE = ["Scan", "Lots", "Products"]
BEDSIDE = ["Scan", "Bedside", "Lots", "Products"]  # whoever checks a dose at the bedside
HOMES = {
    "admin": (
        XSM,
        [
            "Scan",
            "Lots",
            "Products and specifications",
            "Ledger verification",
            "Audit trail",
            "Users",
        ],
    ),
    "manufacturing": (XSM, EVERYONE),
    "qc": ("XellSmart QC laboratory, Suzhou", EVERYONE),
    "qa": (
        XSM,
        ["Scan", "Lots", "Products and specifications", "Ledger verification", "Audit trail"],
    ),
    "courier": ("CryoLink Couriers depot, Guangzhou", EVERYONE),
    "pharmacist": (f"{SYSU3}, pharmacy", BEDSIDE),
    "clinician": (f"{SYSU3}, spine surgery ward", BEDSIDE),
    "auditor": (XSM, ["Scan", "Lots", "Products", "Ledger verification", "Audit trail"]),
}


def test_an_anonymous_visit_lands_on_the_sign_in_page(page: Page):
    page.goto("/")

    expect(page).to_have_url(SIGN_IN_URL)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


@pytest.mark.parametrize("username", list(HOMES))
def test_each_role_signs_in_to_its_own_home_page(page: Page, sign_in, username):
    site, tiles = HOMES[username]

    sign_in(username, demo_password(username))

    heading = page.get_by_test_id("role-heading")
    expect(heading).to_have_text(re.compile(rf"^{username} · {re.escape(site)}$", re.IGNORECASE))
    expect(page.locator(".tile strong")).to_have_text(tiles)


def test_a_wrong_password_shows_the_error_and_stays_signed_out(page: Page, sign_in):
    # A username that does not exist: the demo users' login rate limits stay untouched.
    sign_in("nobody-here", "not-the-password")

    expect(page.get_by_role("alert")).to_have_text("The username or password is wrong.")
    expect(page.get_by_test_id("who")).to_have_count(0)
    page.goto("/")
    expect(page).to_have_url(SIGN_IN_URL)


def test_qa_reads_the_xs228_specification(page: Page, sign_in):
    sign_in("qa", demo_password("qa"))

    page.goto("/products/XS228")

    row = page.get_by_test_id("specification").get_by_role("row").filter(has_text="TRA-1-60")
    expect(row).to_contain_text("< 1 %")


def test_the_auditor_sees_the_ledger_intact(page: Page, sign_in):
    sign_in("auditor", demo_password("auditor"))

    page.goto("/ledger")

    expect(page.get_by_test_id("verdict")).to_have_text("INTACT")


def test_signing_out_returns_to_the_sign_in_page(page: Page, sign_in):
    sign_in("clinician", demo_password("clinician"))
    expect(page.get_by_test_id("role-heading")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(SIGN_IN_URL)
    page.goto("/")
    expect(page).to_have_url(SIGN_IN_URL)
