"""The bedside check's rules (DESIGN.md §5): plain facts in, an ordered list of checks out.

Pure code: the service gathers `BedsideFacts` from the database and stores the verdict. Every
sentence is read by a clinician at the bedside, in large type. For a blinded trial's kit no
sentence names the arm, the product or the lot number: "the kit", "the kit's packaging lot";
and for any subject of a blinded trial, whatever was scanned, only the allocation check may
differ between the arms (a kit of the other arm is "not allocated to this subject's visit").
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from custody.ledger import DISPUTED
from lots.local_time import local_date

# The tolerance of a vial's cell count against the protocol's dose (the release
# specification accepts 9-11 × 10^6 cells per 10 × 10^6 vial: ±10 %).
DOSE_TOLERANCE: Final = Decimal("0.10")
# Products kept at or below this are cryopreserved, and cryopreserved cell products are
# frozen in DMSO: the excipient is derived from the storage limit, not stored.
CRYOPRESERVED_AT_OR_BELOW_C: Final = Decimal(-60)
CRYOPROTECTANT: Final = "DMSO"
# What each state-changing event may follow (None: the first event of the chain).
# Destroying, returning and quarantining may happen at any point; they end the path.
MAY_FOLLOW: Final[dict[str, frozenset[str | None]]] = {
    "COMMISSIONED": frozenset({None}),
    "PACKED": frozenset({"COMMISSIONED", "UNPACKED"}),
    "UNPACKED": frozenset({"PACKED"}),
    "SHIPPED": frozenset({"PACKED"}),
    "HANDED_OFF": frozenset({"SHIPPED", "HANDED_OFF"}),
    "RECEIVED": frozenset({"SHIPPED", "HANDED_OFF"}),
    "STORED": frozenset({"RECEIVED", "STORED", "DISPENSED"}),
    "DISPENSED": frozenset({"STORED"}),
    "THAWED": frozenset({"STORED", "DISPENSED"}),
    "ADMINISTERED": frozenset({"THAWED"}),
}
ENDINGS: Final = {
    "ADMINISTERED": "administered",
    "DESTROYED": "destroyed",
    "RETURNED": "returned",
    "QUARANTINED": "quarantined",
    "REPORTED_MISSING": "reported missing at receipt",
}
_PAST: Final = {
    None: "nothing",
    "COMMISSIONED": "commissioned",
    "PACKED": "packed",
    "UNPACKED": "unpacked",
    "SHIPPED": "shipped",
    "HANDED_OFF": "handed over",
    "RECEIVED": "received",
    "STORED": "stored",
    "DISPENSED": "dispensed",
    "THAWED": "thawed",
    "ADMINISTERED": "administered",
}
USABLE_LOT_STATUSES: Final = frozenset({"released", "exceptionally_released"})


class Outcome(enum.StrEnum):
    """The bedside check's answer."""

    GO = "GO"
    NO_GO = "NO-GO"


@dataclass(frozen=True)
class Check:
    """One check's result, with the sentence the clinician reads."""

    name: str
    passed: bool
    sentence: str


@dataclass(frozen=True)
class VialEvent:
    """A state-changing event of the vial's chain, as custody rules read it."""

    event_type: str
    occurred_at: dt.datetime
    site: str | None  # where it happened; a dispensed vial is at its ward
    actor: str | None = None  # username of who recorded it
    giver: str | None = None  # HANDED_OFF: who handed over
    taker: str | None = None  # HANDED_OFF: who took it; SHIPPED: the first courier


@dataclass(frozen=True)
class Dose:
    """The protocol's dose for the subject's arm and what one vial of the lot holds."""

    ordered_route: str
    product_route: str
    cells_per_dose: int | None = None
    cells_per_kg: int | None = None
    weight_kg: Decimal | None = None
    cells_per_vial: int | None = None
    vials: int = 1
    in_arm: bool = True  # the product (or kit) is one the subject's arm receives
    # The protocol doses some arm by weight (blinded: judged for every kit alike).
    weight_required: bool = False


