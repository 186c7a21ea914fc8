"""The bedside check (vial × wristband → GO or NO-GO, recorded either way) and the
two-person administration that follows a GO (DESIGN.md §5)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Final

import orjson
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.bedside.facts import (
    Gathered,
    ScannedSubject,
    ScannedVial,
    gather,
    subject_by_id,
    subjects_by_wristband,
    vial_by_id,
    vial_by_kit_label,
    vial_by_serial,
)
from custody.bedside.rules import BedsideFacts, Outcome, Verdict, judge
from custody.ledger import ChainHead, EventDraft, append_event, append_events
from custody.trials import Administration, BedsideCheck, Subject, TrialSite
from labels.keys import LabelKey
from labels.resolution import Authentication, Kind, Resolution
from labels.resolve import resolve
from lots.access import Permission, can_see, require
from lots.base import utcnow
from lots.errors import DomainError, InvalidValueError, NotFoundError
from lots.models import User
from lots.signatures import sign

# How long a GO stands: the dose is given at the bedside, not an hour later.
DEFAULT_VALIDITY: Final = dt.timedelta(minutes=10)
CLOCK_SKEW: Final = dt.timedelta(minutes=2)
ADMINISTER_MEANING: Final = "Administered the dose after a GO bedside check"
WITNESS_MEANING: Final = "Second person: confirmed the dose and the patient"
SCANNED_TEXT_LIMIT: Final = 300
# The judged facts that are not about the vial and the patient: who checks, and when.
_UNJUDGED: Final = frozenset(
    {"now", "validity", "checker_role", "checker_at_subject_site", "places", "check_site"}
)


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


def check_at_bedside(
    session: Session,
    user: User,
    *,
    vial_code: str,
    wristband_code: str,
    visit_number: int | None,
    base: str,
    keys: Iterable[LabelKey],
    now: dt.datetime | None = None,
    validity: dt.timedelta = DEFAULT_VALIDITY,
) -> BedsideCheck:
    """Check a scanned vial (or kit) against a scanned wristband; record the verdict.

    Never refuses bad scans: a forged, unknown or unreadable label is a NO-GO check. Every
    check, GO or NO-GO, is stored and leaves one BEDSIDE_CHECKED event (NO-GO attempts are
    the near-miss record) on the vial's chain, else the subject's, else the site's.
    """
    require(user, Permission.BEDSIDE_CHECK)
    now = now or utcnow()
    gathered = _gather(
        session,
        user,
        vial_code=vial_code,
        wristband_code=wristband_code,
        visit_number=visit_number,
        base=base,
        keys=tuple(keys),
        now=now,
        validity=validity,
    )
    verdict = judge(gathered.facts)
    checks = [dataclasses.asdict(check) for check in verdict.checks]
    vial, subject = gathered.vial, gathered.subject
    reference = secrets.token_urlsafe(16)
    fingerprint = facts_fingerprint(gathered.facts)
    chain = _check_chain(user, vial, subject)
    event = append_event(
        session,
        EventDraft(
            chain,
            "BEDSIDE_CHECKED",
            now,
            {
                "reference": reference,
                "outcome": verdict.outcome.value,
                "item": vial.label if vial is not None else None,
                "subject": subject.code if subject is not None else None,
                "visit": gathered.visit.number if gathered.visit else None,
                "failed": [{"name": c.name, "sentence": c.sentence} for c in verdict.failed],
                "fingerprint": fingerprint,
                "scanned": {
                    "vial": vial_code[:SCANNED_TEXT_LIMIT],
                    "wristband": wristband_code[:SCANNED_TEXT_LIMIT],
                },
            },
            user,
            user.site,
        ),
    )
    check = BedsideCheck(
        reference=reference,
        outcome=verdict.outcome.value,
        subject_id=subject.id if subject is not None else None,
        vial_id=vial.id if vial is not None else None,
        kit_id=vial.kit_id if vial is not None else None,
        visit_id=gathered.visit.id if gathered.visit else None,
        checks=checks,
        fingerprint=fingerprint,
        checked_by_id=user.id,
        site_id=user.site_id,
        checked_at=now,
        expires_at=now + validity,
        event_hash=event.hash,
    )
    session.add(check)
    session.flush()
    return check


def _check_chain(user: User, vial: ScannedVial | None, subject: ScannedSubject | None) -> str:
    """Where a check is recorded, so that recording it shows nothing to anyone new.

    A wristband that named no subject of the checker's sites: the checker's site chain (a
    vial's chain would become visible to that site). A blinded kit: the subject's chain (the
    kit's vial chain must not link the kit and its subject to the vial, lot or product).
    Else the vial's chain, the near-miss record beside its custody.
    """
    if subject is None:
        return f"site:{user.site.code}"
    if vial is None or (vial.kit_id is not None and vial.kit_blinded):
        return subject.chain
    return vial.chain


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


def get_check(session: Session, user: User, reference: str) -> BedsideCheck:
    """A bedside check of the user's site (or of their subject's), else 404."""
    check = session.scalar(select(BedsideCheck).where(BedsideCheck.reference == reference))
    if check is None or not can_see(user, _check_sites(session, check)):
        raise NotFoundError("bedside check", reference)
    return check


def get_administration(session: Session, user: User, administration_id: int) -> Administration:
    """An administration of the user's site (or of their subject's), else 404."""
    administration = session.get(Administration, administration_id)
    if administration is None or not can_see(user, _check_sites(session, administration.check)):
        raise NotFoundError("administration", administration_id)
    return administration


def administration_of(session: Session, check: BedsideCheck) -> Administration | None:
    """The administration recorded on this check, if any."""
    return session.scalar(select(Administration).where(Administration.check_id == check.id))


def facts_fingerprint(facts: BedsideFacts) -> str:
    """SHA-256 over what the check judged about the vial and the patient (not who or when)."""
    judged = {
        key: value for key, value in dataclasses.asdict(facts).items() if key not in _UNJUDGED
    }
    canonical = orjson.dumps(judged, option=orjson.OPT_SORT_KEYS, default=_plain)
    return hashlib.sha256(canonical).hexdigest()


# --- gathering the facts ---------------------------------------------------------------


def _gather(
    session: Session,
    user: User,
    *,
    vial_code: str,
    wristband_code: str,
    visit_number: int | None,
    base: str,
    keys: tuple[LabelKey, ...],
    now: dt.datetime,
    validity: dt.timedelta,
) -> Gathered:
    vial, vial_problem = _find_vial(session, resolve(vial_code, base=base, keys=keys))
    subject, wristband_problem = _find_subject(
        session, user, resolve(wristband_code, base=base, keys=keys), vial
    )
    facts = BedsideFacts(
        now=now,
        vial_problem=vial_problem,
        wristband_problem=wristband_problem,
        validity=validity,
        checker_role=user.role,
    )
    if vial is None or subject is None:
        return Gathered(facts, vial, subject, None)
    return gather(session, user, facts, vial=vial, subject=subject, visit_number=visit_number)


def _regather(session: Session, user: User, check: BedsideCheck, *, now: dt.datetime) -> Gathered:
    """The facts of a stored check's vial and subject, as they are now."""
    assert check.vial_id is not None  # noqa: S101 - a GO names its vial
    assert check.subject_id is not None  # noqa: S101 - and its subject
    vial = vial_by_id(session, check.vial_id)
    assert vial is not None  # noqa: S101 - vials are never deleted
    subject = subject_by_id(session, check.subject_id, vial.product_id)
    assert subject is not None  # noqa: S101 - subjects are never deleted
    facts = BedsideFacts(
        now=now, validity=check.expires_at - check.checked_at, checker_role=user.role
    )
    visit = check.visit.number if check.visit else None
    return gather(session, user, facts, vial=vial, subject=subject, visit_number=visit)


