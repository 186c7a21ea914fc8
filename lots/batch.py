"""The batch record's tables: cell banks and donors, lots, vials, QC results, deviations and
release decisions."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lots.base import Base, utcnow
from lots.models import Product, ProductVersion, Site, SpecificationLine, User


class Eligibility(enum.StrEnum):
    """A donor eligibility determination (21 CFR 1271 subpart C)."""

    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"
    PENDING = "pending"


class BankKind(enum.StrEnum):
    """Where a bank sits in the genealogy."""

    CELL_LINE = "cell_line"  # an iPSC line, the root of its banks
    MASTER = "master"  # MCB
    WORKING = "working"  # WCB, made from a master bank
    DONOR = "donor"  # an MSC donor's bank


class LotStatus(enum.StrEnum):
    """The lot status machine of DESIGN.md §2 (expiry is derived, never a status)."""

    IN_PROCESS = "in_process"
    QUARANTINE = "quarantine"
    RELEASED = "released"
    EXCEPTIONALLY_RELEASED = "exceptionally_released"
    REJECTED = "rejected"
    RECALLED = "recalled"


class Donor(Base):
    """An MSC donor, known only by a pseudonymous code."""

    __tablename__ = "donors"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    eligibility: Mapped[str] = mapped_column(String(16))
    eligibility_note: Mapped[str] = mapped_column(Text, default="")
    determined_by: Mapped[str | None] = mapped_column(String(64))
    determined_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class CellBank(Base):
    """A cell line, master or working bank, or a donor bank; `parent` is its genealogy."""

    __tablename__ = "cell_banks"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(300), default="")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("cell_banks.id"), index=True)
    donor_id: Mapped[int | None] = mapped_column(ForeignKey("donors.id"), index=True)
    passage: Mapped[int | None] = mapped_column(Integer)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    parent: Mapped[CellBank | None] = relationship(remote_side="CellBank.id")
    donor: Mapped[Donor | None] = relationship()
    site: Mapped[Site] = relationship()


class Lot(Base):
    """One manufacturing run of a product from a bank, under one specification version.

    `status` is the projection of the lot's ledger chain, written in the same transaction as
    the event that changes it; the chain remains the record.
    """

    __tablename__ = "lots"
    __table_args__ = (
        CheckConstraint("vials_filled >= 1", name="vials_filled_positive"),
        Index("ix_lots_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    product_version_id: Mapped[int] = mapped_column(ForeignKey("product_versions.id"))
    bank_id: Mapped[int] = mapped_column(ForeignKey("cell_banks.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    qc_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    manufacture_start: Mapped[dt.datetime]
    manufacture_end: Mapped[dt.datetime]
    expires_on: Mapped[dt.date] = mapped_column(Date)
    vials_filled: Mapped[int] = mapped_column(Integer)
    cells_per_vial: Mapped[int] = mapped_column(BigInteger)
    volume_ml: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    status: Mapped[str] = mapped_column(String(32), default=LotStatus.IN_PROCESS)
    donor_eligibility_justification: Mapped[str | None] = mapped_column(Text)
    # An exceptional release is for one subject: its trial's protocol id and its code, which
    # is unique only within that trial. Both are compared, never the code alone.
    exceptional_trial: Mapped[str | None] = mapped_column(String(64))
    exceptional_subject: Mapped[str | None] = mapped_column(String(64))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    product: Mapped[Product] = relationship()
    product_version: Mapped[ProductVersion] = relationship()
    bank: Mapped[CellBank] = relationship()
    site: Mapped[Site] = relationship(foreign_keys=[site_id])
    qc_site: Mapped[Site | None] = relationship(foreign_keys=[qc_site_id])
    created_by: Mapped[User] = relationship()

    @property
    def chain(self) -> str:
        """The lot's ledger chain."""
        return f"lot:{self.number}"

    def is_exceptionally_for(self, protocol_id: str, subject_code: str) -> bool:
        """Whether the lot is released exceptionally for this very subject (trial and code)."""
        return (
            self.status == LotStatus.EXCEPTIONALLY_RELEASED
            and self.exceptional_trial is not None
            and (self.exceptional_trial, self.exceptional_subject) == (protocol_id, subject_code)
        )


class Vial(Base):
    """One labelled container of a lot; its state is derived from its chain, never stored."""

    __tablename__ = "vials"
    __table_args__ = (UniqueConstraint("lot_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(20), unique=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)

    lot: Mapped[Lot] = relationship()

    @property
    def chain(self) -> str:
        """The vial's ledger chain."""
        return f"vial:{self.serial}"


class QcResult(Base):
    """A measured result against one specification line. Append-only: a correction is a new
    result that supersedes this one, with a reason."""

    __tablename__ = "qc_results"
    __table_args__ = (Index("ix_qc_results_lot_id_line_id", "lot_id", "line_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    line_id: Mapped[int] = mapped_column(ForeignKey("specification_lines.id"))
    value: Mapped[str] = mapped_column(String(200))
    numeric_value: Mapped[Decimal | None] = mapped_column(Numeric(24, 8))
    unit: Mapped[str | None] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(200))
    conformance: Mapped[str] = mapped_column(String(16))
    analyst_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    tested_at: Mapped[dt.datetime]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("qc_results.id"), unique=True)
    supersede_reason: Mapped[str | None] = mapped_column(Text)
    event_hash: Mapped[str] = mapped_column(String(64))

    line: Mapped[SpecificationLine] = relationship()
    analyst: Mapped[User] = relationship()


class Deviation(Base):
    """A departure from the process raised against a lot; QA closes it with a signature."""

    __tablename__ = "deviations"
    __table_args__ = (UniqueConstraint("lot_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    capa_reference: Mapped[str | None] = mapped_column(String(64))
    raised_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    raised_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[dt.datetime | None]
    closure_note: Mapped[str | None] = mapped_column(Text)

    raised_by: Mapped[User] = relationship(foreign_keys=[raised_by_id])
    closed_by: Mapped[User | None] = relationship(foreign_keys=[closed_by_id])

    @property
    def is_open(self) -> bool:
        """Whether QA has not closed it yet."""
        return self.closed_at is None


class ReleaseDecision(Base):
    """A signed QA decision on a lot: release, exceptional release, reject or recall.
    Append-only; the ledger event it points to carries the signature manifestation."""

    __tablename__ = "release_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    decision: Mapped[str] = mapped_column(String(32))
    meaning: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    signer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    signer_name: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[dt.datetime]
    subject_code: Mapped[str | None] = mapped_column(String(64))
    physician_name: Mapped[str | None] = mapped_column(String(200))
    physician_request_ref: Mapped[str | None] = mapped_column(String(64))
    risk_evaluation: Mapped[str | None] = mapped_column(Text)
    recall_scope: Mapped[str | None] = mapped_column(String(80))
    event_hash: Mapped[str] = mapped_column(String(64))

    signer: Mapped[User] = relationship()
