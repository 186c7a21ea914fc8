"""Products and their versioned release specifications: create, read, new version."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from lots.audit import record_change
from lots.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from lots.models import Product, ProductVersion, SpecificationLine
from lots.rules import as_gtin14, is_valid_gtin, specification_problems

VERSIONED_FIELDS = (
    "name",
    "label_name",
    "cell_type",
    "origin",
    "route",
    "dose",
    "cells_per_dose",
    "storage_limit_c",
    "storage_condition",
    "shelf_life_days",
    "post_thaw_window_minutes",
    "temperature_record_required",
    "max_passage",
)
SPEC_FIELDS = (
    "test",
    "method",
    "unit",
    "criterion",
    "lower",
    "lower_inclusive",
    "upper",
    "upper_inclusive",
    "expected",
)


def create_product(
    session: Session,
    *,
    actor: str,
    code: str,
    gtin: str,
    version: Mapping[str, Any],
    specification: Sequence[Mapping[str, Any]],
    change_reason: str = "Initial version",
) -> Product:
    """Create a product with its first version and specification."""
    if not is_valid_gtin(gtin):
        raise InvalidValueError("gtin", f"{gtin} is not a GTIN with a valid GS1 check digit.")
    gtin = as_gtin14(gtin)
    if session.scalar(select(Product.id).where(Product.code == code)) is not None:
        raise AlreadyExistsError("product", code)
    if session.scalar(select(Product.id).where(Product.gtin == gtin)) is not None:
        raise AlreadyExistsError("product with GTIN", gtin)
    product = Product(code=code, gtin=gtin)
    session.add(product)
    session.flush()
    first = _add_version(
        session,
        product=product,
        number=1,
        fields=version,
        specification=specification,
        actor=actor,
        change_reason=change_reason,
    )
    record_change(
        session,
        actor=actor,
        action="product.created",
        entity_type="product",
        entity_key=code,
        old=None,
        new={"code": code, "gtin": gtin, **version_snapshot(first)},
    )
    return product


def add_product_version(
    session: Session,
    *,
    actor: str,
    code: str,
    version: Mapping[str, Any],
    specification: Sequence[Mapping[str, Any]],
    change_reason: str,
) -> ProductVersion:
    """Add the next version of a product; earlier versions stay exactly as they were."""
    product = get_product(session, code, for_update=True)
    previous = product.current
    new = _add_version(
        session,
        product=product,
        number=previous.version + 1,
        fields=version,
        specification=specification,
        actor=actor,
        change_reason=change_reason,
    )
    record_change(
        session,
        actor=actor,
        action="product.versioned",
        entity_type="product",
        entity_key=code,
        old=version_snapshot(previous),
        new=version_snapshot(new),
    )
    return new


def get_product(session: Session, code: str, *, for_update: bool = False) -> Product:
    """The product with this code, its versions loaded."""
    query = select(Product).where(Product.code == code).options(selectinload(Product.versions))
    if for_update:
        # Two QA users adding a version at once: the second waits, then numbers after the first.
        query = query.with_for_update()
    product = session.scalar(query)
    if product is None:
        raise NotFoundError("product", code)
    return product


def list_products(session: Session) -> Sequence[Product]:
    """Every product, by code."""
    query = select(Product).order_by(Product.code).options(selectinload(Product.versions))
    return session.scalars(query).all()


def get_product_version(session: Session, code: str, version: int) -> ProductVersion:
    """One version of a product."""
    found = session.scalar(
        select(ProductVersion)
        .join(Product)
        .where(Product.code == code, ProductVersion.version == version)
    )
    if found is None:
        raise NotFoundError("product version", f"{code} v{version}")
    return found


def version_snapshot(version: ProductVersion) -> dict[str, Any]:
    """A version's fields and specification, as the audit trail keeps them."""
    return {
        "version": version.version,
        **{field: getattr(version, field) for field in VERSIONED_FIELDS},
        "change_reason": version.change_reason,
        "specification": [
            {field: getattr(line, field) for field in SPEC_FIELDS} for line in version.specification
        ],
    }


def _add_version(
    session: Session,
    *,
    product: Product,
    number: int,
    fields: Mapping[str, Any],
    specification: Sequence[Mapping[str, Any]],
    actor: str,
    change_reason: str,
) -> ProductVersion:
    if not specification:
        raise InvalidValueError("specification", "A release specification needs at least one test.")
    problems = [problem for line in specification for problem in specification_problems(line)]
    if problems:
        raise InvalidValueError("specification", " ".join(problems))
    tests = [line["test"] for line in specification]
    duplicates = sorted({test for test in tests if tests.count(test) > 1})
    if duplicates:
        raise InvalidValueError(
            "specification", f"Each test appears once; repeated: {', '.join(duplicates)}."
        )
    version = ProductVersion(
        product=product,
        version=number,
        created_by=actor,
        change_reason=change_reason,
        **{field: fields.get(field) for field in VERSIONED_FIELDS},
    )
    version.temperature_record_required = bool(fields.get("temperature_record_required"))
    version.specification = [
        SpecificationLine(position=position, **{field: line.get(field) for field in SPEC_FIELDS})
        for position, line in enumerate(specification, start=1)
    ]
    for line in version.specification:
        line.lower_inclusive = bool(
            line.lower_inclusive if line.lower_inclusive is not None else True
        )
        line.upper_inclusive = bool(
            line.upper_inclusive if line.upper_inclusive is not None else True
        )
    session.add(version)
    session.flush()
    return version
