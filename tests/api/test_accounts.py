"""Accounts that hold (issue 16, defect 6): a user changes their own password, an administrator
resets one so that it must be changed at the next sign-in, and a change ends every session and
token. Every route is crawled for a user whose password was reset."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import create_app
from app.auth import PUBLIC, access_rule
from lots.models import ApiToken, AuditEntry, User
from tests.api.test_access_matrix import ENDPOINTS, _call, _url
from tests.worlds.config import TEST_CONFIG
from tests.worlds.pages import csrf_token

NEW = "orange-kettle-harbour-9"
TEMPORARY = "Temporary-ward-7731"
# The views a user whose password was reset may still reach.
BEFORE_CHANGE = {
    ("/api/v1/auth/password", "POST"),
    ("/api/v1/auth/me", "GET"),
    ("/api/v1/auth/tokens/current", "DELETE"),
}


def _token(client, username: str, password: str | None = None) -> dict[str, str]:
    response = client.post(
        "/api/v1/auth/tokens",
        json={"username": username, "password": password or f"{username}-demo-2026"},
    )
    assert response.status_code == 201, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}


def _reset(client, username: str, temporary: str = TEMPORARY):
    return client.post(
        f"/api/v1/users/{username}/password-reset",
        json={"temporary_password": temporary},
        headers=_token(client, "admin"),
    )


def test_changing_ones_password_revokes_every_token_and_the_new_password_signs_in(client, app):
    first, second = _token(client, "pharmacist"), _token(client, "pharmacist")
    changed = client.post(
        "/api/v1/auth/password",
        json={"current_password": "pharmacist-demo-2026", "new_password": NEW},
        headers=first,
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["revoked_tokens"] >= 2
    for headers in (first, second):
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
    refused = client.post(
        "/api/v1/auth/tokens",
        json={"username": "pharmacist", "password": "pharmacist-demo-2026"},
    )
    assert refused.status_code == 401
    assert client.get("/api/v1/auth/me", headers=_token(client, "pharmacist", NEW)).json[
        "username"
    ] == ("pharmacist")
    with app.app_context():
        session = app.extensions["celltrail.db"].sessions()
        actions = session.scalars(
            select(AuditEntry.action).where(AuditEntry.entity_key == "pharmacist")
        ).all()
    assert "user.password_changed" in actions


@pytest.mark.parametrize(
    ("current", "new", "field", "words"),
    [
        ("wrong-password-1", NEW, "current_password", "current password is wrong"),
        ("pharmacist-demo-2026", "short", "new_password", "at least 12"),
        ("pharmacist-demo-2026", "Password12345!", "new_password", "breached or common"),
        ("pharmacist-demo-2026", "pharmacist2026", "new_password", "username"),
        ("pharmacist-demo-2026", "ponmlkjihgfedc", "new_password", "consecutive keys"),
        ("pharmacist-demo-2026", "pharmacist-demo-2026", "new_password", "differ"),
    ],
)
def test_a_refused_change_names_the_field_and_changes_nothing(client, current, new, field, words):
    headers = _token(client, "pharmacist")
    refused = client.post(
        "/api/v1/auth/password",
        json={"current_password": current, "new_password": new},
        headers=headers,
    )
    assert refused.status_code == 422
    assert refused.content_type == "application/problem+json"
    assert words in str(refused.json)
    assert field in str(refused.json)
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 200


def test_a_wrong_current_password_counts_against_the_account(client):
    headers = _token(client, "pharmacist")
    for guess in range(5):
        client.post(
            "/api/v1/auth/password",
            json={"current_password": f"guess-{guess}-xxxx", "new_password": NEW},
            headers=headers,
        )
    throttled = client.post(
        "/api/v1/auth/password",
        json={"current_password": "pharmacist-demo-2026", "new_password": NEW},
        headers=headers,
    )
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0


def test_an_administrators_reset_revokes_tokens_and_forces_a_change(client):
    before = _token(client, "pharmacist")
    reset = _reset(client, "pharmacist")
    assert reset.status_code == 200, reset.json
    assert reset.json["must_change_password"] is True
    assert client.get("/api/v1/auth/me", headers=before).status_code == 401
    temporary = _token(client, "pharmacist", TEMPORARY)
    assert client.get("/api/v1/auth/me", headers=temporary).json["must_change_password"] is True
    blocked = client.get("/api/v1/lots", headers=temporary)
    assert (blocked.status_code, blocked.json["title"]) == (403, "Password change required")
    changed = client.post(
        "/api/v1/auth/password",
        json={"current_password": TEMPORARY, "new_password": NEW},
        headers=temporary,
    )
    assert changed.status_code == 200
    after = _token(client, "pharmacist", NEW)
    assert client.get("/api/v1/lots", headers=after).status_code == 200
    assert client.get("/api/v1/auth/me", headers=after).json["must_change_password"] is False


def test_a_reset_lifts_the_lock_of_100_consecutive_failures(client, app):
    with app.app_context():
        session = app.extensions["celltrail.db"].sessions()
        from lots.accounts import record_attempt  # noqa: PLC0415 - the lock, written directly

        for _ in range(100):
            record_attempt(
                session, username="pharmacist", remote_addr="x", channel="api", succeeded=False
            )
        session.commit()
    locked = client.post(
        "/api/v1/auth/tokens",
        json={"username": "pharmacist", "password": "pharmacist-demo-2026"},
    )
    assert locked.status_code == 423
    assert "administrator must reset" in locked.json["detail"]
    assert _reset(client, "pharmacist").status_code == 200
    assert _token(client, "pharmacist", TEMPORARY)


def test_an_administrator_cannot_reset_their_own_password_and_others_cannot_reset(client):
    assert _reset(client, "admin").status_code == 422
    for role in ("qa", "pharmacist", "auditor"):
        refused = client.post(
            "/api/v1/users/pharmacist/password-reset",
            json={"temporary_password": TEMPORARY},
            headers=_token(client, role),
        )
        assert refused.status_code == 403


def test_a_deactivated_users_signatures_stay_readable(client, app):
    """Deactivation ends sign-in, never the record of what the user signed."""
    patched = client.patch(
        "/api/v1/users/qa", json={"active": False}, headers=_token(client, "admin")
    )
    assert patched.status_code == 200
    lot = client.get("/api/v1/lots/XS228-2610-01", headers=_token(client, "auditor")).json
    assert "qa" in str(lot)
    assert (
        client.post(
            "/api/v1/auth/tokens", json={"username": "qa", "password": "qa-demo-2026"}
        ).status_code
        == 401
    )


# --- the crawl: a user whose password was reset reaches nothing else -----------------------


@pytest.mark.parametrize(
    ("path", "method"),
    [
        pytest.param(path, method, id=f"{method} {path}")
        for path, method, rule in ENDPOINTS
        if rule != PUBLIC and (path, method) not in BEFORE_CHANGE
    ],
)
def test_every_api_endpoint_refuses_a_user_who_must_change_their_password(client, path, method):
    _reset(client, "pharmacist")
    headers = _token(client, "pharmacist", TEMPORARY)
    response = _call(client, path, method, headers, {})
    assert (response.status_code, response.json["title"]) == (403, "Password change required")


def _page_routes() -> list[str]:
    app = create_app({**TEST_CONFIG, "DATABASE_URL": "sqlite://"})
    app.extensions["celltrail.db"].engine.dispose()
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if not rule.rule.startswith("/api/")
        and "GET" in (rule.methods or set())
        and access_rule(app.view_functions[rule.endpoint]) not in (None, PUBLIC)
        and rule.endpoint != "web.password"
    )


@pytest.mark.parametrize("path", _page_routes())
def test_every_page_sends_a_user_who_must_change_their_password_to_the_password_page(client, path):
    _reset(client, "pharmacist")
    client.post(
        "/login",
        data={
            "username": "pharmacist",
            "password": TEMPORARY,
            "csrf_token": csrf_token(client),
        },
    )
    response = client.get(_url(path, {}))
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/account/password")


def test_the_password_page_changes_the_password_and_keeps_this_browser_signed_in(client, app):
    _reset(client, "pharmacist")
    signed_in = client.post(
        "/login",
        data={"username": "pharmacist", "password": TEMPORARY, "csrf_token": csrf_token(client)},
    )
    assert signed_in.headers["Location"].endswith("/account/password")
    page = client.get("/account/password").get_data(as_text=True)
    assert "reset by an administrator" in page
    mismatch = client.post(
        "/account/password",
        data={
            "current_password": TEMPORARY,
            "new_password": NEW,
            "repeat_password": NEW + "x",
            "csrf_token": csrf_token(client),
        },
    )
    assert mismatch.status_code == 422
    assert "The two new passwords differ." in mismatch.get_data(as_text=True)
    done = client.post(
        "/account/password",
        data={
            "current_password": TEMPORARY,
            "new_password": NEW,
            "repeat_password": NEW,
            "csrf_token": csrf_token(client),
        },
    )
    assert done.status_code == 200
    assert "Your password is changed" in done.get_data(as_text=True)
    assert client.get("/").status_code == 200
    with app.app_context():
        session = app.extensions["celltrail.db"].sessions()
        user = session.scalar(select(User).where(User.username == "pharmacist"))
        assert user.must_change_password is False
        assert (
            session.scalar(
                select(func.count(ApiToken.id)).where(
                    ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)
                )
            )
            == 0
        )


def test_a_password_change_elsewhere_ends_an_open_page_session(client, app):
    client.post(
        "/login",
        data={
            "username": "pharmacist",
            "password": "pharmacist-demo-2026",
            "csrf_token": csrf_token(client),
        },
    )
    assert client.get("/").status_code == 200
    with app.test_client() as elsewhere:
        changed = elsewhere.post(
            "/api/v1/auth/password",
            json={"current_password": "pharmacist-demo-2026", "new_password": NEW},
            headers=_token(elsewhere, "pharmacist"),
        )
        assert changed.status_code == 200
    assert client.get("/").headers["Location"].startswith("/login")


def test_the_users_page_resets_a_password(client):
    client.post(
        "/login",
        data={"username": "admin", "password": "admin-demo-2026", "csrf_token": csrf_token(client)},
    )
    done = client.post(
        "/users/pharmacist/password-reset",
        data={"temporary_password": TEMPORARY, "csrf_token": csrf_token(client)},
    )
    assert done.status_code == 303
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "pharmacist must choose a new password" in page
    assert 'data-testid="must-change-pharmacist"' in page
    weak = client.post(
        "/users/pharmacist/password-reset",
        data={"temporary_password": "password", "csrf_token": csrf_token(client)},
    )
    assert weak.status_code == 422
    assert "at least 12 characters" in weak.get_data(as_text=True)
