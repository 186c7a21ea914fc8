"""Blinded kits: packing them, dispensing one at random, and what anyone may read of them."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.ledger import (
    DISPUTED,
    EventDraft,
    LotRecord,
    append_event,
    decided_lots,
    decided_rows,
    decision_status,
    status_words,
)
from custody.shipping import dispense, thaw, vial_status
from custody.trials.allocation import USABLE_LOTS, free_visit, record_allocation
from custody.trials.errors import (
    NoKitAvailableError,
    TrialStateError,
    UnblindedUserRequiredError,
    VialNotAllocatableError,
)
from custody.trials.models import Allocation, Arm, Kit, Trial, TrialSite
from custody.trials.protocols import find_trial_site, get_trial
from custody.trials.subjects import ensure_active, get_subject
from custody.trials.unblinding import can_see_kits
from labels.payload import AI82
from lots.access import Permission, require
from lots.accounts import get_site
from lots.base import utcnow
from lots.batch import Lot, LotStatus, Vial
from lots.errors import DomainError, InvalidValueError, NotFoundError
from lots.local_time import local_date
from lots.models import User

KIT_DIGITS = 6
# Worst last: a packaging lot has the status of its worst lot.
_STATUS_RANK: dict[str, int] = {
    str(status): rank
    for rank, status in enumerate(
        (
            LotStatus.RELEASED,
            LotStatus.EXCEPTIONALLY_RELEASED,
            LotStatus.QUARANTINE,
            LotStatus.IN_PROCESS,
            LotStatus.REJECTED,
            LotStatus.RECALLED,
            DISPUTED,
        )
    )
}
# Kits are drawn with the system's CSPRNG: a seeded or ordered pick would reveal the arms.
_DRAW = secrets.SystemRandom()
KIT_STATES = frozenset({"received", "stored"})


@dataclass
class KitView:
    """What anyone may read of a kit: nothing in it depends on the arm."""

    number: str
    packaging_lot: str
    state: str
    subject: str | None = None
    visit: int | None = None


def create_kits(
    session: Session,
    user: User,
    protocol_id: str,
    *,
    packaging_lot: str,
    serials_by_arm: Mapping[str, Sequence[str]],
) -> list[Kit]:
    """Pack vials into blinded kits. Kit numbers follow the trial's last one without gaps,
    handed out in an order shuffled by a CSPRNG, so neither a number nor its neighbours
    tell the arm; a packaging lot holds kits of every arm."""
    require(user, Permission.KITS_MANAGE)
    if not user.unblinded:
        raise UnblindedUserRequiredError(user.username)
    trial = get_trial(session, protocol_id)
    if not trial.blinded:
        raise TrialStateError(f"Trial {protocol_id} is open-label: it has no kits.")
    if not AI82.fullmatch(packaging_lot):
        raise InvalidValueError("packaging_lot", "A packaging lot is 1-20 letters/digits/'-'.")
    arms = {arm.code: arm for arm in trial.arms}
    pairs = _kit_vials(session, arms, serials_by_arm)
    present = set(
        session.scalars(
            select(Kit.arm_id).where(Kit.trial_id == trial.id, Kit.packaging_lot == packaging_lot)
        )
    ) | {arm.id for arm, _ in pairs}
    if present != {arm.id for arm in arms.values()}:
        raise InvalidValueError(
            "serials_by_arm",
            f"Packaging lot {packaging_lot} must hold kits of every arm, or it would tell them "
            "apart.",
        )
    secrets.SystemRandom().shuffle(pairs)
    last = session.scalar(select(func.max(Kit.number)).where(Kit.trial_id == trial.id))
    start = int(last) + 1 if last else 1
    kits = [
        Kit(
            trial_id=trial.id,
            number=f"{start + index:0{KIT_DIGITS}d}",
            packaging_lot=packaging_lot,
            arm_id=arm.id,
            vial_id=vial.id,
            created_by=user.username,
        )
        for index, (arm, vial) in enumerate(pairs)
    ]
    session.add_all(kits)
    session.flush()
    numbers = sorted(kit.number for kit in kits)
    append_event(
        session,
        EventDraft(
            trial.chain,
            "KITS_PACKAGED",
            utcnow(),
            {"trial": protocol_id, "packaging_lot": packaging_lot, "kits": numbers},
            user,
            user.site,
        ),
    )
    return sorted(kits, key=lambda kit: kit.number)


def dispense_kit(
    session: Session, user: User, protocol_id: str, subject_code: str, visit_number: int
) -> Allocation:
    """The system picks a kit of the subject's arm in stock at the subject's pharmacy (at
    random among the eligible ones) and sets it aside for the visit.

    Dispensing at one pharmacy queues on its trial-site row, so two pharmacists at once
    never hand out one kit; the kit's unique allocation is the backstop.
    """
    require(user, Permission.ALLOCATE)
    subject = get_subject(session, user, protocol_id, subject_code, for_update=True)
    ensure_active(subject)
    trial = subject.trial
    if not trial.blinded:
        raise TrialStateError(
            f"Trial {protocol_id} is open-label: allocate a vial by its serial.",
            trial=protocol_id,
        )
    if subject.arm_id is None:
        raise TrialStateError(
            f"Subject {subject_code} is not randomized yet.", subject=subject_code
        )
    trial_site = find_trial_site(trial, subject.site_id)
    if trial_site is None or user.site_id != trial_site.pharmacy_site_id:
        raise InvalidValueError(
            "subject",
            f"Kits for {subject_code} are dispensed by the pharmacy of {subject.site.name}.",
        )
    visit = free_visit(session, subject, visit_number)
    session.scalar(select(TrialSite.id).where(TrialSite.id == trial_site.id).with_for_update())
    kit = draw_kit(session, trial, subject.arm_id, trial_site.pharmacy_site.code)
    if kit is None:
        raise NoKitAvailableError(subject_code, trial_site.pharmacy_site.name)
    now = utcnow()
    payload = {"trial": protocol_id, "subject": subject_code, "visit": visit_number}
    event = append_event(
        session,
        EventDraft(
            subject.chain, "ALLOCATED", now, {**payload, "kit": kit.number}, user, user.site
        ),
    )
    return record_allocation(session, subject, visit, user, event.hash, vial=kit.vial, kit=kit)


def thaw_kit(
    session: Session,
    user: User,
    protocol_id: str,
    kit_number: str,
    *,
    occurred_at: dt.datetime | None = None,
    now: dt.datetime,
) -> tuple[Kit, dt.datetime]:
    """Thaw a blinded kit by its number, as the ward knows it: the vial inside is never
    named (its serial names its lot, and the lot the arm). Returns the kit and its use-by."""
    kit = _handled_kit(session, user, protocol_id, kit_number)
    try:
        use_by = thaw(session, user, kit.vial.serial, occurred_at=occurred_at, now=now)
    except DomainError as error:
        raise _as_kit(error, [kit]) from None
    return kit, use_by


def dispense_kits(
    session: Session,
    user: User,
    protocol_id: str,
    kit_numbers: Sequence[str],
    *,
    ward_code: str,
    now: dt.datetime,
) -> list[Kit]:
    """Send kits from the pharmacy to a ward it supplies, by kit number."""
    if len(set(kit_numbers)) != len(kit_numbers):
        raise InvalidValueError("kits", "A kit was named twice in one request.")
    kits = [_handled_kit(session, user, protocol_id, number) for number in kit_numbers]
    try:
        dispense(session, user, [kit.vial.serial for kit in kits], ward_code=ward_code, now=now)
    except DomainError as error:
        raise _as_kit(error, kits) from None
    return kits


def _handled_kit(session: Session, user: User, protocol_id: str, kit_number: str) -> Kit:
    require(user, Permission.VIALS_HANDLE)
    trial = get_trial(session, protocol_id)
    if not trial.blinded or not can_see_kits(user, trial):
        raise NotFoundError("kit", kit_number)
    return find_kit(session, protocol_id, kit_number)


def _as_kit(error: DomainError, kits: Sequence[Kit]) -> DomainError:
    """The same refusal, worded by kit: no vial serial or lot, and no facts that carry them."""
    detail = error.detail
    for kit in kits:
        detail = detail.replace(kit.vial.serial, f"kit {kit.number}")
        detail = detail.replace(kit.vial.lot.number, f"packaging lot {kit.packaging_lot}")
    if isinstance(error, InvalidValueError):
        return InvalidValueError(error.field, detail)
    refused = DomainError(detail)
    refused.status, refused.title = error.status, error.title
    return refused


def find_kit(session: Session, protocol_id: str | None, kit_number: str) -> Kit:
    """The kit with this number (in this trial, or the only one so numbered)."""
    query = select(Kit).where(Kit.number == kit_number)
    if protocol_id is not None:
        query = query.join(Trial, Trial.id == Kit.trial_id).where(Trial.protocol_id == protocol_id)
    kits = session.scalars(query).all()
    if len(kits) != 1:
        raise NotFoundError("kit", kit_number)
    return kits[0]


def find_kit_by_label(session: Session, gtin: str, kit_number: str) -> Kit | None:
    """The kit a label names: the trial's blinded GTIN (14 digits) and the kit number."""
    return session.scalar(
        select(Kit)
        .join(Trial, Trial.id == Kit.trial_id)
        .where(Trial.blinded_gtin == gtin.rjust(14, "0"), Kit.number == kit_number)
    )


