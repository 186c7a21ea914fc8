"""Appending to the ledger, verifying it, and signing checkpoints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Table, bindparam, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from custody.ledger.chain import (
    Actor,
    Break,
    ChainVerifier,
    EventRow,
    build_body,
    format_time,
    link,
)
from custody.ledger.checkpoints import (
    CheckpointClaim,
    RootBuilder,
    SignedCheckpoint,
    sign,
    signature_is_valid,
)
from custody.ledger.models import ChainHead, CustodyEvent, LedgerCheckpoint
from lots.base import utcnow
from lots.models import Site, User

_EVENTS = cast(Table, CustodyEvent.__table__)
_HEADS = cast(Table, ChainHead.__table__)
# Event values are bound as e_<column>: the head's UPDATE shares the INSERT's parameters
# when it rides in its WITH clause, and must not take "chain" or "hash" for its own.
_EVENT_COLUMNS = (
    "chain",
    "seq",
    "event_type",
    "occurred_at",
    "recorded_at",
    "actor_user_id",
    "site_id",
    "prev_hash",
    "hash",
    "body",
)
_INSERT_EVENT = (
    insert(_EVENTS)
    .values({column: bindparam(f"e_{column}") for column in _EVENT_COLUMNS})
    .returning(_EVENTS.c.id)
)
_INSERT_EVENTS = (
    insert(_EVENTS)
    .values({column: bindparam(f"e_{column}") for column in _EVENT_COLUMNS})
    .returning(_EVENTS.c.id, sort_by_parameter_order=True)
)
_LOCK_HEADS = (
    select(_HEADS.c.chain, _HEADS.c.seq, _HEADS.c.hash)
    .where(_HEADS.c.chain.in_(bindparam("chains", expanding=True)))
    .order_by(_HEADS.c.chain)
    .with_for_update()
)
_MOVE_HEAD = (
    update(_HEADS)
    .where(_HEADS.c.chain == bindparam("b_chain"))
    .values(seq=bindparam("b_seq"), hash=bindparam("b_hash"), updated_at=bindparam("b_updated_at"))
)
_INSERT_EVENT_MOVING_HEAD = _INSERT_EVENT.add_cte(_MOVE_HEAD.cte("moved_head"))
_EVENT_ROWS = (
    select(
        _EVENTS.c.id,
        _EVENTS.c.chain,
        _EVENTS.c.seq,
        _EVENTS.c.prev_hash,
        _EVENTS.c.hash,
        _EVENTS.c.event_type,
        Site.code,
        _EVENTS.c.occurred_at,
        _EVENTS.c.recorded_at,
        User.username,
        _EVENTS.c.body,
    )
    .outerjoin(Site, Site.id == _EVENTS.c.site_id)
    .outerjoin(User, User.id == _EVENTS.c.actor_user_id)
    .order_by(_EVENTS.c.id)
)
# The same on PostgreSQL, each time spelt in SQL exactly as `format_time` spells it.
_PG_EVENT_ROWS = """
SELECT e.id, e.chain, e.seq, e.prev_hash, e.hash, e.event_type, s.code,
       to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       u.username, e.body
FROM custody_events e
LEFT JOIN sites s ON s.id = e.site_id
LEFT JOIN users u ON u.id = e.actor_user_id
ORDER BY e.id
"""
_STREAM_CHUNK = 500  # rows per network read while verifying


@dataclass(frozen=True)
class EventDraft:
    """An event before it is linked into its chain."""

    chain: str
    event_type: str
    occurred_at: dt.datetime
    payload: Mapping[str, Any]
    actor: User | None = None
    site: Site | None = None


def append_event(session: Session, draft: EventDraft) -> CustodyEvent:
    """Append one event to its chain (see `append_events`)."""
    return append_events(session, [draft])[0]


def append_events(
    session: Session, drafts: Sequence[EventDraft], *, recorded_at: dt.datetime | None = None
) -> list[CustodyEvent]:
    """Link and add events in the caller's transaction; never commits.

    Each chain's head row is locked first (in chain order, so two writers touching the same
    chains cannot deadlock); the (chain, seq) unique constraint is the backstop. The events
    come back persistent in the session, as if flushed.
    """
    if not drafts:
        return []
    recorded_at = recorded_at or utcnow()
    session.flush()  # what the drafts name (a new user or site) gets its id first
    connection = session.connection()
    heads = _lock_heads(connection, sorted({draft.chain for draft in drafts}))
    rows = []
    for draft in drafts:
        seq, prev = heads[draft.chain]
        seq += 1
        body = build_body(
            chain=draft.chain,
            seq=seq,
            prev=prev,
            event_type=draft.event_type,
            occurred_at=draft.occurred_at,
            recorded_at=recorded_at,
            actor=_actor(draft.actor),
            site=draft.site.code if draft.site else None,
            payload=draft.payload,
        )
        canonical, event_hash = link(body)
        rows.append(
            {
                "chain": draft.chain,
                "seq": seq,
                "event_type": draft.event_type,
                "occurred_at": draft.occurred_at,
                "recorded_at": recorded_at,
                "actor_user_id": draft.actor.id if draft.actor else None,
                "site_id": draft.site.id if draft.site else None,
                "prev_hash": prev,
                "hash": event_hash,
                "body": canonical,
            }
        )
        heads[draft.chain] = (seq, event_hash)
    moved = [
        {"b_chain": chain, "b_seq": seq, "b_hash": head_hash, "b_updated_at": recorded_at}
        for chain, (seq, head_hash) in heads.items()
    ]
    values = [{f"e_{column}": value for column, value in row.items()} for row in rows]
    if len(rows) == 1 and connection.dialect.name == "postgresql":
        # One round trip: the head moves in the WITH clause of the event's INSERT.
        ids = [connection.execute(_INSERT_EVENT_MOVING_HEAD, values[0] | moved[0]).scalar_one()]
    else:
        if len(rows) == 1:
            ids = [connection.execute(_INSERT_EVENT, values[0]).scalar_one()]
        else:
            ids = list(connection.execute(_INSERT_EVENTS, values).scalars())
        connection.execute(_MOVE_HEAD, moved[0] if len(moved) == 1 else moved)
    _refresh_loaded_heads(session, heads, recorded_at)
    events = []
    for event_id, row in zip(ids, rows, strict=True):
        event = CustodyEvent(id=event_id, **row)
        make_transient_to_detached(event)  # persistent without a second INSERT
        events.append(event)
    session.add_all(events)
    return events


def chain_events(session: Session, chain: str) -> Sequence[CustodyEvent]:
    """A chain's events in order."""
    return session.scalars(
        select(CustodyEvent).where(CustodyEvent.chain == chain).order_by(CustodyEvent.seq)
    ).all()


