"""Shipments at the service layer: packing and its refusals, sealing, shipping, courier
handoffs and their refusals (each recorded), a 500-vial shipper moved by one scan, receipt
with reconciliation, and storing, dispensing and thawing at the hospital."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.keys import trusted_keys
from custody.ledger import CustodyEvent, EventDraft, append_event, chain_events, verify_ledger
from custody.manufacturing import create_lot, get_lot
from custody.shipping import (
    Handoff,
    HandoffRefusedError,
    Shipment,
    ShipmentStateError,
    VialHandlingError,
    VialNotPackableError,
    create_shipment,
    dispense,
    pack_vials,
    receive,
    record_handoff,
    scan_handoff,
    seal,
    ship,
    shipment_handoffs,
    store,
    thaw,
    unpack_vials,
    vial_status,
)
from lots.accounts import create_user, get_site, get_user
from lots.base import utcnow
from lots.batch import Vial
from lots.errors import DomainError, InvalidValueError, NotFoundError
from lots.signatures import SignatureRefusedError
from tests.worlds.manufacturing import (
    HASHER,
    TEST_PASSWORD,
    enter_results,
    lot_in_quarantine,
    password,
    qa_decides,
    qa_recalls,
    ready_lot,
    step,
)

RELEASED = "XS228-2610-01"  # the demo's released lot, 24 vials, made at XSM-SZ
SEAL = "SEAL-20261122-07"
FREEZER = "LN2-02 rack C/3"


def v(number: int, lot: str = RELEASED) -> str:
    """The serial of a lot's vial by its position."""
    return f"{lot}-V{number:04d}"


def released_lot(session, number: str, vials: int = 3) -> str:
    """A lot made, tested and released by the demo users."""
    lot_in_quarantine(session, number, vials=vials)
    enter_results(session, number)
    qa_decides(session, number)
    return number


def new_shipment(session, *, to: str = "SYSU3-PH", by: str = "manufacturing") -> Shipment:
    return create_shipment(
        session, get_user(session, by), to_site_code=to, hold_time_hours=72, now=utcnow()
    )


def packed_shipment(session, serials: list[str]) -> Shipment:
    shipment = new_shipment(session)
    return pack_vials(
        session, get_user(session, "manufacturing"), shipment.sscc, serials, now=utcnow()
    )


def shipped(session, serials: list[str], courier: str = "courier") -> Shipment:
    """A shipper packed with these vials, sealed and handed to the first courier."""
    shipment = packed_shipment(session, serials)
    maker = get_user(session, "manufacturing")
    seal(session, maker, shipment.sscc, SEAL, now=utcnow())
    return ship(session, maker, shipment.sscc, courier, now=utcnow())


def hand_off(session, shipment, taker: str, giver: str, **kwargs) -> Handoff:
    kwargs.setdefault("now", utcnow())
    kwargs.setdefault("occurred_at", kwargs["now"])
    return record_handoff(
        session, HASHER, get_user(session, taker), shipment.sscc, giver_username=giver, **kwargs
    )


def refusal(session, attempt) -> DomainError:
    """Run a refused write as the API does: roll back, then keep what the refusal keeps."""
    session.commit()  # the setup stays (inside the test's own transaction)
    with pytest.raises(DomainError) as refused:
        attempt()
    session.rollback()
    if refused.value.after_rollback is not None:
        refused.value.after_rollback(session)
        session.commit()
    return refused.value


def last_event(session, chain: str) -> CustodyEvent:
    return chain_events(session, chain)[-1]


def payload(event: CustodyEvent) -> dict:
    return json.loads(event.body)["payload"]


def states(session, serials: list[str]) -> dict[str, str]:
    vials = session.scalars(select(Vial).where(Vial.serial.in_(serials))).all()
    return {serial: state for serial, (state, _) in vial_status(session, vials).items()}


def another_user(session, username: str, role: str, site: str):
    return create_user(
        session,
        HASHER,
        actor="admin",
        username=username,
        full_name=username.title(),
        role=role,
        site_code=site,
        password=TEST_PASSWORD,
    )


# Packing


