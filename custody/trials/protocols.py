"""Trials: protocols, enrolment, randomization, allocation of vials and kits, unblinding.

Blinding (DESIGN.md §5, hazard 12): the arm of a blinded trial's subject or kit is kept in
its row (`Subject.arm_id`, `RandomizationSlot.arm_id`, `Kit.arm_id`) and never written in
clear to the ledger, which is exported to auditors: a RANDOMIZED event carries the slot and
a keyed commitment to its arm (`randomization.commitment`, keyed by the trial's seed), kit
events carry kit numbers only, and no event links a kit to its vial.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from argon2 import PasswordHasher
from biip import ParseError
from biip.gs1_messages import GS1Message
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from custody.ledger import EventDraft, append_event
from custody.shipping import vial_status
from custody.trials.blocks import commitment, generate_list
from custody.trials.models import (
    Allocation,
    Arm,
    ArmProduct,
    Kit,
    RandomizationSlot,
    Subject,
    Trial,
    TrialSite,
    Unblinding,
    Visit,
)
from labels.payload import AI82, SUBJECT_SEGMENT, has_check_digit
from lots.access import Permission, can, require, sees_all_sites
from lots.accounts import get_site
from lots.base import utcnow
from lots.batch import Lot, LotStatus, Vial
from lots.errors import AlreadyExistsError, DomainError, InvalidValueError, NotFoundError
from lots.models import Product, SiteKind, User
from lots.signatures import sign

DEFAULT_MULTIPLIERS = (1, 2)
DEFAULT_LIST_LENGTH = 100  # per site, when the protocol gives no planned number
KIT_DIGITS = 6
USABLE_LOTS = frozenset({LotStatus.RELEASED})
# Worst last: a packaging lot has the status of its worst lot.
_STATUS_RANK: dict[str, int] = {
    status.value: rank
    for rank, status in enumerate(
        (
            LotStatus.RELEASED,
            LotStatus.EXCEPTIONALLY_RELEASED,
            LotStatus.QUARANTINE,
            LotStatus.IN_PROCESS,
            LotStatus.REJECTED,
            LotStatus.RECALLED,
        )
    )
}
# Kits are drawn with the system's CSPRNG: a seeded or ordered pick would reveal the arms.
_DRAW = secrets.SystemRandom()
KIT_STATES = frozenset({"received", "stored"})
UNBLINDING_MEANING = "Emergency unblinding of this subject (treating clinician)"


class TrialStateError(DomainError):
    """An action the trial's design or the subject's progress does not allow."""

    status = 409
    title = "Not allowed in this trial"


class VialNotAllocatableError(DomainError):
    """A vial that cannot be set aside for this subject, with every reason."""

    status = 409
    title = "Vial cannot be allocated"

    def __init__(self, serial: str, reasons: list[str]) -> None:
        super().__init__(" ".join(reasons), field="serial", serial=serial, reasons=reasons)


class NoKitAvailableError(DomainError):
    """No kit the subject may receive is in stock at the pharmacy. The message never says
    which arm was looked for: the pharmacist reading it may be blinded."""

    status = 409
    title = "No kit available"

    def __init__(self, subject: str, pharmacy: str) -> None:
        super().__init__(
            f"No kit for subject {subject} is in stock at {pharmacy}; ask the sponsor's "
            "supply manager to resupply the site.",
            subject=subject,
            pharmacy=pharmacy,
        )


class UnblindedUserRequiredError(DomainError):
    """Packing kits means seeing the arm: only a user with the unblinded flag may."""

    status = 403
    title = "Forbidden"

    def __init__(self, username: str) -> None:
        super().__init__(
            f"{username} is blinded; only an unblinded user may pack kits.", username=username
        )


@dataclass(frozen=True)
class ArmSpec:
    """An arm as the protocol describes it; products by code."""

    code: str
    name: str
    route: str
    products: Sequence[str]
    ratio: int = 1
    control: bool = False
    cells_per_dose: int | None = None
    cells_per_kg: int | None = None
    volume_ml: Decimal | None = None
    doses: int = 1


@dataclass(frozen=True)
class VisitSpec:
    """A dosing visit on day `day` (day 1 is the first), within its window."""

    number: int
    name: str
    day: int
    window_before_days: int = 0
    window_after_days: int = 0


@dataclass(frozen=True)
class TrialSiteSpec:
    """A ward and the pharmacy that supplies it."""

    site_code: str
    pharmacy_site_code: str


@dataclass
class KitView:
    """What anyone may read of a kit: nothing in it depends on the arm."""

    number: str
    packaging_lot: str
    state: str
    subject: str | None = None
    visit: int | None = None


def create_trial(
    session: Session,
    actor: User,
    *,
    protocol_id: str,
    title: str,
    phase: str,
    sponsor: str,
    blinded: bool,
    arms: Sequence[ArmSpec],
    visits: Sequence[VisitSpec],
    sites: Sequence[tuple[str, str]],
    blinded_gtin: str | None = None,
    blinded_name: str | None = None,
    randomization_seed: str | None = None,
    block_multipliers: Sequence[int] | None = None,
    planned_subjects: int | None = None,
) -> Trial:
    """Record a protocol with its arms, visits and sites; a blinded one gets each site's
    randomization list, generated now from its seed."""
    require(actor, Permission.TRIALS_MANAGE)
    _check_design(protocol_id, blinded, arms, visits, sites, blinded_gtin, blinded_name)
    if session.scalar(select(Trial.id).where(Trial.protocol_id == protocol_id)) is not None:
        raise AlreadyExistsError("trial", protocol_id)
    if blinded_gtin and session.scalar(select(Trial.id).where(Trial.blinded_gtin == blinded_gtin)):
        raise AlreadyExistsError("trial with blinded GTIN", blinded_gtin)
    if planned_subjects is not None and planned_subjects < 1:
        raise InvalidValueError("planned_subjects", "A trial plans at least one participant.")
    multipliers = list(block_multipliers or DEFAULT_MULTIPLIERS)
    if blinded and (not multipliers or min(multipliers) < 1 or max(multipliers) > 10):
        raise InvalidValueError("block_multipliers", "Block multipliers are whole numbers 1-10.")
    trial = Trial(
        protocol_id=protocol_id,
        title=title,
        phase=phase,
        sponsor=sponsor,
        blinded=blinded,
        blinded_gtin=blinded_gtin,
        blinded_name=blinded_name,
        randomization_seed=(randomization_seed or secrets.token_hex(16)) if blinded else None,
        block_multipliers=multipliers if blinded else None,
        planned_subjects=planned_subjects,
        created_by=actor.username,
    )
    session.add(trial)
    session.flush()
    _add_arms(session, trial, arms)
    session.add_all(Visit(trial_id=trial.id, **asdict(spec)) for spec in visits)
    for site_code, pharmacy_code in sites:
        ward, pharmacy = get_site(session, site_code), get_site(session, pharmacy_code)
        if ward.kind != SiteKind.WARD or pharmacy.kind != SiteKind.HOSPITAL_PHARMACY:
            raise InvalidValueError(
                "sites", f"{site_code} must be a ward and {pharmacy_code} a hospital pharmacy."
            )
        session.add(TrialSite(trial_id=trial.id, site_id=ward.id, pharmacy_site_id=pharmacy.id))
    session.flush()
    session.expire(trial, ["arms", "visits", "sites"])
    if blinded:
        _generate_slots(session, trial)
    design = _design(trial, arms, visits, sites)
    payload: dict[str, Any] = {
        "protocol_id": protocol_id,
        "title": title,
        "phase": phase,
        "sponsor": sponsor,
        "blinded": blinded,
        "sites": [list(pair) for pair in sites],
        "visits": [asdict(spec) for spec in visits],
    }
    if blinded:
        # The design is public, but the arm codes must not sit in the ledger beside kits
        # and subjects: only a digest of it, which the sponsor's protocol can be checked by.
        payload["design_sha256"] = hashlib.sha256(orjson.dumps(design)).hexdigest()
        payload["blinded_gtin"] = blinded_gtin
    else:
        payload["arms"] = design["arms"]
    append_event(session, EventDraft(trial.chain, "TRIAL_CREATED", utcnow(), payload, actor))
    return trial


def get_trial(session: Session, protocol_id: str) -> Trial:
    """The trial with this protocol id."""
    trial = session.scalar(select(Trial).where(Trial.protocol_id == protocol_id))
    if trial is None:
        raise NotFoundError("trial", protocol_id)
    return trial


def list_trials(session: Session) -> Sequence[Trial]:
    """Every trial, by protocol id (protocols are public master data)."""
    return session.scalars(select(Trial).order_by(Trial.protocol_id)).all()


def enrol_subject(
    session: Session,
    user: User,
    trial: str,
    *,
    code: str,
    site_code: str,
    wristband: str | None = None,
    contraindications: Sequence[str] = (),
    weight_kg: Decimal | None = None,
    day_one: dt.date | None = None,
    arm_code: str | None = None,
) -> Subject:
    """Enrol a subject at a ward of the trial; an open-label arm is named here (or is the
    only arm), a blinded trial's arm comes from randomization."""
    require(user, Permission.SUBJECTS_ENROL)
    protocol = get_trial(session, trial)
    site = get_site(session, site_code)
    trial_site = _trial_site(protocol, site.id)
    if trial_site is None:
        raise InvalidValueError("site", f"{site_code} is not a site of trial {trial}.")
    if not sees_all_sites(user) and user.site_id not in (site.id, trial_site.pharmacy_site_id):
        raise InvalidValueError("site", f"You enrol subjects at your own site, not {site_code}.")
    if not AI82.fullmatch(code):
        raise InvalidValueError("code", "A subject code is 1-20 letters, digits or '-'.")
    band = wristband or code
    _check_wristband(band)
    if weight_kg is not None and not Decimal(0) < weight_kg < Decimal(1000):
        raise InvalidValueError("weight_kg", "A weight is between 0 and 1000 kg.")
    arm = _enrolment_arm(protocol, arm_code)
    if session.scalar(
        select(Subject.id).where(Subject.trial_id == protocol.id, Subject.code == code)
    ):
        raise AlreadyExistsError(f"subject of trial {trial} with code", code)
    if session.scalar(select(Subject.id).where(Subject.wristband == band)):
        raise AlreadyExistsError("subject with wristband", band)
    now = utcnow()
    subject = Subject(
        trial=protocol,
        trial_id=protocol.id,
        site_id=site.id,
        site=site,
        code=code,
        wristband=band,
        contraindications=list(contraindications),
        weight_kg=weight_kg,
        day_one=day_one,
        arm_id=arm.id if arm else None,
        enrolled_by=user.username,
        enrolled_at=now,
    )
    session.add(subject)
    session.flush()
    payload: dict[str, Any] = {
        "trial": trial,
        "subject": code,
        "site": site_code,
        "wristband": band,
        "contraindications": list(contraindications),
        "weight_kg": None if weight_kg is None else str(weight_kg),
        "day_one": day_one.isoformat() if day_one else None,
    }
    if arm is not None:
        payload["arm"] = arm.code  # open-label: the arm is no secret
    append_event(session, EventDraft(subject.chain, "ENROLLED", now, payload, user, user.site))
    return subject