@dataclass
class VerificationReport:
    """The outcome of recomputing every chain and checking every checkpoint."""

    events: int = 0
    chains: int = 0
    checkpoints: int = 0
    first_break: Break | None = None
    checked_at: dt.datetime = field(default_factory=utcnow)

    @property
    def intact(self) -> bool:
        """True when nothing was found broken."""
        return self.first_break is None


def verify_ledger(
    session: Session,
    public_keys: Mapping[str, Ed25519PublicKey],
    anchors: Sequence[SignedCheckpoint] = (),
) -> VerificationReport:
    """Recompute every chain, compare the heads, and check every signed checkpoint.

    `anchors` are checkpoints kept outside the database: they are checked against the
    recomputed ledger like the stored ones, so deleting the stored checkpoints (triggers
    off) and rewriting the ledger is still caught.
    """
    report = VerificationReport()
    verifier = ChainVerifier()
    root = RootBuilder()
    stored = [
        _signed(checkpoint)
        for checkpoint in session.scalars(
            select(LedgerCheckpoint).order_by(LedgerCheckpoint.upto_event_id)
        )
    ]
    checkpoints = sorted([*stored, *anchors], key=lambda signed: signed.claim.upto_event_id)

    def check_checkpoint(index: int) -> Break | None:
        found = _check_checkpoint(checkpoints[index], root, public_keys)
        if found is None:
            report.checkpoints += 1
        return found

    with _event_rows(session) as rows:
        report.first_break = verifier.check_rows(
            rows,
            on_hash=root.add,
            pause_after=[checkpoint.claim.upto_event_id for checkpoint in checkpoints],
            on_pause=check_checkpoint,
        )
    if report.first_break is None:
        recorded = {
            chain: (seq, head_hash)
            for chain, seq, head_hash in session.connection().execute(
                select(_HEADS.c.chain, _HEADS.c.seq, _HEADS.c.hash)
            )
        }
        report.first_break = verifier.check_heads(recorded)
    return _finish(report, verifier)


