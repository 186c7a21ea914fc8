"""Every /api/v1 endpoint × every role: 403 where the policy says no, 404 for other sites."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy.orm import sessionmaker

from app import create_app
from app.auth import AUTHENTICATED, PUBLIC, access_rule
from app.demo.trials import SEPSIS_SUBJECT, SEPSIS_TRIAL, XS228_SUBJECT, XS228_TRIAL
from lots.access import ALL_SITES_ROLES, Permission, Role, roles_allowed
from tests.worlds.blinding import kit_label
from tests.worlds.config import TEST_CONFIG

KNOWN_RULES = {PUBLIC, AUTHENTICATED, *(permission.value for permission in Permission)}
PARAMETER = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
# Real values for path parameters, by the path segment before them. Anything else gets a
# placeholder no record has: a 404 for an allowed role still tells it apart from a 403.
PATH_VALUES = {
    ("sites", "code"): "XSM-SZ",
    ("products", "code"): "XS228",
    ("versions", "version"): "1",
    ("users", "username"): "qa",
    ("chains", "chain"): "site:XSM-SZ",
    ("lots", "number"): "XS228-2610-01",
    ("banks", "code"): "XS-WCB-01",
    ("donors", "code"): "UCD-2025-017",
    # The first administration: the demo's first dose when loaded with first_dose=True.
    ("administrations", "administration_id"): "1",
    ("vials", "serial"): "XS228-2610-01-V0001",
    ("trials", "protocol_id"): SEPSIS_TRIAL,
    ("subjects", "protocol_id"): SEPSIS_TRIAL,
    ("<protocol_id>", "code"): SEPSIS_SUBJECT,  # /subjects/<protocol_id>/<code>
    ("BiologicallyDerivedProduct", "serial"): "XS228-2610-01-V0001",
}
# The demo data has one user per role, named after it.
ROLES = [role.value for role in Role]
SEES_XSM_SZ = [*sorted(role.value for role in ALL_SITES_ROLES), "manufacturing"]
ELSEWHERE = ["courier", "pharmacist", "clinician", "qc", "amu-clinician"]


def _api_endpoints() -> list[tuple[str, str, str | None]]:
    """(path, method, declared access rule) of every /api/v1 endpoint in the URL map."""
    app = create_app({**TEST_CONFIG, "DATABASE_URL": "sqlite://"})
    app.extensions["celltrail.db"].engine.dispose()
    endpoints = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            handler = getattr(getattr(view, "view_class", None), method.lower(), view)
            endpoints.append((rule.rule, method, access_rule(handler)))
    return endpoints


ENDPOINTS = _api_endpoints()


def _allowed(rule: str | None, role: str) -> bool:
    if rule in (PUBLIC, AUTHENTICATED):
        return True
    return rule in KNOWN_RULES and Role(role) in roles_allowed(Permission(rule))


def _cases(*, allowed: bool) -> list[object]:
    return [
        pytest.param(path, method, role, id=f"{method} {path} as {role}")
        for path, method, rule in ENDPOINTS
        for role in ROLES
        if _allowed(rule, role) == allowed
    ]


def _sign_in(client, username: str) -> tuple[dict[str, str], int]:
    response = client.post(
        "/api/v1/auth/tokens", json={"username": username, "password": f"{username}-demo-2026"}
    )
    return {"Authorization": f"Bearer {response.json['token']}"}, response.json["id"]


def _url(path: str, values: dict[str, object]) -> str:
    def fill(match: re.Match[str]) -> str:
        converter, name = match.groups()
        segment = path[: match.start()].rstrip("/").rsplit("/", 1)[-1]
        if name in values:
            return str(values[name])
        return PATH_VALUES.get((segment, name), "1" if converter == "int" else "unknown")

    return PARAMETER.sub(fill, path)


def _call(client, path: str, method: str, headers: dict[str, str], values: dict[str, object]):
    body = None if method == "GET" else {}
    return client.open(_url(path, values), method=method, headers=headers, json=body)


@pytest.fixture(scope="module")
def module_app(database_url):
    """One app for the few hundred cases here: building an app takes a fifth of a second."""
    app = create_app({**TEST_CONFIG, "DATABASE_URL": database_url})
    yield app
    app.extensions["celltrail.db"].engine.dispose()


@pytest.fixture
def app(module_app, connection):
    """The module's app, its sessions joined to this test's rolled-back transaction."""
    module_app.extensions["celltrail.db"].sessions = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    return module_app


@pytest.fixture
def xsm_event(client) -> int:
    """The id of an observation the manufacturing user recorded at XSM-SZ."""
    headers, _ = _sign_in(client, "manufacturing")
    response = client.post(
        "/api/v1/ledger/events",
        headers=headers,
        json={
            "chain": "site:XSM-SZ",
            "occurred_at": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).isoformat(),
            "note": "Cryostore LN2 level checked: 62 %",
        },
    )
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_every_api_endpoint_declares_an_access_rule():
    undeclared = [f"{method} {path}" for path, method, rule in ENDPOINTS if rule not in KNOWN_RULES]
    assert ENDPOINTS
    assert undeclared == []


@pytest.mark.parametrize(("path", "method", "role"), _cases(allowed=False))
def test_a_role_the_policy_leaves_out_is_forbidden(client, xsm_event, path, method, role):
    headers, token_id = _sign_in(client, role)
    response = _call(client, path, method, headers, {"token_id": token_id, "event_id": xsm_event})
    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(("path", "method", "role"), _cases(allowed=True))
def test_a_role_the_policy_names_is_let_through(client, xsm_event, path, method, role):
    headers, token_id = _sign_in(client, role)
    response = _call(client, path, method, headers, {"token_id": token_id, "event_id": xsm_event})
    assert response.status_code not in (401, 403)
    assert response.status_code < 400 or (
        response.status_code < 500 and response.mimetype == "application/problem+json"
    ), response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("path", "method"),
    [(path, method) for path, method, rule in ENDPOINTS if rule != PUBLIC],
    ids=lambda value: value,
)
def test_a_request_without_credentials_is_401(client, path, method):
    response = _call(client, path, method, {}, {"token_id": 1, "event_id": 1})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "method"),
    [(path, method) for path, method, rule in ENDPOINTS if rule == PUBLIC],
    ids=lambda value: value,
)
def test_a_public_endpoint_answers_without_credentials(client, path, method):
    response = _call(client, path, method, {}, {})
    assert response.status_code not in (401, 403)
    assert response.status_code < 500


@pytest.mark.parametrize("username", ELSEWHERE)
def test_an_event_of_another_site_is_not_found_rather_than_forbidden(
    client, auth_headers, xsm_event, username
):
    response = client.get(f"/api/v1/ledger/events/{xsm_event}", headers=auth_headers(username))
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("username", SEES_XSM_SZ)
def test_an_event_at_xsm_sz_is_seen_by_oversight_and_by_its_own_site(
    client, auth_headers, xsm_event, username
):
    response = client.get(f"/api/v1/ledger/events/{xsm_event}", headers=auth_headers(username))
    assert response.status_code == 200


@pytest.mark.parametrize("username", ELSEWHERE)
def test_the_chain_of_another_site_is_not_found_rather_than_forbidden(
    client, auth_headers, xsm_event, username
):
    response = client.get("/api/v1/ledger/chains/site:XSM-SZ", headers=auth_headers(username))
    assert response.status_code == 404


@pytest.mark.parametrize("username", SEES_XSM_SZ)
def test_the_xsm_sz_chain_is_seen_by_oversight_and_by_its_own_site(
    client, auth_headers, xsm_event, username
):
    response = client.get("/api/v1/ledger/chains/site:XSM-SZ", headers=auth_headers(username))
    assert xsm_event in [event["id"] for event in response.json]


def test_a_hidden_event_reads_exactly_like_one_that_does_not_exist(client, auth_headers, xsm_event):
    hidden = client.get(f"/api/v1/ledger/events/{xsm_event}", headers=auth_headers("courier"))
    missing = client.get(f"/api/v1/ledger/events/{xsm_event + 10**6}", headers=auth_headers("qa"))
    assert hidden.json == {
        **missing.json,
        "detail": missing.json["detail"].replace(str(xsm_event + 10**6), str(xsm_event)),
    }


# Trials: a subject belongs to its ward and the pharmacy that supplies it. Each request below
# is made by a user whose role may make it, at the hospital of the other trial:
# (stranger, the subject's own-site user, method, path, body).
SEP_001 = f"/api/v1/subjects/{SEPSIS_TRIAL}/{SEPSIS_SUBJECT}"
SCI_001 = f"/api/v1/subjects/{XS228_TRIAL}/{XS228_SUBJECT}"
WHY = "Suspected anaphylaxis: the arm decides the treatment."
SUBJECT_REQUESTS = [
    ("clinician", "amu-clinician", "GET", SEP_001, None),
    ("pharmacist", "amu-pharmacist", "GET", SEP_001, None),
    ("clinician", "amu-clinician", "POST", f"{SEP_001}/randomization", None),
    ("pharmacist", "amu-pharmacist", "POST", f"{SEP_001}/randomization", None),
    ("pharmacist", "amu-pharmacist", "POST", f"{SEP_001}/allocations", {"visit": 2}),
    ("clinician", "amu-clinician", "POST", f"{SEP_001}/unblinding", {"reason": WHY}),
    ("amu-clinician", "clinician", "GET", SCI_001, None),
    ("amu-pharmacist", "pharmacist", "GET", SCI_001, None),
    ("amu-clinician", "clinician", "POST", f"{SCI_001}/randomization", None),
    (
        "amu-pharmacist",
        "pharmacist",
        "POST",
        f"{SCI_001}/allocations",
        {"visit": 2, "serial": "XS228-2610-01-V0002"},
    ),
    ("amu-clinician", "clinician", "POST", f"{SCI_001}/unblinding", {"reason": WHY}),
]


def _signed_body(body: dict[str, object] | None, username: str) -> dict[str, object] | None:
    """The request body; an unblinding is signed with the requester's own password."""
    if body is None or "reason" not in body:
        return body
    return {**body, "password": f"{username}-demo-2026"}


