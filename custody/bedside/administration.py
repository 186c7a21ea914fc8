"""The two-person administration that follows a GO, signed by the clinician and a witness."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Final

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.bedside.check import facts_fingerprint, get_check, sites_of_check, sites_of_subject
from custody.bedside.facts import Gathered, gather, subject_by_id, vial_by_id
from custody.bedside.rules import BedsideFacts, Outcome, Verdict, judge
from custody.ledger import ChainHead, EventDraft, append_events
from custody.trials import Administration, BedsideCheck, Subject
from labels.keys import LabelKey
from lots.access import Permission, can_see, require
from lots.base import utcnow
from lots.errors import DomainError, InvalidValueError, NotFoundError
from lots.models import User
from lots.signatures import sign
from lots.time_rules import CLOCK_SKEW_TOLERANCE as CLOCK_SKEW

ADMINISTER_MEANING: Final = "Administered the dose after a GO bedside check"
WITNESS_MEANING: Final = "Second person: confirmed the dose and the patient"


class AdministrationRefusedError(DomainError):
    """An administration the bedside check does not cover; nothing was recorded."""

    status = 409
    title = "Administration refused"


class AlreadyAdministeredError(DomainError):
    """The vial was administered already: the first administration stands."""

    status = 409
    title = "Already administered"

    def __init__(self, administration: Administration) -> None:
        super().__init__(
            f"This vial was already administered (administration {administration.id}, "
            f"{administration.administered_at:%Y-%m-%d %H:%M} UTC).",
            administration=administration.id,
        )
        self.administration_id = administration.id


class VisitAlreadyGivenError(DomainError):
    """The subject's visit was given already (from another vial): one dose per visit."""

    status = 409
    title = "Visit already given"

    def __init__(self, administration: Administration) -> None:
        visit = administration.visit.number if administration.visit else None
        super().__init__(
            f"This subject's visit {visit} was already given (administration "
            f"{administration.id}, {administration.administered_at:%Y-%m-%d %H:%M} UTC); "
            "do not give a second dose.",
            administration=administration.id,
        )
        self.administration_id = administration.id


def record_administration(
    session: Session,
    hasher: PasswordHasher,
    user: User,
    *,
    check_reference: str,
    password: str,
    witness_username: str,
    witness_password: str,
    route: str,
    dose_cells: int | None = None,
    volume_ml: Decimal | None = None,
    administered_at: dt.datetime | None = None,
    base: str,
    keys: Iterable[LabelKey],
    now: dt.datetime | None = None,
    remote_addr: str = "unknown",
) -> Administration:
    """Record a dose given after a GO, signed by the clinician and a second person.

    The subject's and the vial's chain heads are locked first: two confirmations of one vial
    (or two vials for one visit) serialise there, and the second finds the first
    administration (the unique constraints are the backstop).
    The facts are gathered again and must be the ones the GO judged.
    """
    require(user, Permission.ADMINISTER)
    now = now or utcnow()
    check = get_check(session, user, check_reference)
    if check.vial is None or check.subject is None or check.outcome != Outcome.GO:
        raise AdministrationRefusedError(
            "This bedside check was NO-GO: nothing may be given on it.", reference=check.reference
        )
    if check.checked_by_id != user.id and check.site_id != user.site_id:
        raise AdministrationRefusedError(
            "This GO was given at another site; check again at the bedside.",
            reference=check.reference,
        )
    vial, subject = check.vial, check.subject
    # Subject first, then vial (the ledger's sorted order): two doses of one visit from
    # different vials serialise on the subject, two confirmations of one vial on both.
    _lock_chain(session, subject.chain)
    _lock_chain(session, vial.chain)
    first = session.scalar(select(Administration).where(Administration.vial_id == vial.id))
    if first is not None:
        raise AlreadyAdministeredError(first)
    given = session.scalar(
        select(Administration).where(
            Administration.subject_id == subject.id, Administration.visit_id == check.visit_id
        )
    )
    if given is not None and check.visit_id is not None:
        raise VisitAlreadyGivenError(given)
    if now > check.expires_at:
        raise AdministrationRefusedError(
            f"The GO expired at {check.expires_at:%H:%M} UTC; check again at the bedside.",
            reference=check.reference,
        )
    witness = _witness(session, user, subject, witness_username)
    _confirm_unchanged(session, user, check, base=base, keys=tuple(keys), now=now)
    arm = subject.arm
    if arm is not None and route != arm.route:
        raise InvalidValueError(
            "route", f"The route given ({route}) is not the protocol's route ({arm.route})."
        )
    given_at = administered_at or now
    if given_at > now + CLOCK_SKEW or given_at < check.checked_at - CLOCK_SKEW:
        raise InvalidValueError(
            "administered_at", "The time given must lie between the GO and now; check the clock."
        )
    signature = sign(
        session, hasher, user, password=password, meaning=ADMINISTER_MEANING,
        remote_addr=remote_addr, now=now,
    )  # fmt: skip
    witnessed = sign(
        session, hasher, witness, password=witness_password, meaning=WITNESS_MEANING,
        remote_addr=remote_addr, now=now,
    )  # fmt: skip
    dose = {
        "route": route,
        "dose_cells": dose_cells,
        "volume_ml": None if volume_ml is None else str(volume_ml),
        "signature": signature,
        "witness": witnessed,
    }
    whom = {
        "subject": subject.code,
        "trial": subject.trial.protocol_id,
        "visit": check.visit.number if check.visit else None,
        "check": check.reference,
    }
    if check.kit is None:
        payload = {"serial": vial.serial, **whom, **dose}
        drafts = [EventDraft(vial.chain, "ADMINISTERED", given_at, payload, user, user.site)]
    else:
        # A blinded kit: the vial's chain records that it was given (its state derives
        # from it) but not to whom nor from which kit; the subject's chain records the dose
        # from the kit, never the vial or lot inside it.
        on_vial = {"serial": vial.serial, **dose}
        kit = {**whom, "kit": check.kit.number, **dose}
        drafts = [
            EventDraft(vial.chain, "ADMINISTERED", given_at, on_vial, user, user.site),
            EventDraft(subject.chain, "DOSE_GIVEN", given_at, kit, user, user.site),
        ]
    event = append_events(session, drafts)[0]
    administration = Administration(
        check_id=check.id,
        vial_id=vial.id,
        subject_id=subject.id,
        visit_id=check.visit_id,
        administered_at=given_at,
        route=route,
        dose_cells=dose_cells,
        volume_ml=volume_ml,
        site_id=user.site_id,
        administered_by_id=user.id,
        witness_id=witness.id,
        recorded_at=now,
        event_hash=event.hash,
    )
    session.add(administration)
    session.flush()
    return administration