@dataclass(frozen=True)
class BedsideFacts:
    """Everything the bedside check judges, gathered by the service.

    `vial_problem` / `wristband_problem` are the scans' refusals (a forged or unknown label,
    an unknown wristband): with either, nothing else can be checked.
    """

    now: dt.datetime
    # The IANA zone of the site where the check happens: expiry and visit days are judged in
    # its calendar (a date-only expiry is usable through the end of that day there).
    time_zone: str = "UTC"
    vial_problem: str | None = None
    wristband_problem: str | None = None
    # The subject is in a blinded trial (or a blinded kit was scanned): no sentence but the
    # allocation's may depend on the arm; none names the arm, the product or a kit's lot.
    blinded: bool = False
    kit: bool = False  # a blinded kit was scanned: "the kit", "the kit's packaging lot"
    item: str = "vial"  # how sentences name what was scanned: "vial V0001" or "kit 0042"
    # The scanned subject: its identity (id; its trial and code together) decides, the code
    # alone is only how sentences name it (codes repeat across trials).
    subject: str = ""
    subject_id: int | None = None
    trial: str = ""  # the subject's trial, by protocol id
    withdrawn_on: dt.date | None = None  # the subject left the trial that (local) day
    # The wristband carried celltrail's authentication code (a plain code or GSRN does not);
    # a plain one passes only where the checking site has allowed plain wristbands.
    wristband_authenticated: bool = False
    plain_wristbands_allowed: bool = False
    visit: int | None = None
    visit_window: tuple[dt.date, dt.date] | None = None  # earliest and latest dosing day
    visit_window_problem: str | None = None  # why no window could be computed
    allocated_to: int | None = None  # the id of the subject the vial/kit is allocated to
    allocated_visit: int | None = None
    visit_allocation: str | None = None  # what this subject's visit is allocated (the label)
    visit_given: dt.datetime | None = None  # when this subject's visit was already given
    lot: str = ""
    lot_status: str = "released"
    # The one subject an exceptionally released lot is for: (protocol id, subject code).
    exceptional_for: tuple[str, str] | None = None
    recall_scope: str | None = None  # "lot:…", "bank:…" or "donor:…", once recalled
    expires_on: dt.date | None = None
    open_excursions: tuple[str, ...] = ()  # kinds: temperature, hold_time, gap
    # Shippers whose logger record does not cover sealing to receipt, where required.
    uncovered_transit: tuple[str, ...] = ()
    events: tuple[VialEvent, ...] = ()
    unreceived_shipment: str | None = None  # the SSCC of a shipper it left and never arrived
    places: frozenset[str] = frozenset()  # sites where the vial may be for this check
    # The pharmacy that supplies the subject's ward: the vial's custody path must run
    # through it (received there), whatever its last recorded place.
    pharmacy: str | None = None
    check_site: str = ""
    post_thaw_window_minutes: int | None = None
    dose: Dose | None = None
    randomized: bool = True
    contraindications: tuple[str, ...] = ()
    excipients: tuple[str, ...] = ()
    checker_role: str = "clinician"
    checker_at_subject_site: bool = True
    validity: dt.timedelta = field(default=dt.timedelta(minutes=10))


@dataclass(frozen=True)
class Verdict:
    """The checks in order and the outcome: GO iff every check passed."""

    checks: tuple[Check, ...]

    @property
    def outcome(self) -> Outcome:
        """GO when every check passed, else NO-GO."""
        return Outcome.GO if all(check.passed for check in self.checks) else Outcome.NO_GO

    @property
    def failed(self) -> list[Check]:
        """The checks that did not pass."""
        return [check for check in self.checks if not check.passed]


def excipients_of(storage_limit_c: Decimal) -> tuple[str, ...]:
    """A product's excipients that a subject may not tolerate, derived from its storage."""
    return (CRYOPROTECTANT,) if storage_limit_c <= CRYOPRESERVED_AT_OR_BELOW_C else ()