def randomize(session: Session, user: User, protocol_id: str, subject_code: str) -> Subject:
    """Give the subject the next free slot of its site's list.

    The trial site's row is locked first, so randomizations at one site queue and each takes
    the next slot in order; the slot's unique subject is the backstop.
    """
    require(user, Permission.SUBJECTS_RANDOMIZE)
    subject = get_subject(session, user, protocol_id, subject_code, for_update=True)
    trial = subject.trial
    if not trial.blinded:
        raise TrialStateError(
            f"Trial {protocol_id} is open-label: the arm is chosen at enrolment.",
            trial=protocol_id,
        )
    if subject.randomized_at is not None or subject.arm_id is not None:
        raise TrialStateError(
            f"Subject {subject_code} is already randomized.", subject=subject_code
        )
    session.scalar(
        select(TrialSite.id)
        .where(TrialSite.trial_id == trial.id, TrialSite.site_id == subject.site_id)
        .with_for_update()
    )
    slot = session.scalar(
        select(RandomizationSlot)
        .where(
            RandomizationSlot.trial_id == trial.id,
            RandomizationSlot.site_id == subject.site_id,
            RandomizationSlot.subject_id.is_(None),
        )
        .order_by(RandomizationSlot.sequence)
        .limit(1)
        .execution_options(populate_existing=True)
    )
    if slot is None:
        raise TrialStateError(
            f"The randomization list of {subject.site.code} is used up; the sponsor must "
            "extend it before anyone else is randomized there.",
            trial=protocol_id,
        )
    now = utcnow()
    slot.subject_id, slot.assigned_at = subject.id, now
    subject.arm_id, subject.randomized_at = slot.arm_id, now
    arm_code = next(arm.code for arm in trial.arms if arm.id == slot.arm_id)
    payload = {
        "trial": protocol_id,
        "subject": subject_code,
        "stratum": subject.site.code,
        "slot": slot.sequence,
        "arm_commitment": commitment(
            trial.randomization_seed or "", subject.site.code, slot.sequence, arm_code
        ),
    }
    append_event(session, EventDraft(subject.chain, "RANDOMIZED", now, payload, user, user.site))
    session.flush()
    return subject


