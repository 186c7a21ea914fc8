"""Trial subjects: enrolment at a ward, who may see them, and finding one by wristband."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from biip import ParseError
from biip.gs1_messages import GS1Message
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from custody.ledger import EventDraft, append_event
from custody.trials.errors import TrialStateError
from custody.trials.models import Arm, Subject, Trial, TrialSite
from custody.trials.protocols import find_trial_site, get_trial
from labels.payload import AI82, SUBJECT_SEGMENT, TRIAL_PARAMETER, has_check_digit
from lots.access import Permission, require, sees_all_sites
from lots.accounts import get_site
from lots.base import utcnow
from lots.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from lots.models import User


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
    trial_site = find_trial_site(protocol, site.id)
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


def withdraw_subject(
    session: Session,
    user: User,
    protocol_id: str,
    code: str,
    *,
    reason: str,
    consent_withdrawn: bool = False,
    now: dt.datetime | None = None,
) -> Subject:
    """Withdraw a subject from the trial (or record the subject's withdrawal of consent).

    The subject stays in the trail with who, when and why; from now on the bedside says
    NO-GO and no randomization, vial or kit is given to them. Once only: a second
    withdrawal is refused (409) and changes nothing.
    """
    require(user, Permission.SUBJECTS_ENROL)
    subject = get_subject(session, user, protocol_id, code, for_update=True)
    reason = reason.strip()
    if not reason:
        raise InvalidValueError("reason", "A withdrawal states its reason.")
    if subject.withdrawn:
        raise TrialStateError(
            f"Subject {code} was already withdrawn on {subject.withdrawn_at:%Y-%m-%d}.",
            subject=code,
        )
    now = now or utcnow()
    subject.withdrawn_at, subject.withdrawn_by = now, user.username
    subject.withdrawal_reason, subject.consent_withdrawn = reason, consent_withdrawn
    payload = {
        "trial": protocol_id,
        "subject": code,
        "reason": reason,
        "consent_withdrawn": consent_withdrawn,
    }
    append_event(session, EventDraft(subject.chain, "WITHDRAWN", now, payload, user, user.site))
    return subject


def ensure_active(subject: Subject) -> None:
    """Refuse anything that would treat a withdrawn subject (409)."""
    if subject.withdrawn:
        raise TrialStateError(
            f"Subject {subject.code} was withdrawn from the trial on "
            f"{subject.withdrawn_at:%Y-%m-%d}: no randomization, vial or kit.",
            subject=subject.code,
        )


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


def find_subject_by_wristband(session: Session, text: str) -> Subject:
    """The subject a wristband names: a GSRN (AI 8018) as a Digital Link, element string or
    digits, celltrail's `/subject/{code}?trial={trial}` link (or `?7240=` as printed before),
    or the plain subject code."""
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


def can_see_subject(user: User, subject: Subject) -> bool:
    """Oversight sees every subject; others, those of their ward or its pharmacy."""
    return sees_all_sites(user) or user.site_id in subject_site_ids(subject)


def subject_site_ids(subject: Subject) -> set[int]:
    """The ward a subject is enrolled at and the pharmacy that supplies it."""
    trial_site = find_trial_site(subject.trial, subject.site_id)
    return {subject.site_id} | ({trial_site.pharmacy_site_id} if trial_site else set())


# --- helpers ---------------------------------------------------------------------------


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


def _wristband_value(text: str) -> tuple[str, str | None]:
    if text[:8].lower().startswith(("http://", "https://")):
        parts = urlsplit(text)
        segments = [unquote(segment) for segment in parts.path.split("/")]
        query = parse_qs(parts.query)
        named = query.get(TRIAL_PARAMETER) or query.get("7240")
        trial = named[-1] if named else None
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
