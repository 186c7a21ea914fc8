"""The bedside check and the two-person administration on real vials: one test per hazard of
DESIGN.md §5, each asserting NO-GO and the named reason, then the administration's rules."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from custody.bedside import (
    AdministrationRefusedError,
    AlreadyAdministeredError,
    VisitAlreadyGivenError,
    check_at_bedside,
)
from custody.ledger import CustodyEvent
from custody.manufacturing import recall
from custody.shipping import dispense, import_readings, store, thaw, vial_states
from custody.trials import Administration, Kit, enrol_subject
from labels.payload import vial_uri
from lots.accounts import get_user
from lots.base import utcnow
from lots.batch import Lot, Vial
from lots.errors import ForbiddenError, InvalidValueError
from lots.signatures import SignatureRefusedError
from tests.worlds.bedside import (
    BASE,
    HASHER,
    KEYS,
    SEPSIS_SUBJECT,
    SEPSIS_TRIAL,
    SUBJECT,
    TRIAL,
    VIAL,
    administer,
    at_the_ward,
    check,
    enrol_patient,
    failed,
    kit_code,
    receive_at_pharmacy,
    sepsis_kit,
    ship_to_pharmacy,
    spare_vial,
    thawed_at_the_ward,
    vial_code,
    wristband,
)
from tests.worlds.shipping import PASSWORDS, readings_csv


def _events(session, event_type: str, chain: str = f"vial:{VIAL}") -> list[dict]:
    bodies = session.scalars(
        select(CustodyEvent.body).where(
            CustodyEvent.chain == chain, CustodyEvent.event_type == event_type
        )
    )
    return [orjson.loads(body)["payload"] for body in bodies]


@pytest.fixture(autouse=True)
def _patient(session):
    enrol_patient(session)


# --- GO ----------------------------------------------------------------------------------


def test_the_allocated_thawed_vial_at_the_ward_is_go_with_every_check_passed(session):
    thawed_at_the_ward(session)
    bedside = check(session)
    assert bedside.outcome == "GO"
    assert failed(bedside) == {}
    assert len(bedside.checks) == 16
    assert bedside.expires_at - bedside.checked_at == dt.timedelta(minutes=10)
    (event,) = _events(session, "BEDSIDE_CHECKED")
    assert (event["outcome"], event["reference"], event["failed"]) == (
        "GO",
        bedside.reference,
        [],
    )


# --- one test per hazard -------------------------------------------------------------------


def test_1_wrong_patient_the_vial_is_allocated_to_another_subject(session):
    thawed_at_the_ward(session)
    enrol_subject(
        session, get_user(session, "clinician"), TRIAL, code="SCI-002", site_code="SYSU3-SPINE",
        day_one=utcnow().date(),
    )  # fmt: skip
    bedside = check(session, band=wristband("SCI-002"))
    assert bedside.outcome == "NO-GO"
    assert failed(bedside)["allocation"] == "The vial is allocated to another subject."


def test_1_wrong_patient_a_kit_not_assigned_to_this_subject_and_visit(session):
    kit = sepsis_kit(session)
    other = session.scalar(select(type(kit)).where(type(kit).id != kit.id).limit(1))
    bedside = check(
        session,
        username="amu-clinician",
        code=kit_code(session, other),
        band=wristband(SEPSIS_SUBJECT, SEPSIS_TRIAL),
    )
    assert bedside.outcome == "NO-GO"
    # Blinded: one sentence whatever the reason, so a kit of the other arm reads the same.
    assert failed(bedside)["allocation"].startswith(
        "This kit is not allocated to this subject's visit."
    )


def test_2_a_forged_label_is_no_go_not_an_error(session):
    thawed_at_the_ward(session)
    forged = vial_code(session)[:-3] + "AAA"
    bedside = check(session, code=forged)
    assert bedside.outcome == "NO-GO"
    assert "altered or forged" in failed(bedside)["label"]
    assert bedside.vial_id is None
    (event,) = _events(session, "BEDSIDE_CHECKED", chain=f"subject:{TRIAL}:{SUBJECT}")
    assert event["failed"][0]["name"] == "label"


def test_2_an_authentic_label_of_a_vial_celltrail_does_not_know_is_no_go(session):
    unknown = vial_uri(
        base=BASE, gtin="09506000100104", lot="XS228-2610-01", serial="XS228-2610-01-V9999",
        expiry=dt.date(2027, 10, 12), key=KEYS[0],
    )  # fmt: skip
    bedside = check(session, code=unknown)
    assert failed(bedside) == {
        "label": "celltrail has no record of XS228-2610-01-V9999: do not use it."
    }


def test_2_a_typed_serial_is_not_a_scanned_label(session):
    bedside = check(session, code=VIAL)
    assert "typed serial" in failed(bedside)["label"]


def test_3_a_lot_in_quarantine_is_no_go(session):
    bedside = check(session, serial="XS228-2611-01-V0001")
    assert failed(bedside)["release"] == "Lot XS228-2611-01 is quarantine, not released."


def test_4_an_expired_lot_is_no_go(session):
    thawed_at_the_ward(session)
    bedside = check(session, now=dt.datetime(2027, 10, 13, 9, 0, tzinfo=dt.UTC))
    assert failed(bedside)["expiry"] == "Lot XS228-2610-01 expired on 2027-10-12."


def test_5_a_recall_of_the_cell_bank_is_no_go(session):
    thawed_at_the_ward(session)
    recall(
        session, HASHER, get_user(session, "qa"), scope="bank", code="XS-WCB-01",
        reason="Karyotype abnormality in the WCB", password=PASSWORDS["qa"],
    )  # fmt: skip
    assert failed(check(session))["recall"] == (
        "Lot XS228-2610-01 is recalled: its cell bank XS-WCB-01 was recalled. Do not use it."
    )


def test_6_a_temperature_excursion_without_qa_disposition_is_no_go(session):
    shipment = ship_to_pharmacy(session, [VIAL])
    warm_at = (shipment.sealed_at + dt.timedelta(seconds=1)).replace(microsecond=0)
    import_readings(
        session,
        get_user(session, "courier2"),
        shipment.sscc,
        readings_csv(warm_at, ["-120.0"]),
        now=utcnow() + dt.timedelta(seconds=2),
    )
    receive_at_pharmacy(session, shipment)
    bedside = check(session)
    assert "temperature excursion QA has not reviewed" in failed(bedside)["cold_chain"]


def test_7_an_unreceived_shipment_is_broken_custody(session):
    shipment = ship_to_pharmacy(session, [VIAL])
    bedside = check(session)
    assert f"Shipper {shipment.sscc} was never received" in failed(bedside)["custody"]


def test_7_a_vial_thawed_at_the_pharmacy_is_not_at_the_bedside(session):
    receive_at_pharmacy(session, ship_to_pharmacy(session, [VIAL]))
    pharmacist = get_user(session, "pharmacist")
    store(session, pharmacist, [VIAL], location="LN2 dewar 1", now=utcnow())
    thaw(session, pharmacist, VIAL, now=utcnow())
    assert failed(check(session))["custody"] == (
        "The vial is recorded at SYSU3-PH, not at SYSU3-SPINE."
    )


def test_8_the_post_thaw_window_exceeded_is_no_go(session):
    thawed_at = utcnow()
    thawed_at_the_ward(session, thawed_at=thawed_at)
    bedside = check(session, now=thawed_at + dt.timedelta(minutes=121, seconds=5))
    assert failed(bedside) == {
        "thaw": "The vial was thawed 121 minutes ago; its post-thaw window is 120 minutes."
    }


def test_8_a_vial_never_thawed_is_no_go(session):
    at_the_ward(session)
    assert failed(check(session)) == {"thaw": "The vial has not been thawed."}


def test_9_a_visit_outside_its_window_is_no_go(session):
    thawed_at_the_ward(session)
    bedside = check(session, visit=2)
    assert failed(bedside)["visit_window"].startswith("Visit 2 is due between ")


def test_9_a_route_other_than_the_protocols_is_refused_at_administration(session):
    thawed_at_the_ward(session)
    bedside = check(session)
    with pytest.raises(InvalidValueError, match="is not the protocol's route"):
        administer(session, bedside.reference, route="intravenous")
    assert (
        session.scalar(
            select(func.count()).select_from(Administration).join(Vial).where(Vial.serial == VIAL)
        )
        == 0
    )


def test_10_an_administered_vial_is_no_go(session):
    thawed_at_the_ward(session)
    administer(session, check(session).reference)
    assert failed(check(session))["vial_status"].startswith("The vial was already administered")


def test_11_a_role_without_bedside_authority_cannot_check(session):
    thawed_at_the_ward(session)
    with pytest.raises(ForbiddenError):
        check(session, username="courier")


def test_11_the_second_person_cannot_be_the_administering_clinician(session):
    thawed_at_the_ward(session)
    bedside = check(session)
    with pytest.raises(InvalidValueError, match="must be someone else"):
        administer(session, bedside.reference, witness="clinician")


@pytest.mark.parametrize("witness", ["courier", "amu-pharmacist", "nobody"])
def test_11_a_witness_without_authority_here_is_refused(session, witness):
    thawed_at_the_ward(session)
    bedside = check(session)
    with pytest.raises(InvalidValueError, match="may not confirm this dose"):
        administer(session, bedside.reference, witness=witness)


def test_11_a_witness_who_gets_the_password_wrong_signs_nothing(session):
    thawed_at_the_ward(session)
    bedside = check(session)
    with pytest.raises(SignatureRefusedError):
        administer(session, bedside.reference, witness_password="not-her-password")
    assert _events(session, "ADMINISTERED") == []


def test_11_a_pharmacist_may_check_but_not_administer(session):
    thawed_at_the_ward(session)
    bedside = check(session, username="pharmacist")
    assert bedside.outcome == "GO"
    with pytest.raises(ForbiddenError):
        administer(session, bedside.reference, username="pharmacist", witness="clinician")


def test_12_a_blinded_kits_check_names_neither_arm_product_nor_lot(session):
    kit = sepsis_kit(session)
    pharmacist = get_user(session, "amu-pharmacist")
    dispense(session, pharmacist, [kit.vial.serial], ward_code="AMU-SW-ICU", now=utcnow())
    thaw(session, get_user(session, "amu-clinician"), kit.vial.serial, now=utcnow())
    bedside = check(
        session,
        username="amu-clinician",
        code=kit_code(session, kit),
        band=wristband(SEPSIS_SUBJECT, SEPSIS_TRIAL),
    )
    assert bedside.outcome == "GO", failed(bedside)
    text = orjson.dumps([bedside.checks, _events(session, "BEDSIDE_CHECKED", kit.vial.chain)])
    for secret in ("UCR-2611-01", "CTRL-2611-01", "ARM-", "Sham", "MSC", "control", "million"):
        assert secret.encode() not in text


# --- administration ------------------------------------------------------------------------


def test_a_go_confirmed_by_a_second_person_records_the_administration(session):
    thawed_at_the_ward(session)
    bedside = check(session)
    administration = administer(session, bedside.reference)
    assert (administration.administered_by.username, administration.witness.username) == (
        "clinician",
        "pharmacist",
    )
    (event,) = _events(session, "ADMINISTERED")
    assert event["signature"]["name"] == "Dong Jianwen"
    assert event["witness"]["name"] == "Fang Hu"
    assert event["witness"]["meaning"].startswith("Second person")
    vial = session.scalar(select(Vial).where(Vial.serial == VIAL))
    assert vial_states(session, [vial]) == {VIAL: "administered"}


def test_a_no_go_cannot_be_administered(session):
    at_the_ward(session)
    bedside = check(session)
    with pytest.raises(AdministrationRefusedError, match="NO-GO"):
        administer(session, bedside.reference)


def test_an_expired_go_is_refused(session):
    thawed_at_the_ward(session)
    bedside = check(session)
    with pytest.raises(AdministrationRefusedError, match="The GO expired"):
        administer(session, bedside.reference, now=bedside.expires_at + dt.timedelta(seconds=1))


def test_a_fact_changed_since_the_go_needs_a_new_check(session):
    thawed_at_the_ward(session)
    bedside = check(session)
    recall(
        session, HASHER, get_user(session, "qa"), scope="lot", code="XS228-2610-01",
        reason="Sterility failure on retained sample", password=PASSWORDS["qa"],
    )  # fmt: skip
    with pytest.raises(AdministrationRefusedError, match="Something changed since the GO"):
        administer(session, bedside.reference)


def test_a_second_confirmation_of_the_same_go_names_the_first_administration(session):
    thawed_at_the_ward(session)
    bedside = check(session)
    first = administer(session, bedside.reference)
    with pytest.raises(AlreadyAdministeredError) as refused:
        administer(session, bedside.reference, witness="pharmacist")
    assert refused.value.administration_id == first.id
    assert f"administration {first.id}" in str(refused.value)


def test_the_fingerprint_ignores_who_checks_and_when(session):
    thawed_at_the_ward(session)
    first = check(session)
    second = check(session, username="pharmacist", now=utcnow() + dt.timedelta(minutes=3))
    assert first.fingerprint == second.fingerprint
    assert first.reference != second.reference


def test_an_unknown_wristband_records_the_attempt_on_the_checkers_site_chain(session):
    thawed_at_the_ward(session)
    bedside = check_at_bedside(
        session,
        get_user(session, "clinician"),
        vial_code=vial_code(session),
        wristband_code="SCI-404",
        visit_number=1,
        base=BASE,
        keys=KEYS,
    )
    assert "No subject of this site matches this wristband" in failed(bedside)["wristband"]
    # Not on the vial's chain: that would show the vial to whichever site scanned it.
    assert _events(session, "BEDSIDE_CHECKED") == []
    (event,) = _events(session, "BEDSIDE_CHECKED", chain="site:SYSU3-SPINE")
    assert event["outcome"] == "NO-GO"


# --- the reviewer's findings ---------------------------------------------------------------


def test_1_a_vial_allocated_to_nobody_is_no_go_for_a_subject_with_an_allocation(session):
    spare = spare_vial(session)  # SCI-901 has VIAL for visit 1; the spare is nobody's
    thawed_at_the_ward(session, spare)
    bedside = check(session, serial=spare)
    assert bedside.outcome == "NO-GO"
    assert failed(bedside)["allocation"] == (
        f"The vial is not allocated to any subject. This subject's visit 1 is allocated "
        f"vial {VIAL}."
    )


def test_10_a_visit_already_given_is_no_go_from_any_vial(session):
    thawed_at_the_ward(session)
    first = administer(session, check(session).reference)
    spare = spare_vial(session)
    thawed_at_the_ward(session, spare)
    bedside = check(session, serial=spare)
    assert failed(bedside)["visit_given"] == (
        f"This subject's visit 1 was already given on "
        f"{first.administered_at:%Y-%m-%d at %H:%M} UTC. Do not give a second dose."
    )


def test_10_a_second_dose_of_a_visit_is_refused_at_administration(session):
    thawed_at_the_ward(session)
    go = check(session)
    spare = spare_vial(session)
    thawed_at_the_ward(session, spare)
    other = check(session, serial=spare)
    clinician, pharmacist = get_user(session, "clinician"), get_user(session, "pharmacist")

    def dose(bedside):
        return Administration(
            check_id=bedside.id, vial_id=bedside.vial_id, subject_id=go.subject_id,
            visit_id=go.visit_id, administered_at=utcnow(), route="intrathecal",
            site_id=clinician.site_id, administered_by_id=clinician.id,
            witness_id=pharmacist.id, event_hash="0" * 64,
        )  # fmt: skip

    # Visit 1 given from another vial behind the GO's back (as a lot-level allocation could).
    session.add(dose(other))
    session.flush()
    with pytest.raises(VisitAlreadyGivenError) as refused:
        administer(session, go.reference)
    assert refused.value.status == 409
    assert "visit 1 was already given" in refused.value.detail
    # And the table itself holds one dose per subject's visit.
    with pytest.raises(IntegrityError), session.begin_nested():  # noqa: PT012 - add, then flush
        session.add(dose(go))
        session.flush()


def _sepsis_kits(session):
    return session.scalars(select(Kit).order_by(Kit.number)).all()


def test_12_every_kit_reads_alike_against_one_wristband_but_for_its_allocation(session):
    kits = _sepsis_kits(session)
    assert len(kits) == 12
    assert len({kit.arm_id for kit in kits}) == 2
    lines = set()
    for kit in kits:
        bedside = check(
            session, username="amu-clinician", code=kit_code(session, kit),
            band=wristband(SEPSIS_SUBJECT, SEPSIS_TRIAL),
        )  # fmt: skip
        lines.add(
            tuple(
                (c["name"], c["passed"], c["sentence"])
                for c in bedside.checks
                if c["name"] != "allocation"
            )
        )
    assert len(lines) == 1, lines


def test_12_a_loose_vial_of_either_arm_reads_alike_for_a_blinded_subject(session):
    kitted = select(Kit.vial_id)
    lines = set()
    for lot in ("UCR-2611-01", "CTRL-2611-01"):
        vial = session.scalar(
            select(Vial).join(Lot).where(Lot.number == lot, Vial.id.not_in(kitted)).limit(1)
        )
        bedside = check(
            session, username="amu-clinician", code=vial_code(session, vial.serial),
            band=wristband(SEPSIS_SUBJECT, SEPSIS_TRIAL),
        )  # fmt: skip
        checks = {c["name"]: (c["passed"], c["sentence"]) for c in bedside.checks}
        assert "treatment" not in checks["dose"][1]
        lines.add(tuple(checks[name] for name in ("allocation", "route", "dose")))
    assert len(lines) == 1, lines


def test_12_a_kits_check_is_recorded_on_the_subjects_chain_without_its_vial(session):
    kit = sepsis_kit(session)
    bedside = check(
        session, username="amu-clinician", code=kit_code(session, kit),
        band=wristband(SEPSIS_SUBJECT, SEPSIS_TRIAL),
    )  # fmt: skip
    assert _events(session, "BEDSIDE_CHECKED", chain=kit.vial.chain) == []
    (event,) = _events(session, "BEDSIDE_CHECKED", chain=f"subject:{SEPSIS_TRIAL}:{SEPSIS_SUBJECT}")
    assert event["reference"] == bedside.reference
    text = orjson.dumps(event).decode()
    assert kit.vial.serial not in text
    assert kit.vial.lot.number not in text


def test_12_a_kits_dose_names_the_subject_and_kit_only_on_the_subjects_chain(session):
    kit = sepsis_kit(session)
    serial = kit.vial.serial
    dispense(
        session, get_user(session, "amu-pharmacist"), [serial], ward_code="AMU-SW-ICU", now=utcnow()
    )
    thaw(session, get_user(session, "amu-clinician"), serial, now=utcnow())
    bedside = check(
        session, username="amu-clinician", code=kit_code(session, kit),
        band=wristband(SEPSIS_SUBJECT, SEPSIS_TRIAL),
    )  # fmt: skip
    assert bedside.outcome == "GO", failed(bedside)
    administration = administer(
        session, bedside.reference, username="amu-clinician", witness="amu-pharmacist",
        route="intravenous",
    )  # fmt: skip
    (on_vial,) = _events(session, "ADMINISTERED", chain=kit.vial.chain)
    vial_text = orjson.dumps(on_vial).decode()
    for secret in (SEPSIS_SUBJECT, kit.number, bedside.reference, SEPSIS_TRIAL):
        assert secret not in vial_text
    (on_subject,) = _events(session, "DOSE_GIVEN", chain=f"subject:{SEPSIS_TRIAL}:{SEPSIS_SUBJECT}")
    assert (on_subject["subject"], on_subject["kit"], on_subject["visit"]) == (
        SEPSIS_SUBJECT,
        kit.number,
        1,
    )
    subject_text = orjson.dumps(on_subject).decode()
    assert serial not in subject_text
    assert kit.vial.lot.number not in subject_text
    assert on_subject["witness"]["meaning"] == on_vial["witness"]["meaning"]
    assert vial_states(session, [kit.vial]) == {serial: "administered"}
    assert administration.vial_id == kit.vial_id


def test_5_a_recall_of_one_arms_lot_stops_both_arms_kits_alike(session):
    kits = _sepsis_kits(session)
    recalled = kits[0].vial.lot.number
    recall(
        session, HASHER, get_user(session, "qa"), scope="lot", code=recalled,
        reason="Sterility failure", password=PASSWORDS["qa"],
    )  # fmt: skip
    by_arm = {}
    for kit in kits:
        bedside = check(
            session, username="amu-clinician", code=kit_code(session, kit),
            band=wristband(SEPSIS_SUBJECT, SEPSIS_TRIAL),
        )  # fmt: skip
        by_arm.setdefault(kit.arm_id, set()).add(
            (failed(bedside).get("release"), failed(bedside).get("recall"))
        )
    assert len(by_arm) == 2
    (first,), (second,) = by_arm.values()
    assert (
        first
        == second
        == (
            "The kit's packaging lot is recalled, not released.",
            "The kit's packaging lot is recalled. Do not use it.",
        )
    )
