"""Shipment tables: a dry shipper, the vials packed in it, its handoffs and its receipt."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lots.base import Base, JSONDocument, utcnow
from lots.batch import Vial
from lots.models import Site, User


class ShipmentStatus(enum.StrEnum):
    """Where a shipment is in its journey."""

    OPEN = "open"  # being packed
    SEALED = "sealed"  # closed with a seal number, waiting for the first courier
    IN_TRANSIT = "in_transit"  # in a courier's hands
    RECEIVED = "received"  # unpacked at the destination


class Shipment(Base):
    """A dry shipper from one site to another. `custodian` is the projection of the
    shipment chain's last handoff, updated in the same transaction as its event."""

    __tablename__ = "shipments"
    __table_args__ = (Index("ix_shipments_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sscc: Mapped[str] = mapped_column(String(18), unique=True)
    asset_id: Mapped[str | None] = mapped_column(String(40))
    logger_id: Mapped[str | None] = mapped_column(String(40))
    from_site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    to_site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    storage_limit_c: Mapped[Decimal | None] = mapped_column(Numeric(6, 1))
    hold_time_hours: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=ShipmentStatus.OPEN)
    seal_number: Mapped[str | None] = mapped_column(String(40))
    sealed_at: Mapped[dt.datetime | None]
    shipped_at: Mapped[dt.datetime | None]
    received_at: Mapped[dt.datetime | None]
    custodian_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    custodian_since: Mapped[dt.datetime | None]
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    from_site: Mapped[Site] = relationship(foreign_keys=[from_site_id])
    to_site: Mapped[Site] = relationship(foreign_keys=[to_site_id])
    custodian: Mapped[User | None] = relationship(foreign_keys=[custodian_id])
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])

    @property
    def chain(self) -> str:
        """The shipment's ledger chain."""
        return f"shipment:{self.sscc}"


class ShipmentVial(Base):
    """A vial packed into a shipment; unpacking stamps `unpacked_at`, receipt `received_at`."""

    __tablename__ = "shipment_vials"
    __table_args__ = (UniqueConstraint("shipment_id", "vial_id", "packed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    vial_id: Mapped[int] = mapped_column(ForeignKey("vials.id"), index=True)
    packed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    unpacked_at: Mapped[dt.datetime | None]
    received_at: Mapped[dt.datetime | None]

    vial: Mapped[Vial] = relationship()


class Handoff(Base):
    """One change of hands of a shipper; the ledger event is the record, this the index."""

    __tablename__ = "handoffs"
    __table_args__ = (UniqueConstraint("shipment_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    giver_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    taker_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    occurred_at: Mapped[dt.datetime]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    late: Mapped[bool]
    signed: Mapped[bool]
    event_hash: Mapped[str] = mapped_column(String(64))

    giver: Mapped[User] = relationship(foreign_keys=[giver_id])
    taker: Mapped[User] = relationship(foreign_keys=[taker_id])


class Receipt(Base):
    """The reconciliation of a shipment at its destination: what came, what did not."""

    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), unique=True)
    received_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    seal_number: Mapped[str] = mapped_column(String(40))
    reconciliation: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    event_hash: Mapped[str] = mapped_column(String(64))

    shipment: Mapped[Shipment] = relationship()
    received_by: Mapped[User] = relationship()
