"""Concurrent writers on PostgreSQL: one chain stays whole, one Idempotency-Key writes once.

These tests commit (each thread needs its own connection), so they use fresh chain names and
keys, and leave only sound events behind.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from app import demo
from app.keys import trusted_keys
from custody.ledger import ChainHead, EventDraft, append_event, chain_events, digest, verify_ledger
from lots.accounts import get_user

pytestmark = pytest.mark.postgresql

WRITERS = 8
EVENTS_EACH = 25


@pytest.fixture(autouse=True)
def _needs_postgresql(dialect):
    if dialect != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL (SQLite serialises every writer)")


def _together(task, count=WRITERS):
    """Run `task(i)` in `count` threads released at the same moment; return the results."""
    start = threading.Barrier(count)

    def run(i):
        start.wait()
        return task(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))


def _race_on_one_chain(app):
    """Eight writers append 25 events each to one new chain, one transaction per event."""
    sessions = app.extensions["celltrail.db"].sessions
    chain = f"vial:CONC-{uuid.uuid4().hex[:12]}"

    def write(writer):
        for n in range(EVENTS_EACH):
            with sessions() as session, session.begin():
                courier = get_user(session, "courier")
                append_event(
                    session,
                    EventDraft(
                        chain=chain,
                        event_type="STORED",
                        occurred_at=dt.datetime.now(dt.UTC),
                        payload={"writer": writer, "n": n},
                        actor=courier,
                        site=courier.site,
                    ),
                )

    _together(write)
    return chain


def test_eight_writers_on_one_chain_leave_one_unbroken_chain(committed_app):
    chain = _race_on_one_chain(committed_app)
    with committed_app.extensions["celltrail.db"].sessions() as session:
        events = chain_events(session, chain)
    assert [e.seq for e in events] == list(range(1, WRITERS * EVENTS_EACH + 1))
    assert all(
        e.prev_hash == (events[i - 1].hash if i else None) and e.hash == digest(e.body)
        for i, e in enumerate(events)
    )


def test_no_event_of_eight_concurrent_writers_is_lost(committed_app):
    chain = _race_on_one_chain(committed_app)
    with committed_app.extensions["celltrail.db"].sessions() as session:
        written = {
            (body["payload"]["writer"], body["payload"]["n"])
            for body in (json.loads(e.body) for e in chain_events(session, chain))
        }
        head = session.scalar(select(ChainHead.seq).where(ChainHead.chain == chain))
        report = verify_ledger(session, trusted_keys(committed_app))
    assert (len(written), head) == (WRITERS * EVENTS_EACH, WRITERS * EVENTS_EACH)
    assert report.intact, report.first_break


def test_eight_identical_writes_with_one_idempotency_key_record_one_event(committed_app):
    courier = next(user for user in demo.USERS if user.username == "courier")
    token = committed_app.test_client().post(
        "/api/v1/auth/tokens", json={"username": "courier", "password": courier.password}
    )
    headers = {
        "Authorization": f"Bearer {token.json['token']}",
        "Idempotency-Key": f"conc-{uuid.uuid4()}",
    }
    note = f"Shipper seal intact ({uuid.uuid4()})"
    observation = {
        "chain": f"site:{courier.site}",
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "note": note,
    }

    def post(_):
        client = committed_app.test_client()
        return client.post("/api/v1/ledger/events", json=observation, headers=headers)

    responses = _together(post)
    with committed_app.extensions["celltrail.db"].sessions() as session:
        recorded = [
            e.id
            for e in chain_events(session, f"site:{courier.site}")
            if json.loads(e.body)["payload"]["note"] == note
        ]
    assert {(r.status_code, r.json["id"]) for r in responses} == {(201, recorded[0])}
    assert len(recorded) == 1
