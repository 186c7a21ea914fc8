"""Trial tables: protocols, their sites, arms, visits, subjects, randomization, kits and
allocations. An arm is stored, and shown only to the unblinded (DESIGN.md §5, hazard 12)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lots.base import Base, JSONDocument, utcnow
from lots.batch import Lot, Vial
from lots.models import Product, Site, User


class Trial(Base):
    """A clinical protocol. A blinded trial's kits carry `blinded_gtin`, never an arm's."""

    __tablename__ = "trials"

    id: Mapped[int] = mapped_column(primary_key=True)
    protocol_id: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    phase: Mapped[str] = mapped_column(String(32))
    sponsor: Mapped[str] = mapped_column(String(200))
    blinded: Mapped[bool] = mapped_column(Boolean, default=False)
    # The blinded product's identity on kit labels: a GTIN and a name both arms share.
    blinded_gtin: Mapped[str | None] = mapped_column(String(14), unique=True)
    blinded_name: Mapped[str | None] = mapped_column(String(200))
    # Permuted blocks: block sizes are these multiples of the arms' ratio sum, drawn from a
    # generator seeded by the server's CSPRNG when the lists are made. The seed is never
    # kept or shown: the trial keeps its SHA-256 (an audit can check a seed disclosed later).
    randomization_commitment: Mapped[str | None] = mapped_column(String(64))
    block_multipliers: Mapped[list[int] | None] = mapped_column(JSONDocument)
    # Participants the protocol plans; each site's randomization list is generated this long.
    planned_subjects: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    arms: Mapped[list[Arm]] = relationship(order_by="Arm.code", lazy="selectin")
    visits: Mapped[list[Visit]] = relationship(order_by="Visit.number", lazy="selectin")
    sites: Mapped[list[TrialSite]] = relationship(lazy="selectin")

    @property
    def chain(self) -> str:
        """The trial's ledger chain (randomization, unblinding)."""
        return f"trial:{self.protocol_id}"


class TrialSite(Base):
    """A clinical site of a trial (a ward) and the pharmacy that supplies it: subjects are
    enrolled at the ward and seen by both."""

    __tablename__ = "trial_sites"
    __table_args__ = (UniqueConstraint("trial_id", "site_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    pharmacy_site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))

    site: Mapped[Site] = relationship(foreign_keys=[site_id], lazy="joined")
    pharmacy_site: Mapped[Site] = relationship(foreign_keys=[pharmacy_site_id], lazy="joined")


class Arm(Base):
    """A treatment arm: what its subjects receive, by which route, at which dose."""

    __tablename__ = "arms"
    __table_args__ = (
        UniqueConstraint("trial_id", "code"),
        CheckConstraint("ratio >= 1", name="ratio_positive"),
        CheckConstraint("doses >= 1", name="doses_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"))
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    ratio: Mapped[int] = mapped_column(Integer, default=1)
    control: Mapped[bool] = mapped_column(Boolean, default=False)
    route: Mapped[str] = mapped_column(String(32))
    cells_per_dose: Mapped[int | None] = mapped_column(BigInteger)
    cells_per_kg: Mapped[int | None] = mapped_column(BigInteger)
    volume_ml: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))
    doses: Mapped[int] = mapped_column(Integer, default=1)

    products: Mapped[list[ArmProduct]] = relationship(lazy="selectin")


