"""Recall traces on SQLite and PostgreSQL: forward from a bank, lot or donor to every vial,
shipment, site and subject; back from a vial to its donor; blinded kits stay blinded."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from custody.ledger import EventDraft, append_event
from custody.shipping import vial_status
from custody.trace import trace_back, trace_forward
from lots.accounts import get_user
from lots.batch import Lot, Vial
from lots.errors import InvalidValueError, NotFoundError
from tests.worlds import trace as trace_world
from tests.worlds.trace import CONTROL_LOT, PACKAGING_LOT, SEPSIS_TRIAL, XS_TRIAL


@pytest.fixture
def world(session, clock):
    return trace_world.build(session, clock)


def _vial_count(session, *lots: str) -> int:
    return session.scalar(
        select(func.count(Vial.id)).join(Lot, Lot.id == Vial.lot_id).where(Lot.number.in_(lots))
    )


def _of(trial: str, subjects):
    return [subject for subject in subjects if subject.trial == trial]


def test_a_master_bank_recall_reaches_the_lots_of_its_working_bank(session, world):
    trace = trace_forward(session, "bank", "XS-MCB-01")
    assert trace.banks == ("XS-MCB-01", "XS-WCB-01")
    assert [lot.number for lot in trace.lots] == ["XS228-2610-01", "XS228-2611-01"]


def test_a_bank_recall_reaches_every_vial_with_its_state_and_place(session, world):
    trace = trace_forward(session, "bank", "XS-MCB-01")
    assert len(trace.vials) == _vial_count(session, "XS228-2610-01", "XS228-2611-01") == 48
    by_serial = {vial.serial: vial for vial in trace.vials}
    places = [(by_serial[s].state, by_serial[s].site) for s in world.shipped_serials]
    assert places == [
        ("administered", "SYSU3-SPINE"),
        ("received", "SYSU3-PH"),
        ("received", "SYSU3-PH"),
    ]
    assert by_serial["XS228-2611-01-V0001"].state == "in_stock"


def test_a_bank_recall_reaches_the_shipment_its_sites_and_the_dosed_subject(session, world):
    trace = trace_forward(session, "bank", "XS-MCB-01")
    (shipment,) = [s for s in trace.shipments if s.sscc == world.sscc]
    assert (shipment.from_site, shipment.to_site, shipment.status, shipment.vials) == (
        "XSM-SZ",
        "SYSU3-PH",
        "received",
        3,
    )
    assert {"XSM-SZ", "SYSU3-PH", "SYSU3-SPINE"} <= {site.code for site in trace.sites}
    (subject,) = _of(XS_TRIAL, trace.subjects)
    assert (subject.code, subject.site, subject.relation) == (
        "TR-001",
        "SYSU3-SPINE",
        "administered",
    )
    assert (subject.serial, subject.arm) == (world.dosed_serial, "A")


def test_a_lot_trace_stops_at_that_lot(session, world):
    trace = trace_forward(session, "lot", "XS228-2611-01")
    assert [lot.number for lot in trace.lots] == ["XS228-2611-01"]
    assert len(trace.vials) == 24
    assert (trace.shipments, trace.subjects) == ((), ())  # never shipped, never allocated


def test_a_donor_recall_reaches_every_lot_of_their_banks_and_their_subjects(session, world):
    trace = trace_forward(session, "donor", "UCD-2025-017")
    assert set(trace.banks) == {"UC-D017-MCB", "UC-D017-WCB-01"}
    assert {CONTROL_LOT, "UCR-2611-01"} <= {lot.number for lot in trace.lots}
    assert len(trace.vials) == _vial_count(session, *(lot.number for lot in trace.lots))
    assert {(s.code, s.relation) for s in _of(SEPSIS_TRIAL, trace.subjects)} == {
        ("TR-101", "allocated"),
        ("TR-102", "administered"),
    }


def test_a_vial_traces_back_through_its_banks_to_the_eligible_donor(session, world):
    lineage = trace_back(session, "UCR-2611-01-V0007")
    assert (lineage.lot, lineage.product, lineage.product_version) == (
        "UCR-2611-01",
        "UCMSC-REG",
        1,
    )
    assert [(bank.code, bank.kind) for bank in lineage.banks] == [
        ("UC-D017-WCB-01", "working"),
        ("UC-D017-MCB", "donor"),
    ]
    assert lineage.donor is not None
    assert (lineage.donor.code, lineage.donor.eligibility) == ("UCD-2025-017", "eligible")


def test_an_ipsc_vial_traces_back_to_its_cell_line_and_no_donor(session, world):
    lineage = trace_back(session, world.dosed_serial)
    assert [bank.code for bank in lineage.banks] == ["XS-WCB-01", "XS-MCB-01", "XS-iPSC-L1"]
    assert (lineage.donor, lineage.state, lineage.site) == (None, "administered", "SYSU3-SPINE")


def test_a_control_lot_recall_reaches_its_subject_for_an_unblinded_reader(session, world):
    trace = trace_forward(session, "lot", CONTROL_LOT)
    (subject,) = _of(SEPSIS_TRIAL, trace.subjects)
    assert (subject.code, subject.serial, subject.kit, subject.arm) == (
        "TR-102",
        world.control_kit_serial,
        "K-0002",
        None,  # a blinded trial's subject shows no arm, to anyone
    )
    assert not trace.blinded


def test_a_blinded_reader_sees_kits_by_number_never_by_serial_or_lot(session, world):
    trace = trace_forward(session, "lot", CONTROL_LOT, blinded=True)
    kits = [vial for vial in trace.vials if vial.kit is not None]
    assert trace.blinded
    assert all((vial.serial, vial.lot) == (None, None) for vial in kits)
    assert {subject.serial for subject in trace.subjects} == {None}
    assert trace.blinded_packaging_lots == (f"{SEPSIS_TRIAL}/{PACKAGING_LOT}",)


def test_a_blinded_control_trace_lists_the_active_kits_of_its_packaging_lot_too(session, world):
    control = trace_forward(session, "lot", CONTROL_LOT, blinded=True)
    active = trace_forward(session, "lot", "UCR-2611-01", blinded=True)

    def kits(trace):
        return sorted(v.kit.number for v in trace.vials if v.kit and v.kit.trial == SEPSIS_TRIAL)

    def subjects(trace):
        return sorted((s.code, s.relation) for s in _of(SEPSIS_TRIAL, trace.subjects))

    # Both arms' traces name the same kits and subjects: nothing tells the arm apart.
    assert kits(control) == kits(active) == ["K-0001", "K-0002", "K-0003"]
    assert (
        subjects(control)
        == subjects(active)
        == [
            ("TR-101", "allocated"),
            ("TR-102", "administered"),
        ]
    )


def test_a_blinded_reader_tracing_a_kit_vial_back_is_told_it_is_unknown(session, world):
    with pytest.raises(NotFoundError) as hidden:
        trace_back(session, world.control_kit_serial, blinded=True)
    with pytest.raises(NotFoundError) as unknown:
        trace_back(session, f"{CONTROL_LOT}-V9999", blinded=True)
    assert str(hidden.value).replace(world.control_kit_serial, "KEY") == str(unknown.value).replace(
        f"{CONTROL_LOT}-V9999", "KEY"
    )


def test_an_unblinded_reader_tracing_a_kit_vial_back_sees_its_lot(session, world):
    lineage = trace_back(session, world.control_kit_serial)
    assert (lineage.lot, lineage.product, lineage.blinded) == (CONTROL_LOT, "CTRL-SOL", False)


def test_unknown_codes_are_not_found(session, world):
    with pytest.raises(NotFoundError):
        trace_forward(session, "bank", "NO-SUCH-BANK")
    with pytest.raises(NotFoundError):
        trace_back(session, "NO-SUCH-VIAL")


def test_a_trace_from_anything_else_is_refused(session):
    with pytest.raises(InvalidValueError):
        trace_forward(session, "site", "XSM-SZ")


def test_trace_states_agree_with_vial_status_for_every_vial(session, world):
    trace = trace_forward(session, "bank", "XS-MCB-01")
    vials = session.scalars(select(Vial).where(Vial.serial.in_([v.serial for v in trace.vials])))
    expected = vial_status(session, list(vials))
    assert {vial.serial: (vial.state, vial.site) for vial in trace.vials} == expected


def test_a_last_event_that_changes_no_state_leaves_the_traced_state_as_it_was(session, world):
    pharmacist = get_user(session, "pharmacist")
    stored = world.shipped_serials[1]
    append_event(
        session,
        EventDraft(
            f"vial:{stored}",
            "BEDSIDE_CHECKED",
            dt.datetime.now(dt.UTC),
            {"serial": stored, "outcome": "NO-GO"},
            pharmacist,
            get_user(session, "clinician").site,
        ),
    )
    (traced,) = [
        v for v in trace_forward(session, "lot", "XS228-2610-01").vials if v.serial == stored
    ]
    assert (traced.state, traced.site) == ("received", "SYSU3-PH")
