"""Master data and accounts: sites, users, tokens, products with versioned specifications."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
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


class SiteKind(enum.StrEnum):
    """What a site does in the path of a vial."""

    MANUFACTURER = "manufacturer"
    QC_LAB = "qc_lab"
    COURIER_DEPOT = "courier_depot"
    HOSPITAL_PHARMACY = "hospital_pharmacy"
    WARD = "ward"


class Site(Base):
    """A place where custody can be held: a manufacturer, a lab, a depot, a hospital."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    gln: Mapped[str | None] = mapped_column(String(13), unique=True)
    # IANA zone name (e.g. Asia/Shanghai): dates such as expiry and visit days are judged in
    # the local calendar of the site where the check happens.
    time_zone: Mapped[str] = mapped_column(String(64))
    # A ward is supplied by one hospital pharmacy: vials reach it only from there.
    supplied_by_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    # The bedside takes only authenticated wristbands unless the site has allowed plain ones
    # (then every GO says so).
    plain_wristbands_allowed: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    supplied_by: Mapped[Site | None] = relationship(remote_side=[id])

    @property
    def supplied_by_code(self) -> str | None:
        """The code of the pharmacy that supplies this ward."""
        return self.supplied_by.code if self.supplied_by is not None else None


class User(Base):
    """A person who signs in; the printed name is the one on their signatures."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    unblinded: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set by an administrator's reset: the user may do nothing but choose a new password.
    must_change_password: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )

    site: Mapped[Site] = relationship(lazy="joined", innerjoin=True)


class ApiToken(Base):
    """A bearer token; only its SHA-256 is stored, so a database dump grants nothing."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(lazy="joined", innerjoin=True)


class LoginAttempt(Base):
    """One sign-in attempt, kept for rate limiting and as the audit of failed logins."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_username_at", "username", "at"),
        Index("ix_login_attempts_remote_addr_at", "remote_addr", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    remote_addr: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    # Refused while the account waited: audited, but not a guess (the wait never renews).
    throttled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """A change to master data or users, with its old and new values. Append-only."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_entity", "entity_type", "entity_key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_key: Mapped[str] = mapped_column(String(128))
    old: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    new: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)


class Product(Base):
    """A cell therapy product; what may change lives in its versions."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    gtin: Mapped[str] = mapped_column(String(14), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    versions: Mapped[list[ProductVersion]] = relationship(
        back_populates="product", order_by="ProductVersion.version"
    )

    @property
    def current(self) -> ProductVersion:
        """The newest version, which new lots are made under."""
        return self.versions[-1]


class ProductVersion(Base):
    """One immutable version of a product's attributes and release specification."""

    __tablename__ = "product_versions"
    __table_args__ = (
        UniqueConstraint("product_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("shelf_life_days > 0", name="shelf_life_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(200))
    # The name the cryovial label prints in full (the full name may not fit 38 x 13 mm).
    label_name: Mapped[str | None] = mapped_column(String(40))
    cell_type: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(16))
    route: Mapped[str] = mapped_column(String(32))
    dose: Mapped[str] = mapped_column(String(200))
    cells_per_dose: Mapped[int | None] = mapped_column(BigInteger)
    storage_limit_c: Mapped[Decimal] = mapped_column(Numeric(6, 1))
    storage_condition: Mapped[str] = mapped_column(String(200))
    shelf_life_days: Mapped[int] = mapped_column(Integer)
    post_thaw_window_minutes: Mapped[int | None] = mapped_column(Integer)
    # The policy for its shipments: a logger record covering sealing to receipt is required
    # before any vial of it is GO at the bedside.
    temperature_record_required: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    max_passage: Mapped[int | None] = mapped_column(Integer)
    change_reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    product: Mapped[Product] = relationship(back_populates="versions")
    specification: Mapped[list[SpecificationLine]] = relationship(
        order_by="SpecificationLine.position", lazy="selectin"
    )


class Criterion(enum.StrEnum):
    """How a specification line accepts a result."""

    RANGE = "range"  # numeric, with an optional lower and/or upper limit, each (ex|in)clusive
    EQUALS = "equals"  # the result must read exactly `expected`
    PASS_FAIL = "pass_fail"  # noqa: S105 - a criterion, not a password  # the result is pass or fail; pass conforms
    REPORT_ONLY = "report_only"  # recorded, never judged


class SpecificationLine(Base):
    """One test of a release specification with its acceptance criterion."""

    __tablename__ = "specification_lines"
    __table_args__ = (UniqueConstraint("product_version_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_version_id: Mapped[int] = mapped_column(ForeignKey("product_versions.id"))
    position: Mapped[int] = mapped_column(Integer)
    test: Mapped[str] = mapped_column(String(120))
    method: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str | None] = mapped_column(String(32))
    criterion: Mapped[str] = mapped_column(String(16))
    lower: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))
    lower_inclusive: Mapped[bool] = mapped_column(Boolean, default=True)
    upper: Mapped[Decimal | None] = mapped_column(Numeric(20, 6))
    upper_inclusive: Mapped[bool] = mapped_column(Boolean, default=True)
    expected: Mapped[str | None] = mapped_column(String(200))
