"""Cold-chain tables: a shipper's logger readings (append-only) and the excursions they show."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lots.base import Base
from lots.models import User

ReadingId = BigInteger().with_variant(Integer, "sqlite")


class Disposition(enum.StrEnum):
    """QA's decision on the vials an excursion touched."""

    USE = "use"
    DESTROY = "destroy"


class TemperatureReading(Base):
    """One logged temperature of a shipment, as imported; never changed or removed.

    `event_hash` is the TEMPERATURE_LOGGED event that attached it, so the export and an
    auditor can tell which import brought each reading.
    """

    __tablename__ = "temperature_readings"
    __table_args__ = (UniqueConstraint("shipment_id", "logger_id", "at"),)

    id: Mapped[int] = mapped_column(ReadingId, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"))
    at: Mapped[dt.datetime]
    celsius: Mapped[Decimal] = mapped_column(Numeric(8, 3))
    # The value as logged when the logger recorded °F (the original record); else None.
    fahrenheit: Mapped[Decimal | None] = mapped_column(Numeric(8, 3))
    logger_id: Mapped[str] = mapped_column(String(40))
    event_hash: Mapped[str] = mapped_column(String(64))


class ShipmentExcursion(Base):
    """An excursion found in a shipment's readings; QA's signed disposition closes it.

    While `disposition` is null, every vial that travelled in the shipper is quarantined
    (custody.vials derives it); the ledger events are the record, this row the index.
    """

    __tablename__ = "excursions"
    __table_args__ = (
        CheckConstraint(
            "disposition IS NULL OR disposition IN ('use', 'destroy')", name="disposition_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    logger_id: Mapped[str | None] = mapped_column(String(40))
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime]
    peak_c: Mapped[Decimal | None] = mapped_column(Numeric(8, 3))
    reading_count: Mapped[int] = mapped_column(Integer)
    ongoing: Mapped[bool]
    detected_at: Mapped[dt.datetime]
    event_hash: Mapped[str] = mapped_column(String(64))
    disposition: Mapped[str | None] = mapped_column(String(8))
    disposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    disposed_at: Mapped[dt.datetime | None]
    disposition_reason: Mapped[str | None] = mapped_column(Text)
    disposition_event_hash: Mapped[str | None] = mapped_column(String(64))

    disposed_by: Mapped[User | None] = relationship()

    @property
    def open(self) -> bool:
        """Whether QA has yet to decide: the shipper's vials are quarantined meanwhile."""
        return self.disposition is None
