"""Handoffs under concurrent clients on PostgreSQL: a scanner firing twice, a retry after a
dropped connection, and two couriers scanning the same shipper at the same moment each end
with exactly one handoff recorded.

These tests commit (each client needs its own connection), so every test makes its own lot
and shipments; what they leave behind is sound custody data.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app import demo
from custody.ledger import CustodyEvent
from custody.manufacturing import create_lot, decide, record_result, record_step
from custody.shipping import Handoff, Shipment, create_shipment, pack_vials, packed, seal, ship
from lots.accounts import create_user, get_site, get_user, password_hasher
from lots.base import utcnow
from lots.errors import NotFoundError
from tests.worlds.manufacturing import own_bank

pytestmark = pytest.mark.postgresql

HASHER = password_hasher("cheapest")
PASSWORDS = {user.username: user.password for user in demo.USERS}
PASSWORDS["courier3"] = "correct-horse-battery"  # made by these tests
VIALS = 4
ROUNDS = 3  # races per test: one lucky interleaving proves little


@pytest.fixture(autouse=True)
def _needs_postgresql(dialect):
    if dialect != "postgresql":
        pytest.skip("concurrent clients need PostgreSQL's row locks (SQLite serialises writers)")


@pytest.fixture
def sessions(committed_app):
    return committed_app.extensions["celltrail.db"].sessions


@pytest.fixture
def courier3(sessions) -> str:
    """A third courier at the CryoLink depot, made once per test database."""
    with sessions() as session, session.begin():
        try:
            get_user(session, "courier3")
        except NotFoundError:
            create_user(
                session,
                HASHER,
                actor="admin",
                username="courier3",
                full_name="Chen Tao",
                role="courier",
                site_code="CRYO-GZ",
                password=PASSWORDS["courier3"],
            )
    return "courier3"


@pytest.fixture
def lot(sessions) -> str:
    """A released lot of its own, committed, with enough vials for every round."""
    number = f"HC-{uuid.uuid4().hex[:8].upper()}"
    end = utcnow().replace(microsecond=0) - dt.timedelta(days=3)
    with sessions() as session, session.begin():
        maker = get_user(session, "manufacturing")
        create_lot(
            session,
            maker,
            number=number,
            product_code="XS228",
            bank_code=own_bank(session, "HC"),
            manufacture_start=end - dt.timedelta(days=28),
            manufacture_end=end,
            vials_filled=VIALS * ROUNDS,
            cells_per_vial=10_000_000,
            volume_ml=Decimal("1.0"),
            qc_site=get_site(session, "XSM-QC"),
        )
        record_step(
            session,
            HASHER,
            maker,
            number,
            step="batch_record_completed",
            occurred_at=end,
            password=PASSWORDS["manufacturing"],
        )
        for test, value, unit in demo.XS228_RESULTS:
            record_result(
                session,
                get_user(session, "qc"),
                number,
                test=test,
                value=value,
                unit=unit,
                method=None,
                tested_at=utcnow() - dt.timedelta(hours=2),
            )
        decide(
            session,
            HASHER,
            get_user(session, "qa"),
            number,
            decision="release",
            password=PASSWORDS["qa"],
            meaning="Released for clinical use",
        )
    return number


def in_transit(sessions, lot: str, round_: int) -> str:
    """A shipper with this round's vials of the lot, in courier Kai Lin's hands; its SSCC."""
    serials = [f"{lot}-V{VIALS * round_ + n:04d}" for n in range(1, VIALS + 1)]
    with sessions() as session, session.begin():
        maker = get_user(session, "manufacturing")
        shipment = create_shipment(
            session, maker, to_site_code="SYSU3-PH", hold_time_hours=72, now=utcnow()
        )
        pack_vials(session, maker, shipment.sscc, serials, now=utcnow())
        seal(session, maker, shipment.sscc, f"SEAL-{shipment.sscc[-6:]}", now=utcnow())
        ship(session, maker, shipment.sscc, "courier", now=utcnow())
        return shipment.sscc


def bearer(app, username: str) -> dict[str, str]:
    response = app.test_client().post(
        "/api/v1/auth/tokens", json={"username": username, "password": PASSWORDS[username]}
    )
    assert response.status_code == 201, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}


def together(tasks):
    """Run the callables in threads released at the same moment; their results in order."""
    start = threading.Barrier(len(tasks))

    def run(task):
        start.wait()
        return task()

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        return list(pool.map(run, tasks))


def post_handoff(app, sscc: str, headers: dict[str, str], body: dict):
    def post():
        response = app.test_client().post(
            f"/api/v1/shipments/{sscc}/handoffs", json=body, headers=headers
        )
        return response.status_code, response.get_json(), response.headers

    return post


def recorded(sessions, sscc: str) -> tuple[int, int, int]:
    """(handoffs, HANDED_OFF events, HANDOFF_REFUSED events) of the shipper and its vials."""
    with sessions() as session:
        shipment = session.scalar(select(Shipment).where(Shipment.sscc == sscc))
        handoffs = session.scalar(
            select(func.count(Handoff.id)).where(Handoff.shipment_id == shipment.id)
        )
        chains = [shipment.chain, *(f"vial:{row.vial.serial}" for row in packed(session, shipment))]
        counts = dict(
            session.execute(
                select(CustodyEvent.event_type, func.count(CustodyEvent.id))
                .where(CustodyEvent.chain.in_(chains))
                .group_by(CustodyEvent.event_type)
            ).all()
        )
    return handoffs, counts.get("HANDED_OFF", 0), counts.get("HANDOFF_REFUSED", 0)


def test_a_scanner_firing_twice_records_one_handoff_and_answers_the_first(committed_app, lot):
    sessions = committed_app.extensions["celltrail.db"].sessions
    headers = bearer(committed_app, "courier2")
    for round_ in range(ROUNDS):
        sscc = in_transit(sessions, lot, round_)
        body = {"giver": "courier", "occurred_at": utcnow().isoformat()}
        answers = together([post_handoff(committed_app, sscc, headers, body)] * 2)
        assert sorted(status for status, _, _ in answers) == [200, 201]
        assert answers[0][1] == answers[1][1]
        assert recorded(sessions, sscc) == (1, 1 + VIALS, 0)


def test_a_retry_after_a_dropped_connection_replays_the_first_answer(committed_app, lot):
    sessions = committed_app.extensions["celltrail.db"].sessions
    sscc = in_transit(sessions, lot, 0)
    headers = {**bearer(committed_app, "courier2"), "Idempotency-Key": f"scan-{uuid.uuid4()}"}
    body = {"giver": "courier", "occurred_at": utcnow().isoformat()}
    lost = post_handoff(committed_app, sscc, headers, body)()  # the answer never arrived
    retry = post_handoff(committed_app, sscc, headers, body)()
    assert (lost[0], retry[0]) == (201, 201)
    assert (retry[1], retry[2]["Idempotent-Replayed"]) == (lost[1], "true")
    assert recorded(sessions, sscc) == (1, 1 + VIALS, 0)


def test_a_retry_racing_the_first_attempt_records_one_handoff(committed_app, lot):
    sessions = committed_app.extensions["celltrail.db"].sessions
    headers = bearer(committed_app, "courier2")
    for round_ in range(ROUNDS):
        sscc = in_transit(sessions, lot, round_)
        keyed = {**headers, "Idempotency-Key": f"scan-{uuid.uuid4()}"}
        body = {"giver": "courier", "occurred_at": utcnow().isoformat()}
        answers = together([post_handoff(committed_app, sscc, keyed, body)] * 2)
        assert [status for status, _, _ in answers] == [201, 201]
        assert answers[0][1] == answers[1][1]
        assert recorded(sessions, sscc) == (1, 1 + VIALS, 0)


def test_two_couriers_scanning_at_once_make_one_handoff_and_the_other_is_told_who_holds_it(
    committed_app, lot, courier3
):
    sessions = committed_app.extensions["celltrail.db"].sessions
    names = {"courier2": "Bo Yang", courier3: "Chen Tao"}
    headers = {username: bearer(committed_app, username) for username in names}
    for round_ in range(ROUNDS):
        sscc = in_transit(sessions, lot, round_)
        body = {"giver": "courier", "occurred_at": utcnow().isoformat()}
        answers = dict(
            zip(
                names,
                together([post_handoff(committed_app, sscc, headers[u], body) for u in names]),
                strict=True,
            )
        )
        (winner,) = [u for u, (status, _, _) in answers.items() if status == 201]
        (loser,) = [u for u, (status, _, _) in answers.items() if status == 409]
        assert answers[winner][1]["taker"]["user"] == winner
        assert answers[loser][1]["detail"] == (
            f"courier does not hold shipper {sscc}; it is in the custody of {names[winner]}."
        )
        assert recorded(sessions, sscc) == (1, 1 + VIALS, 1)
