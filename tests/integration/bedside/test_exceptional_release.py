"""An exceptionally released lot reaches its one named subject, and nobody else: it packs
only for the pharmacy that supplies that subject's ward once the subject is enrolled, is
allocated only to that subject (trial and code together), and is GO only at their bedside."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from custody.manufacturing import ExceptionalRequest
from custody.shipping import (
    VialNotPackableError,
    create_shipment,
    dispense,
    pack_vials,
    store,
    thaw,
)
from custody.trials import VialNotAllocatableError, allocate_vial, enrol_subject
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
    wristband,
)

LOT = "XS228-EXC-01"
CODE = "EXC-007"
REQUEST = ExceptionalRequest(
    protocol_id=TRIAL,
    subject_code=CODE,
    physician_name="Dr. Dong Jianwen",
    request_reference="SYSU3-REQ-2026-031",
    risk_evaluation="Viability 65 % against ≥ 70 %; no alternative for this subject.",
)


@pytest.fixture
def serial(session) -> str:
    released_lot(session, LOT, vials=2, exceptional=REQUEST)
    return session.scalars(select(Vial.serial).where(Vial.serial.like(f"{LOT}-%"))).first()


def _shipper(session, to_site: str) -> str:
    maker = get_user(session, "manufacturing")
    return create_shipment(
        session, maker, to_site_code=to_site, hold_time_hours=120, asset_id="DS-1", now=utcnow()
    ).sscc


def _pack(session, to_site: str, serial: str) -> None:
    pack_vials(
        session, get_user(session, "manufacturing"), _shipper(session, to_site), [serial],
        now=utcnow(),
    )  # fmt: skip


def _enrol(session) -> None:
    enrol_subject(
        session, get_user(session, "clinician"), TRIAL, code=CODE, site_code=WARD,
        weight_kg=Decimal("70.0"), day_one=utcnow().date(),
    )  # fmt: skip


def test_it_does_not_pack_before_its_subject_is_enrolled(session, serial):
    with pytest.raises(VialNotPackableError, match="not enrolled yet"):
        _pack(session, "SYSU3-PH", serial)


def test_it_packs_only_for_the_pharmacy_that_supplies_the_subjects_ward(session, serial):
    _enrol(session)
    with pytest.raises(VialNotPackableError, match="only to that subject's pharmacy"):
        _pack(session, "AMU-SW-PH", serial)
    _pack(session, "SYSU3-PH", serial)


def test_it_reaches_go_for_its_subject_and_for_nobody_else(session, serial):
    _enrol(session)
    receive_at_pharmacy(session, ship_to_pharmacy(session, [serial]))
    pharmacist = get_user(session, "pharmacist")
    with pytest.raises(VialNotAllocatableError, match="another patient"):
        allocate_vial(session, pharmacist, TRIAL, "SCI-001", 2, serial)
    allocate_vial(session, pharmacist, TRIAL, CODE, 1, serial)
    store(session, pharmacist, [serial], location="LN2 dewar 1, rack C", now=utcnow())
    dispense(session, pharmacist, [serial], ward_code=WARD, now=utcnow())
    thaw(session, get_user(session, "clinician"), serial, now=utcnow())

    bedside = check(session, serial=serial, band=wristband(CODE))
    assert (bedside.outcome, failed(bedside)) == ("GO", {})
    other = check(session, serial=serial, band=wristband("SCI-001"))
    assert other.outcome == "NO-GO"