def test_packing_records_the_vial_on_the_shipper_and_on_its_own_chain(session):
    shipment = packed_shipment(session, [v(1), v(2)])
    assert payload(last_event(session, shipment.chain))["vials"] == [v(1), v(2)]
    assert last_event(session, f"vial:{v(1)}").event_type == "PACKED"
    assert states(session, [v(1), v(2)]) == {v(1): "packed", v(2): "packed"}


def test_a_shipper_takes_the_storage_limit_of_the_products_packed(session):
    shipment = packed_shipment(session, [v(1)])
    assert shipment.storage_limit_c == Decimal("-150")


def test_a_vial_of_a_lot_in_quarantine_is_refused(session):
    ready_lot(session, "SH-2612-01")
    with pytest.raises(VialNotPackableError) as refused:
        packed_shipment(session, [v(1, "SH-2612-01")])
    assert refused.value.facts["reasons"] == [
        f"{v(1, 'SH-2612-01')}: lot SH-2612-01 is quarantine, not released."
    ]


def test_a_vial_of_a_recalled_lot_is_refused(session):
    released_lot(session, "SH-2612-02")
    qa_recalls(session, "lot", "SH-2612-02")
    with pytest.raises(VialNotPackableError) as refused:
        packed_shipment(session, [v(1, "SH-2612-02")])
    assert "lot SH-2612-02 is recalled, not released" in refused.value.detail


def test_a_quarantined_vial_of_a_released_lot_is_refused(session):
    qa = get_user(session, "qa")
    append_event(
        session,
        EventDraft(f"vial:{v(3)}", "QUARANTINED", utcnow(), {"reason": "Cap cracked"}, qa, qa.site),
    )
    with pytest.raises(VialNotPackableError) as refused:
        packed_shipment(session, [v(3)])
    assert refused.value.detail == f"{v(3)} is quarantined, not in stock."


def test_a_vial_already_packed_in_another_shipper_is_refused(session):
    packed_shipment(session, [v(1)])
    with pytest.raises(VialNotPackableError) as refused:
        packed_shipment(session, [v(1)])
    assert refused.value.detail == f"{v(1)} is packed, not in stock."


def test_a_vial_of_an_expired_lot_is_refused(session):
    end = utcnow().replace(microsecond=0) - dt.timedelta(days=400)
    create_lot(
        session,
        get_user(session, "manufacturing"),
        number="SH-2511-01",
        product_code="XS228",
        bank_code="XS-WCB-01",
        manufacture_start=end - dt.timedelta(days=28),
        manufacture_end=end,
        vials_filled=2,
        cells_per_vial=10_000_000,
        volume_ml=Decimal("1.0"),
        qc_site=get_site(session, "XSM-QC"),
    )
    step(session, "SH-2511-01", "batch_record_completed")
    enter_results(session, "SH-2511-01")
    expired_on = get_lot(session, "SH-2511-01").expires_on
    qa_decides(session, "SH-2511-01", today=expired_on - dt.timedelta(days=30))  # in date then
    with pytest.raises(VialNotPackableError) as refused:
        packed_shipment(session, [v(1, "SH-2511-01")])
    assert refused.value.detail == (
        f"{v(1, 'SH-2511-01')}: lot SH-2511-01 expired on {expired_on.isoformat()}."
    )


def test_a_vial_made_at_another_site_is_refused(session):
    another_user(session, "amu-maker", "manufacturing", "AMU-CTC")
    shipment = new_shipment(session, to="AMU-SW-PH", by="amu-maker")
    with pytest.raises(VialNotPackableError) as refused:
        pack_vials(session, get_user(session, "amu-maker"), shipment.sscc, [v(1)], now=utcnow())
    assert refused.value.detail == f"{v(1)} is not at AMU-CTC."


def test_each_refused_vial_is_named_and_nothing_is_packed(session):
    ready_lot(session, "SH-2612-03")
    packed_shipment(session, [v(1)])
    shipment = new_shipment(session)
    with pytest.raises(VialNotPackableError) as refused:
        pack_vials(
            session,
            get_user(session, "manufacturing"),
            shipment.sscc,
            [v(1), v(2), v(1, "SH-2612-03")],
            now=utcnow(),
        )
    assert len(refused.value.facts["reasons"]) == 2
    assert states(session, [v(2)]) == {v(2): "in_stock"}


