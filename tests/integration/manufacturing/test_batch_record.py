"""The batch record at the service layer: lots commissioning their vials, signed process steps,
the passage and donor checks, and deviations."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from custody.ledger import CustodyEvent, EventDraft, append_event, chain_events
from custody.manufacturing import (
    DonorNotEligibleError,
    LotStateError,
    PassageLimitError,
    close_deviation,
    deviation_label,
    get_lot,
    lot_deviations,
    lot_vials,
    raise_deviation,
    record_step,
)
from custody.shipping import vial_states
from lots.accounts import get_site, get_user
from lots.banks import create_bank, create_donor
from lots.base import utcnow
from lots.batch import LotStatus, Vial
from lots.errors import AlreadyExistsError, InvalidValueError
from lots.signatures import SignatureRefusedError
from tests.worlds.manufacturing import (
    HASHER,
    event_types,
    lot_in_quarantine,
    made_lot,
    password,
    payload,
    step,
)

# Helpers shared with test_release.py and test_coa.py.


# Creating a lot


def test_creating_a_lot_commissions_each_vial_with_one_event(session):
    lot = made_lot(session, "BR-2612-01", vials=12)
    vials = lot_vials(session, lot)
    assert len(vials) == 12
    commissioned = session.scalars(
        select(CustodyEvent).where(CustodyEvent.chain.startswith("vial:BR-2612-01-V"))
    ).all()
    assert sorted((e.chain, e.seq, e.event_type) for e in commissioned) == [
        (vial.chain, 1, "COMMISSIONED") for vial in vials
    ]


def test_creating_a_lot_opens_its_chain_with_lot_created(session):
    lot = made_lot(session, "BR-2612-02", vials=2)
    [created] = chain_events(session, lot.chain)
    assert (created.event_type, payload(created)["vials_filled"]) == ("LOT_CREATED", 2)
    assert payload(created)["bank"] == "XS-WCB-01"


def test_a_lot_and_all_its_commissioning_events_are_written_together(session):
    of_the_lot = select(CustodyEvent.recorded_at).where(
        (CustodyEvent.chain == "lot:BR-2612-03") | CustodyEvent.chain.startswith("vial:BR-2612-03-")
    )
    with session.begin_nested() as savepoint:
        made_lot(session, "BR-2612-03", vials=25)
        recorded = session.scalars(of_the_lot).all()
        savepoint.rollback()
    assert (len(recorded), len(set(recorded))) == (26, 1)
    assert session.scalars(of_the_lot).all() == []
    assert (
        session.scalar(select(func.count(Vial.id)).where(Vial.serial.startswith("BR-2612-03"))) == 0
    )


def test_vial_serials_are_the_lot_number_and_a_four_digit_position(session):
    lot = made_lot(session, "XS228-2612-07", vials=11)
    serials = [vial.serial for vial in lot_vials(session, lot)]
    assert serials[0] == "XS228-2612-07-V0001"
    assert serials[-1] == "XS228-2612-07-V0011"
    assert all(re.fullmatch(r"XS228-2612-07-V\d{4}", serial) for serial in serials)


def test_the_longest_lot_number_still_gives_serials_of_twenty_characters(session):
    lot = made_lot(session, "ABCDEFGHIJ-123", vials=1)
    assert [len(vial.serial) for vial in lot_vials(session, lot)] == [20]


@pytest.mark.parametrize(
    "number", ["", "-2612-01", "BR 2612", "BR/2612", "BR_2612", "ABCDEFGHIJ-1234", "LÖT-1"]
)
def test_a_lot_number_that_cannot_be_a_gs1_serial_prefix_is_refused(session, number):
    with pytest.raises(InvalidValueError) as refused:
        made_lot(session, number)
    assert refused.value.field == "number"


def test_a_lot_number_is_used_once(session):
    made_lot(session, "BR-2612-04")
    with pytest.raises(AlreadyExistsError):
        made_lot(session, "BR-2612-04")


@pytest.mark.parametrize("vials", [0, 10_000])
def test_a_lot_fills_one_to_9999_vials(session, vials):
    with pytest.raises(InvalidValueError) as refused:
        made_lot(session, "BR-2612-05", vials=vials)
    assert refused.value.field == "vials_filled"


def test_a_lot_is_not_made_from_the_cell_line_itself(session):
    with pytest.raises(InvalidValueError) as refused:
        made_lot(session, "BR-2612-06", bank="XS-iPSC-L1")
    assert refused.value.field == "bank"


def test_the_expiry_follows_the_shelf_life_of_the_product_version_from_the_sites_date(session):
    lot = made_lot(session, "BR-2612-08")
    made_there = lot.manufacture_end.astimezone(ZoneInfo(lot.site.time_zone)).date()
    assert lot.expires_on == made_there + dt.timedelta(days=365)


# Passage


def test_a_bank_beyond_the_products_maximum_passage_is_refused(session):
    create_bank(
        session,
        actor="admin",
        code="XS-WCB-P51",
        kind="working",
        site=get_site(session, "XSM-SZ"),
        parent_code="XS-MCB-01",
        passage=51,
    )
    with pytest.raises(PassageLimitError) as refused:
        made_lot(session, "BR-2612-09", bank="XS-WCB-P51")
    assert (refused.value.facts["passage"], refused.value.facts["maximum"]) == (51, 50)


def test_an_expansion_beyond_the_maximum_passage_is_refused(session):
    made_lot(session, "BR-2612-10")
    step(session, "BR-2612-10", "expansion", passage=50)
    with pytest.raises(PassageLimitError):
        step(session, "BR-2612-10", "expansion", passage=51)
    assert event_types(session, "lot:BR-2612-10").count("STEP_RECORDED") == 1


def test_an_expansion_names_its_passage_number(session):
    made_lot(session, "BR-2612-11")
    with pytest.raises(InvalidValueError) as refused:
        step(session, "BR-2612-11", "expansion")
    assert refused.value.field == "passage"


# Donor eligibility


def test_a_lot_from_a_pending_donors_bank_needs_a_justification(session):
    with pytest.raises(DonorNotEligibleError) as refused:
        made_lot(session, "BR-2612-12", product="UCMSC-REG", bank="UC-D023-MCB")
    assert refused.value.facts == {"donor": "UCD-2025-023", "eligibility": "pending"}


def test_a_lot_from_an_ineligible_donors_working_bank_needs_a_justification(session):
    create_donor(session, actor="qa", code="UCD-2025-031", eligibility="ineligible")
    site = get_site(session, "AMU-CTC")
    create_bank(
        session, actor="qa", code="UC-D031-MCB", kind="donor", site=site, donor_code="UCD-2025-031"
    )
    create_bank(
        session,
        actor="qa",
        code="UC-D031-WCB",
        kind="working",
        site=site,
        parent_code="UC-D031-MCB",
    )
    with pytest.raises(DonorNotEligibleError):
        made_lot(session, "BR-2612-13", product="UCMSC-REG", bank="UC-D031-WCB")


def test_a_justified_lot_from_a_pending_donor_records_the_justification(session):
    why = "Urgent compassionate use; infectious-disease results due before release."
    lot = made_lot(
        session,
        "BR-2612-14",
        product="UCMSC-REG",
        bank="UC-D023-MCB",
        donor_eligibility_justification=why,
    )
    [created] = chain_events(session, lot.chain)
    assert payload(created)["donor_eligibility_justification"] == why
    assert payload(created)["donor_eligibility"] == "pending"


# Process steps


def test_a_process_step_is_a_signed_ledger_event(session):
    made_lot(session, "BR-2612-15")
    event = step(session, "BR-2612-15", "controlled_rate_freezing", freezer_run_id="CRF-0412")
    signature = payload(event)["signature"]
    assert (signature["name"], signature["meaning"]) == ("Meng Zhao", "Performed by")
    assert payload(event)["freezer_run_id"] == "CRF-0412"


def test_controlled_rate_freezing_names_its_freezer_run(session):
    made_lot(session, "BR-2612-16")
    with pytest.raises(InvalidValueError) as refused:
        step(session, "BR-2612-16", "controlled_rate_freezing")
    assert refused.value.field == "freezer_run_id"


def test_an_unknown_step_is_refused(session):
    made_lot(session, "BR-2612-17")
    with pytest.raises(InvalidValueError):
        step(session, "BR-2612-17", "sprinkle_fairy_dust")


def test_completing_the_batch_record_moves_the_lot_to_quarantine(session):
    lot = made_lot(session, "BR-2612-18")
    step(session, "BR-2612-18", "harvest")
    step(session, "BR-2612-18", "batch_record_completed")
    assert lot.status == LotStatus.QUARANTINE
    assert event_types(session, lot.chain) == [
        "LOT_CREATED",
        "STEP_RECORDED",
        "BATCH_RECORD_COMPLETED",
    ]


def test_no_step_is_recorded_once_the_batch_record_is_complete(session):
    lot_in_quarantine(session, "BR-2612-19")
    with pytest.raises(LotStateError):
        step(session, "BR-2612-19", "fill")


def test_a_wrong_signature_password_signs_nothing(session):
    lot = made_lot(session, "BR-2612-20")
    with pytest.raises(SignatureRefusedError):
        record_step(
            session,
            HASHER,
            get_user(session, "manufacturing"),
            "BR-2612-20",
            step="batch_record_completed",
            occurred_at=utcnow(),
            password="not-my-password",
        )
    assert lot.status == LotStatus.IN_PROCESS
    assert event_types(session, lot.chain) == ["LOT_CREATED"]


def test_a_step_in_the_future_is_refused(session):
    made_lot(session, "BR-2612-21")
    with pytest.raises(InvalidValueError) as refused:
        record_step(
            session,
            HASHER,
            get_user(session, "manufacturing"),
            "BR-2612-21",
            step="harvest",
            occurred_at=utcnow() + dt.timedelta(hours=1),
            password=password("manufacturing"),
        )
    assert refused.value.field == "occurred_at"


# Deviations


def test_deviations_are_numbered_per_lot(session):
    lot = made_lot(session, "BR-2612-22")
    maker = get_user(session, "manufacturing")
    first = raise_deviation(
        session, maker, "BR-2612-22", description="Incubator door ajar 4 min", severity="minor"
    )
    second = raise_deviation(
        session,
        maker,
        "BR-2612-22",
        description="Fill volume drift",
        severity="major",
        capa_reference="CAPA-2026-019",
    )
    assert [deviation_label(lot, d) for d in (first, second)] == [
        "DEV-BR-2612-22-01",
        "DEV-BR-2612-22-02",
    ]
    assert event_types(session, lot.chain)[-2:] == ["DEVIATION_RAISED", "DEVIATION_RAISED"]


def test_a_deviation_has_a_known_severity(session):
    made_lot(session, "BR-2612-23")
    with pytest.raises(InvalidValueError) as refused:
        raise_deviation(
            session,
            get_user(session, "manufacturing"),
            "BR-2612-23",
            description="Oops",
            severity="catastrophic",
        )
    assert refused.value.field == "severity"


def test_qa_closes_a_deviation_with_a_signature(session):
    lot = made_lot(session, "BR-2612-24")
    raise_deviation(
        session,
        get_user(session, "manufacturing"),
        "BR-2612-24",
        description="Late sampling",
        severity="minor",
    )
    deviation = close_deviation(
        session,
        HASHER,
        get_user(session, "qa"),
        "BR-2612-24",
        1,
        note="Impact assessed: none",
        password=password("qa"),
    )
    assert (deviation.is_open, deviation.closed_by.username) == (False, "qa")
    closed = chain_events(session, lot.chain)[-1]
    assert closed.event_type == "DEVIATION_CLOSED"
    assert payload(closed)["signature"]["name"] == "Li Wei"


def test_a_closed_deviation_cannot_be_closed_again(session):
    made_lot(session, "BR-2612-25")
    raise_deviation(
        session, get_user(session, "qc"), "BR-2612-25", description="x", severity="minor"
    )
    qa = get_user(session, "qa")
    close_deviation(session, HASHER, qa, "BR-2612-25", 1, note="ok", password=password("qa"))
    with pytest.raises(LotStateError):
        close_deviation(session, HASHER, qa, "BR-2612-25", 1, note="ok", password=password("qa"))


def test_a_deviation_is_not_closed_with_a_wrong_password(session):
    made_lot(session, "BR-2612-26")
    raise_deviation(
        session, get_user(session, "qc"), "BR-2612-26", description="x", severity="minor"
    )
    with pytest.raises(SignatureRefusedError):
        close_deviation(
            session, HASHER, get_user(session, "qa"), "BR-2612-26", 1, note="ok", password="wrong"
        )
    assert [d.is_open for d in lot_deviations(session, get_lot(session, "BR-2612-26"))] == [True]
    assert event_types(session, "lot:BR-2612-26")[-1] == "DEVIATION_RAISED"


def test_an_observation_on_a_vial_leaves_its_state_as_it_was(session):
    lot = made_lot(session, "OBS-2612-01")
    vial = lot_vials(session, lot)[0]
    append_event(
        session,
        EventDraft(
            vial.chain,
            "INSPECTED",
            utcnow(),
            {"note": "frost on cap"},
            get_user(session, "qa"),
            None,
        ),
    )
    assert vial_states(session, [vial])[vial.serial] == "in_stock"
