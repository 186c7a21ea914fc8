"""Manufacturing's own tables, each append-only: label print jobs and the per-vial label
records, kept for label reconciliation (FACT 8th ed.), and the out-of-specification
investigations, whose course is read from the lot's chain."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lots.base import Base, utcnow
from lots.batch import QcResult
from lots.models import User


class LabelPrintJob(Base):
    """One rendering of labels for printing: who, when, which format, and why, if a reprint."""

    __tablename__ = "label_print_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    format: Mapped[str] = mapped_column(String(8))
    layout: Mapped[str | None] = mapped_column(String(8))
    dpi: Mapped[int] = mapped_column(Integer)
    label_count: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    quarantined: Mapped[bool]
    printed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    printed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    event_hash: Mapped[str] = mapped_column(String(64))

    printed_by: Mapped[User] = relationship()


class LabelPrint(Base):
    """One label of one vial; a reprint names the label it replaces (which was destroyed)."""

    __tablename__ = "label_prints"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("label_print_jobs.id"), index=True)
    vial_id: Mapped[int] = mapped_column(ForeignKey("vials.id"), index=True)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("label_prints.id"), unique=True)


class OosInvestigation(Base):
    """The investigation an out-of-specification result opened (OOS-1, OOS-2… per lot).

    Append-only: its phase, findings and QA's signed outcome are events on the lot's chain
    (custody.manufacturing.oos), so no column here can be edited behind the ledger's back.
    """

    __tablename__ = "oos_investigations"
    __table_args__ = (UniqueConstraint("lot_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    result_id: Mapped[int] = mapped_column(ForeignKey("qc_results.id"), unique=True)
    opened_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    event_hash: Mapped[str] = mapped_column(String(64))

    result: Mapped[QcResult] = relationship()