def test_an_unknown_serial_cannot_be_packed(session):
    shipment = new_shipment(session)
    with pytest.raises(NotFoundError):
        pack_vials(
            session, get_user(session, "manufacturing"), shipment.sscc, [v(999)], now=utcnow()
        )


def test_an_unpacked_vial_is_back_in_stock_and_can_go_into_another_shipper(session):
    shipment = packed_shipment(session, [v(1), v(2)])
    unpack_vials(session, get_user(session, "manufacturing"), shipment.sscc, [v(2)], now=utcnow())
    assert last_event(session, f"vial:{v(2)}").event_type == "UNPACKED"
    assert states(session, [v(1), v(2)]) == {v(1): "packed", v(2): "in_stock"}
    assert packed_shipment(session, [v(2)])


def test_a_vial_not_in_the_shipper_cannot_be_unpacked(session):
    shipment = packed_shipment(session, [v(1)])
    with pytest.raises(InvalidValueError) as refused:
        unpack_vials(
            session, get_user(session, "manufacturing"), shipment.sscc, [v(2)], now=utcnow()
        )
    assert refused.value.detail == f"Not in shipper {shipment.sscc}: {v(2)}."


# Sealing and shipping


def test_an_empty_shipper_cannot_be_sealed(session):
    shipment = new_shipment(session)
    with pytest.raises(ShipmentStateError) as refused:
        seal(session, get_user(session, "manufacturing"), shipment.sscc, SEAL, now=utcnow())
    assert "is empty" in refused.value.detail


def test_a_sealed_shipper_takes_no_more_vials(session):
    shipment = packed_shipment(session, [v(1)])
    seal(session, get_user(session, "manufacturing"), shipment.sscc, SEAL, now=utcnow())
    with pytest.raises(ShipmentStateError) as refused:
        pack_vials(session, get_user(session, "manufacturing"), shipment.sscc, [v(2)], now=utcnow())
    assert refused.value.detail == f"Shipper {shipment.sscc} is sealed; it can no longer be packed."


def test_a_shipper_is_not_handed_to_someone_who_is_not_a_courier(session):
    shipment = packed_shipment(session, [v(1)])
    maker = get_user(session, "manufacturing")
    seal(session, maker, shipment.sscc, SEAL, now=utcnow())
    with pytest.raises(InvalidValueError) as refused:
        ship(session, maker, shipment.sscc, "pharmacist", now=utcnow())
    assert refused.value.detail == "pharmacist is not an active courier."


def test_an_unsealed_shipper_cannot_ship(session):
    shipment = packed_shipment(session, [v(1)])
    with pytest.raises(ShipmentStateError):
        ship(session, get_user(session, "manufacturing"), shipment.sscc, "courier", now=utcnow())


def test_shipping_puts_the_first_courier_in_custody_and_the_vials_in_transit(session):
    shipment = shipped(session, [v(1), v(2)])
    assert (shipment.status, shipment.custodian.username) == ("in_transit", "courier")
    assert states(session, [v(1), v(2)]) == {v(1): "in_transit", v(2): "in_transit"}


# Handoffs


def test_a_courier_takes_custody_from_the_courier_who_holds_the_shipper(session):
    shipment = shipped(session, [v(1), v(2)])
    handoff = hand_off(session, shipment, "courier2", "courier")
    event = last_event(session, f"vial:{v(2)}")
    assert (shipment.custodian.username, handoff.number, handoff.late) == ("courier2", 1, False)
    assert (event.event_type, payload(event)["from"]["user"], payload(event)["to"]["user"]) == (
        "HANDED_OFF",
        "courier",
        "courier2",
    )


def test_a_courier_cannot_take_a_shipper_from_someone_who_does_not_hold_it(session):
    shipment = shipped(session, [v(1)])
    refused = refusal(session, lambda: hand_off(session, shipment, "courier2", "pharmacist"))
    recorded = last_event(session, shipment.chain)
    assert isinstance(refused, HandoffRefusedError)
    assert refused.detail == (
        f"pharmacist does not hold shipper {shipment.sscc}; it is in the custody of Kai Lin."
    )
    assert (recorded.event_type, payload(recorded)["reason"]) == ("HANDOFF_REFUSED", refused.detail)


