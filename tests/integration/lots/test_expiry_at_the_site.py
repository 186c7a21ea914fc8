"""A date-only expiry holds through the end of that day at the site where the action happens:
packing (the shipping site), allocation (the subject's hospital) and a kit's availability
(the dispensing pharmacy), at UTC+8 and UTC-5, either side of local midnight."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.demo.trials import SEPSIS_SUBJECT, SEPSIS_TRIAL, XS228_TRIAL
from custody.shipping import VialNotPackableError, create_shipment, pack_vials
from custody.trials import (
    Kit,
    Trial,
    VialNotAllocatableError,
    allocate_vial,
    draw_kit,
    get_subject,
)
from lots.accounts import get_site, get_user
from lots.batch import Lot, Vial
from tests.worlds.shipping import in_stock

# No daylight saving in either: the offsets are fixed, so the oracle below is plain.
ZONES = {"Asia/Shanghai": 8, "America/Bogota": -5}
EXPIRES_ON = dt.date(2026, 12, 2)
EITHER_SIDE = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # each example rolls back
)


def _moment(zone: str, minutes: int) -> dt.datetime:
    """`minutes` from local midnight at the end of EXPIRES_ON (negative: still that day)."""
    midnight = dt.datetime.combine(
        EXPIRES_ON + dt.timedelta(days=1), dt.time(), zoneinfo.ZoneInfo(zone)
    )
    return (midnight + dt.timedelta(minutes=minutes)).astimezone(dt.UTC)


ZONE = st.sampled_from(sorted(ZONES))
# Twelve hours either side of local midnight, where the UTC date and the local one differ.
MINUTES = st.integers(-12 * 60, 12 * 60 - 1)


def test_the_oracle_is_what_the_offsets_say():
    assert _moment("Asia/Shanghai", -1) == dt.datetime(2026, 12, 2, 15, 59, tzinfo=dt.UTC)
    assert _moment("America/Bogota", 0) == dt.datetime(2026, 12, 3, 5, 0, tzinfo=dt.UTC)


@EITHER_SIDE
@given(zone=ZONE, minutes=MINUTES)
def test_packing_takes_a_vial_through_the_end_of_its_expiry_day_at_the_shipping_site(
    session, zone, minutes
):
    now = _moment(zone, minutes)
    with session.begin_nested() as savepoint:
        maker = get_user(session, "manufacturing")
        maker.site.time_zone = zone
        serial = in_stock(session, 1)[0]
        session.scalar(select(Vial).where(Vial.serial == serial)).lot.expires_on = EXPIRES_ON
        shipment = create_shipment(
            session, maker, to_site_code="SYSU3-PH", hold_time_hours=120, now=now
        )
        assert shipment.from_site.time_zone == zone
        if minutes < 0:
            pack_vials(session, maker, shipment.sscc, [serial], now=now)
        else:
            with pytest.raises(VialNotPackableError, match="expired on 2026-12-02"):
                pack_vials(session, maker, shipment.sscc, [serial], now=now)
        savepoint.rollback()


@EITHER_SIDE
@given(zone=ZONE, minutes=MINUTES)
def test_allocation_takes_a_vial_through_the_end_of_its_expiry_day_at_the_subject_s_site(
    session, monkeypatch, zone, minutes
):
    now = _moment(zone, minutes)
    monkeypatch.setattr("custody.trials.allocation.utcnow", lambda: now)
    with session.begin_nested() as savepoint:
        pharmacist = get_user(session, "pharmacist")
        subject = get_subject(session, pharmacist, XS228_TRIAL, "SCI-001")
        subject.site.time_zone = zone
        pharmacist.site.time_zone = "UTC"  # the pharmacy's own day does not decide the dose's
        vial = session.scalar(select(Vial).where(Vial.serial == "XS228-2610-01-V0002"))
        vial.lot.expires_on = EXPIRES_ON
        session.flush()
        if minutes < 0:
            allocate_vial(session, pharmacist, XS228_TRIAL, "SCI-001", 2, vial.serial)
        else:
            with pytest.raises(VialNotAllocatableError) as refused:
                allocate_vial(session, pharmacist, XS228_TRIAL, "SCI-001", 2, vial.serial)
            assert "expired on 2026-12-02" in refused.value.detail
        savepoint.rollback()


@EITHER_SIDE
@given(zone=ZONE, minutes=MINUTES)
def test_a_kit_is_available_through_the_end_of_its_expiry_day_at_the_pharmacy(
    session, monkeypatch, zone, minutes
):
    now = _moment(zone, minutes)
    monkeypatch.setattr("custody.trials.kits.utcnow", lambda: now)
    with session.begin_nested() as savepoint:
        trial = session.scalar(select(Trial).where(Trial.protocol_id == SEPSIS_TRIAL))
        qa = get_user(session, "qa")
        arm_id = get_subject(session, qa, SEPSIS_TRIAL, SEPSIS_SUBJECT).arm_id
        get_site(session, "AMU-SW-PH").time_zone = zone
        lots = session.scalars(
            select(Lot)
            .join(Vial, Vial.lot_id == Lot.id)
            .join(Kit, Kit.vial_id == Vial.id)
            .where(Kit.trial_id == trial.id)
            .distinct()
        ).all()
        for lot in lots:
            lot.expires_on = EXPIRES_ON
        session.flush()
        kit = draw_kit(session, trial, arm_id, "AMU-SW-PH")
        assert (kit is not None) is (minutes < 0)
        savepoint.rollback()
