"""QC results against the specification and QA's signed decisions, at the service layer:
conformance, corrections, the lot status machine, segregation of duties and recalls."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError

from app import demo
from app.keys import trusted_keys
from custody.ledger import CustodyEvent, chain_events, verify_ledger
from custody.manufacturing import (
    ExceptionalRequest,
    LotStateError,
    ReleaseRefusedError,
    close_deviation,
    current_results,
    get_lot,
    lot_decisions,
    lot_results,
    lot_vials,
    raise_deviation,
    recall,
    record_result,
)
from custody.shipping import vial_states
from lots.accounts import create_user, get_site, get_user
from lots.banks import create_bank
from lots.base import utcnow
from lots.batch import Lot, LotStatus, QcResult, ReleaseDecision
from lots.errors import ForbiddenError, InvalidValueError, NotFoundError
from lots.products import add_product_version
from lots.signatures import SignatureRefusedError
from tests.worlds.manufacturing import (
    HASHER,
    RELEASE,
    TEST_PASSWORD,
    enter_results,
    event_types,
    lot_in_quarantine,
    made_lot,
    oos_confirmed,
    password,
    payload,
    qa_decides,
    qa_recalls,
    ready_lot,
    step,
)

HOPE = ExceptionalRequest(
    protocol_id="NCT06976229",
    subject_code="XS-CN-0007",
    physician_name="Dr. Dong Jianwen",
    request_reference="REQ-2026-114",
    risk_evaluation="Viability 61 % against ≥ 70 %; benefit outweighs the risk for this patient.",
)


def qc_result(session, number, test, value, unit=None, *, by="qc", **kwargs):
    """One QC result entered now-ish."""
    return record_result(
        session,
        get_user(session, by),
        number,
        test=test,
        value=value,
        unit=unit,
        method=None,
        tested_at=utcnow() - dt.timedelta(hours=1),
        **kwargs,
    )


def another_qa(session, username, full_name):
    """A QA user made for the test."""
    return create_user(
        session,
        HASHER,
        actor="admin",
        username=username,
        full_name=full_name,
        role="qa",
        site_code="XSM-SZ",
        password=TEST_PASSWORD,
    )


# QC results


def test_a_result_is_stored_with_its_conformance(session):
    lot_in_quarantine(session, "RL-2612-01")
    result = qc_result(session, "RL-2612-01", "Viability", "91.5", "%")
    assert (result.conformance, result.numeric_value, result.analyst.username) == (
        "conforms",
        Decimal("91.5"),
        "qc",
    )
    assert event_types(session, "lot:RL-2612-01")[-1] == "QC_RESULT_RECORDED"


def test_an_out_of_specification_result_is_flagged_at_once(session):
    lot_in_quarantine(session, "RL-2612-02")
    result = qc_result(
        session, "RL-2612-02", "Residual undifferentiated cells (TRA-1-60 positive)", "1", "%"
    )
    assert result.conformance == "oos"


def test_a_result_in_the_wrong_unit_is_refused(session):
    lot_in_quarantine(session, "RL-2612-03")
    with pytest.raises(InvalidValueError) as refused:
        qc_result(session, "RL-2612-03", "Bacterial endotoxin", "0.05", "EU/mL")
    assert refused.value.field == "unit"
    assert lot_results(session, get_lot(session, "RL-2612-03")) == []


def test_a_result_that_is_not_a_number_is_refused(session):
    lot_in_quarantine(session, "RL-2612-04")
    with pytest.raises(InvalidValueError) as refused:
        qc_result(session, "RL-2612-04", "Viability", "high", "%")
    assert refused.value.field == "value"


def test_a_test_outside_the_lots_specification_version_is_refused(session):
    lot_in_quarantine(session, "RL-2612-05")  # made under XS228 v1
    xs228 = demo.PRODUCTS[0]
    potency = {
        "test": "Potency: neurite outgrowth",
        "method": "High-content imaging",
        "criterion": "range",
        "unit": "µm/cell",
        "lower": 40,
    }
    add_product_version(
        session,
        actor="qa",
        code="XS228",
        version=xs228["version"],
        specification=[*xs228["specification"], potency],
        change_reason="Potency assay added",
    )
    with pytest.raises(InvalidValueError) as refused:
        qc_result(session, "RL-2612-05", "Potency: neurite outgrowth", "55", "µm/cell")
    assert "not in the specification of XS228 v1" in refused.value.detail
    made_lot(session, "RL-2612-06")  # made under v2, which has it
    assert qc_result(session, "RL-2612-06", "Potency: neurite outgrowth", "55", "µm/cell")


def test_a_second_result_for_a_test_needs_to_name_the_one_it_supersedes(session):
    lot_in_quarantine(session, "RL-2612-07")
    qc_result(session, "RL-2612-07", "Viability", "91.5", "%")
    with pytest.raises(InvalidValueError) as refused:
        qc_result(session, "RL-2612-07", "Viability", "92.5", "%")
    assert refused.value.field == "supersedes"


def test_a_correction_needs_a_reason(session):
    lot_in_quarantine(session, "RL-2612-08")
    first = qc_result(session, "RL-2612-08", "Viability", "91.5", "%")
    with pytest.raises(InvalidValueError) as refused:
        qc_result(session, "RL-2612-08", "Viability", "95.1", "%", supersedes=first.id)
    assert refused.value.field == "reason"


def test_a_correction_supersedes_the_result_and_both_stay(session):
    lot = lot_in_quarantine(session, "RL-2612-09")
    first = qc_result(session, "RL-2612-09", "Viability", "95.1", "%")
    second = qc_result(
        session,
        "RL-2612-09",
        "Viability",
        "91.5",
        "%",
        supersedes=first.id,
        reason="Transcription error: digits swapped",
    )
    assert [r.value for r in lot_results(session, lot)] == ["95.1", "91.5"]
    assert current_results(session, lot)["Viability"].id == second.id
    assert (second.supersedes_id, second.supersede_reason) == (
        first.id,
        "Transcription error: digits swapped",
    )


def test_only_the_current_result_can_be_superseded(session):
    lot_in_quarantine(session, "RL-2612-10")
    first = qc_result(session, "RL-2612-10", "Viability", "95.1", "%")
    qc_result(session, "RL-2612-10", "Viability", "91.5", "%", supersedes=first.id, reason="typo")
    with pytest.raises(InvalidValueError) as refused:
        qc_result(session, "RL-2612-10", "Viability", "90", "%", supersedes=first.id, reason="x")
    assert refused.value.field == "supersedes"


def test_a_stored_qc_result_cannot_be_updated_in_the_database(session):
    lot_in_quarantine(session, "RL-2612-11")
    result = qc_result(session, "RL-2612-11", "Viability", "61", "%")
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(
            update(QcResult)
            .where(QcResult.id == result.id)
            .values(value="91", conformance="conforms")
            .execution_options(synchronize_session=False)
        )
    value = session.scalar(select(QcResult.value).where(QcResult.id == result.id))
    assert value == "61"


def test_results_are_closed_once_the_lot_is_released(session):
    ready_lot(session, "RL-2612-12")
    qa_decides(session, "RL-2612-12")
    with pytest.raises(LotStateError):
        qc_result(session, "RL-2612-12", "Potency", "late", None)


# The status machine


def test_a_conforming_lot_in_quarantine_is_released_with_a_signed_event(session):
    lot = ready_lot(session, "RL-2612-13")
    decision = qa_decides(session, "RL-2612-13")
    assert lot.status == LotStatus.RELEASED
    released = chain_events(session, lot.chain)[-1]
    assert (released.event_type, released.hash) == ("RELEASED", decision.event_hash)
    signature = payload(released)["signature"]
    assert (signature["name"], signature["meaning"]) == ("Li Wei", RELEASE)
    assert signature["signed_at"].endswith("Z")
    assert (decision.signer_name, decision.meaning) == ("Li Wei", RELEASE)


def test_a_lot_in_process_is_not_released_before_its_record_is_complete(session):
    made_lot(session, "RL-2612-14")
    enter_results(session, "RL-2612-14")
    with pytest.raises(ReleaseRefusedError) as refused:
        qa_decides(session, "RL-2612-14")
    assert refused.value.blockers == [
        "Lot RL-2612-14 is in process; only a lot in quarantine can be released."
    ]


def test_a_lot_in_quarantine_is_rejected_with_a_reason(session):
    lot = ready_lot(session, "RL-2612-15")
    decision = qa_decides(session, "RL-2612-15", "reject", reason="Container closure failure")
    assert (lot.status, decision.reason) == (LotStatus.REJECTED, "Container closure failure")
    assert event_types(session, lot.chain)[-1] == "REJECTED"


def test_a_rejection_states_its_reason(session):
    lot_in_quarantine(session, "RL-2612-16")
    with pytest.raises(InvalidValueError) as refused:
        qa_decides(session, "RL-2612-16", "reject")
    assert refused.value.field == "reason"


def test_a_rejected_lot_cannot_be_released(session):
    ready_lot(session, "RL-2612-17")
    qa_decides(session, "RL-2612-17", "reject", reason="Container closure failure")
    with pytest.raises(ReleaseRefusedError) as refused:
        qa_decides(session, "RL-2612-17")
    assert "is rejected" in refused.value.blockers[0]


def test_a_released_lot_cannot_be_rejected(session):
    ready_lot(session, "RL-2612-18")
    qa_decides(session, "RL-2612-18")
    with pytest.raises(LotStateError):
        qa_decides(session, "RL-2612-18", "reject", reason="Changed my mind")
    assert get_lot(session, "RL-2612-18").status == LotStatus.RELEASED


def test_a_released_lot_cannot_be_released_twice(session):
    ready_lot(session, "RL-2612-19")
    qa_decides(session, "RL-2612-19")
    with pytest.raises(ReleaseRefusedError):
        qa_decides(session, "RL-2612-19")
    assert len(lot_decisions(session, get_lot(session, "RL-2612-19"))) == 1


def test_a_released_lot_can_be_recalled(session):
    lot = ready_lot(session, "RL-2612-20")
    qa_decides(session, "RL-2612-20")
    [decision] = qa_recalls(session, "lot", "RL-2612-20", reason="Shipping temperature excursion")
    assert (lot.status, decision.recall_scope) == (LotStatus.RECALLED, "lot:RL-2612-20")
    recalled = chain_events(session, lot.chain)[-1]
    assert payload(recalled)["previous_status"] == "released"


def test_a_recalled_lot_cannot_be_released_or_recalled_again(session):
    ready_lot(session, "RL-2612-21")
    qa_decides(session, "RL-2612-21")
    qa_recalls(session, "lot", "RL-2612-21")
    with pytest.raises(ReleaseRefusedError):
        qa_decides(session, "RL-2612-21")
    with pytest.raises(LotStateError):
        qa_recalls(session, "lot", "RL-2612-21")


def test_an_unknown_decision_is_refused(session):
    ready_lot(session, "RL-2612-22")
    with pytest.raises(InvalidValueError):
        qa_decides(session, "RL-2612-22", "approve")


def test_a_wrong_password_releases_nothing(session):
    lot = ready_lot(session, "RL-2612-23")
    with pytest.raises(SignatureRefusedError):
        qa_decides(session, "RL-2612-23", password="guess-1234567")
    assert lot.status == LotStatus.QUARANTINE
    assert "RELEASED" not in event_types(session, lot.chain)
    assert lot_decisions(session, lot) == []


# What blocks a release


def test_a_missing_result_blocks_release_and_is_named(session):
    lot_in_quarantine(session, "RL-2612-24")
    qc_result(session, "RL-2612-24", "Sterility", "No growth")
    with pytest.raises(ReleaseRefusedError) as refused:
        qa_decides(session, "RL-2612-24")
    assert refused.value.blockers[0].startswith("No result for: Mycoplasma, Bacterial endotoxin")


def test_an_out_of_specification_result_blocks_release(session):
    ready_lot(session, "RL-2612-25", Viability="61")
    with pytest.raises(ReleaseRefusedError) as refused:
        qa_decides(session, "RL-2612-25")
    assert refused.value.blockers == [
        "Out of specification: Viability 61 % (≥ 70 %).",
        "Out-of-specification investigation OOS-RL-2612-25-01 (Viability) is still open.",
    ]


def test_an_open_deviation_blocks_release_until_qa_closes_it(session):
    ready_lot(session, "RL-2612-26")
    raise_deviation(
        session,
        get_user(session, "manufacturing"),
        "RL-2612-26",
        description="Fill room particle count excursion",
        severity="major",
        capa_reference="CAPA-2026-021",
    )
    with pytest.raises(ReleaseRefusedError) as refused:
        qa_decides(session, "RL-2612-26")
    assert refused.value.blockers == ["Deviation DEV-RL-2612-26-01 (major) is still open."]
    close_deviation(
        session,
        HASHER,
        get_user(session, "qa"),
        "RL-2612-26",
        1,
        note="Root cause: door seal; product impact none",
        password=password("qa"),
    )
    assert qa_decides(session, "RL-2612-26").decision == LotStatus.RELEASED


def test_an_expired_lot_cannot_be_released(session):
    lot = ready_lot(session, "RL-2612-27")
    with pytest.raises(ReleaseRefusedError) as refused:
        qa_decides(session, "RL-2612-27", today=lot.expires_on + dt.timedelta(days=1))
    assert refused.value.blockers == [f"Lot RL-2612-27 expired on {lot.expires_on.isoformat()}."]


def test_the_analyst_who_entered_a_result_cannot_release_the_lot(session):
    analyst = another_qa(session, "qa-analyst", "Ana Lyst")
    analyst.role = "qc"  # an analyst who enters a result, then moves to QA
    lot_in_quarantine(session, "RL-2612-28")
    enter_results(session, "RL-2612-28")
    first = current_results(session, get_lot(session, "RL-2612-28"))["Karyotype"]
    qc_result(
        session,
        "RL-2612-28",
        "Karyotype",
        "Normal",
        by="qa-analyst",
        supersedes=first.id,
        reason="Second reader",
    )
    analyst.role = "qa"
    with pytest.raises(ReleaseRefusedError) as refused:
        qa_decides(session, "RL-2612-28", by="qa-analyst")
    assert refused.value.blockers == [
        "You entered the result for Karyotype; someone who entered no result must release "
        "(segregation of duties)."
    ]
    assert qa_decides(session, "RL-2612-28").signer_name == "Li Wei"


def test_someone_who_manufactured_the_lot_cannot_release_it(session):
    maker = another_qa(session, "qa-maker", "Mo Maker")
    maker.role = "manufacturing"  # signs a step, then moves to QA
    made_lot(session, "RL-2612-29")
    step(session, "RL-2612-29", "harvest", by="qa-maker")
    step(session, "RL-2612-29", "batch_record_completed")
    maker.role = "qa"
    enter_results(session, "RL-2612-29")
    with pytest.raises(ReleaseRefusedError) as refused:
        qa_decides(session, "RL-2612-29", by="qa-maker")
    assert refused.value.blockers == [
        "You took part in manufacturing this lot; someone independent of it must release."
    ]


def test_the_person_who_created_the_lot_cannot_release_it(session):
    creator = another_qa(session, "qa-creator", "Cree Ator")
    creator.role = "manufacturing"
    lot_in_quarantine(session, "RL-2612-30", maker="qa-creator")
    creator.role = "qa"
    enter_results(session, "RL-2612-30")
    with pytest.raises(ReleaseRefusedError) as refused:
        qa_decides(session, "RL-2612-30", by="qa-creator")
    assert "took part in manufacturing" in refused.value.blockers[0]


# Exceptional release


def test_an_out_of_specification_lot_is_released_exceptionally_for_one_subject(session):
    lot = ready_lot(session, "RL-2612-31", Viability="61")
    oos_confirmed(session, "RL-2612-31")
    decision = qa_decides(session, "RL-2612-31", "exceptional_release", exceptional=HOPE)
    assert (lot.status, lot.exceptional_subject) == (
        LotStatus.EXCEPTIONALLY_RELEASED,
        "XS-CN-0007",
    )
    assert (decision.subject_code, decision.physician_request_ref) == (
        "XS-CN-0007",
        "REQ-2026-114",
    )
    event = chain_events(session, lot.chain)[-1]
    assert event.event_type == "EXCEPTIONALLY_RELEASED"
    assert payload(event)["exceptional"]["physician_name"] == "Dr. Dong Jianwen"


def test_an_exceptional_release_is_only_for_an_out_of_specification_lot(session):
    ready_lot(session, "RL-2612-32")
    with pytest.raises(ReleaseRefusedError) as refused:
        qa_decides(session, "RL-2612-32", "exceptional_release", exceptional=HOPE)
    assert refused.value.blockers == [
        "Every result conforms: an exceptional release is only for an out-of-specification lot."
    ]


def test_an_exceptional_release_names_the_subject_and_the_physicians_request(session):
    ready_lot(session, "RL-2612-33", Viability="61")
    with pytest.raises(InvalidValueError) as refused:
        qa_decides(session, "RL-2612-33", "exceptional_release")
    assert refused.value.field == "exceptional"


# Recalls


def test_recalling_a_bank_recalls_every_lot_made_from_it_and_its_descendants(app, session):
    create_bank(
        session,
        actor="qa",
        code="XS-WCB-02",
        kind="working",
        site=get_site(session, "XSM-SZ"),
        parent_code="XS-MCB-01",
        passage=21,
    )
    ready_lot(session, "RL-2612-34")
    qa_decides(session, "RL-2612-34")
    lot_in_quarantine(session, "RL-2612-35", bank="XS-WCB-02")
    made_lot(session, "RL-2612-36", bank="XS-MCB-01")
    made_lot(session, "RL-2612-37", bank="UC-D017-WCB-01", product="UCMSC-REG")
    recalled = qa_recalls(session, "bank", "XS-MCB-01", reason="MCB mycoplasma positive on retest")
    numbers = {"XS228-2610-01", "XS228-2611-01", "RL-2612-34", "RL-2612-35", "RL-2612-36"}
    assert {decision.recall_scope for decision in recalled} == {"bank:XS-MCB-01"}
    lots = [get_lot(session, number) for number in sorted(numbers)]
    assert {lot.status for lot in lots} == {LotStatus.RECALLED}
    assert get_lot(session, "RL-2612-37").status == LotStatus.IN_PROCESS
    vials = [vial for lot in lots for vial in lot_vials(session, lot)]
    assert len(vials) == 24 + 24 + 3 * 3
    assert set(vial_states(session, vials).values()) == {"quarantined"}
    assert [event_types(session, lot.chain).count("RECALLED") for lot in lots] == [1] * 5
    assert verify_ledger(session, trusted_keys(app)).intact


def test_a_bank_recall_skips_lots_already_rejected(session):
    ready_lot(session, "RL-2612-38")
    qa_decides(session, "RL-2612-38", "reject", reason="Low yield")
    recalled = qa_recalls(session, "bank", "XS-WCB-01")
    rejected = get_lot(session, "RL-2612-38")
    assert rejected.id not in {decision.lot_id for decision in recalled}
    assert rejected.status == LotStatus.REJECTED
    assert "RECALLED" not in event_types(session, rejected.chain)


def test_recalling_a_donor_recalls_every_lot_from_the_donors_banks(session):
    made_lot(session, "RL-2612-39", bank="UC-D017-MCB", product="UCMSC-REG")
    recalled = qa_recalls(session, "donor", "UCD-2025-017", reason="Donor re-tested HBV positive")
    assert sorted(session.get(Lot, decision.lot_id).number for decision in recalled) == [
        "RL-2612-39",
        "UCR-2611-01",
    ]


def test_a_recall_with_nothing_made_from_the_bank_is_refused(session):
    create_bank(
        session,
        actor="qa",
        code="XS-WCB-03",
        kind="working",
        site=get_site(session, "XSM-SZ"),
        parent_code="XS-MCB-01",
    )
    with pytest.raises(NotFoundError):
        qa_recalls(session, "bank", "XS-WCB-03")


def test_a_recall_scope_is_a_lot_a_bank_or_a_donor(session):
    with pytest.raises(InvalidValueError) as refused:
        qa_recalls(session, "product", "XS228")
    assert refused.value.field == "scope"


def test_a_recall_is_not_signed_with_a_wrong_password(session):
    with pytest.raises(SignatureRefusedError):
        recall(
            session,
            HASHER,
            get_user(session, "qa"),
            scope="lot",
            code="XS228-2610-01",
            reason="x",
            password="wrong-password",
        )
    assert get_lot(session, "XS228-2610-01").status == LotStatus.RELEASED


def test_the_ledger_verifies_after_release_rejection_exception_and_recalls(app, session):
    ready_lot(session, "RL-2612-40")
    qa_decides(session, "RL-2612-40")
    ready_lot(session, "RL-2612-41")
    qa_decides(session, "RL-2612-41", "reject", reason="Low yield")
    ready_lot(session, "RL-2612-42", Viability="61")
    oos_confirmed(session, "RL-2612-42")
    qa_decides(session, "RL-2612-42", "exceptional_release", exceptional=HOPE)
    qa_recalls(session, "bank", "XS-iPSC-L1", reason="Line identity in doubt")
    qa_recalls(session, "donor", "UCD-2025-017")
    recalled = session.scalar(
        select(func.count(CustodyEvent.id)).where(CustodyEvent.event_type == "RECALLED")
    )
    decisions = session.scalar(
        select(func.count(ReleaseDecision.id)).where(ReleaseDecision.decision == "recalled")
    )
    assert recalled == decisions >= 5
    report = verify_ledger(session, trusted_keys(app))
    assert report.intact, report.first_break


def test_only_the_quality_unit_may_release_even_when_a_service_is_called_directly(session):
    lot_in_quarantine(session, "RL-2612-31")
    enter_results(session, "RL-2612-31")
    with pytest.raises(ForbiddenError):
        qa_decides(session, "RL-2612-31", by="qc")
