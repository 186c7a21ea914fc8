"""State columns edited behind the ledger's back (issue 16, defect 1): `verify` names every
such row, and no decision is taken on it.

Tamperings are generated: any decision column of any row the demo and a bedside world hold,
set to any other value its type allows, with plain SQL as an intruder would.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from app.demo.trials import PACKAGING_LOT, SEPSIS_TRIAL
from custody.integrity import verify_projections
from custody.ledger import (
    DISPUTED,
    LedgerDisagreementError,
    decided_lots,
    decision_status,
    require_lot_agrees,
)
from custody.manufacturing import Decision, close_deviation, raise_deviation
from custody.shipping import (
    Shipment,
    ShipmentStatus,
    VialNotPackableError,
    create_shipment,
    pack_vials,
    vial_states,
)
from custody.trials import Allocation, Kit, Subject, get_trial, kit_views, trial_kits
from lots.accounts import get_user
from lots.base import utcnow
from lots.batch import Deviation, Lot, LotStatus, Vial
from lots.models import User
from tests.worlds.bedside import (
    administer,
    check,
    enrol_patient,
    failed,
    thawed_at_the_ward,
)
from tests.worlds.manufacturing import HASHER, password, qa_decides, qa_recalls

EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
FINAL = {"administered", "destroyed", "returned"}


@pytest.fixture
def world(session: Session) -> Session:
    """The demo, a vial thawed at the ward for SCI-901 and given, a recall, an open
    deviation: every projection written at least once through the services."""
    enrol_patient(session)
    thawed_at_the_ward(session)
    administer(session, check(session).reference)
    raise_deviation(
        session,
        get_user(session, "qc"),
        "XS228-2611-01",
        description="Incubator door alarm during expansion",
        severity="minor",
    )
    qa_recalls(session, "lot", "UCR-2611-01", reason="Sterility retest failed")
    session.flush()
    return session


def _tampered(session: Session, statement) -> None:
    """Run an intruder's UPDATE, then forget what the session thought it knew."""
    session.execute(statement.execution_options(synchronize_session=False))
    session.expire_all()


def test_a_world_built_through_the_services_agrees_with_its_ledger(world):
    assert verify_projections(world) == []


@EXAMPLES
@given(data=st.data())
def test_any_lot_status_or_exceptional_subject_edited_is_named_and_decides_nothing(world, data):
    lots = world.scalars(select(Lot).order_by(Lot.number)).all()
    lot = data.draw(st.sampled_from(lots))
    column = data.draw(st.sampled_from(["status", "exceptional_trial", "exceptional_subject"]))
    current = getattr(lot, column)
    if column == "status":
        value = data.draw(st.sampled_from([s.value for s in LotStatus if s != current]))
    else:
        value = data.draw(st.sampled_from(["NCT05000000", "SCI-001", "SEP-001", None]))
        if value == current:
            value = "OTHER-SUBJECT"
    number, lot_id = lot.number, lot.id
    serials = world.scalars(select(Vial.serial).where(Vial.lot_id == lot_id)).all()
    savepoint = world.begin_nested()
    try:
        _tampered(world, update(Lot).where(Lot.id == lot_id).values({column: value}))
        found = verify_projections(world)
        assert {(item.table, item.key) for item in found} == {("lots", number)}
        tampered = world.get(Lot, lot_id)
        assert decided_lots(world, [tampered])[lot_id][1], "the row is seen to disagree"
        with pytest.raises(LedgerDisagreementError, match=number):
            require_lot_agrees(world, tampered)
        vials = world.scalars(select(Vial).where(Vial.serial.in_(serials))).all()
        for serial, state in vial_states(world, vials).items():
            assert state in FINAL | {"quarantined"}, serial
    finally:
        savepoint.rollback()