def judge(facts: BedsideFacts) -> Verdict:
    """Run every check in the order a clinician reads them."""
    scans = [_label(facts), _wristband(facts)]
    if not all(check.passed for check in scans):
        return Verdict(tuple(scans))
    return Verdict(
        (
            *scans,
            _allocation(facts),
            _release(facts),
            _expiry(facts),
            _recall(facts),
            _cold_chain(facts),
            _custody(facts),
            _thaw(facts),
            _vial_status(facts),
            _visit_given(facts),
            _route(facts),
            _dose(facts),
            _visit_window(facts),
            _contraindications(facts),
            _authority(facts),
        )
    )


def custody_breaks(events: Sequence[VialEvent]) -> list[str]:
    """Where the custody record does not follow from itself: gaps and broken handoffs."""
    breaks: list[str] = []
    previous: str | None = None
    holder: str | None = None
    for event in events:
        kind = event.event_type
        if kind in ENDINGS and kind != "ADMINISTERED":
            return breaks
        allowed = MAY_FOLLOW.get(kind)
        if allowed is not None and previous not in allowed:
            breaks.append(
                f"The custody record has a gap: the vial was {_PAST.get(kind, kind.lower())} "
                f"after being {_PAST.get(previous, str(previous).lower())}."
            )
        if kind == "SHIPPED":
            holder = event.taker
        elif kind == "HANDED_OFF":
            if holder is not None and event.giver != holder:
                breaks.append(
                    f"A handoff was made by {event.giver}, who did not hold the shipper "
                    f"({holder} did)."
                )
            holder = event.taker
        elif kind == "RECEIVED" and holder is not None and event.actor != holder:
            breaks.append(f"The vial was received by {event.actor}, but {holder} held it.")
        previous = kind
    return breaks


def thaws(events: Sequence[VialEvent]) -> list[dt.datetime]:
    """When the vial was thawed, oldest first."""
    return [event.occurred_at for event in events if event.event_type == "THAWED"]


# --- the checks, in reading order ------------------------------------------------------


def _label(facts: BedsideFacts) -> Check:
    if facts.vial_problem is not None:
        return Check("label", False, facts.vial_problem)
    if facts.kit:  # the kit number is read on the allocation line only
        return Check("label", True, "The label of the kit is authentic.")
    return Check("label", True, f"The label of {facts.item} is authentic.")


def _wristband(facts: BedsideFacts) -> Check:
    if facts.wristband_problem is not None:
        return Check("wristband", False, facts.wristband_problem)
    if not facts.subject:
        return Check("wristband", False, "The wristband names no subject.")
    if facts.withdrawn_on is not None:
        return Check(
            "wristband",
            False,
            f"Subject {facts.subject} was withdrawn from the trial on "
            f"{facts.withdrawn_on.isoformat()}: no dose may be given.",
        )
    if not facts.wristband_authenticated:
        if not facts.plain_wristbands_allowed:
            return Check(
                "wristband",
                False,
                "The wristband carries no authentication code, so it could be a copy: print "
                f"subject {facts.subject}'s wristband from celltrail and scan that one.",
            )
        return Check(
            "wristband",
            True,
            f"The wristband is subject {facts.subject}'s: a plain wristband, which this site "
            "allows; confirm the patient's identity another way too.",
        )
    return Check("wristband", True, f"The wristband is subject {facts.subject}'s.")


