"""Trial pages in headless Chromium: the blinded sepsis trial as the unblinded pharmacist and
as the blinded clinician, who unblinds SEP-001 in an emergency on the page; the open-label
XS228 trial as the spine clinician.

The unblinding commits, and an unblinding is append-only: done in the suite's shared database
it would show SEP-001's arm to the clinician in every later test. So this module serves a
database of its own, migrated and loaded with the demo data like the suite's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app
from app.db import database
from app.demo.trials import SEPSIS_SUBJECT, SEPSIS_TRIAL, XS228_SUBJECT, XS228_TRIAL
from custody.ledger import CustodyEvent
from custody.trials import Unblinding, get_subject
from lots.accounts import get_user
from tests.worlds.blinding import forbidden_tokens
from tests.worlds.browser import demo_password
from tests.worlds.config import TEST_CONFIG, demo_database

pytestmark = pytest.mark.browser

REASON = "Anaphylaxis 40 min after the infusion: the ICU must know what was given."


@pytest.fixture(scope="module")
def private_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database with the demo data for this module alone: an unblinding cannot
    be undone, and the suite's shared database must stay blinded for later tests."""
    sqlite_file = tmp_path_factory.mktemp("trial-pages") / "celltrail.sqlite3"
    with demo_database(sqlite_file, f"celltrail_trial_pages_{os.getpid()}") as url:
        yield url


@pytest.fixture
def committed_app(private_database_url: str) -> Iterator[Flask]:
    """The app on this module's database (the live server serves it): commits stay."""
    app = create_app({**TEST_CONFIG, "DATABASE_URL": private_database_url})
    yield app
    database(app).engine.dispose()


@pytest.fixture
def signed_in(browser: Browser, live_server: str) -> Iterator[Callable[[str], Page]]:
    """Open a page of its own (no shared cookies) for a demo user, signed in."""
    contexts = []

    def open_as(username: str) -> Page:
        context = browser.new_context(base_url=live_server)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(demo_password(username))
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_test_id("who")).to_be_visible()
        return page

    yield open_as
    for context in contexts:
        context.close()


def _subject_row(page: Page, code: str):
    return page.get_by_test_id("subjects").locator(f'tr[data-subject="{code}"]')


def _shown(page: Page, tokens: list[str]) -> list[str]:
    html = page.content()
    return [token for token in tokens if token in html]


def test_the_sepsis_trial_page_blinds_the_clinician_until_he_unblinds_sep_001(
    committed_app: Flask, signed_in
):
    with Session(database(committed_app).engine) as db:
        tokens = forbidden_tokens(db)
        auditor = get_user(db, "auditor")
        arm = get_subject(db, auditor, SEPSIS_TRIAL, SEPSIS_SUBJECT).arm.code
    assert {"ARM-ACT", "ARM-SHAM", "UCR-2611-01"} <= set(tokens)
    trial_page = f"/trials/{SEPSIS_TRIAL}"

    pharmacist = signed_in("amu-pharmacist")
    pharmacist.goto(trial_page)
    expect(_subject_row(pharmacist, SEPSIS_SUBJECT).get_by_test_id("arm")).to_have_text(arm)
    expect(pharmacist.get_by_role("heading", name="Emergency unblindings")).to_be_visible()
    expect(pharmacist.get_by_test_id("no-unblindings")).to_be_visible()
    expect(pharmacist.get_by_test_id("arms")).to_contain_text("ARM-SHAM")

    clinician = signed_in("amu-clinician")
    clinician.goto(trial_page)
    row = _subject_row(clinician, SEPSIS_SUBJECT)
    expect(row).to_contain_text(SEPSIS_SUBJECT)
    expect(row.get_by_test_id("arm")).to_have_count(0)
    expect(clinician.get_by_test_id("arms")).to_have_count(0)
    expect(clinician.get_by_role("heading", name="Emergency unblindings")).to_have_count(0)
    assert _shown(clinician, tokens) == []

    # A wrong password signs nothing and reveals nothing.
    form = clinician.locator("#unblinding")
    form.get_by_label("Subject").select_option(SEPSIS_SUBJECT)
    form.get_by_label("Medical reason").fill(REASON)
    form.get_by_label("Password, re-entered to sign").fill("not-my-password")
    form.get_by_role("button", name="Unblind this subject").click()
    expect(clinician.get_by_test_id("unblinding-errors")).to_be_visible()
    expect(_subject_row(clinician, SEPSIS_SUBJECT).get_by_test_id("arm")).to_have_count(0)
    assert _shown(clinician, tokens) == []

    form = clinician.locator("#unblinding")
    form.get_by_label("Subject").select_option(SEPSIS_SUBJECT)
    expect(form.get_by_label("Medical reason")).to_have_value(REASON)
    form.get_by_label("Password, re-entered to sign").fill(demo_password("amu-clinician"))
    form.get_by_role("button", name="Unblind this subject").click()
    expect(_subject_row(clinician, SEPSIS_SUBJECT).get_by_test_id("arm")).to_have_text(arm)
    expect(clinician.locator("#unblinding")).to_have_count(0)  # SEP-001 is unblinded once
    expect(clinician.get_by_test_id("arms")).to_have_count(0)
    expect(clinician.get_by_test_id("unblindings")).to_have_count(0)
    assert _shown(clinician, [token for token in tokens if token != arm]) == []

    pharmacist.reload()
    listed = pharmacist.get_by_test_id("unblindings").locator(
        f'tr[data-unblinded="{SEPSIS_SUBJECT}"]'
    )
    expect(listed).to_contain_text("Xiang Jun (amu-clinician)")
    expect(listed).to_contain_text(REASON)
    expect(listed).to_contain_text(" UTC")

    with Session(database(committed_app).engine) as db:
        unblinding = db.scalars(select(Unblinding)).one()
        assert (unblinding.subject.code, unblinding.reason) == (SEPSIS_SUBJECT, REASON)
        signed = db.scalars(
            select(CustodyEvent.event_type).where(
                CustodyEvent.chain == f"subject:{SEPSIS_TRIAL}:{SEPSIS_SUBJECT}"
            )
        ).all()
    assert signed.count("UNBLINDED") == 1


def test_the_open_label_xs228_page_shows_sci_001_and_its_visit_days(signed_in):
    clinician = signed_in("clinician")
    clinician.goto("/trials")
    clinician.get_by_role("link", name=XS228_TRIAL).click()
    expect(clinician.get_by_role("heading", name=XS228_TRIAL)).to_be_visible()
    expect(_subject_row(clinician, XS228_SUBJECT)).to_contain_text("SYSU3-SPINE")
    expect(_subject_row(clinician, XS228_SUBJECT).get_by_test_id("arm")).to_have_text("XS228")
    days = clinician.get_by_test_id("visits").locator("tbody tr td:nth-child(3)")
    expect(days).to_have_text(["1", "15", "29", "43"])
    expect(clinician.locator("#unblinding")).to_have_count(0)
