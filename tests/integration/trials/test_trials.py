"""Trial services on the demo trials: enrolment, randomization, allocation, kits, unblinding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from app.demo.trials import SEPSIS_SUBJECT, SEPSIS_TRIAL, XS228_SUBJECT, XS228_TRIAL
from custody.ledger import CustodyEvent, chain_events
from custody.manufacturing import ExceptionalRequest, recall
from custody.trials import (
    Allocation,
    Kit,
    NoKitAvailableError,
    RandomizationSlot,
    Trial,
    TrialStateError,
    UnblindedUserRequiredError,
    VialNotAllocatableError,
    allocate_vial,
    can_see_arm,
    create_kits,
    dispense_kit,
    draw_kit,
    enrol_subject,
    find_kit,
    find_subject_by_wristband,
    get_subject,
    print_kit_labels,
    randomize,
    trial_kits,
    unblind,
)
from lots.accounts import get_user, password_hasher
from lots.batch import Lot, Vial
from lots.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from lots.signatures import SignatureRefusedError
from tests.worlds.bedside import BASE, KEYS, released_lot

HASHER = password_hasher("cheapest")
ARM_CODES = (b"ARM-ACT", b"ARM-SHAM")


def user(session, name):
    return get_user(session, name)


def sepsis_subject(session, code="SEP-002"):
    enrol_subject(
        session, user(session, "amu-clinician"), SEPSIS_TRIAL, code=code, site_code="AMU-SW-ICU"
    )
    return randomize(session, user(session, "amu-clinician"), SEPSIS_TRIAL, code)


def test_the_demo_sepsis_subject_is_randomized_to_the_first_slot_and_has_a_kit(session):
    subject = get_subject(session, user(session, "qa"), SEPSIS_TRIAL, SEPSIS_SUBJECT)
    slot = session.scalar(
        select(RandomizationSlot).where(RandomizationSlot.subject_id == subject.id)
    )
    allocation = session.scalar(select(Allocation).where(Allocation.subject_id == subject.id))
    assert slot.sequence == 1
    assert subject.arm_id == slot.arm_id
    assert allocation.kit.arm_id == subject.arm_id


def test_the_next_subject_at_a_site_takes_the_next_slot_and_its_arm(session):
    taken = session.scalar(
        select(func.max(RandomizationSlot.sequence)).where(
            RandomizationSlot.subject_id.is_not(None)
        )
    )
    subject = sepsis_subject(session)
    slot = session.scalar(
        select(RandomizationSlot).where(RandomizationSlot.subject_id == subject.id)
    )
    assert slot.sequence == taken + 1
    assert subject.arm_id == slot.arm_id


def test_a_subject_is_randomized_once(session):
    sepsis_subject(session)
    with pytest.raises(TrialStateError, match="already randomized"):
        randomize(session, user(session, "amu-clinician"), SEPSIS_TRIAL, "SEP-002")


def test_the_ledger_never_carries_a_blinded_arm(session):
    subject = sepsis_subject(session)
    bodies = [event.body for event in chain_events(session, subject.chain)]
    trial_bodies = [event.body for event in chain_events(session, f"trial:{SEPSIS_TRIAL}")]
    assert [e.event_type for e in chain_events(session, subject.chain)] == [
        "ENROLLED",
        "RANDOMIZED",
    ]
    assert not [body for body in bodies + trial_bodies if any(a in body for a in ARM_CODES)]


def test_an_open_label_trial_names_its_arm_in_the_ledger(session):
    subject = get_subject(session, user(session, "qa"), XS228_TRIAL, XS228_SUBJECT)
    assert b'"arm":"XS228"' in chain_events(session, subject.chain)[0].body


def test_a_blinded_trial_takes_no_arm_at_enrolment(session):
    with pytest.raises(InvalidValueError, match="randomization"):
        enrol_subject(
            session,
            user(session, "amu-clinician"),
            SEPSIS_TRIAL,
            code="SEP-009",
            site_code="AMU-SW-ICU",
            arm_code="ARM-ACT",
        )


def test_a_subject_code_is_enrolled_once_per_trial(session):
    with pytest.raises(AlreadyExistsError):
        enrol_subject(
            session,
            user(session, "clinician"),
            XS228_TRIAL,
            code="SCI-001",
            site_code="SYSU3-SPINE",
        )


def test_a_clinician_cannot_enrol_at_another_hospital(session):
    with pytest.raises(InvalidValueError, match="your own site"):
        enrol_subject(
            session,
            user(session, "clinician"),
            SEPSIS_TRIAL,
            code="SEP-050",
            site_code="AMU-SW-ICU",
        )


def test_an_open_label_vial_is_allocated_once(session):
    pharmacist = user(session, "pharmacist")
    enrol_subject(
        session, user(session, "clinician"), XS228_TRIAL, code="SCI-002", site_code="SYSU3-SPINE"
    )
    allocation = allocate_vial(
        session, pharmacist, XS228_TRIAL, "SCI-002", 1, "XS228-2610-01-V0002"
    )
    with pytest.raises(VialNotAllocatableError, match="already allocated"):
        allocate_vial(session, pharmacist, XS228_TRIAL, "SCI-001", 2, "XS228-2610-01-V0002")
    assert allocation.vial.serial == "XS228-2610-01-V0002"


def test_a_vial_of_another_product_or_an_unreleased_lot_is_refused(session):
    pharmacist = user(session, "pharmacist")
    with pytest.raises(VialNotAllocatableError) as refused:
        allocate_vial(session, pharmacist, XS228_TRIAL, "SCI-001", 2, "XS228-2611-01-V0001")
    assert "quarantine" in refused.value.detail
    with pytest.raises(VialNotAllocatableError, match="not what subject SCI-001"):
        allocate_vial(session, pharmacist, XS228_TRIAL, "SCI-001", 2, "UCR-2611-01-V0030")


def test_an_exceptionally_released_lot_goes_only_to_its_named_subject(session):
    pharmacist = user(session, "pharmacist")
    enrol_subject(
        session, user(session, "clinician"), XS228_TRIAL, code="SCI-003", site_code="SYSU3-SPINE"
    )
    # Released exceptionally through the services: a status written behind the ledger's
    # back would be disputed, not exceptional.
    request = ExceptionalRequest(
        protocol_id=XS228_TRIAL,
        subject_code="SCI-003",
        physician_name="Dr. Dong Jianwen",
        request_reference="SYSU3-REQ-2026-044",
        risk_evaluation="Viability 65 % against >= 70 %; no alternative for this subject.",
    )
    released_lot(session, "XS228-EXC-03", vials=2, exceptional=request)
    with pytest.raises(VialNotAllocatableError, match="another patient"):
        allocate_vial(session, pharmacist, XS228_TRIAL, "SCI-001", 2, "XS228-EXC-03-V0001")
    allocation = allocate_vial(session, pharmacist, XS228_TRIAL, "SCI-003", 1, "XS228-EXC-03-V0001")
    assert allocation.subject.code == "SCI-003"


def test_a_blinded_trial_allocates_no_vial_by_serial(session):
    with pytest.raises(TrialStateError, match="dispenses a kit"):
        allocate_vial(
            session,
            user(session, "amu-pharmacist"),
            SEPSIS_TRIAL,
            SEPSIS_SUBJECT,
            2,
            "UCR-2611-01-V0030",
        )


def test_the_system_dispenses_a_kit_of_the_subjects_arm_stocked_at_its_pharmacy(session):
    subject = sepsis_subject(session)
    allocation = dispense_kit(session, user(session, "amu-pharmacist"), SEPSIS_TRIAL, "SEP-002", 1)
    first = session.scalar(
        select(Allocation).join(Allocation.subject).where(Allocation.subject_id != subject.id)
    )
    assert allocation.kit.arm_id == subject.arm_id
    assert allocation.kit_id != first.kit_id
    assert allocation.vial_id == allocation.kit.vial_id


def test_a_visit_gets_one_kit(session):
    with pytest.raises(TrialStateError, match="already has its allocation"):
        dispense_kit(session, user(session, "amu-pharmacist"), SEPSIS_TRIAL, SEPSIS_SUBJECT, 1)


def test_when_the_arms_kits_run_out_the_refusal_does_not_name_the_arm(session):
    pharmacist = user(session, "amu-pharmacist")
    refusal = None
    for number in range(2, 15):
        code = f"SEP-{number:03d}"
        sepsis_subject(session, code)
        try:
            dispense_kit(session, pharmacist, SEPSIS_TRIAL, code, 1)
        except NoKitAvailableError as error:
            refusal = error
            break
    assert refusal is not None
    assert "ARM" not in refusal.detail
    assert "control" not in refusal.detail.lower()
    assert "active" not in refusal.detail.lower()


def test_kits_are_numbered_without_gaps_and_not_grouped_by_arm(session):
    kits = trial_kits(session, find_kit(session, SEPSIS_TRIAL, "000001").trial)
    assert [kit.number for kit in kits] == [f"{n:06d}" for n in range(1, 13)]
    arms = [kit.arm_id for kit in kits]
    assert arms != sorted(arms)
    assert arms != sorted(arms, reverse=True)


def test_a_blinded_packer_may_not_pack_kits(session):
    with pytest.raises(UnblindedUserRequiredError):
        create_kits(
            session,
            user(session, "manufacturing"),
            SEPSIS_TRIAL,
            packaging_lot="PK-X",
            serials_by_arm={"ARM-ACT": ["UCR-2611-01-V0030"]},
        )


def test_a_packaging_lot_of_one_arm_only_is_refused(session):
    with pytest.raises(InvalidValueError, match="every arm"):
        create_kits(
            session,
            user(session, "kit-packer"),
            SEPSIS_TRIAL,
            packaging_lot="PK-2612-01",
            serials_by_arm={"ARM-ACT": ["UCR-2611-01-V0030"]},
        )


def test_new_kits_continue_the_numbering(session):
    kits = create_kits(
        session,
        user(session, "kit-packer"),
        SEPSIS_TRIAL,
        packaging_lot="PK-2612-01",
        serials_by_arm={
            "ARM-ACT": ["UCR-2611-01-V0030", "UCR-2611-01-V0031"],
            "ARM-SHAM": ["CTRL-2611-01-V0010"],
        },
    )
    assert [kit.number for kit in kits] == ["000013", "000014", "000015"]
    event = chain_events(session, f"trial:{SEPSIS_TRIAL}")[-1]
    assert event.event_type == "KITS_PACKAGED"
    assert b"UCR" not in event.body
    assert b"CTRL" not in event.body


def test_an_emergency_unblinding_reveals_the_arm_to_that_clinician_only(session):
    clinician = user(session, "amu-clinician")
    subject = get_subject(session, clinician, SEPSIS_TRIAL, SEPSIS_SUBJECT)
    assert not can_see_arm(clinician, subject)
    unblind(
        session,
        clinician,
        SEPSIS_TRIAL,
        SEPSIS_SUBJECT,
        password="amu-clinician-demo-2026",
        reason="Anaphylaxis during infusion 1",
        hasher=HASHER,
    )
    assert can_see_arm(clinician, subject)
    assert not can_see_arm(user(session, "qa"), subject)
    assert can_see_arm(user(session, "amu-pharmacist"), subject)
    event = session.scalar(
        select(CustodyEvent)
        .where(CustodyEvent.chain == subject.chain)
        .order_by(CustodyEvent.seq.desc())
    )
    assert event.event_type == "UNBLINDED"
    assert b'"meaning":"Emergency unblinding' in event.body
    assert not any(arm in event.body for arm in ARM_CODES)


def test_an_unblinding_needs_the_password(session):
    with pytest.raises(SignatureRefusedError):
        unblind(
            session,
            user(session, "amu-clinician"),
            SEPSIS_TRIAL,
            SEPSIS_SUBJECT,
            password="wrong",
            reason="Anaphylaxis",
            hasher=HASHER,
        )


def test_a_subject_of_another_hospital_is_not_found(session):
    with pytest.raises(NotFoundError):
        get_subject(session, user(session, "clinician"), SEPSIS_TRIAL, SEPSIS_SUBJECT)


@pytest.mark.parametrize(
    "text",
    [
        "SEP-001",
        "https://trail.example.org/subject/SEP-001?7240=NCT06882811&ac=t1.x",
        "https://id.example.com/subject/SEP-001",
    ],
)
def test_a_wristband_finds_its_subject(session, text):
    assert find_subject_by_wristband(session, text).code == "SEP-001"


def test_a_gsrn_wristband_finds_its_subject(session):
    gsrn = "795260646688514634"  # GS1's GSRN example, check digit included
    enrol_subject(
        session,
        user(session, "clinician"),
        XS228_TRIAL,
        code="SCI-004",
        site_code="SYSU3-SPINE",
        wristband=gsrn,
        weight_kg=Decimal("70"),
    )
    for text in (gsrn, f"(8018){gsrn}", f"https://trail.example.org/8018/{gsrn}"):
        assert find_subject_by_wristband(session, text).code == "SCI-004"


def test_kits_exist_in_the_demo(session):
    assert session.scalar(select(Kit.id).where(Kit.number == "000012")) is not None


def _eligible_active_kits(session, arm_id):
    trial = find_kit(session, SEPSIS_TRIAL, "000001").trial
    return [draw_kit(session, trial, arm_id, "AMU-SW-PH") for _ in range(40)]


def test_kits_are_drawn_at_random_not_in_the_order_of_their_lots(session):
    # The active arm: 9 demo kits, so several stay in stock even after the PostgreSQL
    # concurrency tests have committed a dispensing or two (the control arm has only 3).
    trial = find_kit(session, SEPSIS_TRIAL, "000001").trial
    active = next(arm for arm in trial.arms if not arm.control)
    drawn = _eligible_active_kits(session, active.id)
    assert all(kit is not None and kit.arm_id == active.id for kit in drawn)
    # An ordered pick (earliest lot expiry, then number) returns one kit every time; which
    # kits it skipped would tell the arms apart. 40 draws of one among several: all alike
    # has a chance below 1e-12.
    assert len({kit.number for kit in drawn}) > 1


def test_a_recall_of_one_arms_lot_stops_every_kit_of_the_packaging_lot(session):
    subject = sepsis_subject(session)
    other_arm_lot = session.scalar(
        select(Lot.number)
        .join(Vial, Vial.lot_id == Lot.id)
        .join(Kit, Kit.vial_id == Vial.id)
        .where(Kit.arm_id != subject.arm_id)
        .limit(1)
    )
    recall(
        session, HASHER, user(session, "qa"), scope="lot", code=other_arm_lot,
        reason="Sterility failure", password="qa-demo-2026",
    )  # fmt: skip
    assert session.scalar(select(Lot.status).where(Lot.number == other_arm_lot)) == "recalled"
    # The subject's own arm's lot is untouched, yet no kit of the packaging lot is dispensed:
    # a pharmacy that could still dispense one arm would learn which arm was recalled.
    with pytest.raises(NoKitAvailableError):
        dispense_kit(session, user(session, "amu-pharmacist"), SEPSIS_TRIAL, "SEP-002", 1)


def test_kit_labels_print_the_blinded_name_in_full_or_are_refused(session):
    qa = get_user(session, "qa")
    content, _ = print_kit_labels(session, qa, SEPSIS_TRIAL, fmt="svg", base=BASE, key=KEYS[0])
    assert "NCT06882811 blinded IMP" in content.decode()
    before = session.scalar(select(func.count(CustodyEvent.id)))
    session.execute(
        update(Trial)
        .where(Trial.protocol_id == SEPSIS_TRIAL)
        .values(blinded_name="NCT06882811 investigational infusion (blinded)")
    )
    session.expire_all()
    with pytest.raises(TrialStateError, match="does not fit the 38 x 13 mm vial label"):
        print_kit_labels(session, qa, SEPSIS_TRIAL, fmt="pdf", base=BASE, key=KEYS[0])
    assert session.scalar(select(func.count(CustodyEvent.id))) == before  # nothing recorded
