"""The canonical form of an event, its hash, and chain verification: fixed vectors, no database."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from custody.ledger import (
    Actor,
    ChainVerifier,
    build_body,
    canonical_bytes,
    digest,
    format_time,
    link,
)

CHINA = dt.timezone(dt.timedelta(hours=8))
HANDOFF = {
    "chain": "vial:XS228-2507-01-V0001",
    "seq": 2,
    "prev": "6a4a8e1704fec2e91f47b766486a7b68d63eff0e704b85a28faeb3d3bdf20d12",
    "event_type": "HANDED_OFF",
    "occurred_at": dt.datetime(2026, 3, 14, 9, 26, 53, 589793, tzinfo=dt.UTC),
    # 17:27 in Shenzhen is 09:27 UTC: the body spells one instant one way.
    "recorded_at": dt.datetime(2026, 3, 14, 17, 27, tzinfo=CHINA),
    "actor": Actor(user="courier", name="Kai Lin", role="courier"),
    "site": "CRYO-GZ",
    "payload": {
        "to": "Fang Hu",
        "note": "Dry shipper sealed in 深圳",
        "temperature_c": -150.5,
        "viability_pct": 92.0,
        "shipper": {"serial": "DS-0042", "vials": 4},
        "vials": 4,
    },
}
# RFC 8785: members sorted by code unit at every level, no whitespace, 92.0 written as the
# shortest ECMAScript number (92), and 深圳 as raw UTF-8 (e6b7b1 e59cb3), never \u escapes.
HANDOFF_BYTES = (
    b'{"actor":{"name":"Kai Lin","role":"courier","user":"courier"},'
    b'"chain":"vial:XS228-2507-01-V0001","format":1,'
    b'"occurred_at":"2026-03-14T09:26:53.589793Z",'
    b'"payload":{"note":"Dry shipper sealed in \xe6\xb7\xb1\xe5\x9c\xb3",'
    b'"shipper":{"serial":"DS-0042","vials":4},"temperature_c":-150.5,"to":"Fang Hu",'
    b'"viability_pct":92,"vials":4},'
    b'"prev":"6a4a8e1704fec2e91f47b766486a7b68d63eff0e704b85a28faeb3d3bdf20d12",'
    b'"recorded_at":"2026-03-14T09:27:00.000000Z","seq":2,"site":"CRYO-GZ","type":"HANDED_OFF"}'
)
HANDOFF_HASH = "2f65f2eb7be0fff661e5071e65e408d9cb11cba249228afb6093500eaa032014"

COMMISSIONING = {
    "chain": "lot:XS228-2507-01",
    "seq": 1,
    "prev": None,
    "event_type": "COMMISSIONED",
    "occurred_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
    "recorded_at": dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
    "actor": None,
    "site": None,
    "payload": {},
}
COMMISSIONING_BYTES = (
    b'{"actor":null,"chain":"lot:XS228-2507-01","format":1,'
    b'"occurred_at":"2026-01-02T03:04:05.000000Z","payload":{},"prev":null,'
    b'"recorded_at":"2026-01-02T03:04:05.000006Z","seq":1,"site":null,"type":"COMMISSIONED"}'
)
COMMISSIONING_HASH = "f91b35f12adb342d5e78242bd3cf4d000bad372c158e6a09e3a5343a2ad7b295"


def test_a_handoff_has_exactly_these_canonical_bytes():
    assert canonical_bytes(build_body(**HANDOFF)) == HANDOFF_BYTES


def test_a_handoff_has_exactly_this_hash():
    assert link(build_body(**HANDOFF)) == (HANDOFF_BYTES, HANDOFF_HASH)


def test_the_first_event_of_a_chain_writes_its_missing_values_as_null():
    assert link(build_body(**COMMISSIONING)) == (COMMISSIONING_BYTES, COMMISSIONING_HASH)


def test_the_hash_is_plain_sha256_of_the_canonical_bytes():
    assert digest(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_times_are_written_in_utc_with_microseconds():
    moment = dt.datetime(2026, 3, 14, 17, 27, 0, 5, tzinfo=CHINA)
    assert format_time(moment) == "2026-03-14T09:27:00.000005Z"


@pytest.mark.parametrize("field", ["occurred_at", "recorded_at"])
def test_a_naive_time_is_refused(field):
    with pytest.raises(ValueError, match="timezone-aware"):
        build_body(**{**HANDOFF, field: dt.datetime(2026, 3, 14, 9, 27)})  # noqa: DTZ001


def test_a_sequence_below_1_is_refused():
    with pytest.raises(ValueError, match="seq starts at 1"):
        build_body(**{**COMMISSIONING, "seq": 0})


def test_a_first_event_with_a_predecessor_is_refused():
    with pytest.raises(ValueError, match="predecessor"):
        build_body(**{**COMMISSIONING, "prev": HANDOFF_HASH})


def test_a_later_event_without_a_predecessor_is_refused():
    with pytest.raises(ValueError, match="predecessor"):
        build_body(**{**HANDOFF, "prev": None})


# ChainVerifier


def _chain(name: str, length: int, *, first_id: int = 1) -> list[dict]:
    """The stored columns of a sound chain, as `ChainVerifier.check` takes them."""
    events, prev = [], None
    for seq in range(1, length + 1):
        body = build_body(
            **{**HANDOFF, "chain": name, "seq": seq, "prev": prev, "payload": {"n": seq}}
        )
        canonical, event_hash = link(body)
        events.append(
            {
                "event_id": first_id + seq - 1,
                "chain": name,
                "seq": seq,
                "prev_hash": prev,
                "event_hash": event_hash,
                "event_type": body["type"],
                "site": body["site"],
                "occurred_at": body["occurred_at"],
                "recorded_at": body["recorded_at"],
                "actor": body["actor"]["user"],
                "body": canonical,
            }
        )
        prev = event_hash
    return events


def _first_break(events: list[dict], heads: dict | None = None):
    verifier = ChainVerifier()
    for event in events:
        found = verifier.check(**event)
        if found:
            return found
    return verifier.check_heads(heads if heads is not None else _heads(events))


def _heads(events: list[dict]) -> dict[str, tuple[int, str]]:
    return {event["chain"]: (event["seq"], event["event_hash"]) for event in events}


def test_sound_chains_interleaved_in_recording_order_verify():
    vial, lot = _chain("vial:V1", 3), _chain("lot:L1", 2, first_id=10)
    assert _first_break([vial[0], lot[0], vial[1], lot[1], vial[2]]) is None


def test_the_verifier_counts_events_and_remembers_one_head_per_chain():
    verifier = ChainVerifier()
    for event in _chain("vial:V1", 3) + _chain("lot:L1", 2, first_id=10):
        verifier.check(**event)
    assert (verifier.events, len(verifier.heads)) == (5, 2)


def test_a_body_edited_after_hashing_is_a_break():
    events = _chain("vial:V1", 3)
    events[1]["body"] = events[1]["body"].replace(b'"n":2', b'"n":7')
    found = _first_break(events)
    assert (found.chain, found.seq, found.reason) == (
        "vial:V1",
        2,
        "the stored body does not match its hash",
    )


def test_a_body_that_is_not_json_is_a_break_even_with_its_own_hash():
    events = _chain("vial:V1", 2)
    events[1].update(body=b"not json", event_hash=digest(b"not json"))
    assert _first_break(events).reason == "the stored body is not JSON"


def test_a_body_of_another_format_is_a_break():
    events = _chain("vial:V1", 2)
    body = canonical_bytes({**build_body(**{**HANDOFF, "chain": "vial:V1"}), "format": 2})
    events[1].update(body=body, event_hash=digest(body))
    assert _first_break(events).reason == "the body is not a format-1 event"


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("event_type", "DESTROYED"),
        ("site", "SYSU3-PH"),
        ("occurred_at", "2026-03-14T09:26:53.000000Z"),
        ("recorded_at", "2026-03-14T09:28:00.000000Z"),
        ("actor", "qa"),
        ("actor", None),
    ],
)
def test_an_indexed_column_that_disagrees_with_the_body_is_a_break(column, value):
    events = _chain("vial:V1", 3)
    events[1][column] = value
    found = _first_break(events)
    assert (found.seq, found.reason) == (2, "the indexed columns disagree with the hashed body")


@pytest.mark.parametrize("actor", ["courier", ["courier"], {"name": "Kai Lin"}])
def test_an_actor_that_is_not_a_person_with_that_username_is_a_break(actor):
    events = _chain("vial:V1", 2)
    body = canonical_bytes({**json.loads(events[1]["body"]), "actor": actor})
    events[1].update(body=body, event_hash=digest(body))
    found = _first_break(events)
    assert (found.seq, found.reason) == (2, "the indexed columns disagree with the hashed body")


def test_a_stored_predecessor_that_disagrees_with_the_body_is_a_break():
    events = _chain("vial:V1", 3)
    events[2]["prev_hash"] = events[0]["event_hash"]
    found = _first_break(events)
    assert (found.seq, found.reason) == (3, "the stored predecessor disagrees with the body")


def test_a_missing_event_in_the_middle_is_a_sequence_gap():
    events = _chain("vial:V1", 4)
    del events[1]
    found = _first_break(events)
    assert (found.seq, found.reason) == (3, "sequence broken: event 2 is missing")


def test_an_event_recorded_twice_is_out_of_order():
    events = _chain("vial:V1", 3)
    found = _first_break([events[0], events[1], events[1]])
    assert (found.seq, found.reason) == (2, "sequence broken: out of order")


def test_an_event_pointing_to_the_wrong_predecessor_is_a_break():
    events = _chain("vial:V1", 2)
    fork = _chain("vial:V1", 3)[2]
    body = build_body(**{**HANDOFF, "chain": "vial:V1", "seq": 3, "prev": events[0]["event_hash"]})
    canonical, event_hash = link(body)
    fork.update(prev_hash=events[0]["event_hash"], event_hash=event_hash, body=canonical)
    found = _first_break([*events, fork])
    assert (found.event_id, found.seq, found.reason) == (
        3,
        3,
        "it does not point to the previous event's hash",
    )


def test_a_deleted_tail_is_caught_by_the_recorded_head():
    events = _chain("vial:V1", 3)
    found = _first_break(events[:2], heads=_heads(events))
    assert (found.chain, found.seq, found.reason) == (
        "vial:V1",
        2,
        "the chain ends at event 2 but its head says 3",
    )


def test_a_chain_deleted_entirely_is_caught_by_its_recorded_head():
    found = _first_break([], heads=_heads(_chain("vial:V1", 2)))
    assert (found.chain, found.seq, found.reason) == (
        "vial:V1",
        0,
        "the chain ends at event 0 but its head says 2",
    )


def test_a_chain_without_a_recorded_head_is_a_break():
    found = _first_break(_chain("vial:V1", 2), heads={})
    assert (found.chain, found.seq, found.reason) == ("vial:V1", 2, "a chain with no recorded head")


def test_a_head_pointing_to_another_hash_at_the_same_length_is_a_break():
    events = _chain("vial:V1", 2)
    found = _first_break(events, heads={"vial:V1": (2, events[0]["event_hash"])})
    assert found.reason == "the chain ends at event 2 but its head says 2"
