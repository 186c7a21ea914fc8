"""Emergency unblinding of one subject, and who may see a subject's arm or a trial's kits."""

from __future__ import annotations

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger import EventDraft, append_event
from custody.trials.errors import TrialStateError
from custody.trials.models import Subject, Trial, Unblinding
from custody.trials.subjects import get_subject
from lots.access import Permission, can, require, sees_all_sites
from lots.base import utcnow
from lots.errors import InvalidValueError
from lots.models import User
from lots.signatures import sign

UNBLINDING_MEANING = "Emergency unblinding of this subject (treating clinician)"


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


def can_see_kits(user: User, trial: Trial) -> bool:
    """Oversight, the kit makers, and the trial's wards and pharmacies see its kits; nothing
    here depends on a kit's arm or lot, so seeing a kit tells no arm."""
    if sees_all_sites(user) or can(user, Permission.KITS_MANAGE):
        return True
    return any(user.site_id in (ts.site_id, ts.pharmacy_site_id) for ts in trial.sites)