def _find_vial(session: Session, scan: Resolution) -> tuple[ScannedVial | None, str | None]:
    if scan.refused:
        return None, scan.reason
    if scan.kind is Kind.SERIAL_ONLY:
        return None, "A typed serial proves nothing about the label: scan the vial's code."
    if scan.kind is not Kind.VIAL:
        return None, "This is not a vial or kit label: scan the vial's code."
    if scan.authentication is not Authentication.VALID:
        return None, (
            "This code has no celltrail authentication code: it is not a label celltrail "
            "printed. Do not use the vial; tell the pharmacy."
        )
    return _vial_of(session, scan)


def _vial_of(session: Session, scan: Resolution) -> tuple[ScannedVial | None, str | None]:
    """The vial (or kit) an authentic label names, if the record agrees with the label."""
    serial = scan.serial or ""
    vial = vial_by_serial(session, serial)
    if vial is None:
        kit = vial_by_kit_label(session, _gtin14(scan.gtin), serial)
        if kit is None or kit.packaging_lot != scan.lot:
            return None, f"celltrail has no record of {serial}: do not use it."
        return kit, None
    if scan.lot != vial.lot or _gtin14(scan.gtin) != _gtin14(vial.gtin):
        return None, f"The code does not match the record of vial {serial}: treat it as forged."
    if scan.expiry is not None and scan.expiry != vial.expires_on:
        return None, "The expiry on the code is not the lot's: treat the label as forged."
    if vial.kit_id is not None and vial.kit_blinded:
        # A blinded kit's vial is known only by its kit label; its own label never leaves
        # the manufacturer.
        return None, "This vial belongs to a kit: scan the kit's label."
    return vial, None


def _find_subject(
    session: Session, user: User, scan: Resolution, vial: ScannedVial | None
) -> tuple[ScannedSubject | None, str | None]:
    """The subject on the wristband, or why not."""
    if scan.refused:
        return None, f"Wristband: {scan.reason}"
    trial = None
    if scan.kind is Kind.SUBJECT and scan.gsrn is not None:
        values = [scan.gsrn]
    elif scan.kind is Kind.SUBJECT:
        values, trial = [scan.subject_code or ""], scan.trial
    elif scan.kind is Kind.SERIAL_ONLY:
        values = [scan.serial or ""]
    else:
        return None, "This is not a wristband: scan the patient's wristband."
    subjects = subjects_by_wristband(
        session,
        values=values,
        protocol_id=trial,
        product_id=vial.product_id if vial is not None else None,
    )
    if len(subjects) != 1:
        return None, "No subject matches this wristband. Check the patient's identity."
    if user.site_id not in subjects[0].site_ids:
        return None, "This wristband is of a subject at another site."
    return subjects[0], None


def _subject_sites(session: Session, subject: Subject) -> set[int]:
    pharmacies = session.scalars(
        select(TrialSite.pharmacy_site_id).where(
            TrialSite.trial_id == subject.trial_id, TrialSite.site_id == subject.site_id
        )
    )
    return {subject.site_id, *pharmacies}


def _check_sites(session: Session, check: BedsideCheck) -> set[int | None]:
    sites: set[int | None] = {check.site_id}
    if check.subject is not None:
        sites |= set(_subject_sites(session, check.subject))
    return sites


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
    hospital = _subject_sites(session, subject)
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


def _gtin14(gtin: str | None) -> str:
    return (gtin or "").rjust(14, "0")


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal | dt.timedelta):
        return str(value)
    if isinstance(value, frozenset | set):
        return sorted(value)
    raise TypeError(type(value).__name__)
