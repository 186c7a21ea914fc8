"""The ledger in the database: events link, verification finds every kind of tampering.

Tampering happens inside the test's rolled-back transaction, with the append-only triggers
switched off there only, so the shared ledger stays intact for every other test.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from app.keys import signing_key, trusted_keys
from custody.ledger import (
    RECORDING_SKEW,
    Actor,
    ChainHead,
    ChainVerifier,
    CheckpointClaim,
    CustodyEvent,
    EventDraft,
    SignedCheckpoint,
    append_event,
    append_events,
    build_body,
    chain_events,
    create_checkpoint,
    digest,
    format_time,
    link,
    parse_anchor,
    verify_ledger,
)
from lots.accounts import get_user
from lots.base import utcnow

NOON = dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.UTC)
RELINK = "UPDATE custody_events SET body = :body, hash = :hash, prev_hash = :prev WHERE id = :id"


@pytest.fixture
def courier(session):
    """Kai Lin, the courier at CRYO-GZ."""
    return get_user(session, "courier")


@pytest.fixture
def vial(session, courier):
    """A vial chain of three STORED events."""
    chain = f"vial:TEST-{uuid.uuid4().hex[:12]}"
    for position in ("A1", "A2", "A3"):
        append_event(session, _draft(chain, courier, position=position))
    return chain


@pytest.fixture
def unguarded(session, dialect):
    """Raw SQL on the ledger with its append-only triggers off, in this test's transaction."""
    for table in ("custody_events", "ledger_checkpoints"):
        if dialect == "postgresql":
            session.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"))
        else:
            session.execute(text(f"DROP TRIGGER {table}_no_update"))
            session.execute(text(f"DROP TRIGGER {table}_no_delete"))

    def run(statement: str, **params: object) -> None:
        session.execute(text(statement), params)
        # Checkpoints are read as ORM objects; forget the copies loaded before the edit.
        session.expire_all()

    return run


def _draft(chain, user, **payload):
    return EventDraft(
        chain=chain,
        event_type="STORED",
        occurred_at=NOON,
        payload=payload,
        actor=user,
        site=user.site,
    )


def _verify(session, app):
    return verify_ledger(session, trusted_keys(app))


def _where(report):
    return report.first_break.chain, report.first_break.seq


def _event(session, chain, seq):
    return session.scalar(select(CustodyEvent).filter_by(chain=chain, seq=seq))


def _edit_second(chain):
    return update(CustodyEvent).where(CustodyEvent.chain == chain, CustodyEvent.seq == 2)


def _forge(session, courier, chain, seq, prev, *, recorded_at=None, move_head=False):
    """Insert an event with a self-consistent hash, as someone with INSERT rights could
    (recorded now unless told otherwise), and with `move_head` its chain head moved too."""
    recorded_at = recorded_at or utcnow()
    body = build_body(
        chain=chain,
        seq=seq,
        prev=prev,
        event_type="DESTROYED",
        occurred_at=NOON,
        recorded_at=recorded_at,
        actor=Actor(user="courier", name=courier.full_name, role="courier"),
        site=courier.site.code,
        payload={"forged": True},
    )
    canonical, event_hash = link(body)
    session.add(
        CustodyEvent(
            chain=chain,
            seq=seq,
            event_type="DESTROYED",
            occurred_at=NOON,
            recorded_at=recorded_at,
            actor_user_id=courier.id,
            site_id=courier.site_id,
            prev_hash=prev,
            hash=event_hash,
            body=canonical,
        )
    )
    session.flush()
    if move_head:
        session.execute(
            text("UPDATE chain_heads SET seq = :seq, hash = :hash WHERE chain = :chain"),
            {"seq": seq, "hash": event_hash, "chain": chain},
        )