def test_a_shipper_that_has_not_shipped_cannot_be_handed_off(session):
    shipment = packed_shipment(session, [v(1)])
    seal(session, get_user(session, "manufacturing"), shipment.sscc, SEAL, now=utcnow())
    refused = refusal(session, lambda: hand_off(session, shipment, "courier2", "manufacturing"))
    assert refused.detail == (
        f"Shipper {shipment.sscc} is sealed but not shipped: it is not in a courier's hands yet."
    )
    assert last_event(session, shipment.chain).event_type == "HANDOFF_REFUSED"


def test_a_handoff_before_the_previous_one_beyond_the_clock_skew_is_refused(session):
    shipment = shipped(session, [v(1)])
    too_early = shipment.custodian_since - dt.timedelta(minutes=10)
    refused = refusal(
        session, lambda: hand_off(session, shipment, "courier2", "courier", occurred_at=too_early)
    )
    assert "is before the previous handoff" in refused.detail
    assert "5 min tolerance" in refused.detail
    assert last_event(session, shipment.chain).event_type == "HANDOFF_REFUSED"


def test_a_handoff_slightly_before_the_previous_one_is_within_the_clock_skew(session):
    shipment = shipped(session, [v(1)])
    skewed = shipment.custodian_since - dt.timedelta(seconds=90)
    assert hand_off(session, shipment, "courier2", "courier", occurred_at=skewed).number == 1


def test_a_handoff_in_the_future_is_refused(session):
    shipment = shipped(session, [v(1)])
    future = utcnow() + dt.timedelta(minutes=10)
    refused = refusal(
        session, lambda: hand_off(session, shipment, "courier2", "courier", occurred_at=future)
    )
    assert refused.detail == "The time of the scan is in the future; check the device clock."


def test_a_courier_cannot_hand_a_shipper_to_himself(session):
    shipment = shipped(session, [v(1)])
    refused = refusal(session, lambda: hand_off(session, shipment, "courier", "courier"))
    assert refused.detail == f"You already hold shipper {shipment.sscc}."


def test_a_pharmacist_must_sign_to_take_custody(session):
    shipment = shipped(session, [v(1)])
    refused = refusal(session, lambda: hand_off(session, shipment, "pharmacist", "courier"))
    assert "requires the receiver to sign" in refused.detail
    assert last_event(session, shipment.chain).event_type == "HANDOFF_REFUSED"
    signed = hand_off(session, shipment, "pharmacist", "courier", password=password("pharmacist"))
    assert signed.signed


def test_a_pharmacist_with_the_wrong_password_is_refused(session):
    shipment = shipped(session, [v(1)])
    with pytest.raises(SignatureRefusedError):
        hand_off(session, shipment, "pharmacist", "courier", password="not-my-password")


def test_a_scan_captured_offline_is_accepted_and_flagged_late(session):
    shipment = shipped(session, [v(1)])
    scanned_at = shipment.custodian_since + dt.timedelta(minutes=1)
    handoff = hand_off(
        session,
        shipment,
        "courier2",
        "courier",
        occurred_at=scanned_at,
        now=scanned_at + dt.timedelta(hours=3),
    )
    assert (handoff.late, handoff.occurred_at) == (True, scanned_at)
    assert payload(last_event(session, f"vial:{v(1)}"))["late"] is True


def test_a_scan_submitted_at_once_is_not_late(session):
    shipment = shipped(session, [v(1)])
    assert hand_off(session, shipment, "courier2", "courier").late is False


def test_the_scanner_firing_twice_records_one_handoff(session):
    shipment = shipped(session, [v(1)])
    first = hand_off(session, shipment, "courier2", "courier")
    events = session.scalar(select(func.count(CustodyEvent.id)))
    again = scan_handoff(
        session,
        HASHER,
        get_user(session, "courier2"),
        shipment.sscc,
        giver_username="courier",
        occurred_at=utcnow(),
        now=utcnow(),
    )
    assert (again.handoff.id, again.repeated) == (first.id, True)
    assert session.scalar(select(func.count(CustodyEvent.id))) == events