def allocate_vial(  # noqa: PLR0917 - the signature other services call it by
    session: Session,
    user: User,
    protocol_id: str,
    subject_code: str,
    visit_number: int,
    serial: str,
) -> Allocation:
    """Set a vial aside for an open-label subject's visit. It need not have arrived yet; a
    vial of an exceptionally released lot goes only to the subject named in the release."""
    require(user, Permission.ALLOCATE)
    subject = get_subject(session, user, protocol_id, subject_code, for_update=True)
    if subject.trial.blinded:
        raise TrialStateError(
            f"Trial {protocol_id} is blinded: the system dispenses a kit, no vial is chosen.",
            trial=protocol_id,
        )
    visit = _free_visit(session, subject, visit_number)
    vial = session.scalar(select(Vial).where(Vial.serial == serial).with_for_update())
    if vial is None:
        raise NotFoundError("vial", serial)
    reasons = _allocation_blockers(session, subject, vial)
    if reasons:
        raise VialNotAllocatableError(serial, reasons)
    now = utcnow()
    payload = {
        "trial": protocol_id,
        "subject": subject_code,
        "visit": visit_number,
        "serial": serial,
        "lot": vial.lot.number,
    }
    # On the subject's chain only: a vial's chain tells where it is, not whom it is for
    # (the Allocation row indexes it), the same for open-label vials and blinded kits.
    event = append_event(
        session, EventDraft(subject.chain, "ALLOCATED", now, payload, user, user.site)
    )
    return _allocation(session, subject, visit, user, event.hash, vial=vial, lot=vial.lot)


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
    trial_site = _trial_site(trial, subject.site_id)
    if trial_site is None or user.site_id != trial_site.pharmacy_site_id:
        raise InvalidValueError(
            "subject",
            f"Kits for {subject_code} are dispensed by the pharmacy of {subject.site.name}.",
        )
    visit = _free_visit(session, subject, visit_number)
    session.scalar(select(TrialSite.id).where(TrialSite.id == trial_site.id).with_for_update())
    kit = _pick_kit(session, trial, subject.arm_id, trial_site.pharmacy_site.code)
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
    return _allocation(session, subject, visit, user, event.hash, vial=kit.vial, kit=kit)


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


