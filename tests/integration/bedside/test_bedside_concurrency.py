"""Two clinicians confirming one vial at the same moment, on PostgreSQL: exactly one
administration and one ADMINISTERED event; the other is told which administration stands.

These tests commit (each clinician needs a connection of their own), so each makes its own
lot and patients; what they leave behind is sound custody data.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from custody.bedside import AlreadyAdministeredError
from custody.ledger import CustodyEvent
from custody.trials import Administration, BedsideCheck
from lots.batch import Vial
from tests.worlds.bedside import administer, check, new_patient, released_lot, vial_code, wristband
from tests.worlds.manufacturing import own_bank

pytestmark = pytest.mark.postgresql
ROUNDS = 3  # races per test: one lucky interleaving proves little


@pytest.fixture(autouse=True)
def _needs_postgresql(dialect):
    if dialect != "postgresql":
        pytest.skip("concurrent clients need PostgreSQL's row locks (SQLite serialises writers)")


@pytest.fixture
def sessions(committed_app):
    return committed_app.extensions["celltrail.db"].sessions


@pytest.fixture
def lot(sessions) -> str:
    """A released lot of its own, committed, with a vial for every round."""
    number = f"BC-{uuid.uuid4().hex[:8].upper()}"
    with sessions() as session, session.begin():
        released_lot(session, number, vials=ROUNDS, bank_code=own_bank(session, "BC"))
    return number


def _go(sessions, serial: str) -> tuple[str, str]:
    """A patient with the vial allocated and thawed, and a committed GO; (reference, serial)."""
    with sessions() as session, session.begin():
        code, serial = new_patient(session, serial)
        bedside = check(
            session, serial=serial, code=vial_code(session, serial), band=wristband(code)
        )
        assert bedside.outcome == "GO", bedside.checks
        return bedside.reference, serial


def _race(sessions, references: list[str]) -> list[object]:
    barrier = threading.Barrier(len(references))

    def confirm(reference: str) -> object:
        with sessions() as session:
            barrier.wait()
            try:
                with session.begin():
                    return administer(session, reference).id
            except AlreadyAdministeredError as refused:
                return refused

    with ThreadPoolExecutor(len(references)) as pool:
        return list(pool.map(confirm, references))


def _recorded(sessions, serial: str) -> tuple[int, int]:
    with sessions() as session:
        rows = session.scalar(
            select(func.count()).select_from(Administration).join(Vial).where(Vial.serial == serial)
        )
        events = session.scalar(
            select(func.count()).where(
                CustodyEvent.chain == f"vial:{serial}", CustodyEvent.event_type == "ADMINISTERED"
            )
        )
    return rows, events


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_clinicians_confirming_the_same_go_record_one_administration(sessions, lot, round_):
    reference, serial = _go(sessions, f"{lot}-V{round_ + 1:04d}")
    outcomes = _race(sessions, [reference, reference])
    ids = [outcome for outcome in outcomes if isinstance(outcome, int)]
    refusals = [outcome for outcome in outcomes if isinstance(outcome, AlreadyAdministeredError)]
    assert len(ids) == 1
    assert [refusal.administration_id for refusal in refusals] == ids
    assert _recorded(sessions, serial) == (1, 1)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_checks_of_one_vial_confirmed_at_once_record_one_administration(sessions, lot, round_):
    first, serial = _go(sessions, f"{lot}-V{round_ + 1:04d}")
    with sessions() as session, session.begin():
        earlier = session.scalar(select(BedsideCheck).where(BedsideCheck.reference == first))
        code = earlier.subject.code
        second = check(
            session, serial=serial, code=vial_code(session, serial), band=wristband(code)
        ).reference
    outcomes = _race(sessions, [first, second])
    assert sum(isinstance(outcome, int) for outcome in outcomes) == 1
    assert sum(isinstance(outcome, AlreadyAdministeredError) for outcome in outcomes) == 1
    assert _recorded(sessions, serial) == (1, 1)
