"""The bedside check's rules, without a database: one GO, then each hazard turns it NO-GO."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from custody.bedside import (
    BedsideFacts,
    Dose,
    Outcome,
    VialEvent,
    custody_breaks,
    excipients_of,
    judge,
)

NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _at(minutes_ago: float) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes_ago)


JOURNEY = (
    VialEvent("COMMISSIONED", _at(60 * 24 * 40), "XSM-SZ", "manufacturing"),
    VialEvent("PACKED", _at(60 * 30), "XSM-SZ", "manufacturing"),
    VialEvent("SHIPPED", _at(60 * 29), "XSM-SZ", "manufacturing", taker="courier"),
    VialEvent("HANDED_OFF", _at(60 * 25), "CRYO-GZ", "courier2", "courier", "courier2"),
    VialEvent("HANDED_OFF", _at(60 * 21), "SYSU3-PH", "pharmacist", "courier2", "pharmacist"),
    VialEvent("RECEIVED", _at(60 * 21), "SYSU3-PH", "pharmacist"),
    VialEvent("STORED", _at(60 * 20), "SYSU3-PH", "pharmacist"),
    VialEvent("DISPENSED", _at(60), "SYSU3-SPINE", "pharmacist"),
    VialEvent("THAWED", _at(10), "SYSU3-SPINE", "clinician"),
)
GO = BedsideFacts(
    now=NOW,
    item="vial XS228-2610-01-V0001",
    subject="SCI-001",
    subject_id=1,
    wristband_authenticated=True,
    trial="NCT06976229",
    visit=1,
    visit_window=(NOW.date(), NOW.date()),
    allocated_to=1,
    allocated_visit=1,
    visit_allocation="vial XS228-2610-01-V0001",
    lot="XS228-2610-01",
    lot_status="released",
    expires_on=dt.date(2027, 10, 12),
    events=JOURNEY,
    places=frozenset({"SYSU3-SPINE", "SYSU3-PH"}),
    pharmacy="SYSU3-PH",
    check_site="SYSU3-SPINE",
    post_thaw_window_minutes=120,
    dose=Dose(
        ordered_route="intrathecal",
        product_route="intrathecal",
        cells_per_dose=10_000_000,
        cells_per_vial=10_000_000,
    ),
    contraindications=("penicillin",),
    excipients=("DMSO",),
)
KIT = dataclasses.replace(
    GO,
    blinded=True,
    kit=True,
    item="kit K0042",
    visit_allocation="kit K0042",
    lot="UCR-2611-01",
    dose=Dose(ordered_route="intravenous", product_route="intravenous", cells_per_dose=None),
)


def _failed(facts: BedsideFacts) -> dict[str, str]:
    return {check.name: check.sentence for check in judge(facts).failed}


def test_every_check_passes_for_the_allocated_thawed_vial_at_the_ward():
    verdict = judge(GO)
    assert verdict.outcome is Outcome.GO
    assert [check.name for check in verdict.checks] == [
        "label",
        "wristband",
        "allocation",
        "release",
        "expiry",
        "recall",
        "cold_chain",
        "custody",
        "thaw",
        "vial_status",
        "visit_given",
        "route",
        "dose",
        "visit_window",
        "contraindications",
        "authority",
    ]


def test_a_vial_allocated_to_another_subject_is_no_go():
    failed = _failed(dataclasses.replace(GO, allocated_to="SCI-002"))
    assert failed == {"allocation": "The vial is allocated to another subject."}


def test_a_vial_allocated_to_nobody_is_no_go_and_names_the_subjects_own_vial():
    facts = dataclasses.replace(
        GO, allocated_to=None, allocated_visit=None, visit_allocation="vial XS228-2610-01-V0007"
    )
    assert _failed(facts)["allocation"] == (
        "The vial is not allocated to any subject. This subject's visit 1 is allocated "
        "vial XS228-2610-01-V0007."
    )


def test_a_vial_of_the_subjects_other_visit_is_no_go():
    failed = _failed(dataclasses.replace(GO, allocated_visit=2))
    assert "visit 2, not visit 1" in failed["allocation"]


def test_a_forged_label_stops_the_check_at_the_label():
    verdict = judge(dataclasses.replace(GO, vial_problem="The label was altered."))
    assert verdict.outcome is Outcome.NO_GO
    assert [(c.name, c.passed) for c in verdict.checks] == [("label", False), ("wristband", True)]


def test_an_unknown_wristband_is_no_go():
    failed = _failed(dataclasses.replace(GO, wristband_problem="No subject matches."))
    assert failed == {"wristband": "No subject matches."}


@pytest.mark.parametrize("status", ["quarantine", "rejected", "in_process"])
def test_a_lot_that_is_not_released_is_no_go(status):
    failed = _failed(dataclasses.replace(GO, lot_status=status))
    assert failed["release"].startswith("Lot XS228-2610-01 is ")
    assert failed["release"].endswith("not released.")


def test_a_lot_released_exceptionally_for_another_patient_is_no_go():
    facts = dataclasses.replace(
        GO, lot_status="exceptionally_released", exceptional_for=("NCT06976229", "SCI-009")
    )
    assert "another patient" in _failed(facts)["release"]


def test_a_lot_released_exceptionally_for_the_same_code_in_another_trial_is_no_go():
    facts = dataclasses.replace(
        GO, lot_status="exceptionally_released", exceptional_for=("NCT06882811", "SCI-001")
    )
    assert "another patient" in _failed(facts)["release"]


def test_a_vial_allocated_to_another_subject_with_the_same_code_is_no_go():
    # Subject 2 is SCI-001 of another trial: the same code, another person.
    failed = _failed(dataclasses.replace(GO, allocated_to=2))
    assert failed["allocation"] == "The vial is allocated to another subject."


def test_a_vial_received_by_a_pharmacy_that_does_not_supply_this_ward_is_no_go():
    elsewhere = tuple(
        dataclasses.replace(event, site="DMU1-PH") if event.site == "SYSU3-PH" else event
        for event in JOURNEY
    )
    failed = _failed(dataclasses.replace(GO, events=elsewhere))
    assert failed["custody"] == (
        "The vial was received at DMU1-PH, not at SYSU3-PH, the pharmacy that supplies this ward."
    )


def test_a_vial_never_received_by_a_pharmacy_is_no_go():
    unreceived = tuple(event for event in JOURNEY if event.event_type != "RECEIVED")
    assert "never received" in _failed(dataclasses.replace(GO, events=unreceived))["custody"]


def test_a_lot_released_exceptionally_for_this_patient_passes():
    facts = dataclasses.replace(
        GO, lot_status="exceptionally_released", exceptional_for=("NCT06976229", "SCI-001")
    )
    assert judge(facts).outcome is Outcome.GO


def test_an_expired_lot_is_no_go():
    failed = _failed(dataclasses.replace(GO, expires_on=NOW.date() - DAY))
    assert failed == {"expiry": "Lot XS228-2610-01 expired on 2026-11-29."}


def test_a_lot_expiring_before_the_dose_can_be_given_is_no_go():
    late = dt.datetime(2026, 11, 30, 23, 55, tzinfo=dt.UTC)
    thawed = VialEvent("THAWED", late, "SYSU3-SPINE", "clinician")
    facts = dataclasses.replace(
        GO, now=late, expires_on=late.date(), events=(*JOURNEY[:-1], thawed)
    )
    assert "before the dose can be given" in _failed(facts)["expiry"]


def test_a_recall_of_the_cell_bank_is_no_go_and_says_so():
    failed = _failed(dataclasses.replace(GO, lot_status="recalled", recall_scope="bank:XS-WCB-01"))
    assert failed["recall"] == (
        "Lot XS228-2610-01 is recalled: its cell bank XS-WCB-01 was recalled. Do not use it."
    )


@pytest.mark.parametrize(
    ("kind", "words"),
    [("temperature", "temperature excursion"), ("hold_time", "validated hold time")],
)
def test_an_excursion_qa_has_not_reviewed_is_no_go(kind, words):
    failed = _failed(dataclasses.replace(GO, open_excursions=(kind,)))
    assert list(failed) == ["cold_chain"]
    assert words in failed["cold_chain"]


def test_a_handoff_by_someone_who_did_not_hold_the_shipper_is_no_go():
    forged = VialEvent("HANDED_OFF", _at(60 * 25), "CRYO-GZ", "courier2", "mallory", "courier2")
    events = (*JOURNEY[:3], forged, *JOURNEY[4:])
    failed = _failed(dataclasses.replace(GO, events=events))
    assert failed == {
        "custody": "A handoff was made by mallory, who did not hold the shipper (courier did)."
    }


def test_a_vial_stored_without_being_received_is_a_gap():
    events = (*JOURNEY[:5], *JOURNEY[6:])
    assert custody_breaks(events) == [
        "The custody record has a gap: the vial was stored after being handed over."
    ]


def test_a_vial_at_another_site_is_no_go():
    elsewhere = VialEvent("THAWED", _at(10), "DMU1-PH", "clinician")
    failed = _failed(dataclasses.replace(GO, events=(*JOURNEY[:-1], elsewhere)))
    assert failed["custody"] == "The vial is recorded at DMU1-PH, not at SYSU3-SPINE."


def test_an_unreceived_shipment_is_no_go():
    failed = _failed(dataclasses.replace(GO, unreceived_shipment="095060000000000017"))
    assert "095060000000000017 was never received" in failed["custody"]


def test_a_vial_past_its_post_thaw_window_is_no_go():
    thawed = VialEvent("THAWED", _at(52), "SYSU3-SPINE", "clinician")
    facts = dataclasses.replace(GO, events=(*JOURNEY[:-1], thawed), post_thaw_window_minutes=30)
    assert _failed(facts) == {
        "thaw": "The vial was thawed 52 minutes ago; its post-thaw window is 30 minutes."
    }


def test_a_vial_never_thawed_is_no_go():
    assert _failed(dataclasses.replace(GO, events=JOURNEY[:-1])) == {
        "thaw": "The vial has not been thawed."
    }


def test_a_vial_thawed_twice_is_no_go():
    again = VialEvent("THAWED", _at(5), "SYSU3-SPINE", "clinician")
    failed = _failed(dataclasses.replace(GO, events=(*JOURNEY, again)))
    assert failed["thaw"] == "The vial was thawed 2 times; thaw only once."


def test_an_iv_product_at_an_intrathecal_order_is_no_go():
    dose = dataclasses.replace(GO.dose, product_route="intravenous")
    assert _failed(dataclasses.replace(GO, dose=dose)) == {
        "route": "The order is intrathecal, but this product is for intravenous use."
    }


def test_a_vial_holding_a_tenth_of_the_dose_is_no_go():
    dose = dataclasses.replace(GO.dose, cells_per_vial=1_000_000)
    assert _failed(dataclasses.replace(GO, dose=dose)) == {
        "dose": "The protocol orders 10.0 million cells; the vial holds 1.0 million cells."
    }


def test_a_per_kilogram_dose_uses_the_subjects_weight():
    dose = dataclasses.replace(
        GO.dose, cells_per_dose=None, cells_per_kg=2_000_000, weight_kg=Decimal("70")
    )
    assert "140.0 million cells" in _failed(dataclasses.replace(GO, dose=dose))["dose"]


def test_a_per_kilogram_dose_without_a_weight_is_no_go():
    dose = dataclasses.replace(GO.dose, cells_per_dose=None, cells_per_kg=2_000_000)
    assert "weight is not recorded" in _failed(dataclasses.replace(GO, dose=dose))["dose"]


def test_a_dose_outside_the_visit_window_is_no_go():
    window = (NOW.date() + 13 * DAY, NOW.date() + 15 * DAY)
    assert _failed(dataclasses.replace(GO, visit_window=window)) == {
        "visit_window": "Visit 1 is due between 2026-12-13 and 2026-12-15; today is 2026-11-30."
    }


def test_a_subject_who_must_not_receive_dmso_is_no_go_for_a_cryopreserved_product():
    facts = dataclasses.replace(GO, contraindications=("dmso",))
    assert _failed(facts) == {
        "contraindications": "The subject must not receive DMSO, which the vial contains."
    }


def test_cryopreserved_products_contain_dmso_and_fresh_ones_do_not():
    assert excipients_of(Decimal("-150")) == ("DMSO",)
    assert excipients_of(Decimal("4")) == ()


@pytest.mark.parametrize("ending", ["ADMINISTERED", "DESTROYED", "RETURNED"])
def test_a_vial_already_used_is_no_go(ending):
    used = VialEvent(ending, _at(5), "SYSU3-SPINE", "clinician")
    failed = _failed(dataclasses.replace(GO, events=(*JOURNEY, used)))
    assert failed["vial_status"].startswith(f"The vial was already {ending.lower()} on ")


def test_a_role_that_does_not_check_doses_is_no_go():
    assert (
        "may not check a dose"
        in _failed(dataclasses.replace(GO, checker_role="courier"))["authority"]
    )


def test_a_subject_not_yet_randomized_is_no_go():
    failed = _failed(dataclasses.replace(GO, randomized=False, dose=None))
    assert set(failed) == {"route", "dose"}


def test_a_blinded_kit_passes_without_naming_arm_product_or_lot():
    verdict = judge(KIT)
    assert verdict.outcome is Outcome.GO
    text = " ".join(check.sentence for check in verdict.checks)
    assert "UCR-2611-01" not in text
    assert "control" not in text.lower()
    assert "million" not in text


@pytest.mark.parametrize(
    "change",
    [
        {"lot_status": "recalled", "recall_scope": "donor:UCD-2025-017"},
        {"lot_status": "quarantine"},
        {"expires_on": NOW.date() - DAY},
        {"dose": Dose("intravenous", "intrathecal", cells_per_dose=10**8, cells_per_vial=10**6)},
        {"dose": Dose("intravenous", "intravenous", cells_per_dose=10**8, in_arm=False)},
    ],
)
def test_a_blinded_kits_refusals_never_name_the_lot_or_the_product(change):
    verdict = judge(dataclasses.replace(KIT, **change))
    assert verdict.outcome is Outcome.NO_GO
    text = " ".join(check.sentence for check in verdict.checks)
    assert "UCR-2611-01" not in text
    assert "UCD-2025-017" not in text
    assert "million" not in text
    assert "product" not in text


def test_the_control_and_active_kits_read_the_same():
    active = dataclasses.replace(
        KIT,
        dose=Dose("intravenous", "intravenous", cells_per_dose=10**8, cells_per_vial=10**8),
    )
    assert judge(active).checks == judge(KIT).checks


def test_a_visit_already_given_is_no_go():
    given = NOW - dt.timedelta(hours=3)
    failed = _failed(dataclasses.replace(GO, visit_given=given))
    assert set(failed) == {"visit_given"}
    assert failed["visit_given"] == (
        f"This subject's visit {GO.visit} was already given on "
        f"{given:%Y-%m-%d at %H:%M} UTC. Do not give a second dose."
    )


def test_a_blinded_kit_not_allocated_here_reads_the_same_whatever_the_reason():
    sentences = {
        _failed(dataclasses.replace(KIT, visit_allocation="kit K0043", **change))["allocation"]
        for change in (
            {"allocated_to": None},
            {"allocated_to": 999},
            {"allocated_visit": 2},
        )
    }
    assert sentences == {
        "This kit is not allocated to this subject's visit. This subject's visit "
        f"{KIT.visit} is allocated kit K0043."
    }


def test_a_loose_vial_for_a_blinded_subject_names_no_treatment():
    loose = dataclasses.replace(
        GO, blinded=True, dose=Dose("intravenous", "intravenous", in_arm=False)
    )
    assert _failed(loose)["dose"] == (
        "In a blinded trial the dose is given from the allocated kit only."
    )


def test_a_blinded_trial_dosing_by_weight_needs_the_weight_for_every_kit():
    control = Dose("intravenous", "intravenous", weight_required=True)
    active = Dose(
        "intravenous", "intravenous", cells_per_kg=10**6, cells_per_vial=10**8,
        weight_required=True,
    )  # fmt: skip
    sentences = {_failed(dataclasses.replace(KIT, dose=dose))["dose"] for dose in (control, active)}
    assert sentences == {"The protocol doses by weight, and the subject's weight is not recorded."}


def test_a_blinded_contraindication_says_the_kit_may_contain_it():
    facts = dataclasses.replace(KIT, contraindications=("dmso",))
    assert _failed(facts)["contraindications"] == (
        "The subject must not receive DMSO, which the kit may contain."
    )
