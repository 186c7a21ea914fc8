"""Ledger tables. Events and checkpoints have no update or delete path, in code or in SQL."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from lots.base import Base, utcnow

EventId = BigInteger().with_variant(Integer, "sqlite")


class CustodyEvent(Base):
    """One fact in the ledger; `body` holds the exact canonical bytes that were hashed.

    The other columns are indexes into the body for queries; verification checks that they
    agree with it, so editing a column alone is as visible as editing the body.
    """

    __tablename__ = "custody_events"
    __table_args__ = (
        UniqueConstraint("chain", "seq"),
        UniqueConstraint("hash"),
        Index("ix_custody_events_site_id_occurred_at", "site_id", "occurred_at"),
        Index("ix_custody_events_event_type", "event_type"),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True)
    chain: Mapped[str] = mapped_column(String(160))
    seq: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(48))
    occurred_at: Mapped[dt.datetime]
    recorded_at: Mapped[dt.datetime]
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)


class ChainHead(Base):
    """The last event of each chain: the row writers lock, and a check on a deleted tail."""

    __tablename__ = "chain_heads"

    chain: Mapped[str] = mapped_column(String(160), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LedgerCheckpoint(Base):
    """An Ed25519 signature over the ledger up to one event, with a key kept outside the DB."""

    __tablename__ = "ledger_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    upto_event_id: Mapped[int] = mapped_column(EventId)
    event_count: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(128))