def test_a_second_courier_scanning_after_the_first_is_told_who_holds_the_shipper(session):
    another_user(session, "courier-zhou", "courier", "CRYO-GZ")  # rolled back with the test
    shipment = shipped(session, [v(1)])
    hand_off(session, shipment, "courier2", "courier")
    refused = refusal(session, lambda: hand_off(session, shipment, "courier-zhou", "courier"))
    assert refused.detail.endswith("it is in the custody of Bo Yang.")
    assert len(shipment_handoffs(session, shipment)) == 1


def test_one_scan_of_a_500_vial_shipper_moves_every_vial(session):
    lot = released_lot(session, "SH-2612-50", vials=500)
    serials = [v(n, lot) for n in range(1, 501)]
    shipment = shipped(session, serials)
    before = session.scalar(select(func.count(CustodyEvent.id)))
    hand_off(session, shipment, "courier2", "courier")
    assert session.scalar(select(func.count(CustodyEvent.id))) - before == 501
    last_types = session.scalars(_last_event_types(serials)).all()
    assert len(last_types) == 500
    assert set(last_types) == {"HANDED_OFF"}


def _last_event_types(serials):
    newest = (
        select(CustodyEvent.chain, func.max(CustodyEvent.seq).label("seq"))
        .where(CustodyEvent.chain.in_([f"vial:{serial}" for serial in serials]))
        .group_by(CustodyEvent.chain)
        .subquery()
    )
    return select(CustodyEvent.event_type).join(
        newest, (CustodyEvent.chain == newest.c.chain) & (CustodyEvent.seq == newest.c.seq)
    )


# Receipt


def in_pharmacists_hands(session, serials: list[str]) -> Shipment:
    shipment = shipped(session, serials)
    hand_off(session, shipment, "courier2", "courier")
    hand_off(session, shipment, "pharmacist", "courier2", password=password("pharmacist"))
    return shipment


def receive_as_pharmacist(session, shipment, serials=None, **kwargs):
    kwargs.setdefault("seal_number", SEAL)
    kwargs.setdefault("now", utcnow())
    return receive(
        session, HASHER, get_user(session, "pharmacist"), shipment.sscc, serials=serials, **kwargs
    )


def test_accepting_the_manifest_receives_every_vial(session):
    shipment = in_pharmacists_hands(session, [v(1), v(2)])
    receipt = receive_as_pharmacist(session, shipment)
    assert receipt.reconciliation["received"] == [v(1), v(2)]
    assert (shipment.status, states(session, [v(1)])) == ("received", {v(1): "received"})


def test_a_vial_missing_at_receipt_is_recorded_and_quarantined(session):
    shipment = in_pharmacists_hands(session, [v(1), v(2), v(3)])
    receipt = receive_as_pharmacist(session, shipment, [v(1), v(3)])
    assert (receipt.reconciliation["received"], receipt.reconciliation["missing"]) == (
        [v(1), v(3)],
        [v(2)],
    )
    assert last_event(session, f"vial:{v(2)}").event_type == "REPORTED_MISSING"
    assert states(session, [v(2)]) == {v(2): "quarantined"}


def test_an_extra_vial_at_receipt_is_recorded_as_extra(session):
    shipment = in_pharmacists_hands(session, [v(1)])
    receipt = receive_as_pharmacist(session, shipment, [v(1), v(7)])
    assert receipt.reconciliation["extra"] == [v(7)]
    assert states(session, [v(7)]) == {v(7): "in_stock"}


def test_a_vial_of_another_shipment_is_named_with_its_shipper(session):
    other = packed_shipment(session, [v(9)])
    shipment = in_pharmacists_hands(session, [v(1)])
    receipt = receive_as_pharmacist(session, shipment, [v(1), v(9)])
    assert receipt.reconciliation["of_another_shipment"] == {v(9): other.sscc}


def test_an_unknown_serial_at_receipt_is_recorded_as_unknown(session):
    shipment = in_pharmacists_hands(session, [v(1)])
    receipt = receive_as_pharmacist(session, shipment, [v(1), "XS228-0000-00-V0001"])
    assert receipt.reconciliation["unknown"] == ["XS228-0000-00-V0001"]
    assert payload(last_event(session, shipment.chain))["unknown"] == ["XS228-0000-00-V0001"]