def _rewrite(session, unguarded, chain, payload):
    """Rewrite a chain consistently: a new first payload, every body, hash and the head."""
    prev = None
    for event_id, stored in session.execute(
        select(CustodyEvent.id, CustodyEvent.body)
        .where(CustodyEvent.chain == chain)
        .order_by(CustodyEvent.seq)
    ).all():
        body = {**json.loads(stored), "prev": prev}
        if body["seq"] == 1:
            body["payload"] = payload
        canonical, event_hash = link(body)
        unguarded(RELINK, body=canonical, hash=event_hash, prev=prev, id=event_id)
        prev = event_hash
    session.execute(update(ChainHead).where(ChainHead.chain == chain).values(hash=prev))


# Linking


def test_events_of_a_chain_are_numbered_from_1(session, vial):
    assert [event.seq for event in chain_events(session, vial)] == [1, 2, 3]


def test_each_event_points_to_the_hash_of_the_one_before(session, vial):
    events = chain_events(session, vial)
    assert [event.prev_hash for event in events] == [None, events[0].hash, events[1].hash]


def test_each_hash_is_sha256_of_the_stored_body(session, vial):
    assert all(event.hash == digest(event.body) for event in chain_events(session, vial))


def test_the_stored_body_names_the_actor_and_the_site(session, vial):
    body = json.loads(chain_events(session, vial)[0].body)
    assert (body["actor"], body["site"]) == (
        {"user": "courier", "name": "Kai Lin", "role": "courier"},
        "CRYO-GZ",
    )


def test_the_chain_head_records_the_last_event(session, vial):
    last = chain_events(session, vial)[-1]
    assert session.get(ChainHead, vial).seq == 3
    assert session.get(ChainHead, vial).hash == last.hash


def test_many_drafts_on_several_chains_in_one_call_link_each_chain(session, courier):
    chains = [f"vial:TEST-{uuid.uuid4().hex[:12]}" for _ in range(3)]
    append_events(session, [_draft(chain, courier, n=n) for n in range(4) for chain in chains])
    for chain in chains:
        events = chain_events(session, chain)
        assert [(e.seq, e.prev_hash) for e in events] == [
            (1, None),
            *[(e.seq + 1, e.hash) for e in events[:-1]],
        ]


def test_many_drafts_in_one_call_keep_their_order_within_a_chain(session, courier):
    chain = f"vial:TEST-{uuid.uuid4().hex[:12]}"
    append_events(session, [_draft(chain, courier, n=n) for n in range(5)])
    payloads = [json.loads(event.body)["payload"]["n"] for event in chain_events(session, chain)]
    assert payloads == [0, 1, 2, 3, 4]


def test_a_later_append_continues_the_chain_from_its_head(session, courier, vial):
    head = session.get(ChainHead, vial).hash
    event = append_event(session, _draft(vial, courier, position="B1"))
    assert (event.seq, event.prev_hash) == (4, head)


def test_appended_events_are_the_sessions_own_objects(session, courier, vial):
    event = append_event(session, _draft(vial, courier, position="B1"))
    assert session.get(CustodyEvent, event.id) is event
    assert event.body == session.scalar(select(CustodyEvent.body).filter_by(id=event.id))


def test_a_chain_head_already_loaded_shows_the_new_head_after_an_append(session, courier, vial):
    head = session.get(ChainHead, vial)
    event = append_event(session, _draft(vial, courier, position="B1"))
    assert (session.get(ChainHead, vial).seq, head.hash) == (4, event.hash)


def test_a_sound_ledger_verifies_intact(session, app, vial):
    report = _verify(session, app)
    assert report.intact, report.first_break
    assert report.events >= 3


# Tampering


def test_a_payload_edited_in_the_database_is_detected(session, app, vial, unguarded):
    event = _event(session, vial, 2)
    edited = event.body.replace(b'"position":"A2"', b'"position":"Z9"')
    unguarded("UPDATE custody_events SET body = :body WHERE id = :id", body=edited, id=event.id)
    report = _verify(session, app)
    assert not report.intact
    assert _where(report) == (vial, 2)


def test_an_event_type_edited_only_in_its_column_is_detected(session, app, vial, unguarded):
    unguarded(
        "UPDATE custody_events SET event_type = 'DESTROYED' WHERE chain = :chain AND seq = 2",
        chain=vial,
    )
    report = _verify(session, app)
    assert _where(report) == (vial, 2)
    assert report.first_break.reason == "the indexed columns disagree with the hashed body"


