"""Idempotency-Key: a replay returns the first answer and records nothing new."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from custody.ledger import CustodyEvent

EVENTS = "/api/v1/ledger/events"
LN2_CHECK = {
    "chain": "site:XSM-SZ",
    "occurred_at": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)).isoformat(),
    "note": "Cryostore LN2 level checked",
    "observations": {"ln2_level_percent": 62},
}


def _record(client, headers: dict[str, str], key: str, body: dict | None = None):
    return client.post(EVENTS, json=body or LN2_CHECK, headers={**headers, "Idempotency-Key": key})


def _event_count(session) -> int:
    return session.scalar(select(func.count(CustodyEvent.id)))


def test_a_replay_returns_the_first_answer_byte_for_byte(client, auth_headers):
    first = _record(client, auth_headers("manufacturing"), "ln2-check-0717")
    replay = _record(client, auth_headers("manufacturing"), "ln2-check-0717")
    assert (replay.status_code, replay.get_data()) == (201, first.get_data())
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_the_first_answer_is_not_marked_as_a_replay(client, auth_headers):
    first = _record(client, auth_headers("manufacturing"), "ln2-check-0717")
    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers


def test_a_replay_records_nothing_new(client, auth_headers, session):
    _record(client, auth_headers("manufacturing"), "ln2-check-0717")
    after_first = _event_count(session)
    _record(client, auth_headers("manufacturing"), "ln2-check-0717")
    assert _event_count(session) == after_first


def test_the_same_key_with_a_different_body_is_422(client, auth_headers, session):
    _record(client, auth_headers("manufacturing"), "ln2-check-0717")
    after_first = _event_count(session)
    response = _record(
        client, auth_headers("manufacturing"), "ln2-check-0717", {**LN2_CHECK, "note": "Refilled"}
    )
    assert response.status_code == 422
    assert _event_count(session) == after_first


def test_two_users_may_use_the_same_key_independently(client, auth_headers, session):
    before = _event_count(session)
    _record(client, auth_headers("manufacturing"), "ln2-check-0717")
    theirs = _record(client, auth_headers("qa"), "ln2-check-0717")
    assert (theirs.status_code, "Idempotent-Replayed" in theirs.headers) == (201, False)
    assert _event_count(session) == before + 2


def test_a_refused_request_does_not_use_up_its_key(client, auth_headers):
    _record(client, auth_headers("manufacturing"), "ln2-check-0717", {**LN2_CHECK, "note": ""})
    response = _record(client, auth_headers("manufacturing"), "ln2-check-0717")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers


def test_a_key_longer_than_255_characters_is_400(client, auth_headers, session):
    before = _event_count(session)
    response = _record(client, auth_headers("manufacturing"), "k" * 256)
    assert response.status_code == 400
    assert _event_count(session) == before
