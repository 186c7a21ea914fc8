"""Allocation: a vial set aside for an open-label subject's visit, and a subject's allocations."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger import (
    EventDraft,
    append_event,
    decided_lots,
    decision_status,
    status_words,
)
from custody.shipping import vial_status
from custody.trials.errors import TrialStateError, VialNotAllocatableError
from custody.trials.models import Allocation, Kit, Subject, Visit
from custody.trials.subjects import ensure_active, get_subject
from lots.access import Permission, require
from lots.base import utcnow
from lots.batch import Lot, LotStatus, Vial
from lots.errors import InvalidValueError, NotFoundError
from lots.local_time import local_date
from lots.models import User

USABLE_LOTS = frozenset({LotStatus.RELEASED})


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
    ensure_active(subject)
    if subject.trial.blinded:
        raise TrialStateError(
            f"Trial {protocol_id} is blinded: the system dispenses a kit, no vial is chosen.",
            trial=protocol_id,
        )
    visit = free_visit(session, subject, visit_number)
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
    return record_allocation(session, subject, visit, user, event.hash, vial=vial, lot=vial.lot)


def subject_allocations(session: Session, subject: Subject) -> Sequence[Allocation]:
    """The subject's allocations by visit."""
    return session.scalars(
        select(Allocation)
        .join(Visit, Visit.id == Allocation.visit_id)
        .where(Allocation.subject_id == subject.id)
        .order_by(Visit.number)
    ).all()


def free_visit(session: Session, subject: Subject, number: int) -> Visit:
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


def record_allocation(
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


# --- helpers ---------------------------------------------------------------------------


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
    # Judged by the lot's status as its chain has it; a row that disagrees is disputed.
    decided = decided_lots(session, [lot])[lot.id]
    status, record = decision_status(decided), decided[0]
    if status == LotStatus.EXCEPTIONALLY_RELEASED:
        wanted = (subject.trial.protocol_id, subject.code)
        if (record.exceptional_trial, record.exceptional_subject) != wanted:
            reasons.append(f"Lot {lot.number} was released exceptionally for another patient only.")
    elif status not in USABLE_LOTS:
        reasons.append(f"Lot {lot.number} is {status_words(status)}.")
    # Judged in the calendar of the subject's hospital, where the dose will be given.
    if lot.expires_on < local_date(utcnow(), subject.site.time_zone):
        reasons.append(f"Lot {lot.number} expired on {lot.expires_on.isoformat()}.")
    state, _ = vial_status(session, [vial])[vial.serial]
    if state in {"administered", "destroyed", "returned", "quarantined"}:
        reasons.append(f"{vial.serial} is {state}.")
    if session.scalar(select(Allocation.id).where(Allocation.vial_id == vial.id)):
        reasons.append(f"{vial.serial} is already allocated.")
    if session.scalar(select(Kit.id).where(Kit.vial_id == vial.id)):
        reasons.append(f"{vial.serial} is packed in a blinded kit.")
    return reasons