def test_a_lot_released_behind_the_ledgers_back_does_not_pack(world):
    """The defect as found: `UPDATE lots SET status='released'` on a lot in quarantine."""
    _tampered(world, update(Lot).where(Lot.number == "XS228-2611-01").values(status="released"))
    maker = get_user(world, "manufacturing")
    sscc = create_shipment(
        world, maker, to_site_code="SYSU3-PH", hold_time_hours=120, asset_id="DS-9", now=utcnow()
    ).sscc
    with pytest.raises(VialNotPackableError, match="outside the ledger"):
        pack_vials(world, maker, sscc, ["XS228-2611-01-V0001"], now=utcnow())


def test_a_lot_whose_row_disagrees_cannot_be_released_or_rejected(world):
    _tampered(world, update(Lot).where(Lot.number == "XS228-2611-01").values(status="in_process"))
    for decision in (Decision.RELEASE, Decision.REJECT):
        with pytest.raises(LedgerDisagreementError, match="reads in process but its ledger"):
            qa_decides(world, "XS228-2611-01", decision, reason="Retest")


def test_a_lot_whose_row_disagrees_can_still_be_recalled(world):
    _tampered(world, update(Lot).where(Lot.number == "XS228-2610-01").values(status="rejected"))
    decisions = qa_recalls(world, "lot", "XS228-2610-01")
    assert [d.decision for d in decisions] == [LotStatus.RECALLED]


def test_the_bedside_says_no_go_for_a_vial_whose_lot_row_was_edited(session):
    enrol_patient(session)
    thawed_at_the_ward(session)
    assert check(session).outcome == "GO"
    _tampered(
        session,
        update(Lot)
        .where(Lot.number == "XS228-2610-01")
        .values(exceptional_trial="NCT00000000", exceptional_subject="SCI-901"),
    )
    refused = check(session)
    assert refused.outcome == "NO-GO"
    assert "changed outside celltrail" in failed(refused)["release"]


@EXAMPLES
@given(data=st.data())
def test_any_shipment_status_seal_or_custodian_edited_is_named(world, data):
    shipments = world.scalars(select(Shipment).order_by(Shipment.sscc)).all()
    shipment = data.draw(st.sampled_from(shipments))
    column = data.draw(st.sampled_from(["status", "seal_number", "custodian_id"]))
    if column == "status":
        value = data.draw(
            st.sampled_from([s.value for s in ShipmentStatus if s != shipment.status])
        )
    elif column == "seal_number":
        value = data.draw(st.sampled_from(["SEAL-FORGED", None]))
        value = "SEAL-OTHER" if value == shipment.seal_number else value
    else:
        users = world.scalars(select(User.id).where(User.id != shipment.custodian_id)).all()
        value = data.draw(st.sampled_from(users))
    sscc, shipment_id = shipment.sscc, shipment.id
    savepoint = world.begin_nested()
    try:
        _tampered(world, update(Shipment).where(Shipment.id == shipment_id).values({column: value}))
        found = {(item.table, item.key) for item in verify_projections(world)}
        assert found == {("shipments", sscc)}
    finally:
        savepoint.rollback()


def test_a_deviation_closed_or_reopened_behind_the_ledgers_back_is_named(world):
    deviation = world.scalar(select(Deviation).order_by(Deviation.id.desc()).limit(1))
    qa = get_user(world, "qa")
    _tampered(
        world,
        update(Deviation)
        .where(Deviation.id == deviation.id)
        .values(closed_at=utcnow(), closed_by_id=qa.id, closure_note="nothing to see"),
    )
    found = verify_projections(world)
    assert [(item.table, "reads closed" in item.reason) for item in found] == [("deviations", True)]


def test_a_deviation_reopened_or_without_its_raising_event_is_named(world):
    deviation = world.scalar(select(Deviation).order_by(Deviation.id.desc()).limit(1))
    lot = world.get(Lot, deviation.lot_id)
    close_deviation(
        world, HASHER, get_user(world, "qa"), lot.number, deviation.number,
        note="Door alarm reviewed: no impact", password=password("qa"),
    )  # fmt: skip
    assert verify_projections(world) == []
    _tampered(
        world,
        update(Deviation)
        .where(Deviation.id == deviation.id)
        .values(closed_at=None, closed_by_id=None, closure_note=None),
    )
    found = verify_projections(world)
    assert [(item.table, "reads open" in item.reason) for item in found] == [("deviations", True)]
    world.execute(
        insert(Deviation).values(
            lot_id=lot.id, number=99, description="Never raised", severity="minor",
            raised_by_id=get_user(world, "qc").id, raised_at=utcnow(),
        )
    )  # fmt: skip
    reasons = [item.reason for item in verify_projections(world)]
    assert any("has no raising event" in reason for reason in reasons), reasons