@pytest.mark.usefixtures("unguarded")
def test_an_actor_edited_only_in_its_column_is_detected(session, app, vial):
    qa = get_user(session, "qa")
    session.execute(_edit_second(vial).values(actor_user_id=qa.id))
    report = _verify(session, app)
    assert _where(report) == (vial, 2)
    assert report.first_break.reason == "the indexed columns disagree with the hashed body"


@pytest.mark.usefixtures("unguarded")
def test_a_recording_time_edited_only_in_its_column_is_detected(session, app, vial):
    session.execute(_edit_second(vial).values(recorded_at=NOON))
    report = _verify(session, app)
    assert _where(report) == (vial, 2)
    assert report.first_break.reason == "the indexed columns disagree with the hashed body"


def test_an_event_deleted_from_the_middle_of_a_chain_is_detected(session, app, vial, unguarded):
    unguarded("DELETE FROM custody_events WHERE chain = :chain AND seq = 2", chain=vial)
    report = _verify(session, app)
    assert _where(report) == (vial, 3)
    assert report.first_break.reason == "sequence broken: event 2 is missing"


def test_the_last_event_deleted_from_a_chain_is_caught_by_its_head(session, app, vial, unguarded):
    unguarded("DELETE FROM custody_events WHERE chain = :chain AND seq = 3", chain=vial)
    report = _verify(session, app)
    assert _where(report) == (vial, 2)
    assert report.first_break.reason == "the chain ends at event 2 but its head says 3"


def test_a_forged_event_pointing_to_an_earlier_event_is_detected(session, app, courier, vial):
    _forge(session, courier, vial, 4, prev=_event(session, vial, 1).hash)
    report = _verify(session, app)
    assert _where(report) == (vial, 4)
    assert report.first_break.reason == "it does not point to the previous event's hash"


def test_a_forged_event_appended_without_moving_the_head_is_detected(session, app, courier, vial):
    _forge(session, courier, vial, 4, prev=_event(session, vial, 3).hash)
    report = _verify(session, app)
    assert _where(report) == (vial, 4)
    assert report.first_break.reason == "the chain ends at event 4 but its head says 3"


def test_a_duplicate_of_an_event_is_refused_by_the_database(session, vial):
    copy = {
        column.key: getattr(_event(session, vial, 2), column.key)
        for column in CustodyEvent.__table__.columns
        if column.key != "id"
    }
    duplicate = CustodyEvent(**copy)
    with pytest.raises(DBAPIError), session.begin_nested():
        session.add(duplicate)


def test_two_events_swapped_within_a_chain_are_detected(session, app, vial, unguarded):
    second, third = (
        {"id": e.id, "body": e.body, "hash": e.hash, "prev": e.prev_hash}
        for e in (_event(session, vial, 2), _event(session, vial, 3))
    )
    unguarded("UPDATE custody_events SET hash = 'moving' WHERE id = :id", id=third["id"])
    unguarded(RELINK, **{**third, "id": second["id"]})
    unguarded(RELINK, **{**second, "id": third["id"]})
    report = _verify(session, app)
    assert _where(report) == (vial, 2)
    assert report.first_break.reason == "the indexed columns disagree with the hashed body"


def test_a_verification_stopped_early_leaves_the_callers_transaction_usable(
    session, app, courier, vial, unguarded
):
    # More later events than one network read, so the break leaves rows unread. (On a large
    # ledger PostgreSQL is still sending them: the query is cancelled, which aborts the
    # transaction but for the savepoint the verification takes.)
    append_events(session, [_draft(vial, courier, n=n) for n in range(600)])
    first = _event(session, vial, 1)
    unguarded("UPDATE custody_events SET event_type = 'DESTROYED' WHERE id = :id", id=first.id)
    assert _where(_verify(session, app)) == (vial, 1)
    assert session.scalar(select(CustodyEvent.event_type).filter_by(id=first.id)) == "DESTROYED"
    assert session.get(ChainHead, vial).seq == 603


