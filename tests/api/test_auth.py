"""Sign-in, bearer tokens, page sessions with CSRF, and the audit of users and master data."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from lots.accounts import issue_token
from lots.base import utcnow
from lots.models import AuditEntry, LoginAttempt, User
from tests.worlds.api import make_lot

# A documentation address (RFC 5737), so no other test's failed logins count against it.
GUESSER = {"REMOTE_ADDR": "203.0.113.9"}
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
XS228_V2 = {
    "name": "XS228 Cell Injection (iPSC-derived spinal neural progenitor cells)",
    "cell_type": "Subtype-specific spinal neural progenitor cells from iPSC",
    "origin": "allogeneic",
    "route": "intrathecal",
    "dose": "Intrathecal injection per cohort (days 1, 15, 29, 43 in some cohorts)",
    "cells_per_dose": 10_000_000,
    "storage_limit_c": "-150",
    "storage_condition": "Vapour phase of liquid nitrogen, at or below -150 °C",
    "shelf_life_days": 180,
    "post_thaw_window_minutes": 120,
    "max_passage": 50,
    "specification": [
        {"test": "Sterility", "method": "USP <71>", "criterion": "pass_fail"},
        {"test": "Viability", "method": "AO/PI", "criterion": "range", "unit": "%", "lower": 75},
    ],
    "change_reason": "Stability study: shelf life 180 days; viability limit raised to 75 %",
}


def _password(username: str) -> str:
    return f"{username}-demo-2026"


def _sign_in(client, username: str, password: str | None = None, **kwargs):
    return client.post(
        "/api/v1/auth/tokens",
        json={"username": username, "password": password or _password(username)},
        **kwargs,
    )


def _bearer(response) -> dict[str, str]:
    return {"Authorization": f"Bearer {response.json['token']}"}


def _me(client, headers: dict[str, str]):
    return client.get("/api/v1/auth/me", headers=headers)


def _csrf_token(client) -> str:
    return CSRF_FIELD.search(client.get("/login").get_data(as_text=True)).group(1)


def _page_sign_in(client, username: str):
    form = {"username": username, "password": _password(username)}
    return client.post("/login", data={**form, "csrf_token": _csrf_token(client)})


# --- bearer tokens ------------------------------------------------------------------------


def test_the_right_password_gives_a_token_that_works(client):
    response = _sign_in(client, "qa")
    assert response.status_code == 201
    assert _me(client, _bearer(response)).json["username"] == "qa"


def test_a_wrong_password_is_401(client):
    response = _sign_in(client, "qa", "qa-demo-2025", environ_base=GUESSER)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


def test_a_failed_login_is_audited(client, session):
    _sign_in(client, "qa", "qa-demo-2025", environ_base=GUESSER)
    attempts = session.execute(
        select(LoginAttempt.username, LoginAttempt.succeeded).where(
            LoginAttempt.remote_addr == GUESSER["REMOTE_ADDR"]
        )
    ).all()
    assert attempts == [("qa", False)]


def test_the_sixth_attempt_after_five_failures_is_429_even_with_the_right_password(client):
    for guess in range(5):
        _sign_in(client, "pharmacist", f"guess-{guess}", environ_base=GUESSER)
    response = _sign_in(client, "pharmacist", environ_base=GUESSER)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0


def test_signing_out_revokes_the_token_at_once(client):
    headers = _bearer(_sign_in(client, "courier"))
    client.delete("/api/v1/auth/tokens/current", headers=headers)
    assert _me(client, headers).status_code == 401


def test_a_token_revoked_by_id_stops_working_at_once(client):
    laptop, scanner = _sign_in(client, "courier"), _sign_in(client, "courier")
    client.delete(f"/api/v1/auth/tokens/{scanner.json['id']}", headers=_bearer(laptop))
    assert _me(client, _bearer(scanner)).status_code == 401


def test_revoking_one_token_leaves_the_others_working(client):
    laptop, scanner = _sign_in(client, "courier"), _sign_in(client, "courier")
    client.delete(f"/api/v1/auth/tokens/{scanner.json['id']}", headers=_bearer(laptop))
    assert _me(client, _bearer(laptop)).status_code == 200


def test_a_token_of_another_user_cannot_be_revoked(client):
    couriers = _sign_in(client, "courier")
    response = client.delete(
        f"/api/v1/auth/tokens/{couriers.json['id']}", headers=_bearer(_sign_in(client, "qa"))
    )
    assert response.status_code == 404
    assert _me(client, _bearer(couriers)).status_code == 200


def test_an_expired_token_is_401(client, session):
    courier = session.scalar(select(User).where(User.username == "courier"))
    secret, _ = issue_token(session, courier, ttl=dt.timedelta(seconds=-1))
    response = _me(client, {"Authorization": f"Bearer {secret}"})
    assert response.status_code == 401
    assert response.json["detail"] == "The token has expired."


def test_a_token_for_the_next_hour_works(client, session):
    courier = session.scalar(select(User).where(User.username == "courier"))
    secret, _ = issue_token(session, courier, ttl=dt.timedelta(hours=1))
    assert _me(client, {"Authorization": f"Bearer {secret}"}).status_code == 200


def test_a_deactivated_users_token_stops_working(client, auth_headers):
    headers = auth_headers("courier")
    client.patch("/api/v1/users/courier", json={"active": False}, headers=auth_headers("admin"))
    assert _me(client, headers).status_code == 401


def test_a_deactivated_user_cannot_sign_in(client, auth_headers):
    client.patch("/api/v1/users/courier", json={"active": False}, headers=auth_headers("admin"))
    assert _sign_in(client, "courier", environ_base=GUESSER).status_code == 401


def test_an_authorization_header_that_is_not_bearer_is_401(client):
    response = _me(client, {"Authorization": "Basic cWE6cWEtZGVtby0yMDI2"})
    assert response.status_code == 401


def test_passwords_are_stored_as_argon2id_hashes(client, auth_headers, session):
    client.post(
        "/api/v1/users",
        json={
            "username": "nurse-li",
            "full_name": "Li Na",
            "role": "clinician",
            "site": "SYSU3-SPINE",
            "password": "nurse-li-demo-2026",
        },
        headers=auth_headers("admin"),
    )
    stored = session.scalar(select(User.password_hash).where(User.username == "nurse-li"))
    assert stored.startswith("$argon2id$")
    assert "nurse-li-demo-2026" not in stored


# --- page sessions and CSRF ---------------------------------------------------------------


def test_the_login_page_refuses_a_post_without_its_csrf_token(client):
    response = client.post("/login", data={"username": "qa", "password": _password("qa")})
    assert response.status_code == 400


def test_the_login_page_signs_in_with_its_csrf_token(client):
    response = _page_sign_in(client, "qa")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_a_page_session_cannot_write_to_the_api_without_the_csrf_header(client):
    _page_sign_in(client, "manufacturing")
    response = client.post(
        "/api/v1/ledger/events",
        json={
            "chain": "site:XSM-SZ",
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
            "note": "LN2 level checked",
        },
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_a_page_session_writes_to_the_api_with_the_csrf_header(client):
    _page_sign_in(client, "manufacturing")
    response = client.post(
        "/api/v1/ledger/events",
        json={
            "chain": "site:XSM-SZ",
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
            "note": "LN2 level checked",
        },
        headers={"X-CSRFToken": _csrf_token(client)},
    )
    assert response.status_code == 201


def test_a_page_session_reads_the_api_without_the_csrf_header(client):
    _page_sign_in(client, "qa")
    assert client.get("/api/v1/auth/me").json["username"] == "qa"


# --- the audit of users and master data ---------------------------------------------------


def test_changing_a_users_role_is_audited_with_old_and_new_values(client, auth_headers, session):
    client.patch(
        "/api/v1/users/courier", json={"role": "pharmacist"}, headers=auth_headers("admin")
    )
    entry = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity_type == "user", AuditEntry.entity_key == "courier")
        .order_by(AuditEntry.id.desc())
    ).first()
    assert (entry.action, entry.actor) == ("user.updated", "admin")
    assert (entry.old["role"], entry.new["role"]) == ("courier", "pharmacist")


def test_a_new_product_version_is_number_2(client, auth_headers):
    response = client.post(
        "/api/v1/products/XS228/versions", json=XS228_V2, headers=auth_headers("qa")
    )
    assert response.status_code == 201
    assert response.json["version"] == 2


def test_a_new_product_version_leaves_version_1_exactly_as_it_was(client, auth_headers):
    v1 = "/api/v1/products/XS228/versions/1"
    before = client.get(v1, headers=auth_headers("qa")).json
    client.post("/api/v1/products/XS228/versions", json=XS228_V2, headers=auth_headers("qa"))
    assert client.get(v1, headers=auth_headers("qa")).json == before
    assert before["shelf_life_days"] == 365


def test_the_auditor_reads_the_old_and_new_values_of_a_product_version(client, auth_headers):
    client.post("/api/v1/products/XS228/versions", json=XS228_V2, headers=auth_headers("qa"))
    entries = client.get(
        "/api/v1/audit?entity_type=product&entity_key=XS228", headers=auth_headers("auditor")
    ).json
    assert (entries[0]["action"], entries[0]["actor"]) == ("product.versioned", "qa")
    assert (entries[0]["old"]["shelf_life_days"], entries[0]["new"]["shelf_life_days"]) == (
        365,
        180,
    )


def test_the_database_refuses_to_edit_a_product_version(session):
    with pytest.raises(DBAPIError), session.begin_nested():
        session.execute(text("UPDATE product_versions SET shelf_life_days = 1"))


def test_the_database_refuses_to_delete_a_product_version(session):
    with pytest.raises(DBAPIError), session.begin_nested():
        session.execute(text("DELETE FROM product_versions"))


def test_a_correct_signature_is_not_refused_after_others_failed_from_the_same_address(
    client, auth_headers
):
    """Issue 16, defect 5: one confused user behind a hospital's NAT address must not stop
    the others from signing (and refused attempts must not renew a lock)."""
    nat = {"REMOTE_ADDR": "203.0.113.77"}
    for username in ("pharmacist", "clinician", "courier", "nobody"):
        for guess in range(5):
            _sign_in(client, username, f"guess-{guess}", environ_base=nat)
    for again in range(3):  # pressing "sign in" while the account waits
        assert _sign_in(client, "pharmacist", f"again-{again}", environ_base=nat).status_code == 429
    make_lot(client, auth_headers, "XS228-T9")
    signed = client.post(
        "/api/v1/lots/XS228-T9/steps",
        json={
            "step": "harvest",
            "occurred_at": (utcnow() - dt.timedelta(hours=1)).isoformat(),
            "password": _password("manufacturing"),
            "meaning": "Performed by",
        },
        headers=auth_headers("manufacturing"),
        environ_base=nat,
    )
    assert signed.status_code == 201, signed.json
    assert _sign_in(client, "qc", environ_base=nat).status_code == 201