@EXAMPLES
@given(data=st.data())
def test_a_disputed_lot_of_a_packaging_lot_quarantines_every_kit_of_both_arms_alike(session, data):
    trial = get_trial(session, SEPSIS_TRIAL)
    kits = [kit for kit in trial_kits(session, trial) if kit.packaging_lot == PACKAGING_LOT]
    lots = sorted({kit.vial.lot.number for kit in kits})
    assert len({kit.arm_id for kit in kits}) > 1, "the packaging lot holds both arms"
    number = data.draw(st.sampled_from(lots))
    current = session.scalar(select(Lot.status).where(Lot.number == number))
    value = data.draw(st.sampled_from([s.value for s in LotStatus if s != current]))
    kit_ids = [kit.id for kit in kits]
    savepoint = session.begin_nested()
    try:
        _tampered(session, update(Lot).where(Lot.number == number).values(status=value))
        tampered = session.scalars(select(Kit).where(Kit.id.in_(kit_ids))).all()
        states = {view.state for view in kit_views(session, tampered).values()}
        assert states <= FINAL | {"quarantined"}, states
    finally:
        savepoint.rollback()


@EXAMPLES
@given(data=st.data())
def test_any_subjects_withdrawal_or_arm_edited_is_named_without_naming_the_arm(world, data):
    subjects = world.scalars(select(Subject).order_by(Subject.id)).all()
    subject = data.draw(st.sampled_from(subjects))
    others = [arm.id for arm in subject.trial.arms if arm.id != subject.arm_id]
    change = data.draw(st.sampled_from(["withdrawn_at", *(["arm_id"] if others else [])]))
    if change == "arm_id":
        values = {"arm_id": data.draw(st.sampled_from(others))}
    else:
        values = {"withdrawn_at": None if subject.withdrawn else utcnow()}
    key = f"{subject.trial.protocol_id}:{subject.code}"
    subject_id = subject.id
    savepoint = world.begin_nested()
    try:
        _tampered(world, update(Subject).where(Subject.id == subject_id).values(values))
        found = verify_projections(world)
        assert {(item.table, item.key) for item in found} == {("subjects", key)}
        arms = {arm.code for arm in subject.trial.arms} | {arm.name for arm in subject.trial.arms}
        assert not any(arm in item.reason for item in found for arm in arms)
    finally:
        savepoint.rollback()


def test_an_allocation_moved_to_another_vial_is_named(world):
    allocation = world.scalar(
        select(Allocation).where(Allocation.vial_id.is_not(None)).order_by(Allocation.id).limit(1)
    )
    taken = select(Allocation.vial_id).where(Allocation.vial_id.is_not(None))
    other = world.scalar(
        select(Vial.id)
        .where(Vial.lot_id == allocation.vial.lot_id, Vial.id.not_in(taken))
        .order_by(Vial.id)
        .limit(1)
    )
    _tampered(world, update(Allocation).where(Allocation.id == allocation.id).values(vial_id=other))
    assert [item.table for item in verify_projections(world)] == ["allocations"]


def test_only_decision_columns_are_judged_and_a_disputed_lot_blocks(world):
    lot_id = world.scalar(select(Lot.id).where(Lot.number == "XS228-2610-01"))
    _tampered(world, update(Lot).where(Lot.id == lot_id).values(volume_ml=2))
    lot = world.get(Lot, lot_id)
    assert decision_status(decided_lots(world, [lot])[lot_id]) == LotStatus.RELEASED
    _tampered(world, update(Lot).where(Lot.id == lot_id).values(status="quarantine"))
    lot = world.get(Lot, lot_id)
    assert decision_status(decided_lots(world, [lot])[lot_id]) == DISPUTED