def test_a_wrong_seal_is_refused_and_nothing_is_received(session):
    shipment = in_pharmacists_hands(session, [v(1)])
    refused = refusal(
        session, lambda: receive_as_pharmacist(session, shipment, seal_number="SEAL-0000")
    )
    assert refused.detail.startswith(f"Seal SEAL-0000 is not the seal applied at packing ({SEAL})")
    assert (get_shipment_status(session, shipment), states(session, [v(1)])) == (
        "in_transit",
        {v(1): "in_transit"},
    )


def test_a_wrong_seal_is_recorded_on_the_shippers_chain(session):
    shipment = in_pharmacists_hands(session, [v(1)])
    refusal(session, lambda: receive_as_pharmacist(session, shipment, seal_number="SEAL-0000"))
    event = last_event(session, shipment.chain)
    assert (event.event_type, payload(event)["seal_number"]) == ("SEAL_MISMATCH", "SEAL-0000")


def test_a_pharmacist_of_another_hospital_cannot_take_the_shipper(session):
    shipment = shipped(session, [v(1)])
    refused = refusal(
        session,
        lambda: hand_off(
            session, shipment, "amu-pharmacist", "courier", password=password("amu-pharmacist")
        ),
    )
    assert refused.detail.startswith(
        f"Shipper {shipment.sscc} is addressed to Third Affiliated Hospital"
    )
    assert last_event(session, shipment.chain).event_type == "HANDOFF_REFUSED"


def get_shipment_status(session, shipment) -> str:
    session.refresh(shipment)
    return shipment.status


def test_the_pharmacist_takes_the_shipper_from_the_courier_when_receiving(session):
    shipment = shipped(session, [v(1)])
    receipt = receive_as_pharmacist(
        session, shipment, giver_username="courier", password=password("pharmacist")
    )
    (handoff,) = shipment_handoffs(session, shipment)
    assert (handoff.giver.username, handoff.taker.username, handoff.signed) == (
        "courier",
        "pharmacist",
        True,
    )
    assert receipt.reconciliation["received"] == [v(1)]


def test_a_shipper_is_received_only_at_its_destination(session):
    shipment = shipped(session, [v(1)])
    with pytest.raises(InvalidValueError) as refused:
        receive(
            session,
            HASHER,
            get_user(session, "amu-pharmacist"),
            shipment.sscc,
            seal_number=SEAL,
            giver_username="courier",
            now=utcnow(),
        )
    assert "is addressed to Third Affiliated Hospital" in refused.value.detail


def test_a_shipper_cannot_be_received_twice(session):
    shipment = in_pharmacists_hands(session, [v(1)])
    receive_as_pharmacist(session, shipment)
    with pytest.raises(HandoffRefusedError) as refused:
        receive_as_pharmacist(session, shipment)
    assert refused.value.detail == f"Shipper {shipment.sscc} was already received."


def test_a_received_shipper_cannot_be_handed_off_again(session):
    shipment = in_pharmacists_hands(session, [v(1)])
    receive_as_pharmacist(session, shipment)
    refused = refusal(session, lambda: hand_off(session, shipment, "courier", "pharmacist"))
    assert "was already received" in refused.detail


# Storing, dispensing and thawing


def received(session, serials: list[str]) -> Shipment:
    shipment = in_pharmacists_hands(session, serials)
    receive_as_pharmacist(session, shipment)
    return shipment


def test_received_vials_are_stored_dispensed_to_the_ward_and_thawed_there(session):
    received(session, [v(1)])
    pharmacist, clinician = get_user(session, "pharmacist"), get_user(session, "clinician")
    store(session, pharmacist, [v(1)], location=FREEZER, now=utcnow())
    dispense(session, pharmacist, [v(1)], ward_code="SYSU3-SPINE", now=utcnow())
    thawed_at = utcnow().replace(microsecond=0)
    use_by = thaw(session, clinician, v(1), occurred_at=thawed_at, now=utcnow())
    assert use_by == thawed_at + dt.timedelta(minutes=120)
    assert [event.event_type for event in chain_events(session, f"vial:{v(1)}")][-3:] == [
        "STORED",
        "DISPENSED",
        "THAWED",
    ]
    assert states(session, [v(1)]) == {v(1): "thawed"}


