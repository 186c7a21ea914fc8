"""The scan page on a phone-sized screen, driven like a keyboard-wedge scanner: a courier hands
a shipper to another courier, and the pharmacist receives it with one vial missing."""

from __future__ import annotations

import datetime as dt
import io
import os
import secrets
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image
from playwright.sync_api import Browser, Page, Playwright, expect
from sqlalchemy.orm import Session

from app.db import database
from app.demo import XS228_RESULTS
from app.keys import label_keys
from custody.manufacturing import create_lot, decide, get_lot, lot_vials, record_result, record_step
from custody.shipping import create_shipment, pack_vials, seal, ship
from labels.content import VialLabel
from labels.payload import vial_uri
from labels.render import render
from lots.accounts import get_site, get_user, password_hasher
from lots.base import utcnow
from tests.worlds.browser import CHROMIUM_ARGS, demo_password
from tests.worlds.config import TEST_CONFIG
from tests.worlds.manufacturing import own_bank

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
SEAL = "SEAL-B-0042"
VIALS = 3
DEMO_VIAL = "XS228-2610-01-V0001"


def _released_lot(db: Session) -> str:
    """A fresh XS228 lot of three vials, made, tested and released through the services."""
    hasher = password_hasher("cheapest")
    number = f"XS228-S{secrets.token_hex(3).upper()}"
    end = dt.datetime.now(dt.UTC) - dt.timedelta(days=8)
    maker = get_user(db, "manufacturing")
    create_lot(
        db,
        maker,
        number=number,
        product_code="XS228",
        bank_code=own_bank(db, "BS"),
        manufacture_start=end - dt.timedelta(days=28),
        manufacture_end=end,
        vials_filled=VIALS,
        cells_per_vial=10_000_000,
        volume_ml=Decimal("1.0"),
        qc_site=get_site(db, "XSM-QC"),
        now=end,
    )
    record_step(
        db,
        hasher,
        maker,
        number,
        step="batch_record_completed",
        occurred_at=end,
        password=demo_password("manufacturing"),
        now=end,
    )
    for test, value, unit in XS228_RESULTS:
        record_result(
            db,
            get_user(db, "qc"),
            number,
            test=test,
            value=value,
            unit=unit,
            method=None,
            tested_at=end + dt.timedelta(days=7),
        )
    decide(
        db,
        hasher,
        get_user(db, "qa"),
        number,
        decision="release",
        password=demo_password("qa"),
        meaning="Released for clinical use",
    )
    return number


@pytest.fixture
def shipment(committed_app: Flask) -> tuple[str, list[str]]:
    """A committed shipper to the SYSU3 pharmacy holding a fresh lot's vials, in the hands of
    the courier Kai Lin; its SSCC and the vials' Digital Links, as their labels carry them."""
    with Session(database(committed_app).engine) as db, db.begin():
        lot = get_lot(db, _released_lot(db))
        serials = [vial.serial for vial in lot_vials(db, lot)]
        maker = get_user(db, "manufacturing")
        found = create_shipment(
            db, maker, to_site_code="SYSU3-PH", hold_time_hours=72, now=utcnow()
        )
        pack_vials(db, maker, found.sscc, serials, now=utcnow())
        seal(db, maker, found.sscc, SEAL, now=utcnow())
        ship(db, maker, found.sscc, "courier", now=utcnow())
        links = [
            vial_uri(
                base=TEST_CONFIG["PUBLIC_URL"],
                gtin=lot.product.gtin,
                lot=lot.number,
                serial=serial,
                expiry=lot.expires_on,
                key=label_keys(committed_app)[0],
            )
            for serial in serials
        ]
        return found.sscc, links