def test_a_chain_rewritten_consistently_is_not_caught_without_a_checkpoint(
    session, app, vial, unguarded
):
    _rewrite(session, unguarded, vial, {"position": "Z9"})
    assert _verify(session, app).intact


def test_a_chain_rewritten_consistently_after_a_checkpoint_is_caught(session, app, vial, unguarded):
    checkpoint = create_checkpoint(session, signing_key(app))
    _rewrite(session, unguarded, vial, {"position": "Z9"})
    report = _verify(session, app)
    assert _where(report) == (f"checkpoint {checkpoint.id}", None)
    assert "is not the one signed" in report.first_break.reason


# Checkpoints


def test_a_checkpoint_over_a_sound_ledger_is_counted(session, app, vial):
    before = _verify(session, app).checkpoints
    create_checkpoint(session, signing_key(app))
    assert _verify(session, app).checkpoints == before + 1


def test_a_checkpoint_followed_by_later_events_still_verifies(session, app, courier, vial):
    create_checkpoint(session, signing_key(app))
    append_event(session, _draft(vial, courier, position="B1"))
    assert _verify(session, app).intact


def test_an_event_rewritten_before_a_checkpoint_is_caught_even_with_later_events(
    session, app, courier, vial, unguarded
):
    checkpoint = create_checkpoint(session, signing_key(app))
    append_event(session, _draft(vial, courier, position="B1"))
    _rewrite(session, unguarded, vial, {"position": "Z9"})
    report = _verify(session, app)
    assert _where(report) == (f"checkpoint {checkpoint.id}", None)


def test_a_checkpoint_whose_signature_was_edited_is_caught(session, app, vial, unguarded):
    checkpoint = create_checkpoint(session, signing_key(app))
    forged = base64.b64encode(bytes(64)).decode()
    unguarded(
        "UPDATE ledger_checkpoints SET signature = :s WHERE id = :id", s=forged, id=checkpoint.id
    )
    report = _verify(session, app)
    assert _where(report) == (f"checkpoint {checkpoint.id}", None)
    assert report.first_break.reason == "its signature does not verify"


def test_a_checkpoint_whose_root_was_edited_is_caught(session, app, vial, unguarded):
    checkpoint = create_checkpoint(session, signing_key(app))
    unguarded(
        "UPDATE ledger_checkpoints SET root = :r WHERE id = :id", r="0" * 64, id=checkpoint.id
    )
    report = _verify(session, app)
    assert _where(report) == (f"checkpoint {checkpoint.id}", None)
    assert report.first_break.reason == "its signature does not verify"


def test_a_checkpoint_signed_by_an_untrusted_key_is_caught(session, app, vial):
    checkpoint = create_checkpoint(session, Ed25519PrivateKey.generate())
    report = _verify(session, app)
    assert _where(report) == (f"checkpoint {checkpoint.id}", None)
    assert report.first_break.reason.endswith("which is not a trusted key")


def test_a_deleted_tail_with_its_head_moved_back_is_caught_by_a_checkpoint(
    session, app, vial, unguarded
):
    checkpoint = create_checkpoint(session, signing_key(app))
    unguarded("DELETE FROM custody_events WHERE chain = :chain AND seq = 3", chain=vial)
    session.execute(
        update(ChainHead)
        .where(ChainHead.chain == vial)
        .values(seq=2, hash=_event(session, vial, 2).hash)
    )
    report = _verify(session, app)
    assert _where(report) == (f"checkpoint {checkpoint.id}", None)
    assert report.first_break.event_id == checkpoint.upto_event_id


# Anchors: checkpoints kept outside the database


def _anchor_of(checkpoint):
    return parse_anchor(
        SignedCheckpoint(
            "stored",
            CheckpointClaim(
                upto_event_id=checkpoint.upto_event_id,
                event_count=checkpoint.event_count,
                root=checkpoint.root,
                created_at=format_time(checkpoint.created_at),
            ),
            checkpoint.key_id,
            checkpoint.signature,
        ).anchor(),
        name="anchor from the QA log",
    )


