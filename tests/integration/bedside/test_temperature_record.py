"""A product whose version requires a temperature record: no GO until the logger readings
of every shipper that carried the vial cover its transit from sealing to receipt; a product
without that policy is judged as before."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from custody.shipping import dispense, import_readings, store, thaw
from custody.trials import allocate_vial, enrol_subject
from lots.accounts import get_user
from lots.base import utcnow
from lots.batch import Vial
from lots.products import SPEC_FIELDS, VERSIONED_FIELDS, add_product_version, get_product
from tests.worlds.bedside import (
    TRIAL,
    WARD,
    check,
    failed,
    receive_at_pharmacy,
    released_lot,
    ship_to_pharmacy,
    wristband,
)
from tests.worlds.shipping import readings_csv

LOT = "XS228-LOG-01"
CODE = "LOG-001"


def _policy(session, *, required: bool) -> None:
    current = get_product(session, "XS228").current
    add_product_version(
        session,
        actor="qa",
        code="XS228",
        version={
            **{field: getattr(current, field) for field in VERSIONED_FIELDS},
            "temperature_record_required": required,
        },
        specification=[
            {field: getattr(line, field) for field in SPEC_FIELDS} for line in current.specification
        ],
        change_reason="Logger coverage policy for every transit (QA).",
    )


def _at_the_bedside(session, *, readings: list[str] | None):
    """A vial of a new lot shipped (with these logger readings, if any), received, stored,
    allocated to a new subject, dispensed and thawed; the bedside check of it."""
    released_lot(session, LOT, vials=1)
    serial = session.scalar(select(Vial.serial).where(Vial.serial.like(f"{LOT}-%")))
    shipment = ship_to_pharmacy(session, [serial])
    if readings:
        start = (shipment.sealed_at - dt.timedelta(minutes=15)).replace(microsecond=0)
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
    dispense(session, pharmacist, [serial], ward_code=WARD, now=utcnow())
    thaw(session, get_user(session, "clinician"), serial, now=utcnow())
    return check(session, serial=serial, band=wristband(CODE))


def test_without_a_logger_record_a_product_that_requires_one_is_no_go(session):
    _policy(session, required=True)
    bedside = _at_the_bedside(session, readings=None)
    assert bedside.outcome == "NO-GO"
    assert "No temperature record covers shipper" in failed(bedside)["cold_chain"]


def test_with_readings_covering_the_transit_it_is_go(session):
    _policy(session, required=True)
    bedside = _at_the_bedside(session, readings=["-180.0"] * 20)
    assert (bedside.outcome, failed(bedside)) == ("GO", {})


@pytest.mark.parametrize("readings", [None, ["-180.0"] * 20])
def test_a_product_without_the_policy_is_judged_as_before(session, readings):
    _policy(session, required=False)
    assert _at_the_bedside(session, readings=readings).outcome == "GO"