def test_a_dispensed_vial_is_at_the_ward(session):
    received(session, [v(1)])
    pharmacist = get_user(session, "pharmacist")
    store(session, pharmacist, [v(1)], location=FREEZER, now=utcnow())
    dispense(session, pharmacist, [v(1)], ward_code="SYSU3-SPINE", now=utcnow())
    vial = session.scalar(select(Vial).where(Vial.serial == v(1)))
    assert vial_status(session, [vial]) == {v(1): ("dispensed", "SYSU3-SPINE")}


def test_a_vial_still_in_transit_cannot_be_stored(session):
    shipped(session, [v(1)])
    with pytest.raises(VialHandlingError) as refused:
        store(session, get_user(session, "pharmacist"), [v(1)], location=FREEZER, now=utcnow())
    assert refused.value.detail == f"{v(1)} is not at {get_site(session, 'SYSU3-PH').name}."


def test_another_hospitals_pharmacist_cannot_store_the_vials(session):
    received(session, [v(1)])
    with pytest.raises(VialHandlingError) as refused:
        store(session, get_user(session, "amu-pharmacist"), [v(1)], location=FREEZER, now=utcnow())
    assert refused.value.detail == f"{v(1)} is not at {get_site(session, 'AMU-SW-PH').name}."


def test_a_received_vial_must_be_stored_before_it_is_dispensed(session):
    received(session, [v(1)])
    with pytest.raises(VialHandlingError) as refused:
        dispense(
            session, get_user(session, "pharmacist"), [v(1)], ward_code="SYSU3-SPINE", now=utcnow()
        )
    assert refused.value.detail == f"{v(1)} is received."


def test_dispensing_to_a_site_that_is_not_a_ward_is_refused(session):
    received(session, [v(1)])
    pharmacist = get_user(session, "pharmacist")
    store(session, pharmacist, [v(1)], location=FREEZER, now=utcnow())
    with pytest.raises(InvalidValueError) as refused:
        dispense(session, pharmacist, [v(1)], ward_code="DMU1-PH", now=utcnow())
    assert refused.value.detail == "DMU1-PH is not a ward."


def test_a_thawed_vial_cannot_be_thawed_again(session):
    received(session, [v(1)])
    pharmacist = get_user(session, "pharmacist")
    store(session, pharmacist, [v(1)], location=FREEZER, now=utcnow())
    thaw(session, pharmacist, v(1), now=utcnow())
    with pytest.raises(VialHandlingError) as refused:
        thaw(session, pharmacist, v(1), now=utcnow())
    assert refused.value.detail == f"{v(1)} is thawed."


def test_a_thaw_in_the_future_is_refused(session):
    received(session, [v(1)])
    pharmacist = get_user(session, "pharmacist")
    store(session, pharmacist, [v(1)], location=FREEZER, now=utcnow())
    with pytest.raises(InvalidValueError) as refused:
        thaw(session, pharmacist, v(1), occurred_at=utcnow() + dt.timedelta(hours=1), now=utcnow())
    assert refused.value.field == "occurred_at"


def test_a_thaw_dated_before_the_vial_reached_the_ward_is_refused(session):
    received(session, [v(1)])
    pharmacist = get_user(session, "pharmacist")
    store(session, pharmacist, [v(1)], location=FREEZER, now=utcnow())
    with pytest.raises(InvalidValueError) as refused:
        thaw(session, pharmacist, v(1), occurred_at=utcnow() - dt.timedelta(days=2), now=utcnow())
    assert "before the vial's last recorded step" in refused.value.detail


def test_the_ledger_verifies_after_a_whole_journey_with_refusals(app, session):
    shipment = shipped(session, [v(1), v(2)])
    refusal(session, lambda: hand_off(session, shipment, "courier2", "pharmacist"))
    hand_off(session, shipment, "courier2", "courier")
    hand_off(session, shipment, "pharmacist", "courier2", password=password("pharmacist"))
    receive_as_pharmacist(session, shipment, [v(1)])
    store(session, get_user(session, "pharmacist"), [v(1)], location=FREEZER, now=utcnow())
    report = verify_ledger(session, trusted_keys(app))
    assert report.intact, report.first_break
