"""Verifying the ledger: every chain and head recomputed, checkpoints signed and checked."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Table, func, select, text
from sqlalchemy.orm import Session

from custody.ledger.chain import Break, ChainVerifier, EventRow, format_time
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


@dataclass
class VerificationReport:
    """The outcome of recomputing every chain and checking every checkpoint."""

    events: int = 0
    chains: int = 0
    checkpoints: int = 0
    first_break: Break | None = None
    checked_at: dt.datetime = field(default_factory=utcnow)
    # (table, row, reason) of each state column that disagrees with the events it projects,
    # filled by `custody.integrity.verify_record`.
    disagreements: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        """True when nothing was found broken."""
        return self.first_break is None and not self.disagreements


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
            # No event after a checkpoint may be dated before it was signed.
            verifier.witness(checkpoints[index].claim.created_at)
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


def checkpoint_due(
    session: Session,
    *,
    every_events: int,
    every: dt.timedelta,
    now: dt.datetime | None = None,
) -> bool:
    """Whether a new checkpoint is due: `every_events` events since the last one, or any
    event at all once `every` has passed since it (none when nothing new was recorded)."""
    newest = session.scalar(select(func.max(CustodyEvent.id))) or 0
    last = session.scalars(
        select(LedgerCheckpoint).order_by(LedgerCheckpoint.upto_event_id.desc()).limit(1)
    ).first()
    if last is None:
        return newest > 0
    since = session.scalar(
        select(func.count(CustodyEvent.id)).where(CustodyEvent.id > last.upto_event_id)
    )
    if not since:
        return False
    return since >= every_events or (now or utcnow()) - last.created_at >= every


def write_witness(directory: Path, anchor: Mapping[str, object]) -> Path:
    """Keep a signed anchor in a witness directory outside the database (a WORM mount, a
    synced share): one file per checkpoint, never overwritten."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"checkpoint-{int(str(anchor['upto_event_id'])):012d}.json"
    with path.open("x", encoding="utf-8") as handle:  # "x": an existing anchor is never replaced
        json.dump(anchor, handle, sort_keys=True)
        handle.write("\n")
    return path


def checkpoint_anchor(checkpoint: LedgerCheckpoint) -> dict[str, object]:
    """The checkpoint as an anchor to keep outside the database (see `verify_ledger`)."""
    return _signed(checkpoint).anchor()


def _finish(report: VerificationReport, verifier: ChainVerifier) -> VerificationReport:
    report.events = verifier.events
    report.chains = len(verifier.heads)
    return report


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
