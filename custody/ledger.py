"""Appending to the ledger, verifying it, and signing checkpoints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from custody.chain import Actor, Break, ChainVerifier, build_body, format_time, link
from custody.checkpoints import (
    CheckpointClaim,
    RootBuilder,
    SignedCheckpoint,
    sign,
    signature_is_valid,
)
from custody.models import ChainHead, CustodyEvent, LedgerCheckpoint
from lots.base import utcnow
from lots.models import Site, User


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
    chains cannot deadlock); the (chain, seq) unique constraint is the backstop.
    """
    if not drafts:
        return []
    recorded_at = recorded_at or utcnow()
    heads = _lock_heads(session, sorted({draft.chain for draft in drafts}))
    events = []
    for draft in drafts:
        head = heads[draft.chain]
        body = build_body(
            chain=draft.chain,
            seq=head.seq + 1,
            prev=head.hash,
            event_type=draft.event_type,
            occurred_at=draft.occurred_at,
            recorded_at=recorded_at,
            actor=_actor(draft.actor),
            site=draft.site.code if draft.site else None,
            payload=draft.payload,
        )
        canonical, event_hash = link(body)
        events.append(
            CustodyEvent(
                chain=draft.chain,
                seq=head.seq + 1,
                event_type=draft.event_type,
                occurred_at=draft.occurred_at,
                recorded_at=recorded_at,
                actor_user_id=draft.actor.id if draft.actor else None,
                site_id=draft.site.id if draft.site else None,
                prev_hash=head.hash,
                hash=event_hash,
                body=canonical,
            )
        )
        head.seq, head.hash, head.updated_at = head.seq + 1, event_hash, recorded_at
    session.add_all(events)
    session.flush()
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
    pending = iter(checkpoints)
    next_checkpoint = next(pending, None)
    for row in _stream_events(session):
        while next_checkpoint is not None and row.id > next_checkpoint.claim.upto_event_id:
            report.first_break = _check_checkpoint(next_checkpoint, root, public_keys)
            if report.first_break:
                return _finish(report, verifier)
            report.checkpoints += 1
            next_checkpoint = next(pending, None)
        report.first_break = verifier.check(
            event_id=row.id,
            chain=row.chain,
            seq=row.seq,
            prev_hash=row.prev_hash,
            event_hash=row.hash,
            event_type=row.event_type,
            site=row.site_code,
            occurred_at=format_time(row.occurred_at),
            recorded_at=format_time(row.recorded_at),
            actor=row.actor,
            body=row.body,
        )
        if report.first_break:
            return _finish(report, verifier)
        root.add(row.hash)
    for checkpoint in [next_checkpoint, *pending]:
        if checkpoint is None:
            continue
        report.first_break = _check_checkpoint(checkpoint, root, public_keys)
        if report.first_break:
            return _finish(report, verifier)
        report.checkpoints += 1
    recorded = {
        head.chain: (head.seq, head.hash)
        for head in session.execute(select(ChainHead.chain, ChainHead.seq, ChainHead.hash))
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


def _stream_events(session: Session) -> Iterator[Any]:
    query = (
        select(
            CustodyEvent.id,
            CustodyEvent.chain,
            CustodyEvent.seq,
            CustodyEvent.prev_hash,
            CustodyEvent.hash,
            CustodyEvent.event_type,
            CustodyEvent.occurred_at,
            CustodyEvent.recorded_at,
            CustodyEvent.body,
            Site.code.label("site_code"),
            User.username.label("actor"),
        )
        .outerjoin(Site, Site.id == CustodyEvent.site_id)
        .outerjoin(User, User.id == CustodyEvent.actor_user_id)
        .order_by(CustodyEvent.id)
        .execution_options(stream_results=True, yield_per=5000)
    )
    yield from session.execute(query)


def _lock_heads(session: Session, chains: list[str]) -> dict[str, ChainHead]:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(ChainHead)
        .values(
            [{"chain": chain, "seq": 0, "hash": None, "updated_at": utcnow()} for chain in chains]
        )
        .on_conflict_do_nothing(index_elements=["chain"])
    )
    locked = session.scalars(
        select(ChainHead)
        .where(ChainHead.chain.in_(chains))
        .order_by(ChainHead.chain)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {head.chain: head for head in locked}


def _actor(user: User | None) -> Actor | None:
    if user is None:
        return None
    return Actor(user=user.username, name=user.full_name, role=user.role)
