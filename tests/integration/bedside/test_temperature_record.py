"""A product whose version requires a temperature record: no GO until the logger readings
of every shipper that carried the vial cover its transit from sealing to receipt; a product
without that policy is judged as before."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from custody.shipping import VialHandlingError, dispense, import_readings, store, thaw
from custody.trials import allocate_vial, enrol_subject
from lots.accounts import get_user
from lots.base import utcnow
from lots.batch import Vial
from tests.worlds.bedside import (
    TRIAL,
    WARD,
    check,
    failed,
    receive_at_pharmacy,
    released_lot,
    ship_to_pharmacy,
    temperature_record_policy,
    wristband,
)
from tests.worlds.shipping import readings_csv

LOT = "XS228-LOG-01"
CODE = "LOG-001"


def _at_the_bedside(
    session, *, readings: list[str] | None, dispensed: bool = True, lead_minutes: int = 15
):
    """A vial of a new lot shipped (with these logger readings, if any), received, stored,
    allocated to a new subject, dispensed and thawed (or thawed in the pharmacy, not
    dispensed); the bedside check of it."""
    released_lot(session, LOT, vials=1)
    serial = session.scalar(select(Vial.serial).where(Vial.serial.like(f"{LOT}-%")))
    shipment = ship_to_pharmacy(session, [serial])
    if readings:
        start = (shipment.sealed_at - dt.timedelta(minutes=lead_minutes)).replace(microsecond=0)
        import_readings(
            session,
            get_user(session, "courier2"),
            shipment.sscc,
            readings_csv(start, readings, minutes=1),
            now=utcnow() + dt.timedelta(minutes=2),
        )
    receive_at_pharmacy(session, shipment)
    pharmacist = get_user(session, "pharmacist")
    enrol_subject(
        session, get_user(session, "clinician"), TRIAL, code=CODE, site_code=WARD,
        day_one=utcnow().date(),
    )  # fmt: skip
    allocate_vial(session, pharmacist, TRIAL, CODE, 1, serial)
    store(session, pharmacist, [serial], location="LN2 dewar 2", now=utcnow())
    if dispensed:
        dispense(session, pharmacist, [serial], ward_code=WARD, now=utcnow())
        thaw(session, get_user(session, "clinician"), serial, now=utcnow())
    return check(session, serial=serial, band=wristband(CODE))


def test_without_a_logger_record_a_product_that_requires_one_is_no_go(session):
    temperature_record_policy(session, required=True)
    bedside = _at_the_bedside(session, readings=None, dispensed=False)
    assert bedside.outcome == "NO-GO"
    assert "No temperature record covers shipper" in failed(bedside)["cold_chain"]


def test_without_a_logger_record_the_pharmacy_cannot_dispense_the_vial(session):
    temperature_record_policy(session, required=True)
    with pytest.raises(VialHandlingError) as refused:
        _at_the_bedside(session, readings=None)
    assert refused.value.detail.startswith("No temperature record is attached to shipper ")
    assert refused.value.detail.endswith(
        "Attach the logger readings before dispensing these vials."
    )
    assert LOT not in refused.value.detail  # it names the shipper, never the vial or its lot


def test_readings_that_stop_before_receipt_do_not_cover_the_transit(session):
    temperature_record_policy(session, required=True)
    with pytest.raises(VialHandlingError) as refused:
        # Three minutes of readings, two hours before sealing: the transit is not covered.
        _at_the_bedside(session, readings=["-180.0"] * 3, lead_minutes=120)
    assert "does not cover the transit from sealing to receipt" in refused.value.detail


def test_with_readings_covering_the_transit_it_is_go(session):
    temperature_record_policy(session, required=True)
    bedside = _at_the_bedside(session, readings=["-180.0"] * 20)
    assert (bedside.outcome, failed(bedside)) == ("GO", {})


@pytest.mark.parametrize("readings", [None, ["-180.0"] * 20])
def test_a_product_without_the_policy_is_judged_as_before(session, readings):
    temperature_record_policy(session, required=False)
    assert _at_the_bedside(session, readings=readings).outcome == "GO"
