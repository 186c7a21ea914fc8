"""Server-side randomization: a blinded trial's subject takes the next slot of its site's list."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger import EventDraft, append_event
from custody.trials.errors import TrialStateError
from custody.trials.models import RandomizationSlot, Subject, TrialSite
from custody.trials.subjects import ensure_active, get_subject
from lots.access import Permission, require
from lots.base import utcnow
from lots.models import User


def randomize(session: Session, user: User, protocol_id: str, subject_code: str) -> Subject:
    """Give the subject the next free slot of its site's list.

    The trial site's row is locked first, so randomizations at one site queue and each takes
    the next slot in order; the slot's unique subject is the backstop.
    """
    require(user, Permission.SUBJECTS_RANDOMIZE)
    subject = get_subject(session, user, protocol_id, subject_code, for_update=True)
    ensure_active(subject)
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
    payload = {
        "trial": protocol_id,
        "subject": subject_code,
        "stratum": subject.site.code,
        "slot": slot.sequence,
        "arm_commitment": slot.arm_commitment,
    }
    append_event(session, EventDraft(subject.chain, "RANDOMIZED", now, payload, user, user.site))
    session.flush()
    return subject
