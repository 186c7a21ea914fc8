"""Randomizing and dispensing under concurrent clients on PostgreSQL: two subjects at one
site never take one slot, two pharmacists never hand out one kit. These tests commit."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from app.demo.trials import SEPSIS_TRIAL
from custody.trials import RandomizationSlot, dispense_kit, enrol_subject, get_subject, randomize
from lots.accounts import get_user

pytestmark = pytest.mark.postgresql


@pytest.fixture(autouse=True)
def _needs_postgresql(dialect):
    if dialect != "postgresql":
        pytest.skip("concurrent clients need PostgreSQL's row locks (SQLite serialises writers)")


@pytest.fixture
def sessions(committed_app):
    return committed_app.extensions["celltrail.db"].sessions


def enrol(sessions, count):
    codes = [f"C-{uuid.uuid4().hex[:8].upper()}" for _ in range(count)]
    with sessions() as session, session.begin():
        for code in codes:
            enrol_subject(
                session,
                get_user(session, "amu-clinician"),
                SEPSIS_TRIAL,
                code=code,
                site_code="AMU-SW-ICU",
            )
    return codes


def race(sessions, work, codes):
    barrier = threading.Barrier(len(codes))

    def run(code):
        with sessions() as session, session.begin():
            barrier.wait()
            return work(session, code)

    with ThreadPoolExecutor(len(codes)) as pool:
        return list(pool.map(run, codes))


def test_two_subjects_randomized_at_once_take_two_different_slots(sessions):
    codes = enrol(sessions, 2)
    race(
        sessions,
        lambda s, code: randomize(s, get_user(s, "amu-clinician"), SEPSIS_TRIAL, code).id,
        codes,
    )
    with sessions() as session:
        ids = [get_subject(session, get_user(session, "qa"), SEPSIS_TRIAL, c).id for c in codes]
        slots = session.scalars(
            select(RandomizationSlot.sequence).where(RandomizationSlot.subject_id.in_(ids))
        ).all()
    assert len(set(slots)) == 2


def test_two_pharmacists_dispensing_at_once_never_hand_out_one_kit(sessions):
    codes = enrol(sessions, 2)
    for code in codes:
        with sessions() as session, session.begin():
            randomize(session, get_user(session, "amu-clinician"), SEPSIS_TRIAL, code)

    def dispense(session, code):
        try:
            return dispense_kit(
                session, get_user(session, "amu-pharmacist"), SEPSIS_TRIAL, code, 1
            ).kit_id
        except Exception as error:
            return type(error).__name__

    kits = race(sessions, dispense, codes)
    numbers = [kit for kit in kits if isinstance(kit, int)]
    assert len(numbers) == len(set(numbers))