def trial_kits(session: Session, trial: Trial) -> Sequence[Kit]:
    """The trial's kits by kit number (never grouped by arm)."""
    return session.scalars(select(Kit).where(Kit.trial_id == trial.id).order_by(Kit.number)).all()


def kit_views(session: Session, kits: Sequence[Kit]) -> dict[int, KitView]:
    """Each kit's number, packaging lot, state and allocation, by kit id.

    The state comes from the vial inside, but is never more telling than the kit: it is
    judged by the packaging lot's worst status (a recall of one arm's lot quarantines every
    kit packed with it), and an allocated kit is "allocated".
    """
    worst = {
        key: packaging_lot_status(session, *key)[0]
        for key in {(kit.trial_id, kit.packaging_lot) for kit in kits}
    }
    status = vial_status(
        session,
        [kit.vial for kit in kits],
        lot_status={kit.vial_id: worst[kit.trial_id, kit.packaging_lot] for kit in kits},
    )
    allocated = {
        allocation.kit_id: allocation
        for allocation in session.scalars(
            select(Allocation).where(Allocation.kit_id.in_([kit.id for kit in kits]))
        )
    }
    views = {}
    for kit in kits:
        state, _ = status[kit.vial.serial]
        allocation = allocated.get(kit.id)
        views[kit.id] = KitView(
            number=kit.number,
            packaging_lot=kit.packaging_lot,
            state="allocated" if allocation and state in KIT_STATES else state,
            subject=allocation.subject.code if allocation else None,
            visit=allocation.visit.number if allocation else None,
        )
    return views


