"""Withdrawal: a withdrawn subject stays in the trail (who, when, why), gets NO-GO at the
bedside, and is given no randomization, vial or kit."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select

from app.demo.trials import SEPSIS_TRIAL, XS228_TRIAL
from custody.ledger import CustodyEvent
from custody.trials import (
    TrialStateError,
    allocate_vial,
    dispense_kit,
    enrol_subject,
    get_subject,
    randomize,
    withdraw_subject,
)
from lots.accounts import get_user
from lots.base import utcnow
from lots.errors import InvalidValueError, NotFoundError
from tests.worlds.bedside import (
    SUBJECT,
    TRIAL,
    check,
    enrol_patient,
    failed,
    spare_vial,
    thawed_at_the_ward,
)

REASON = "Serious adverse event: investigator's decision to stop treatment."


def _withdraw(session, code=SUBJECT, trial=TRIAL, by="clinician", **extra):
    return withdraw_subject(session, get_user(session, by), trial, code, reason=REASON, **extra)


def test_a_withdrawal_is_kept_with_who_when_and_why(session):
    enrol_patient(session)
    subject = _withdraw(session, consent_withdrawn=True)
    assert subject.withdrawn
    assert (subject.withdrawn_by, subject.withdrawal_reason, subject.consent_withdrawn) == (
        "clinician",
        REASON,
        True,
    )
    (body,) = session.scalars(
        select(CustodyEvent.body).where(
            CustodyEvent.chain == subject.chain, CustodyEvent.event_type == "WITHDRAWN"
        )
    )
    payload = orjson.loads(body)["payload"]
    assert (payload["reason"], payload["consent_withdrawn"]) == (REASON, True)


def test_a_subject_is_withdrawn_once_and_a_second_try_changes_nothing(session):
    enrol_patient(session)
    first = _withdraw(session).withdrawn_at
    with pytest.raises(TrialStateError, match="already withdrawn"):
        _withdraw(session)
    assert (
        get_subject(session, get_user(session, "clinician"), TRIAL, SUBJECT).withdrawn_at == first
    )


def test_a_withdrawal_states_its_reason(session):
    enrol_patient(session)
    with pytest.raises(InvalidValueError, match="reason"):
        withdraw_subject(session, get_user(session, "clinician"), TRIAL, SUBJECT, reason="  ")


def test_another_hospital_cannot_withdraw_the_subject(session):
    enrol_patient(session)
    with pytest.raises(NotFoundError):
        _withdraw(session, by="amu-clinician")


def test_a_withdrawn_subject_gets_no_go_at_the_bedside(session):
    enrol_patient(session)
    thawed_at_the_ward(session)
    assert check(session).outcome == "GO"
    _withdraw(session)
    bedside = check(session)
    assert bedside.outcome == "NO-GO"
    assert "withdrawn from the trial" in failed(bedside)["wristband"]


def test_a_withdrawn_subject_is_given_no_vial(session):
    enrol_subject(
        session, get_user(session, "clinician"), XS228_TRIAL, code="WD-001",
        site_code="SYSU3-SPINE", day_one=utcnow().date(),
    )  # fmt: skip
    _withdraw(session, code="WD-001", trial=XS228_TRIAL)
    with pytest.raises(TrialStateError, match="withdrawn"):
        allocate_vial(
            session, get_user(session, "pharmacist"), XS228_TRIAL, "WD-001", 1, spare_vial(session)
        )


def test_a_withdrawn_subject_is_neither_randomized_nor_given_a_kit(session):
    clinician = get_user(session, "amu-clinician")
    enrol_subject(session, clinician, SEPSIS_TRIAL, code="WD-101", site_code="AMU-SW-ICU")
    enrol_subject(session, clinician, SEPSIS_TRIAL, code="WD-102", site_code="AMU-SW-ICU")
    randomize(session, clinician, SEPSIS_TRIAL, "WD-102")
    _withdraw(session, code="WD-101", trial=SEPSIS_TRIAL, by="amu-clinician")
    _withdraw(session, code="WD-102", trial=SEPSIS_TRIAL, by="amu-clinician")
    with pytest.raises(TrialStateError, match="withdrawn"):
        randomize(session, clinician, SEPSIS_TRIAL, "WD-101")
    with pytest.raises(TrialStateError, match="withdrawn"):
        dispense_kit(session, get_user(session, "amu-pharmacist"), SEPSIS_TRIAL, "WD-102", 1)