def _allocation(facts: BedsideFacts) -> Check:
    what = _the(facts)
    visit = f"visit {facts.visit}" if facts.visit is not None else "this visit"
    if facts.allocated_to is None:
        reason = f"{_cap(what)} is not allocated to any subject."
    elif facts.subject_id is None or facts.allocated_to != facts.subject_id:
        reason = f"{_cap(what)} is allocated to another subject."
    elif facts.visit is not None and facts.allocated_visit != facts.visit:
        reason = (
            f"{_cap(what)} is allocated to this subject's visit {facts.allocated_visit}, "
            f"not {visit}."
        )
    else:
        return Check("allocation", True, f"{_cap(what)} is allocated to {facts.subject}, {visit}.")
    if facts.blinded:
        # One sentence whatever the reason: a kit of the other arm reads like any other.
        reason = f"This {'kit' if facts.kit else 'vial'} is not allocated to this subject's visit."
    if facts.visit_allocation is not None and facts.visit_allocation != facts.item:
        reason += f" This subject's {visit} is allocated {facts.visit_allocation}."
    return Check("allocation", False, reason)


def _release(facts: BedsideFacts) -> Check:
    lot = _lot(facts)
    status = facts.lot_status
    if status == DISPUTED:
        return Check(
            "release",
            False,
            f"{_cap(lot)}'s release record was changed outside celltrail and disagrees with "
            "its ledger. Do not use it; call QA.",
        )
    if status == "exceptionally_released" and (
        facts.subject_id is None or facts.exceptional_for != (facts.trial, facts.subject)
    ):
        return Check(
            "release", False, f"{_cap(lot)} is released for another patient only (exceptional)."
        )
    if status not in USABLE_LOT_STATUSES:
        return Check("release", False, f"{_cap(lot)} is {status.replace('_', ' ')}, not released.")
    if status == "exceptionally_released":
        return Check("release", True, f"{_cap(lot)} is released exceptionally for this patient.")
    return Check("release", True, f"{_cap(lot)} is released by QA.")


def _expiry(facts: BedsideFacts) -> Check:
    lot = _lot(facts)
    if facts.expires_on is None:
        return Check("expiry", False, f"The expiry date of {lot} is not recorded.")
    if facts.expires_on < local_date(facts.now, facts.time_zone):
        return Check("expiry", False, f"{_cap(lot)} expired on {facts.expires_on.isoformat()}.")
    planned = facts.now + facts.validity
    if facts.expires_on < local_date(planned, facts.time_zone):
        return Check(
            "expiry",
            False,
            f"{_cap(lot)} expires on {facts.expires_on.isoformat()}, before the dose can be given.",
        )
    return Check("expiry", True, f"{_cap(lot)} is in date until {facts.expires_on.isoformat()}.")


def _recall(facts: BedsideFacts) -> Check:
    if facts.lot_status != "recalled":
        return Check("recall", True, f"{_cap(_lot(facts))} is not recalled.")
    kind, _, code = (facts.recall_scope or "lot:").partition(":")
    if kind == "lot" or facts.blinded:
        return Check("recall", False, f"{_cap(_lot(facts))} is recalled. Do not use it.")
    origin = {"bank": "its cell bank", "donor": "its donor"}.get(kind, kind)
    return Check(
        "recall",
        False,
        f"{_cap(_lot(facts))} is recalled: {origin} {code} was recalled. Do not use it.",
    )


def _cold_chain(facts: BedsideFacts) -> Check:
    kinds = set(facts.open_excursions)
    reasons = []
    if "temperature" in kinds:
        reasons.append(
            f"A shipper that carried {_the(facts)} had a temperature excursion QA has not reviewed."
        )
    if "hold_time" in kinds:
        reasons.append(
            f"A shipper that carried {_the(facts)} was kept beyond its validated hold time, "
            "and QA has not reviewed it."
        )
    if "gap" in kinds:
        reasons.append(
            f"A shipper that carried {_the(facts)} has a gap in its temperature record QA "
            "has not reviewed."
        )
    reasons += [
        f"No temperature record covers shipper {sscc} from sealing to receipt, and one is "
        "required: upload its logger file before the dose."
        for sscc in facts.uncovered_transit
    ]
    if reasons:
        return Check("cold_chain", False, " ".join(reasons))
    return Check("cold_chain", True, "The cold chain has no open excursion.")


