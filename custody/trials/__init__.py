"""Clinical trials: protocols and their sites, arms and visits; subjects; server-side
randomization; blinded kits and their labels; allocation of vials and kits; emergency
unblinding; and the serial-level blinding every read applies.

Blinding (DESIGN.md §5, hazard 12): the arm of a blinded trial's subject or kit is kept in
its row (`Subject.arm_id`, `RandomizationSlot.arm_id`, `Kit.arm_id`) and never written in
clear to the ledger, which is exported to auditors: a RANDOMIZED event carries the slot and
a keyed commitment to its arm (`blocks.commitment`, keyed by the trial's seed), kit events
carry kit numbers only, and no event links a kit to its vial.
"""

from __future__ import annotations

from custody.trials.allocation import allocate_vial, subject_allocations
from custody.trials.blinding import (
    BLINDED_KIT_STATE,
    chain_hidden,
    get_visible_lot,
    get_visible_vial,
    hidden_kit_chains,
    hides_chain,
    hides_kit_vial,
    hides_serial,
    reader_states,
    visible_lot_site_ids,
)
from custody.trials.blocks import Generator, commitment, generate_list
from custody.trials.errors import (
    NoKitAvailableError,
    TrialStateError,
    UnblindedUserRequiredError,
    VialNotAllocatableError,
)
from custody.trials.kit_labels import print_kit_labels, print_wristband
from custody.trials.kits import (
    create_kits,
    dispense_kit,
    dispense_kits,
    draw_kit,
    find_kit,
    find_kit_by_label,
    kit_expiry,
    kit_views,
    packaging_lot_status,
    thaw_kit,
    trial_kits,
)
from custody.trials.models import (
    Administration,
    Allocation,
    Arm,
    ArmProduct,
    BedsideCheck,
    Kit,
    RandomizationSlot,
    Subject,
    Trial,
    TrialSite,
    Unblinding,
    Visit,
)
from custody.trials.protocols import ArmSpec, VisitSpec, create_trial, get_trial, list_trials
from custody.trials.randomization import randomize
from custody.trials.shipper_labels import print_shipper_label
from custody.trials.subjects import (
    can_see_subject,
    enrol_subject,
    find_subject_by_wristband,
    get_subject,
    visible_subjects,
    withdraw_subject,
)
from custody.trials.unblinding import can_see_arm, can_see_kits, unblind

__all__ = [
    "BLINDED_KIT_STATE",
    "Administration",
    "Allocation",
    "Arm",
    "ArmProduct",
    "ArmSpec",
    "BedsideCheck",
    "Generator",
    "Kit",
    "NoKitAvailableError",
    "RandomizationSlot",
    "Subject",
    "Trial",
    "TrialSite",
    "TrialStateError",
    "UnblindedUserRequiredError",
    "Unblinding",
    "VialNotAllocatableError",
    "Visit",
    "VisitSpec",
    "allocate_vial",
    "can_see_arm",
    "can_see_kits",
    "can_see_subject",
    "chain_hidden",
    "commitment",
    "create_kits",
    "create_trial",
    "dispense_kit",
    "dispense_kits",
    "draw_kit",
    "enrol_subject",
    "find_kit",
    "find_kit_by_label",
    "find_subject_by_wristband",
    "generate_list",
    "get_subject",
    "get_trial",
    "get_visible_lot",
    "get_visible_vial",
    "hidden_kit_chains",
    "hides_chain",
    "hides_kit_vial",
    "hides_serial",
    "kit_expiry",
    "kit_views",
    "list_trials",
    "packaging_lot_status",
    "print_kit_labels",
    "print_shipper_label",
    "print_wristband",
    "randomize",
    "reader_states",
    "subject_allocations",
    "thaw_kit",
    "trial_kits",
    "unblind",
    "visible_lot_site_ids",
    "visible_subjects",
    "withdraw_subject",
]