def kit_expiry(session: Session, trial: Trial, packaging_lot: str) -> dt.date | None:
    """A packaging lot's expiry: the earliest of all its kits' lots, whichever the arm."""
    return session.scalar(
        select(func.min(Lot.expires_on))
        .join(Vial, Vial.lot_id == Lot.id)
        .join(Kit, Kit.vial_id == Vial.id)
        .where(Kit.trial_id == trial.id, Kit.packaging_lot == packaging_lot)
    )


def packaging_lot_status(
    session: Session, trial_id: int, packaging_lot: str
) -> tuple[str, tuple[str, str] | None]:
    """The worst status over every lot packed in a blinded packaging lot, whichever the arm,
    and the subject (protocol id, code) of an exceptional release (None when the lots name
    different ones).

    A kit is judged by its packaging lot, never by its own arm's lot: a recall of one arm's
    lot stops every kit of the packaging lot, so no kit's status tells the arms apart. Each
    lot counts with its status as its chain has it, and a lot whose row disagrees with its
    chain makes the whole packaging lot `DISPUTED`.
    """
    lots = session.execute(
        select(Lot.number, Lot.status, Lot.exceptional_trial, Lot.exceptional_subject)
        .join(Vial, Vial.lot_id == Lot.id)
        .join(Kit, Kit.vial_id == Vial.id)
        .where(Kit.trial_id == trial_id, Kit.packaging_lot == packaging_lot)
        .distinct()
    ).all()
    if not lots:
        return LotStatus.QUARANTINE.value, None
    decided = decided_rows(
        session, {number: LotRecord(status, trial, code) for number, status, trial, code in lots}
    )
    rows = [
        (decision_status(found), found[0].exceptional_trial, found[0].exceptional_subject)
        for found in decided.values()
    ]
    worst = max((status for status, _, _ in rows), key=_STATUS_RANK.__getitem__)
    if worst != LotStatus.EXCEPTIONALLY_RELEASED:
        return worst, None
    subjects = {(trial, code) for status, trial, code in rows if status == worst}
    if len(subjects) != 1:
        return worst, None
    trial, code = subjects.pop()
    return worst, (trial, code) if trial is not None and code is not None else None