def unblind(
    session: Session,
    user: User,
    protocol_id: str,
    subject_code: str,
    *,
    password: str,
    reason: str,
    hasher: PasswordHasher,
    remote_addr: str = "unknown",
) -> Unblinding:
    """Emergency unblinding of one subject by the treating clinician, signed with the
    password re-entered. It reveals that subject's arm to that clinician only."""
    require(user, Permission.UNBLIND)
    subject = get_subject(session, user, protocol_id, subject_code, for_update=True)
    if not subject.trial.blinded:
        raise TrialStateError(f"Trial {protocol_id} is open-label: there is nothing to unblind.")
    if subject.arm_id is None:
        raise TrialStateError(f"Subject {subject_code} is not randomized yet.")
    if not reason.strip():
        raise InvalidValueError("reason", "State the medical reason for unblinding.")
    if subject.unblinding is not None or session.scalar(
        select(Unblinding.id).where(Unblinding.subject_id == subject.id)
    ):
        raise TrialStateError(f"Subject {subject_code} was already unblinded.")
    signature = sign(
        session,
        hasher,
        user,
        password=password,
        meaning=UNBLINDING_MEANING,
        remote_addr=remote_addr,
    )
    now = utcnow()
    payload = {
        "trial": protocol_id,
        "subject": subject_code,
        "reason": reason,
        "signature": signature,
    }
    event = append_event(
        session, EventDraft(subject.chain, "UNBLINDED", now, payload, user, user.site)
    )
    unblinding = Unblinding(
        subject_id=subject.id, by_id=user.id, at=now, reason=reason, event_hash=event.hash
    )
    session.add(unblinding)
    session.flush()
    session.expire(subject, ["unblinding"])
    return unblinding


