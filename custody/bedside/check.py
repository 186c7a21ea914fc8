"""The bedside check: vial × wristband → GO or NO-GO, recorded either way (DESIGN.md §5)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Final

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.bedside.facts import (
    Gathered,
    ScannedSubject,
    ScannedVial,
    gather,
    subjects_by_wristband,
    vial_by_kit_label,
    vial_by_serial,
)
from custody.bedside.rules import BedsideFacts, judge
from custody.ledger import EventDraft, append_event
from custody.manufacturing import label_generations
from custody.trials import BedsideCheck, Subject, TrialSite
from labels.keys import LabelKey
from labels.resolution import Authentication, Kind, Resolution
from labels.resolve import resolve
from lots.access import Permission, can_see, require
from lots.base import utcnow
from lots.errors import NotFoundError
from lots.models import User

# How long a GO stands: the dose is given at the bedside, not an hour later.
DEFAULT_VALIDITY: Final = dt.timedelta(minutes=10)
SCANNED_TEXT_LIMIT: Final = 300
# The judged facts that are not about the vial and the patient: who checks, and when.
# Who, when and where the check ran, and how the wristband was scanned (the administration
# confirms a stored GO without scanning it again): not facts about the vial or the patient.
_UNJUDGED: Final = frozenset(
    {
        "now",
        "validity",
        "checker_role",
        "checker_at_subject_site",
        "places",
        "check_site",
        "wristband_authenticated",
        "plain_wristbands_allowed",
    }
)


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


def get_check(session: Session, user: User, reference: str) -> BedsideCheck:
    """A bedside check of the user's site (or of their subject's), else 404."""
    check = session.scalar(select(BedsideCheck).where(BedsideCheck.reference == reference))
    if check is None or not can_see(user, sites_of_check(session, check)):
        raise NotFoundError("bedside check", reference)
    return check


def facts_fingerprint(facts: BedsideFacts) -> str:
    """SHA-256 over what the check judged about the vial and the patient (not who or when)."""
    judged = {
        key: value for key, value in dataclasses.asdict(facts).items() if key not in _UNJUDGED
    }
    canonical = orjson.dumps(judged, option=orjson.OPT_SORT_KEYS, default=_plain)
    return hashlib.sha256(canonical).hexdigest()


def sites_of_check(session: Session, check: BedsideCheck) -> set[int | None]:
    """The site a check was made at, and its subject's ward and pharmacy."""
    sites: set[int | None] = {check.site_id}
    if check.subject is not None:
        sites |= set(sites_of_subject(session, check.subject))
    return sites


def sites_of_subject(session: Session, subject: Subject) -> set[int]:
    """The ward a subject is enrolled at and the pharmacies that supply it."""
    pharmacies = session.scalars(
        select(TrialSite.pharmacy_site_id).where(
            TrialSite.trial_id == subject.trial_id, TrialSite.site_id == subject.site_id
        )
    )
    return {subject.site_id, *pharmacies}


# --- helpers ---------------------------------------------------------------------------


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
    printed = label_generations(session)
    vial, vial_problem = _find_vial(
        session, resolve(vial_code, base=base, keys=keys, printed=printed)
    )
    band = resolve(wristband_code, base=base, keys=keys, printed=printed)
    subject, wristband_problem = _find_subject(session, user, band, vial)
    facts = BedsideFacts(
        now=now,
        vial_problem=vial_problem,
        wristband_problem=wristband_problem,
        validity=validity,
        checker_role=user.role,
        subject=subject.code if subject is not None else "",
        subject_id=subject.id if subject is not None else None,
        trial=subject.protocol_id if subject is not None else "",
        wristband_authenticated=band.authentication is Authentication.VALID,
        plain_wristbands_allowed=user.site.plain_wristbands_allowed,
    )
    if vial is None or subject is None:
        return Gathered(facts, vial, subject, None)
    return gather(session, user, facts, vial=vial, subject=subject, visit_number=visit_number)


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


NO_SUBJECT = "No subject of this site matches this wristband. Check the patient's identity."


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
    # Only this site's subjects are looked at: whether a code exists at another hospital is
    # not this site's to learn, so both read alike.
    here = [subject for subject in subjects if user.site_id in subject.site_ids]
    here = [subject for subject in here if subject.wristband in values] or here  # exact first
    if not here:
        return None, NO_SUBJECT
    if len(here) > 1:
        return None, (
            "More than one subject of this site has this code: scan the wristband's code, "
            "which names the trial."
        )
    return here[0], None


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