class ArmProduct(Base):
    """A product an arm's subjects may receive (the sepsis arm takes either MSC product)."""

    __tablename__ = "arm_products"
    __table_args__ = (UniqueConstraint("arm_id", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    arm_id: Mapped[int] = mapped_column(ForeignKey("arms.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))

    product: Mapped[Product] = relationship(lazy="joined")


class Visit(Base):
    """A dosing visit: day `day` after the subject's day 1, within its window."""

    __tablename__ = "visits"
    __table_args__ = (
        UniqueConstraint("trial_id", "number"),
        CheckConstraint("window_before_days >= 0 AND window_after_days >= 0", name="window"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"))
    number: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    day: Mapped[int] = mapped_column(Integer)
    window_before_days: Mapped[int] = mapped_column(Integer, default=0)
    window_after_days: Mapped[int] = mapped_column(Integer, default=0)


class Subject(Base):
    """A trial participant, known only by a pseudonymous code (no name, no record number).

    `arm_id` is set by randomization (or enrolment in an open-label arm) and leaves the
    service only for unblinded users or through a recorded emergency unblinding.
    """

    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("trial_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    wristband: Mapped[str] = mapped_column(String(64), unique=True)
    contraindications: Mapped[list[str]] = mapped_column(JSONDocument, default=list)
    weight_kg: Mapped[Decimal | None] = mapped_column(Numeric(6, 2))
    day_one: Mapped[dt.date | None] = mapped_column(Date)
    arm_id: Mapped[int | None] = mapped_column(ForeignKey("arms.id"))
    randomized_at: Mapped[dt.datetime | None]
    enrolled_by: Mapped[str] = mapped_column(String(64))
    enrolled_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Withdrawal (by the investigator, or the subject's own withdrawal of consent): the
    # subject stays in the trail, gets no more doses, kits or randomization.
    withdrawn_at: Mapped[dt.datetime | None]
    withdrawn_by: Mapped[str | None] = mapped_column(String(64))
    withdrawal_reason: Mapped[str | None] = mapped_column(Text)
    consent_withdrawn: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    trial: Mapped[Trial] = relationship(lazy="joined")
    site: Mapped[Site] = relationship(lazy="joined")
    arm: Mapped[Arm | None] = relationship()
    unblinding: Mapped[Unblinding | None] = relationship(viewonly=True, lazy="selectin")

    @property
    def chain(self) -> str:
        """The subject's ledger chain (allocations, checks, administrations)."""
        return f"subject:{self.trial.protocol_id}:{self.code}"

    @property
    def withdrawn(self) -> bool:
        """Whether the subject has left the trial."""
        return self.withdrawn_at is not None


class RandomizationSlot(Base):
    """One line of a site's randomization list, generated in advance from the trial's seed;
    the next free slot goes to the next subject randomized at that site."""

    __tablename__ = "randomization_slots"
    __table_args__ = (
        UniqueConstraint("trial_id", "site_id", "sequence"),
        Index("ix_randomization_slots_free", "trial_id", "site_id", "subject_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    sequence: Mapped[int] = mapped_column(Integer)
    block: Mapped[int] = mapped_column(Integer)
    block_size: Mapped[int] = mapped_column(Integer)
    arm_id: Mapped[int] = mapped_column(ForeignKey("arms.id"))
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subjects.id"), unique=True)
    assigned_at: Mapped[dt.datetime | None]
    # The keyed commitment to this slot's arm, made with the seed when the list was made;
    # the RANDOMIZED event carries it.
    arm_commitment: Mapped[str | None] = mapped_column(String(64))


class Kit(Base):
    """A blinded kit: a vial of an active or control lot behind one kit number and one
    packaging lot both arms share."""

    __tablename__ = "kits"
    __table_args__ = (UniqueConstraint("trial_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id"), index=True)
    number: Mapped[str] = mapped_column(String(20))
    packaging_lot: Mapped[str] = mapped_column(String(20))
    arm_id: Mapped[int] = mapped_column(ForeignKey("arms.id"))
    vial_id: Mapped[int] = mapped_column(ForeignKey("vials.id"), unique=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    trial: Mapped[Trial] = relationship(lazy="joined")
    vial: Mapped[Vial] = relationship(lazy="joined")


class Allocation(Base):
    """A vial or kit (or, for an exceptional release, any vial of one lot) set aside for one
    subject's visit. One per visit and one per vial; the ledger event is the record."""

    __tablename__ = "allocations"
    __table_args__ = (
        UniqueConstraint("subject_id", "visit_id"),
        CheckConstraint("vial_id IS NOT NULL OR lot_id IS NOT NULL", name="allocates_vial_or_lot"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), index=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id"))
    vial_id: Mapped[int | None] = mapped_column(ForeignKey("vials.id"), unique=True)
    kit_id: Mapped[int | None] = mapped_column(ForeignKey("kits.id"), unique=True)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("lots.id"))
    allocated_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    allocated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    event_hash: Mapped[str] = mapped_column(String(64))

    subject: Mapped[Subject] = relationship()
    visit: Mapped[Visit] = relationship()
    vial: Mapped[Vial | None] = relationship()
    kit: Mapped[Kit | None] = relationship()
    lot: Mapped[Lot | None] = relationship()
    allocated_by: Mapped[User] = relationship()


class Unblinding(Base):
    """An emergency unblinding of one subject, signed by an authorised clinician."""

    __tablename__ = "unblindings"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), unique=True)
    by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reason: Mapped[str] = mapped_column(Text)
    event_hash: Mapped[str] = mapped_column(String(64))

    subject: Mapped[Subject] = relationship()
    by: Mapped[User] = relationship()


class BedsideCheck(Base):
    """One bedside check, GO or NO-GO, with every check's result. `fingerprint` is a hash of
    everything it judged, so a confirmation that no longer matches needs a new check."""

    __tablename__ = "bedside_checks"
    __table_args__ = (Index("ix_bedside_checks_vial_id", "vial_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    outcome: Mapped[str] = mapped_column(String(8))
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("subjects.id"), index=True)
    vial_id: Mapped[int | None] = mapped_column(ForeignKey("vials.id"))
    kit_id: Mapped[int | None] = mapped_column(ForeignKey("kits.id"))
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument)
    fingerprint: Mapped[str] = mapped_column(String(64))
    checked_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    checked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    event_hash: Mapped[str] = mapped_column(String(64))

    subject: Mapped[Subject | None] = relationship()
    vial: Mapped[Vial | None] = relationship()
    kit: Mapped[Kit | None] = relationship()
    visit: Mapped[Visit | None] = relationship()
    checked_by: Mapped[User] = relationship()


class Administration(Base):
    """A dose given after a GO, signed by the administering clinician and a second person.
    One per vial, one per check and one per subject's visit: the unique constraints are the
    concurrency backstop."""

    __tablename__ = "administrations"
    __table_args__ = (
        CheckConstraint("administered_by_id <> witness_id", name="two_people"),
        # One dose per visit: a second vial for a visit already given is refused here too.
        UniqueConstraint("subject_id", "visit_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    check_id: Mapped[int] = mapped_column(ForeignKey("bedside_checks.id"), unique=True)
    vial_id: Mapped[int] = mapped_column(ForeignKey("vials.id"), unique=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), index=True)
    visit_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"))
    administered_at: Mapped[dt.datetime]
    route: Mapped[str] = mapped_column(String(32))
    dose_cells: Mapped[int | None] = mapped_column(BigInteger)
    volume_ml: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    administered_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    witness_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    event_hash: Mapped[str] = mapped_column(String(64))

    check: Mapped[BedsideCheck] = relationship()
    vial: Mapped[Vial] = relationship()
    subject: Mapped[Subject] = relationship()
    visit: Mapped[Visit | None] = relationship()
    site: Mapped[Site] = relationship()
    administered_by: Mapped[User] = relationship(foreign_keys=[administered_by_id])
    witness: Mapped[User] = relationship(foreign_keys=[witness_id])