def test_deleting_every_stored_checkpoint_then_rewriting_is_caught_by_an_anchor(
    session, app, vial, unguarded
):
    anchor = _anchor_of(create_checkpoint(session, signing_key(app)))
    unguarded("DELETE FROM ledger_checkpoints")
    _rewrite(session, unguarded, vial, {"position": "Z9"})
    assert _verify(session, app).intact  # what the database alone can still prove
    report = verify_ledger(session, trusted_keys(app), anchors=[anchor])
    assert _where(report) == ("anchor from the QA log", None)


def test_an_anchor_with_an_edited_root_is_refused_as_unsigned(session, app, vial):
    anchor = _anchor_of(create_checkpoint(session, signing_key(app)))
    document = {**anchor.anchor(), "root": "0" * 64}
    report = verify_ledger(session, trusted_keys(app), anchors=[parse_anchor(document, "forged")])
    assert report.first_break.reason == "its signature does not verify"


def test_a_backdated_append_with_its_head_moved_is_caught_after_a_checkpoint(
    session, app, courier, vial
):
    """The forgery as found (issue 16): a DESTROYED event with a correct hash, its chain head
    moved, recorded_at backdated to before the checkpoint."""
    create_checkpoint(session, signing_key(app))
    backdated = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    head = _event(session, vial, 3).hash
    _forge(session, courier, vial, 4, prev=head, recorded_at=backdated, move_head=True)
    report = _verify(session, app)
    assert _where(report) == (vial, 4)
    assert "a recording time never goes back" in report.first_break.reason


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(behind=RECORDING_SKEW)
@example(behind=RECORDING_SKEW + dt.timedelta(microseconds=1))
@given(behind=st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=400)))
def test_an_append_recorded_before_the_ledgers_latest_time_is_caught_beyond_the_skew(
    session, app, courier, vial, behind
):
    """Concurrent writers may be recorded a little out of id order; more than the skew is a
    forgery, whichever chain it is on."""
    latest = max(e.recorded_at for e in session.scalars(select(CustodyEvent)))
    savepoint = session.begin_nested()
    try:
        head = _event(session, vial, 3).hash
        _forge(session, courier, vial, 4, prev=head, recorded_at=latest - behind, move_head=True)
        report = _verify(session, app)
        assert report.intact == (behind <= RECORDING_SKEW), report.first_break
    finally:
        savepoint.rollback()


def test_no_event_after_a_checkpoint_may_be_dated_before_it():
    """The checkpoint's signing time is a time the ledger is known to have reached."""
    verifier = ChainVerifier()
    verifier.witness("2026-06-01T00:00:00.000000Z")
    body = build_body(
        chain="site:X", seq=1, prev=None, event_type="INSPECTED",
        occurred_at=NOON, recorded_at=dt.datetime(2026, 5, 1, tzinfo=dt.UTC),
        actor=None, site=None, payload={},
    )  # fmt: skip
    canonical, event_hash = link(body)
    found = verifier.check(
        event_id=1, chain="site:X", seq=1, prev_hash=None, event_hash=event_hash,
        event_type="INSPECTED", site=None, occurred_at=format_time(NOON),
        recorded_at="2026-05-01T00:00:00.000000Z", actor=None, body=canonical,
    )  # fmt: skip
    assert found is not None
    assert "before the ledger had already reached 2026-06-01" in found.reason


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    told=st.datetimes(
        min_value=dt.datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=dt.datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.just(dt.UTC),
    )
)
def test_an_event_is_recorded_by_the_ledgers_clock_whatever_time_the_service_was_told(
    session, app, courier, told
):
    """A service's time is the event's occurred_at; recorded_at is when the ledger wrote it,
    so a world built with a clock in the past or the future still verifies intact."""
    savepoint = session.begin_nested()
    try:
        before = utcnow()
        occurred = told
        draft = EventDraft(f"vial:TOLD-{uuid.uuid4().hex[:8]}", "STORED", occurred, {}, courier)
        event = append_event(session, draft)
        assert before <= event.recorded_at <= utcnow()
        assert event.occurred_at == occurred
        assert _verify(session, app).intact
    finally:
        savepoint.rollback()
