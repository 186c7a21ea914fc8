"""Products with versioned specifications, users, and the demo data, at the service layer."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app import demo
from custody.trials import Administration, Subject
from lots.accounts import authenticate, create_user, password_hasher, update_user
from lots.errors import (
    AlreadyExistsError,
    AuthenticationError,
    InvalidValueError,
)
from lots.models import AuditEntry, LoginAttempt, User
from lots.products import add_product_version, create_product, get_product

HASHER = password_hasher("cheapest")
VERSION = {
    "name": "Test NPC",
    "cell_type": "Neural progenitor cells",
    "origin": "allogeneic",
    "route": "intrathecal",
    "dose": "1×10⁷ cells",
    "cells_per_dose": 10_000_000,
    "storage_limit_c": Decimal("-150"),
    "storage_condition": "≤ -150 °C",
    "shelf_life_days": 365,
}
VIABILITY = {
    "test": "Viability",
    "method": "AO/PI",
    "criterion": "range",
    "unit": "%",
    "lower": Decimal(70),
}


def _audit_count(session) -> int:
    return session.scalar(select(func.count(AuditEntry.id)))


def test_a_new_product_starts_at_version_1_with_its_specification(session):
    product = create_product(
        session,
        actor="qa",
        code="NPC-T1",
        gtin="09506000134352",
        version=VERSION,
        specification=[VIABILITY],
    )
    assert [(v.version, [line.test for line in v.specification]) for v in product.versions] == [
        (1, ["Viability"])
    ]


def test_a_new_version_leaves_the_old_one_exactly_as_it_was(session):
    create_product(
        session,
        actor="qa",
        code="NPC-T2",
        gtin="09506000134352",
        version=VERSION,
        specification=[VIABILITY],
    )
    stricter = {**VIABILITY, "lower": Decimal(80)}
    add_product_version(
        session,
        actor="qa",
        code="NPC-T2",
        version=VERSION,
        specification=[stricter],
        change_reason="Tighter viability",
    )
    session.expire_all()
    versions = get_product(session, "NPC-T2").versions
    assert [v.specification[0].lower for v in versions] == [Decimal(70), Decimal(80)]


def test_a_new_version_is_audited_with_old_and_new_values(session):
    create_product(
        session,
        actor="qa",
        code="NPC-T3",
        gtin="09506000134352",
        version=VERSION,
        specification=[VIABILITY],
    )
    add_product_version(
        session,
        actor="qa",
        code="NPC-T3",
        version={**VERSION, "shelf_life_days": 180},
        specification=[VIABILITY],
        change_reason="Stability data",
    )
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.entity_key == "NPC-T3").order_by(AuditEntry.id.desc())
    ).first()
    assert (entry.old["shelf_life_days"], entry.new["shelf_life_days"]) == (365, 180)


def test_a_product_code_is_taken_once(session):
    with pytest.raises(AlreadyExistsError):
        create_product(
            session,
            actor="qa",
            code="XS228",
            gtin="09506000134352",
            version=VERSION,
            specification=[VIABILITY],
        )


def test_a_specification_naming_one_test_twice_is_refused(session):
    with pytest.raises(InvalidValueError, match="repeated: Viability"):
        create_product(
            session,
            actor="qa",
            code="NPC-T4",
            gtin="09506000134352",
            version=VERSION,
            specification=[VIABILITY, VIABILITY],
        )


def test_a_user_change_is_audited_without_the_password_hash(session):
    create_user(
        session,
        HASHER,
        actor="admin",
        username="temp.qc",
        full_name="Temp QC",
        role="qc",
        site_code="XSM-QC",
        password="a-long-password-1",
    )
    update_user(session, actor="admin", username="temp.qc", role="qa")
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "user.updated").order_by(AuditEntry.id.desc())
    ).first()
    assert (entry.old["role"], entry.new["role"]) == ("qc", "qa")
    assert "password_hash" not in entry.new


def test_a_short_password_is_refused(session):
    with pytest.raises(InvalidValueError, match="12 characters"):
        create_user(
            session,
            HASHER,
            actor="admin",
            username="short.pw",
            full_name="S",
            role="qc",
            site_code="XSM-QC",
            password="short",
        )


def test_passwords_are_stored_as_argon2id_hashes(session):
    user = session.scalar(select(User).where(User.username == "qa"))
    assert user.password_hash.startswith("$argon2id$")


def test_the_default_hasher_uses_the_rfc_9106_parameters():
    hasher = password_hasher()
    assert (hasher.memory_cost, hasher.time_cost) == (65536, 3)


def test_an_unknown_username_fails_like_a_wrong_password_and_is_recorded(session):
    with pytest.raises(AuthenticationError, match="username or password is wrong"):
        authenticate(
            session, HASHER, username="nobody", password="x", remote_addr="10.0.0.7", channel="web"
        )
    attempt = session.scalars(select(LoginAttempt).order_by(LoginAttempt.id.desc())).first()
    assert (attempt.username, attempt.succeeded) == ("nobody", False)


def test_loading_the_demo_twice_creates_nothing_the_second_time(session):
    before = _audit_count(session)
    assert demo.load(session, HASHER) == []
    assert _audit_count(session) == before


def test_the_demo_has_one_user_per_role(session):
    roles = set(session.scalars(select(User.role)))
    assert roles == {
        "admin",
        "manufacturing",
        "qc",
        "qa",
        "courier",
        "pharmacist",
        "clinician",
        "auditor",
    }


def test_the_demo_products_carry_realistic_specifications(session):
    xs228 = {line.test for line in get_product(session, "XS228").current.specification}
    cd83 = {line.test for line in get_product(session, "CD83-MSC").current.specification}
    assert "Residual undifferentiated cells (TRA-1-60 positive)" in xs228
    assert {"CD73 positive", "HLA-DR positive", "CD83 positive fraction"} <= cd83


def test_the_users_create_command_creates_a_user(runner, session):
    result = runner.invoke(
        args=[
            "users",
            "create",
            "new.courier",
            "--name",
            "New Courier",
            "--role",
            "courier",
            "--site",
            "CRYO-GZ",
            "--password",
            "courier-password-9",
        ]
    )
    assert result.exit_code == 0, result.output
    assert session.scalar(select(User.role).where(User.username == "new.courier")) == "courier"


def test_the_users_create_command_explains_an_unknown_site(runner):
    result = runner.invoke(
        args=[
            "users",
            "create",
            "lost",
            "--name",
            "Lost",
            "--role",
            "qc",
            "--site",
            "NOWHERE",
            "--password",
            "a-long-password-1",
        ]
    )
    assert result.exit_code == 1
    assert "No site NOWHERE was found." in result.output


def test_the_demo_load_command_prints_the_logins(runner):
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    assert "qa-demo-2026" in result.output


def test_the_demo_load_command_gives_sci_001_its_first_dose(runner, session):
    result = runner.invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    given = session.scalars(
        select(Administration)
        .join(Administration.subject)
        .where(Subject.code.in_(["SCI-001", "SEP-001"]))  # committed tests dose others
        .order_by(Administration.id)
    ).all()
    assert [
        (a.subject.code, a.vial.serial, a.route, a.administered_by.username, a.witness.username)
        for a in given
    ][:1] == [("SCI-001", "XS228-2610-01-V0001", "intrathecal", "clinician", "pharmacist")]
    assert sorted(a.subject.code for a in given) == ["SCI-001", "SEP-001"]