@pytest.mark.parametrize(
    "case",
    SUBJECT_REQUESTS,
    ids=[f"{method} {path} as {who}" for who, _, method, path, _ in SUBJECT_REQUESTS],
)
def test_a_subject_of_another_hospital_is_not_found_rather_than_forbidden(
    client, auth_headers, case
):
    stranger, _, method, path, body = case
    response = client.open(
        path, method=method, headers=auth_headers(stranger), json=_signed_body(body, stranger)
    )
    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "case",
    SUBJECT_REQUESTS,
    ids=[f"{method} {path} as {who}" for _, who, method, path, _ in SUBJECT_REQUESTS],
)
def test_the_same_request_from_the_subjects_own_hospital_finds_it(client, auth_headers, case):
    _, owner, method, path, body = case
    response = client.open(
        path, method=method, headers=auth_headers(owner), json=_signed_body(body, owner)
    )
    assert response.status_code not in (403, 404), response.get_data(as_text=True)
    assert response.status_code < 500


def test_a_hidden_subject_reads_exactly_like_one_that_does_not_exist(client, auth_headers):
    hidden = client.get(SEP_001, headers=auth_headers("clinician"))
    missing = client.get(f"{SEP_001}9", headers=auth_headers("amu-clinician"))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json == {
        **missing.json,
        "detail": missing.json["detail"].replace(f"{SEPSIS_SUBJECT}9", SEPSIS_SUBJECT),
    }