def can_see_arm(user: User, subject: Subject) -> bool:
    """Whether the user may read the subject's arm: always in an open-label trial; in a
    blinded one, with the unblinded flag, or as the clinician who unblinded this subject."""
    if not subject.trial.blinded or user.unblinded:
        return True
    unblinding = subject.unblinding
    return unblinding is not None and unblinding.by_id == user.id


def subject_site_ids(subject: Subject) -> set[int]:
    """The ward a subject is enrolled at and the pharmacy that supplies it."""
    trial_site = _trial_site(subject.trial, subject.site_id)
    return {subject.site_id} | ({trial_site.pharmacy_site_id} if trial_site else set())


def can_see_subject(user: User, subject: Subject) -> bool:
    """Oversight sees every subject; others, those of their ward or its pharmacy."""
    return sees_all_sites(user) or user.site_id in subject_site_ids(subject)


def can_see_kits(user: User, trial: Trial) -> bool:
    """Oversight, the kit makers, and the trial's wards and pharmacies see its kits; nothing
    here depends on a kit's arm or lot, so seeing a kit tells no arm."""
    if sees_all_sites(user) or can(user, Permission.KITS_MANAGE):
        return True
    return any(user.site_id in (ts.site_id, ts.pharmacy_site_id) for ts in trial.sites)


def get_subject(
    session: Session,
    user: User,
    protocol_id: str,
    code: str,
    *,
    for_update: bool = False,
) -> Subject:
    """A subject the user may see (404 otherwise: its existence is private)."""
    query = (
        select(Subject)
        .join(Trial, Trial.id == Subject.trial_id)
        .where(Trial.protocol_id == protocol_id, Subject.code == code)
    )
    if for_update:
        query = query.with_for_update(of=Subject).execution_options(populate_existing=True)
    subject = session.scalar(query)
    if subject is None or not can_see_subject(user, subject):
        raise NotFoundError(f"subject of trial {protocol_id} with code", code)
    return subject


def visible_subjects(session: Session, user: User, protocol_id: str | None = None) -> list[Subject]:
    """Subjects the user may see, by trial and code."""
    query = select(Subject).join(Trial, Trial.id == Subject.trial_id)
    if protocol_id is not None:
        query = query.where(Trial.protocol_id == protocol_id)
    if not sees_all_sites(user):
        wards = select(TrialSite.site_id).where(
            or_(TrialSite.site_id == user.site_id, TrialSite.pharmacy_site_id == user.site_id)
        )
        query = query.where(Subject.site_id.in_(wards))
    subjects = session.scalars(query.order_by(Trial.protocol_id, Subject.code)).all()
    return [subject for subject in subjects if can_see_subject(user, subject)]


def subject_allocations(session: Session, subject: Subject) -> Sequence[Allocation]:
    """The subject's allocations by visit."""
    return session.scalars(
        select(Allocation)
        .join(Visit, Visit.id == Allocation.visit_id)
        .where(Allocation.subject_id == subject.id)
        .order_by(Visit.number)
    ).all()