@pytest.fixture
def phone(browser: Browser, live_server: str) -> Iterator[Page]:
    """A phone-sized page of its own (390 px wide, touch), addressed relative to the server."""
    context = browser.new_context(
        base_url=live_server, viewport=PHONE, has_touch=True, is_mobile=True
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def sign_in_on(phone: Page) -> Callable[[str], None]:
    def submit(username: str) -> None:
        phone.goto("/login")
        phone.get_by_label("Username").fill(username)
        phone.get_by_label("Password").fill(demo_password(username))
        phone.get_by_role("button", name="Sign in").click()
        expect(phone.get_by_test_id("who")).to_be_visible()

    return submit


def wedge_scan(page: Page, code: str) -> None:
    """What a keyboard-wedge scanner does: type the code wherever the focus is, then Enter."""
    page.keyboard.type(code)
    page.keyboard.press("Enter")


def screenshot(page: Page, suffix: str = "") -> None:
    target = os.environ.get("CELLTRAIL_SCAN_SCREENSHOT")
    if target:
        path = Path(target)
        page.screenshot(path=path.with_stem(path.stem + suffix), full_page=True)


def test_a_courier_takes_the_shipper_from_another_courier_by_scanning_it(
    phone: Page, sign_in_on, shipment
):
    sscc, _ = shipment
    sign_in_on("courier2")
    phone.goto("/scan")
    scan_box = phone.get_by_label("Scan or type a code")
    expect(scan_box).to_be_focused()
    wedge_scan(phone, "XS228-NOPE-V0001")
    expect(phone.get_by_test_id("scan-refusal")).to_have_text(
        "celltrail has no record of a vial, shipment or subject XS228-NOPE-V0001."
    )
    screenshot(phone, "-refusal")
    expect(scan_box).to_be_focused()  # the next page is ready for the scanner

    wedge_scan(phone, sscc)

    expect(phone.get_by_test_id("sscc")).to_have_text(sscc)
    expect(phone.get_by_test_id("shipment-status")).to_have_text("IN TRANSIT")
    expect(phone.get_by_test_id("custodian")).to_contain_text("Kai Lin")
    expect(phone.get_by_label("Handed over by (username)")).to_have_value("courier")
    expect(scan_box).to_be_focused()  # ready for the next scan
    screenshot(phone, "-shipper")

    phone.get_by_role("button", name="Take custody").click()

    expect(phone.get_by_test_id("custody-yours")).to_contain_text("In your custody")
    expect(phone.get_by_test_id("custodian")).to_contain_text("Bo Yang")
    expect(phone.get_by_role("button", name="Take custody")).to_have_count(0)
    screenshot(phone)


def test_the_pharmacist_signs_for_the_shipper_and_receives_it_with_one_vial_missing(
    phone: Page, sign_in_on, shipment
):
    sscc, links = shipment
    sign_in_on("pharmacist")
    phone.goto("/scan")
    expect(phone.get_by_label("Scan or type a code")).to_be_focused()
    wedge_scan(phone, sscc)
    custody = phone.get_by_test_id("custody-form")
    custody.get_by_label("Your password, to sign for custody").fill(demo_password("pharmacist"))
    custody.get_by_role("button", name="Take custody").click()
    expect(phone.get_by_test_id("custody-yours")).to_contain_text("In your custody")

    phone.get_by_test_id("receive").click()
    expect(phone.get_by_label("Scan each vial")).to_be_focused()
    for link in links[:-1]:
        wedge_scan(phone, link)
    expect(phone.locator("[data-receipt-count]")).to_have_text(
        f"{VIALS - 1} of {VIALS} vials scanned"
    )
    screenshot(phone, "-receipt")
    phone.keyboard.press("Tab")
    expect(phone.get_by_label("Seal number on the shipper")).to_be_focused()
    wedge_scan(phone, SEAL)

    reconciliation = phone.get_by_test_id("reconciliation")
    expect(reconciliation).to_contain_text("Received with discrepancies")
    expect(phone.get_by_test_id("received-count")).to_have_text(str(VIALS - 1))
    missing_serial = links[-1].split("/21/")[1].split("?")[0]
    expect(phone.get_by_test_id("missing").get_by_role("listitem")).to_have_text([missing_serial])
    expect(phone.get_by_test_id("shipment-status")).to_have_text("RECEIVED")
    screenshot(phone, "-received")
    phone.get_by_role("link", name="Open shipment").click()
    expect(phone.get_by_test_id("missing")).to_contain_text(missing_serial)
    screenshot(phone, "-shipment")


@pytest.fixture
def demo_label(committed_app: Flask) -> bytes:
    """The PNG label of the released demo lot's first vial (reading it changes nothing)."""
    with Session(database(committed_app).engine) as db:
        lot = get_lot(db, "XS228-2610-01")
        version = lot.product_version
        label = VialLabel(
            product_name=version.label_name or version.name,
            lot=lot.number,
            serial=DEMO_VIAL,
            expiry=lot.expires_on,
            storage_condition=version.storage_condition,
            storage_limit_c=version.storage_limit_c,
            cells_per_vial=lot.cells_per_vial,
            payload=vial_uri(
                base=TEST_CONFIG["PUBLIC_URL"],
                gtin=lot.product.gtin,
                lot=lot.number,
                serial=DEMO_VIAL,
                expiry=lot.expires_on,
                key=label_keys(committed_app)[0],
            ),
        )
    return render([label], "png", dpi=203)


def test_a_photo_of_a_vial_label_is_read_by_the_server_and_shows_the_vial(
    phone: Page, sign_in_on, demo_label: bytes
):
    sign_in_on("qa")
    phone.goto("/scan")

    phone.get_by_text("No camera here? Send a photo of the code").click()
    phone.get_by_label("Photo").set_input_files(
        files=[{"name": "label.png", "mimeType": "image/png", "buffer": demo_label}]
    )

    expect(phone.get_by_test_id("serial")).to_have_text(DEMO_VIAL)
    expect(phone.get_by_label("Scan or type a code")).to_be_focused()


def _y4m(image: Image.Image, frames: int = 10) -> bytes:
    """A still picture as a Y4M video (4:2:0), the format Chromium's fake camera plays."""
    width, height = image.size
    y, cb, cr = image.convert("YCbCr").split()
    chroma = (width // 2, height // 2)
    frame = b"FRAME\n" + y.tobytes() + cb.resize(chroma).tobytes() + cr.resize(chroma).tobytes()
    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    return header + frame * frames


def test_the_camera_reads_a_label_held_up_to_it(
    playwright_driver: Playwright, chromium: str, live_server: str, tmp_path: Path, demo_label
):
    label = Image.open(io.BytesIO(demo_label))
    picture = Image.new("L", (640, 480), "white")
    big = label.resize((label.width * 2, label.height * 2), Image.Resampling.NEAREST)
    picture.paste(big, ((640 - big.width) // 2, (480 - big.height) // 2))
    video = tmp_path / "label.y4m"
    video.write_bytes(_y4m(picture))
    browser = playwright_driver.chromium.launch(
        executable_path=chromium,
        headless=True,
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    try:
        context = browser.new_context(base_url=live_server, viewport=PHONE)
        context.grant_permissions(["camera"])
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("Username").fill("qa")
        page.get_by_label("Password").fill(demo_password("qa"))
        page.get_by_role("button", name="Sign in").click()
        page.goto("/scan")

        page.get_by_role("button", name="Use camera").click()

        expect(page.get_by_test_id("serial")).to_have_text(DEMO_VIAL, timeout=15_000)
    finally:
        browser.close()