@pytest.mark.parametrize("username", ["clinician", "pharmacist"])
def test_another_hospitals_subjects_and_kits_are_left_out_of_the_lists(
    client, auth_headers, username
):
    headers = auth_headers(username)
    subjects = client.get(f"/api/v1/subjects?trial={SEPSIS_TRIAL}", headers=headers)
    kits = client.get(f"/api/v1/trials/{SEPSIS_TRIAL}/kits", headers=headers)
    assert (subjects.status_code, subjects.json) == (200, [])
    assert (kits.status_code, kits.json) == (200, [])


@pytest.mark.parametrize("username", ["amu-clinician", "amu-pharmacist", "auditor"])
def test_the_trials_own_hospital_and_oversight_list_its_kits(client, auth_headers, username):
    kits = client.get(f"/api/v1/trials/{SEPSIS_TRIAL}/kits", headers=auth_headers(username)).json
    assert len(kits) == 12
    assert [kit["subject"] for kit in kits if kit["subject"]] == [SEPSIS_SUBJECT]


def test_another_hospitals_kit_label_scans_like_a_kit_that_does_not_exist(
    client, session, app, auth_headers
):
    real = kit_label(session, app, "000006")
    made_up = real.replace("/21/000006", "/21/999006")
    hidden = client.post("/api/v1/scans", json={"code": real}, headers=auth_headers("clinician"))
    missing = client.post(
        "/api/v1/scans", json={"code": made_up}, headers=auth_headers("clinician")
    )
    seen = client.post("/api/v1/scans", json={"code": real}, headers=auth_headers("amu-clinician"))
    assert seen.json["kind"] == "kit"
    assert hidden.status_code == missing.status_code == 200
    assert hidden.json["kind"] == missing.json["kind"] != "kit"
    assert hidden.json["recognised"] is missing.json["recognised"] is False
    assert hidden.json["item"] is None