def _custody(facts: BedsideFacts) -> Check:
    reasons = custody_breaks(facts.events)
    if facts.unreceived_shipment is not None:
        reasons.append(f"Shipper {facts.unreceived_shipment} was never received at the pharmacy.")
    received_at = _received_at(facts.events)
    if received_at is None and facts.events:
        reasons.append(f"{_cap(_the(facts))} was never received by a hospital pharmacy.")
    elif received_at is not None and received_at != facts.pharmacy:
        supplier = (
            f"{facts.pharmacy}, the pharmacy that supplies this ward"
            if facts.pharmacy
            else "a pharmacy that supplies this ward (none is recorded)"
        )
        reasons.append(f"{_cap(_the(facts))} was received at {received_at}, not at {supplier}.")
    place = _place(facts.events)
    if place is not None and facts.places and place not in facts.places:
        reasons.append(f"{_cap(_the(facts))} is recorded at {place}, not at {facts.check_site}.")
    if not facts.events:
        reasons.append(f"{_cap(_the(facts))} has no custody record.")
    if reasons:
        return Check("custody", False, " ".join(reasons))
    return Check("custody", True, "The chain of custody is unbroken up to this ward.")


def _thaw(facts: BedsideFacts) -> Check:
    times = thaws(facts.events)
    what = _cap(_the(facts))
    if not times:
        return Check("thaw", False, f"{what} has not been thawed.")
    if len(times) > 1:
        return Check("thaw", False, f"{what} was thawed {len(times)} times; thaw only once.")
    minutes = int((facts.now - times[0]).total_seconds() // 60)
    window = facts.post_thaw_window_minutes
    if window is not None and minutes > window:
        return Check(
            "thaw",
            False,
            f"{what} was thawed {minutes} minutes ago; its post-thaw window is {window} minutes.",
        )
    if window is None:
        return Check("thaw", True, f"{what} was thawed {minutes} minutes ago.")
    return Check(
        "thaw",
        True,
        f"{what} was thawed {minutes} minutes ago; use it within {window - minutes} minutes.",
    )


def _vial_status(facts: BedsideFacts) -> Check:
    for event in facts.events:
        ending = ENDINGS.get(event.event_type)
        if ending is not None:
            return Check(
                "vial_status",
                False,
                f"{_cap(_the(facts))} was already {ending} on "
                f"{event.occurred_at:%Y-%m-%d at %H:%M} UTC.",
            )
    return Check("vial_status", True, f"{_cap(_the(facts))} has not been used.")


def _visit_given(facts: BedsideFacts) -> Check:
    visit = f"visit {facts.visit}" if facts.visit is not None else "this visit"
    if facts.visit_given is not None:
        return Check(
            "visit_given",
            False,
            f"This subject's {visit} was already given on "
            f"{facts.visit_given:%Y-%m-%d at %H:%M} UTC. Do not give a second dose.",
        )
    return Check("visit_given", True, f"This subject's {visit} has not been given yet.")


def _route(facts: BedsideFacts) -> Check:
    if not facts.randomized or facts.dose is None:
        return Check("route", False, "The subject has no treatment arm yet: randomize first.")
    dose = facts.dose
    if dose.ordered_route != dose.product_route:
        if facts.blinded:
            return Check(
                "route", False, f"{_cap(_the(facts))} is not for {dose.ordered_route} use."
            )
        return Check(
            "route",
            False,
            f"The order is {dose.ordered_route}, but this product is for {dose.product_route} use.",
        )
    return Check("route", True, f"The route is {dose.ordered_route}, as the protocol orders.")


def _dose(facts: BedsideFacts) -> Check:  # noqa: PLR0911 - one return per dose problem
    dose = facts.dose
    if not facts.randomized or dose is None:
        return Check("dose", False, "The subject has no treatment arm, so no dose.")
    if not dose.in_arm:
        if facts.blinded:
            return Check(
                "dose", False, "In a blinded trial the dose is given from the allocated kit only."
            )
        return Check("dose", False, f"{_cap(_the(facts))} is not for this subject's treatment.")
    if dose.weight_required and dose.weight_kg is None:
        return Check(
            "dose", False, "The protocol doses by weight, and the subject's weight is not recorded."
        )
    ordered = dose.cells_per_dose
    if dose.cells_per_kg is not None:
        if dose.weight_kg is None:
            return Check(
                "dose", False, "The dose is per kilogram, and the subject's weight is not recorded."
            )
        ordered = int(dose.cells_per_kg * dose.weight_kg)
    if ordered is None:
        # A vehicle-only arm orders no cells; blinded sentences never say so.
        return Check("dose", True, _dose_ok(facts, None))
    given = (dose.cells_per_vial or 0) * dose.vials
    if abs(given - ordered) > ordered * DOSE_TOLERANCE:
        if facts.blinded:
            return Check(
                "dose",
                False,
                f"{_cap(_the(facts))} does not hold the dose the protocol orders; "
                "ask the unblinded pharmacist.",
            )
        return Check(
            "dose",
            False,
            f"The protocol orders {_cells(ordered)}; {_the(facts)} holds {_cells(given)}.",
        )
    return Check("dose", True, _dose_ok(facts, ordered))


def _visit_window(facts: BedsideFacts) -> Check:
    visit = f"Visit {facts.visit}" if facts.visit is not None else "The visit"
    if facts.visit_window is None:
        return Check(
            "visit_window",
            False,
            facts.visit_window_problem or f"{visit}'s dosing window is not known.",
        )
    earliest, latest = facts.visit_window
    today = local_date(facts.now, facts.time_zone)
    if not earliest <= today <= latest:
        return Check(
            "visit_window",
            False,
            f"{visit} is due between {earliest.isoformat()} and {latest.isoformat()}; "
            f"today is {today.isoformat()}.",
        )
    return Check("visit_window", True, f"{visit} is due today, within its window.")


def _contraindications(facts: BedsideFacts) -> Check:
    known = {item.casefold(): item for item in facts.contraindications}
    clash = [item for item in facts.excipients if item.casefold() in known]
    if clash:
        contains = "may contain" if facts.blinded else "contains"
        return Check(
            "contraindications",
            False,
            f"The subject must not receive {', '.join(clash)}, which {_the(facts)} {contains}.",
        )
    return Check("contraindications", True, "No recorded contraindication applies.")


def _authority(facts: BedsideFacts) -> Check:
    if facts.checker_role not in {"clinician", "pharmacist"}:
        return Check(
            "authority",
            False,
            f"A {facts.checker_role} may not check a dose; a clinician or pharmacist checks.",
        )
    if not facts.checker_at_subject_site:
        return Check("authority", False, "You do not work at this subject's site or its pharmacy.")
    return Check(
        "authority",
        True,
        "You may check this dose; a clinician gives it and a second person confirms.",
    )


# --- wording ---------------------------------------------------------------------------


def _the(facts: BedsideFacts) -> str:
    return "the kit" if facts.kit else "the vial"


def _lot(facts: BedsideFacts) -> str:
    # A loose vial's own label names its lot; a kit's names only the packaging lot.
    return "the kit's packaging lot" if facts.kit else f"lot {facts.lot}"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _place(events: Sequence[VialEvent]) -> str | None:
    return events[-1].site if events else None


def _received_at(events: Sequence[VialEvent]) -> str | None:
    """Where the vial was last received from a shipper (its pharmacy), if it was."""
    return next(
        (event.site or "" for event in reversed(events) if event.event_type == "RECEIVED"), None
    )


def _cells(count: int) -> str:
    return f"{Decimal(count) / Decimal(10**6):,.1f} million cells"


def _dose_ok(facts: BedsideFacts, ordered: int | None) -> str:
    if facts.blinded or ordered is None:
        return f"{_cap(_the(facts))} holds the dose the protocol orders."
    return f"{_cap(_the(facts))} holds the dose the protocol orders ({_cells(ordered)})."