def find_subject_by_wristband(session: Session, text: str) -> Subject:
    """The subject a wristband names: a GSRN (AI 8018) as a Digital Link, element string or
    digits, celltrail's `/subject/{code}?7240={trial}` link, or the plain subject code."""
    value, trial = _wristband_value(text.strip())
    query = select(Subject).where(or_(Subject.wristband == value, Subject.code == value))
    if trial is not None:
        query = query.join(Trial, Trial.id == Subject.trial_id).where(Trial.protocol_id == trial)
    found = session.scalars(query).all()
    exact = [subject for subject in found if subject.wristband == value]
    matches = exact or list(found)
    if len(matches) != 1:
        raise NotFoundError("subject with wristband", value)
    return matches[0]


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

    The state comes from the vial inside, but is never more telling than the kit: an
    allocated kit is "allocated", a kit's vial state otherwise.
    """
    status = vial_status(session, [kit.vial for kit in kits])
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


def arm_products(trial: Trial) -> list[Product]:
    """Every product any arm of the trial uses."""
    return [link.product for arm in trial.arms for link in arm.products]


# --- helpers ---------------------------------------------------------------------------


def _check_design(  # noqa: PLR0917 - a private check of create_trial's arguments
    protocol_id: str,
    blinded: bool,
    arms: Sequence[ArmSpec],
    visits: Sequence[VisitSpec],
    sites: Sequence[tuple[str, str]],
    blinded_gtin: str | None,
    blinded_name: str | None,
) -> None:
    if not AI82.fullmatch(protocol_id):
        raise InvalidValueError("protocol_id", "A protocol id is 1-20 GS1 AI 82 characters.")
    if not arms:
        raise InvalidValueError("arms", "A trial has at least one arm.")
    if len({arm.code for arm in arms}) != len(arms):
        raise InvalidValueError("arms", "Arm codes must differ.")
    if any(arm.ratio < 1 or arm.doses < 1 or not arm.products for arm in arms):
        raise InvalidValueError(
            "arms", "Each arm has a ratio and doses of at least 1 and a product."
        )
    if len({visit.number for visit in visits}) != len(visits):
        raise InvalidValueError("visits", "Visit numbers must differ.")
    if any(v.window_before_days < 0 or v.window_after_days < 0 for v in visits):
        raise InvalidValueError("visits", "A visit window is not negative.")
    if not sites:
        raise InvalidValueError("sites", "A trial has at least one site.")
    if blinded:
        if len(arms) < 2:
            raise InvalidValueError("arms", "A blinded trial has at least two arms.")
        if not blinded_gtin or not blinded_name:
            raise InvalidValueError(
                "blinded_gtin", "A blinded trial names the blinded product and its GTIN."
            )
        if not (blinded_gtin.isdigit() and len(blinded_gtin) == 14) or not has_check_digit(
            blinded_gtin
        ):
            raise InvalidValueError("blinded_gtin", f"{blinded_gtin} is not a valid GTIN-14.")
    elif blinded_gtin or blinded_name:
        raise InvalidValueError("blinded_gtin", "An open-label trial has no blinded product.")


def _add_arms(session: Session, trial: Trial, arms: Sequence[ArmSpec]) -> None:
    for spec in arms:
        arm = Arm(
            trial_id=trial.id,
            code=spec.code,
            name=spec.name,
            ratio=spec.ratio,
            control=spec.control,
            route=spec.route,
            cells_per_dose=spec.cells_per_dose,
            cells_per_kg=spec.cells_per_kg,
            volume_ml=spec.volume_ml,
            doses=spec.doses,
        )
        session.add(arm)
        session.flush()
        for code in spec.products:
            product_id = session.scalar(select(Product.id).where(Product.code == code))
            if product_id is None:
                raise NotFoundError("product", code)
            session.add(ArmProduct(arm_id=arm.id, product_id=product_id))


def _generate_slots(session: Session, trial: Trial) -> None:
    arms = [(arm.code, arm.ratio) for arm in trial.arms]
    ids = {arm.code: arm.id for arm in trial.arms}
    length = trial.planned_subjects or DEFAULT_LIST_LENGTH
    for trial_site in trial.sites:
        slots = generate_list(
            arms,
            trial.block_multipliers or DEFAULT_MULTIPLIERS,
            trial.randomization_seed or "",
            trial_site.site.code,
            length,
        )
        session.add_all(
            RandomizationSlot(
                trial_id=trial.id,
                site_id=trial_site.site_id,
                sequence=slot.sequence,
                block=slot.block,
                block_size=slot.block_size,
                arm_id=ids[slot.arm],
            )
            for slot in slots
        )
    session.flush()


def _design(
    trial: Trial,
    arms: Sequence[ArmSpec],
    visits: Sequence[VisitSpec],
    sites: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    return {
        "protocol_id": trial.protocol_id,
        "arms": [
            {
                **{k: v for k, v in asdict(arm).items() if k not in ("products", "volume_ml")},
                "products": list(arm.products),
                "volume_ml": None if arm.volume_ml is None else str(arm.volume_ml),
            }
            for arm in arms
        ],
        "visits": [asdict(visit) for visit in visits],
        "sites": [list(pair) for pair in sites],
        "block_multipliers": trial.block_multipliers,
    }


def _trial_site(trial: Trial, site_id: int) -> TrialSite | None:
    return next((ts for ts in trial.sites if ts.site_id == site_id), None)


def _check_wristband(band: str) -> None:
    if band.isdigit() and len(band) == 18:
        if not has_check_digit(band):
            raise InvalidValueError("wristband", f"{band} is not a GSRN: wrong check digit.")
    elif not AI82.fullmatch(band):
        raise InvalidValueError(
            "wristband", "A wristband carries a GSRN (18 digits) or a subject code."
        )


def _enrolment_arm(trial: Trial, arm_code: str | None) -> Arm | None:
    if trial.blinded:
        if arm_code is not None:
            raise InvalidValueError(
                "arm", "A blinded trial's arm comes from randomization, never from enrolment."
            )
        return None
    if arm_code is None:
        if len(trial.arms) == 1:
            return trial.arms[0]
        raise InvalidValueError("arm", f"Name the arm: trial {trial.protocol_id} has several.")
    arm = next((arm for arm in trial.arms if arm.code == arm_code), None)
    if arm is None:
        raise InvalidValueError("arm", f"Trial {trial.protocol_id} has no arm {arm_code}.")
    return arm


def _free_visit(session: Session, subject: Subject, number: int) -> Visit:
    visit = next((v for v in subject.trial.visits if v.number == number), None)
    if visit is None:
        raise InvalidValueError(
            "visit", f"Trial {subject.trial.protocol_id} has no visit {number}."
        )
    taken = session.scalar(
        select(Allocation.id).where(
            Allocation.subject_id == subject.id, Allocation.visit_id == visit.id
        )
    )
    if taken is not None:
        raise TrialStateError(
            f"Visit {number} of subject {subject.code} already has its allocation.",
            subject=subject.code,
            visit=number,
        )
    return visit


def _allocation_blockers(session: Session, subject: Subject, vial: Vial) -> list[str]:
    lot = vial.lot
    reasons = []
    if subject.arm is None or lot.product_id not in {
        link.product_id for link in subject.arm.products
    }:
        reasons.append(
            f"{vial.serial} is {lot.product.code}, which is not what subject {subject.code}'s "
            "arm receives."
        )
    if lot.status == LotStatus.EXCEPTIONALLY_RELEASED:
        if lot.exceptional_subject != subject.code:
            reasons.append(f"Lot {lot.number} was released exceptionally for another patient only.")
    elif lot.status not in USABLE_LOTS:
        reasons.append(f"Lot {lot.number} is {lot.status.replace('_', ' ')}.")
    if lot.expires_on < utcnow().date():
        reasons.append(f"Lot {lot.number} expired on {lot.expires_on.isoformat()}.")
    state, _ = vial_status(session, [vial])[vial.serial]
    if state in {"administered", "destroyed", "returned", "quarantined"}:
        reasons.append(f"{vial.serial} is {state}.")
    if session.scalar(select(Allocation.id).where(Allocation.vial_id == vial.id)):
        reasons.append(f"{vial.serial} is already allocated.")
    if session.scalar(select(Kit.id).where(Kit.vial_id == vial.id)):
        reasons.append(f"{vial.serial} is packed in a blinded kit.")
    return reasons


def _pick_kit(session: Session, trial: Trial, arm_id: int, pharmacy_code: str) -> Kit | None:
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
    today = utcnow().date()
    usable = set()
    for packaging_lot in {kit.packaging_lot for kit in candidates}:
        status, _ = packaging_lot_status(session, trial.id, packaging_lot)
        expiry = kit_expiry(session, trial, packaging_lot)
        if status in USABLE_LOTS and expiry is not None and expiry >= today:
            usable.add(packaging_lot)
    status_of = vial_status(session, [kit.vial for kit in candidates])
    in_stock = {(state, pharmacy_code) for state in KIT_STATES}
    eligible = [
        kit
        for kit in candidates
        if kit.packaging_lot in usable and status_of[kit.vial.serial] in in_stock
    ]
    return _DRAW.choice(eligible) if eligible else None


def packaging_lot_status(
    session: Session, trial_id: int, packaging_lot: str
) -> tuple[str, str | None]:
    """The worst status over every lot packed in a blinded packaging lot, whichever the arm,
    and the subject of an exceptional release (None when the lots name different ones).

    A kit is judged by its packaging lot, never by its own arm's lot: a recall of one arm's
    lot stops every kit of the packaging lot, so no kit's status tells the arms apart.
    """
    rows = session.execute(
        select(Lot.status, Lot.exceptional_subject)
        .join(Vial, Vial.lot_id == Lot.id)
        .join(Kit, Kit.vial_id == Vial.id)
        .where(Kit.trial_id == trial_id, Kit.packaging_lot == packaging_lot)
        .distinct()
    ).all()
    if not rows:
        return LotStatus.QUARANTINE.value, None
    worst = max((str(status) for status, _ in rows), key=_STATUS_RANK.__getitem__)
    if worst != LotStatus.EXCEPTIONALLY_RELEASED:
        return worst, None
    subjects = {subject for status, subject in rows if status == worst}
    return worst, subjects.pop() if len(subjects) == 1 else None


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
    states = vial_status(session, list(vials.values()))
    reasons = []
    for arm, serial in wanted:
        vial = vials[serial]
        if vial.lot.product_id not in {link.product_id for link in arm.products}:
            reasons.append(f"{serial} is {vial.lot.product.code}, not a product of arm {arm.code}.")
        if serial in kitted:
            reasons.append(f"{serial} is already in a kit.")
        if vial.lot.status not in (LotStatus.QUARANTINE, LotStatus.RELEASED):
            reasons.append(f"Lot {vial.lot.number} is {vial.lot.status.replace('_', ' ')}.")
        if states[serial][0] != "in_stock":
            reasons.append(f"{serial} is {states[serial][0].replace('_', ' ')}, not in stock.")
    if reasons:
        # Only an unblinded packer reaches here, so naming the arm is allowed.
        raise VialNotAllocatableError(serials[0], reasons)
    return [(arm, vials[serial]) for arm, serial in wanted]


def _allocation(
    session: Session,
    subject: Subject,
    visit: Visit,
    user: User,
    event_hash: str,
    *,
    vial: Vial,
    kit: Kit | None = None,
    lot: Lot | None = None,
) -> Allocation:
    allocation = Allocation(
        subject_id=subject.id,
        visit_id=visit.id,
        vial_id=vial.id,
        kit_id=kit.id if kit else None,
        lot_id=lot.id if lot else None,
        allocated_by_id=user.id,
        allocated_at=utcnow(),
        event_hash=event_hash,
    )
    session.add(allocation)
    session.flush()
    return allocation


def _wristband_value(text: str) -> tuple[str, str | None]:
    if text[:8].lower().startswith(("http://", "https://")):
        parts = urlsplit(text)
        segments = [unquote(segment) for segment in parts.path.split("/")]
        trial = parse_qs(parts.query).get("7240", [None])[-1]
        for marker in ("8018", SUBJECT_SEGMENT):
            if marker in segments[:-1]:
                return segments[segments.index(marker) + 1], trial
        raise NotFoundError("subject with wristband", text)
    if (
        text.startswith(("(", "]"))
        or "\x1d" in text
        or (text.startswith("8018") and len(text) > 18)
    ):
        try:
            message = GS1Message.parse_hri(text) if text.startswith("(") else GS1Message.parse(text)
        except (ParseError, ValueError) as error:
            raise NotFoundError("subject with wristband", text) from error
        elements = {element.ai.ai: element.value for element in message.element_strings}
        if "8018" not in elements:
            raise NotFoundError("subject with wristband", text)
        return elements["8018"], elements.get("7240")
    return text, None