def get_administration(session: Session, user: User, administration_id: int) -> Administration:
    """An administration of the user's site (or of their subject's), else 404."""
    administration = session.get(Administration, administration_id)
    if administration is None or not can_see(user, sites_of_check(session, administration.check)):
        raise NotFoundError("administration", administration_id)
    return administration


def administration_of(session: Session, check: BedsideCheck) -> Administration | None:
    """The administration recorded on this check, if any."""
    return session.scalar(select(Administration).where(Administration.check_id == check.id))


# --- administration helpers ------------------------------------------------------------


def _lock_chain(session: Session, chain: str) -> None:
    """Hold the vial chain's head until commit: concurrent confirmations wait here."""
    session.execute(
        select(ChainHead.chain)
        .where(ChainHead.chain == chain)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _witness(session: Session, user: User, subject: Subject, username: str) -> User:
    witness = session.scalar(select(User).where(User.username == username))
    if witness is not None and witness.id == user.id:
        raise InvalidValueError(
            "witness", "The second person must be someone else: you cannot confirm your own dose."
        )
    hospital = sites_of_subject(session, subject)
    if (
        witness is None
        or not witness.active
        or witness.role not in {"clinician", "pharmacist"}
        or witness.site_id not in hospital
    ):
        raise InvalidValueError(
            "witness",
            f"{username} may not confirm this dose: the second person is a clinician or "
            "pharmacist of this subject's ward or its pharmacy.",
        )
    if user.site_id not in hospital:
        raise AdministrationRefusedError(
            "You do not work at this subject's ward or its pharmacy.", reference=None
        )
    return witness


def _confirm_unchanged(
    session: Session,
    user: User,
    check: BedsideCheck,
    *,
    base: str,
    keys: tuple[LabelKey, ...],
    now: dt.datetime,
) -> None:
    """Gather the facts again: they must be those the GO judged, and still be a GO."""
    gathered = _regather(session, user, check, now=now)
    if facts_fingerprint(gathered.facts) != check.fingerprint:
        raise AdministrationRefusedError(
            "Something changed since the GO (the vial, its lot, its custody or the "
            "subject's allocation): check again at the bedside.",
            reference=check.reference,
        )
    verdict: Verdict = judge(gathered.facts)
    if verdict.outcome is not Outcome.GO:
        reasons = " ".join(c.sentence for c in verdict.failed)
        raise AdministrationRefusedError(
            f"The GO no longer holds: {reasons}", reference=check.reference
        )


def _regather(session: Session, user: User, check: BedsideCheck, *, now: dt.datetime) -> Gathered:
    """The facts of a stored check's vial and subject, as they are now."""
    assert check.vial_id is not None  # noqa: S101 - a GO names its vial
    assert check.subject_id is not None  # noqa: S101 - and its subject
    vial = vial_by_id(session, check.vial_id)
    assert vial is not None  # noqa: S101 - vials are never deleted
    subject = subject_by_id(session, check.subject_id, vial.product_id)
    assert subject is not None  # noqa: S101 - subjects are never deleted
    # The stored GO passed its wristband line when the band was scanned; it is not rescanned.
    facts = BedsideFacts(
        now=now,
        validity=check.expires_at - check.checked_at,
        checker_role=user.role,
        wristband_authenticated=True,
    )
    visit = check.visit.number if check.visit else None
    return gather(session, user, facts, vial=vial, subject=subject, visit_number=visit)