def draw_kit(session: Session, trial: Trial, arm_id: int, pharmacy_code: str) -> Kit | None:
    """A kit of the arm in stock at the pharmacy, drawn uniformly at random.

    Never in an order of the real lots (their expiry or status): which kits are skipped
    would tell the arms apart. A kit is eligible when its whole packaging lot is (every arm's
    lot released, the packaging lot's expiry not passed), so both arms stop together.
    """
    candidates = session.scalars(
        select(Kit)
        .outerjoin(Allocation, Allocation.kit_id == Kit.id)
        .where(Kit.trial_id == trial.id, Kit.arm_id == arm_id, Allocation.id.is_(None))
    ).all()
    today = local_date(utcnow(), get_site(session, pharmacy_code).time_zone)  # the pharmacy's day
    usable = set()
    for packaging_lot in {kit.packaging_lot for kit in candidates}:
        status, _ = packaging_lot_status(session, trial.id, packaging_lot)
        expiry = kit_expiry(session, trial, packaging_lot)
        if status in USABLE_LOTS and expiry is not None and expiry >= today:
            usable.add(packaging_lot)
    status_of = vial_status(
        session,
        [kit.vial for kit in candidates],
        lot_status={kit.vial_id: LotStatus.RELEASED.value for kit in candidates},
    )  # the packaging lot's status is judged above, alike for both arms
    in_stock = {(state, pharmacy_code) for state in KIT_STATES}
    eligible = [
        kit
        for kit in candidates
        if kit.packaging_lot in usable and status_of[kit.vial.serial] in in_stock
    ]
    return _DRAW.choice(eligible) if eligible else None


# --- helpers ---------------------------------------------------------------------------


def _kit_vials(
    session: Session, arms: Mapping[str, Arm], serials_by_arm: Mapping[str, Sequence[str]]
) -> list[tuple[Arm, Vial]]:
    unknown_arms = [code for code in serials_by_arm if code not in arms]
    if unknown_arms:
        raise InvalidValueError("serials_by_arm", f"No arm {', '.join(unknown_arms)}.")
    wanted = [
        (arms[code], serial) for code, serials in serials_by_arm.items() for serial in serials
    ]
    if not wanted:
        raise InvalidValueError("serials_by_arm", "Name the vials to pack into kits.")
    serials = [serial for _, serial in wanted]
    if len(set(serials)) != len(serials):
        raise InvalidValueError("serials_by_arm", "A vial goes into one kit only.")
    vials = {v.serial: v for v in session.scalars(select(Vial).where(Vial.serial.in_(serials)))}
    missing = [serial for serial in serials if serial not in vials]
    if missing:
        raise NotFoundError("vial", ", ".join(missing))
    kitted = set(
        session.scalars(
            select(Vial.serial).join(Kit, Kit.vial_id == Vial.id).where(Vial.serial.in_(serials))
        )
    )
    lots = decided_lots(session, [vial.lot for vial in vials.values()])
    states = vial_status(session, list(vials.values()), decided=lots)
    reasons = []
    for arm, serial in wanted:
        vial = vials[serial]
        lot_status = decision_status(lots[vial.lot_id])
        if vial.lot.product_id not in {link.product_id for link in arm.products}:
            reasons.append(f"{serial} is {vial.lot.product.code}, not a product of arm {arm.code}.")
        if serial in kitted:
            reasons.append(f"{serial} is already in a kit.")
        if lot_status not in (LotStatus.QUARANTINE, LotStatus.RELEASED):
            reasons.append(f"Lot {vial.lot.number} is {status_words(lot_status)}.")
        if states[serial][0] != "in_stock":
            reasons.append(f"{serial} is {states[serial][0].replace('_', ' ')}, not in stock.")
    if reasons:
        # Only an unblinded packer reaches here, so naming the arm is allowed.
        raise VialNotAllocatableError(serials[0], reasons)
    return [(arm, vials[serial]) for arm, serial in wanted]