def create_checkpoint(
    session: Session, private_key: Ed25519PrivateKey, *, upto: int | None = None
) -> LedgerCheckpoint:
    """Sign the ledger up to event id `upto` (default: the newest); the caller commits.

    With concurrent writers, take `upto` from `settle_ledger` in a transaction of its own
    first, so that no event at or below it can still be uncommitted.
    """
    if upto is None:
        upto = session.scalar(select(func.max(CustodyEvent.id))) or 0
    hashes = session.scalars(
        select(CustodyEvent.hash).where(CustodyEvent.id <= upto).order_by(CustodyEvent.id)
    )
    root = RootBuilder()
    for event_hash in hashes:
        root.add(event_hash)
    now = utcnow()
    claim = CheckpointClaim(
        upto_event_id=upto,
        event_count=root.count,
        root=root.hexdigest(),
        created_at=format_time(now),
    )
    signer, signature = sign(claim, private_key)
    checkpoint = LedgerCheckpoint(
        created_at=now,
        upto_event_id=upto,
        event_count=root.count,
        root=claim.root,
        key_id=signer,
        signature=signature,
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


def settle_ledger(session: Session) -> int:
    """The newest event id below which every event has committed.

    On PostgreSQL a SHARE lock conflicts with INSERT: taking it waits for the writers in
    flight, and ids are allocated on insert, so once it is held every id up to the maximum
    is committed; writers after it get higher ids. SQLite has one writer at a time anyway.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE custody_events IN SHARE MODE"))
    return session.scalar(select(func.max(CustodyEvent.id))) or 0


def _finish(report: VerificationReport, verifier: ChainVerifier) -> VerificationReport:
    report.events = verifier.events
    report.chains = len(verifier.heads)
    return report


def checkpoint_anchor(checkpoint: LedgerCheckpoint) -> dict[str, object]:
    """The checkpoint as an anchor to keep outside the database (see `verify_ledger`)."""
    return _signed(checkpoint).anchor()


def _signed(checkpoint: LedgerCheckpoint) -> SignedCheckpoint:
    claim = CheckpointClaim(
        upto_event_id=checkpoint.upto_event_id,
        event_count=checkpoint.event_count,
        root=checkpoint.root,
        created_at=format_time(checkpoint.created_at),
    )
    return SignedCheckpoint(
        f"checkpoint {checkpoint.id}", claim, checkpoint.key_id, checkpoint.signature
    )


def _check_checkpoint(
    checkpoint: SignedCheckpoint, root: RootBuilder, public_keys: Mapping[str, Ed25519PublicKey]
) -> Break | None:
    claim = checkpoint.claim
    if not signature_is_valid(claim, checkpoint.key_id, checkpoint.signature, public_keys):
        reason = (
            "its signature does not verify"
            if checkpoint.key_id in public_keys
            else f"it is signed by key {checkpoint.key_id}, which is not a trusted key"
        )
        return Break(checkpoint.name, None, claim.upto_event_id, reason)
    if (root.count, root.hexdigest()) != (claim.event_count, claim.root):
        return Break(
            checkpoint.name,
            None,
            claim.upto_event_id,
            f"the ledger up to event {claim.upto_event_id} is not the one signed "
            f"({root.count} events now, {claim.event_count} signed)",
        )
    return None


@contextmanager
def _event_rows(session: Session) -> Iterator[Iterable[EventRow]]:
    """Every event in id order as the positional rows `ChainVerifier.check_rows` takes.

    On psycopg: a plain cursor streamed in chunks (the server sends while we check), with
    the times spelt by PostgreSQL as `format_time` spells them. Elsewhere (SQLite): Core
    rows, the times formatted in Python. Leaving early stops the query.
    """
    connection = session.connection()
    if connection.dialect.driver == "psycopg":
        driver = connection.connection.driver_connection
        assert driver is not None  # noqa: S101 - a live connection of the session
        with driver.cursor(binary=True) as cursor:
            # Stopping a stream half way cancels its query, which aborts the transaction:
            # a savepoint keeps the caller's transaction usable.
            guarded = not driver.autocommit
            if guarded:
                cursor.execute("SAVEPOINT celltrail_verify")
            rows = cursor.stream(_PG_EVENT_ROWS, size=_STREAM_CHUNK)
            try:
                yield rows
            finally:
                rows.close()
                if guarded:
                    cursor.execute("ROLLBACK TO SAVEPOINT celltrail_verify")
                    cursor.execute("RELEASE SAVEPOINT celltrail_verify")
        return
    result = connection.execute(_EVENT_ROWS.execution_options(yield_per=_STREAM_CHUNK))
    try:
        yield ((*row[:7], format_time(row[7]), format_time(row[8]), *row[9:]) for row in result)
    finally:
        result.close()


def _lock_heads(connection: Connection, chains: list[str]) -> dict[str, tuple[int, str | None]]:
    """(seq, hash) of each chain's head, its row locked; missing heads are created first.

    One chain: SELECT ... FOR UPDATE, and only when its head is missing INSERT ... ON
    CONFLICT DO NOTHING, then lock it. Several: the INSERT first, then every head locked in
    chain order, so that no head is held while another is waited for out of order.
    """
    if len(chains) == 1:
        locked = _locked_heads(connection, chains)
        if locked:
            return locked
    upsert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    connection.execute(
        upsert(_HEADS)
        .values(
            [{"chain": chain, "seq": 0, "hash": None, "updated_at": utcnow()} for chain in chains]
        )
        .on_conflict_do_nothing(index_elements=["chain"])
    )
    return _locked_heads(connection, chains)


def _locked_heads(connection: Connection, chains: list[str]) -> dict[str, tuple[int, str | None]]:
    return {
        chain: (seq, head_hash)
        for chain, seq, head_hash in connection.execute(_LOCK_HEADS, {"chains": chains})
    }


def _refresh_loaded_heads(
    session: Session, heads: Mapping[str, tuple[int, str | None]], updated_at: dt.datetime
) -> None:
    """Bring ChainHead objects this session already holds up to date with the new heads."""
    loaded = session.identity_map
    for chain, (seq, head_hash) in heads.items():
        head = loaded.get(identity_key(ChainHead, chain))
        if head is not None:
            set_committed_value(head, "seq", seq)
            set_committed_value(head, "hash", head_hash)
            set_committed_value(head, "updated_at", updated_at)


def _actor(user: User | None) -> Actor | None:
    if user is None:
        return None
    return Actor(user=user.username, name=user.full_name, role=user.role)
