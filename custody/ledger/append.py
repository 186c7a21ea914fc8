"""Appending to the ledger: drafts linked into their chains under locked chain heads."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from custody.ledger.chain import Actor, build_body, link
from custody.ledger.models import ChainHead, CustodyEvent
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


def append_events(session: Session, drafts: Sequence[EventDraft]) -> list[CustodyEvent]:
    """Link and add events in the caller's transaction; never commits.

    An event's `recorded_at` is the ledger's own clock at this call, never a time a service
    was told (that is its `occurred_at`): so recording times follow the id order, and
    `ledger verify` refuses one that goes back (a backdated append).

    Each chain's head row is locked first (in chain order, so two writers touching the same
    chains cannot deadlock); the (chain, seq) unique constraint is the backstop. The events
    come back persistent in the session, as if flushed.
    """
    if not drafts:
        return []
    recorded_at = utcnow()
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
