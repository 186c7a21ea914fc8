"""Refusals are RFC 9457 problem+json, leave no rows behind, and no input is a 500."""

from __future__ import annotations

import datetime as dt
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

TABLES = (
    "products",
    "product_versions",
    "specification_lines",
    "sites",
    "users",
    "audit_entries",
    "custody_events",
    "idempotency_keys",
)
PROBLEM = "application/problem+json"
NPC_T9 = {
    "code": "NPC-T9",
    "gtin": "09506000134352",
    "name": "Test spinal NPC injection",
    "cell_type": "Spinal neural progenitor cells from iPSC",
    "origin": "allogeneic",
    "route": "intrathecal",
    "dose": "1×10⁷ cells, intrathecal",
    "cells_per_dose": 10_000_000,
    "storage_limit_c": "-150",
    "storage_condition": "Vapour phase of liquid nitrogen, at or below -150 °C",
    "shelf_life_days": 365,
    "specification": [
        {"test": "Viability", "method": "AO/PI", "criterion": "range", "unit": "%", "lower": 70},
        {"test": "Sterility", "method": "USP <71>", "criterion": "pass_fail"},
    ],
}
WARD = {
    "code": "SYSU3-ICU",
    "name": "SYSU3 intensive care unit",
    "kind": "ward",
    "time_zone": "Asia/Shanghai",
    "supplied_by": "SYSU3-PH",
}
NURSE = {
    "username": "nurse-li",
    "full_name": "Li Na",
    "role": "clinician",
    "site": "SYSU3-SPINE",
    "password": "nurse-li-demo-2026",
}
LN2_CHECK = {
    "chain": "site:XSM-SZ",
    "occurred_at": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(),
    "note": "Cryostore LN2 level checked",
    "observations": {"ln2_level_percent": 62},
}


def _row_counts(session) -> dict[str, int]:
    return {table: session.scalar(text(f"SELECT count(*) FROM {table}")) for table in TABLES}


def _problem(response, status: int) -> dict:
    """The response's problem document, once it is checked to be one with this status."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.json
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    return body


def _spec_line(**fields) -> dict:
    return {"test": "Viability", "method": "AO/PI", "criterion": "range", "unit": "%", **fields}


def test_malformed_json_is_a_400_problem_and_records_nothing(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/products",
        data='{"code": "NPC-T9",',
        content_type="application/json",
        headers=auth_headers("qa"),
    )
    assert _problem(response, 400)["detail"] == "The request body is not valid JSON."
    assert _row_counts(session) == before


def test_a_wrong_type_is_a_422_naming_the_field(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/products", json={**NPC_T9, "shelf_life_days": "a year"}, headers=auth_headers("qa")
    )
    assert list(_problem(response, 422)["errors"]) == ["shelf_life_days"]
    assert _row_counts(session) == before


def test_an_unknown_field_is_refused_not_dropped(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/products", json={**NPC_T9, "colour": "amber"}, headers=auth_headers("qa")
    )
    assert list(_problem(response, 422)["errors"]) == ["colour"]
    assert _row_counts(session) == before


def test_a_missing_field_is_named(client, auth_headers, session):
    before = _row_counts(session)
    body = {key: value for key, value in NPC_T9.items() if key != "route"}
    response = client.post("/api/v1/products", json=body, headers=auth_headers("qa"))
    assert _problem(response, 422)["errors"] == {"route": ["Missing data for required field."]}
    assert _row_counts(session) == before


def test_a_product_name_over_200_characters_is_refused(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/products", json={**NPC_T9, "name": "N" * 201}, headers=auth_headers("qa")
    )
    assert list(_problem(response, 422)["errors"]) == ["name"]
    assert _row_counts(session) == before


def test_a_site_name_over_200_characters_is_refused(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/sites", json={**WARD, "name": "W" * 201}, headers=auth_headers("admin")
    )
    assert list(_problem(response, 422)["errors"]) == ["name"]
    assert _row_counts(session) == before


def test_an_observation_on_the_thirteenth_month_is_refused(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/ledger/events",
        json={**LN2_CHECK, "occurred_at": "2026-13-02T09:00:00Z"},
        headers=auth_headers("manufacturing"),
    )
    assert list(_problem(response, 422)["errors"]) == ["occurred_at"]
    assert _row_counts(session) == before


def test_an_observation_time_without_a_timezone_is_refused(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/ledger/events",
        json={**LN2_CHECK, "occurred_at": "2026-07-17T09:00:00"},
        headers=auth_headers("manufacturing"),
    )
    assert list(_problem(response, 422)["errors"]) == ["occurred_at"]
    assert _row_counts(session) == before


def test_an_observation_in_the_future_is_refused(client, auth_headers, session):
    before = _row_counts(session)
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    response = client.post(
        "/api/v1/ledger/events",
        json={**LN2_CHECK, "occurred_at": tomorrow},
        headers=auth_headers("manufacturing"),
    )
    assert list(_problem(response, 422)["errors"]) == ["occurred_at"]
    assert _row_counts(session) == before


def test_an_unknown_product_is_404(client, auth_headers):
    response = client.get("/api/v1/products/NO-SUCH-PRODUCT", headers=auth_headers("qa"))
    assert _problem(response, 404)["detail"] == "No product NO-SUCH-PRODUCT was found."


def test_a_new_version_of_an_unknown_product_is_404_and_records_nothing(
    client, auth_headers, session
):
    before = _row_counts(session)
    body = {key: value for key, value in NPC_T9.items() if key not in ("code", "gtin")}
    response = client.post(
        "/api/v1/products/NO-SUCH-PRODUCT/versions",
        json={**body, "change_reason": "Stability data"},
        headers=auth_headers("qa"),
    )
    _problem(response, 404)
    assert _row_counts(session) == before


def test_an_observation_of_an_unknown_site_is_404_and_records_nothing(
    client, auth_headers, session
):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/ledger/events",
        json={**LN2_CHECK, "chain": "site:NOWHERE"},
        headers=auth_headers("manufacturing"),
    )
    _problem(response, 404)
    assert _row_counts(session) == before


def test_a_user_at_an_unknown_site_is_404_and_records_nothing(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/users", json={**NURSE, "site": "NOWHERE"}, headers=auth_headers("admin")
    )
    _problem(response, 404)
    assert _row_counts(session) == before


def test_an_unknown_event_is_404(client, auth_headers):
    response = client.get("/api/v1/ledger/events/987654321", headers=auth_headers("auditor"))
    _problem(response, 404)


def test_a_courier_cannot_create_a_product(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post("/api/v1/products", json=NPC_T9, headers=auth_headers("courier"))
    assert _problem(response, 403)["detail"] == (
        "The courier role may not do this (products:write)."
    )
    assert _row_counts(session) == before


def test_a_qa_user_cannot_create_a_user(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post("/api/v1/users", json=NURSE, headers=auth_headers("qa"))
    _problem(response, 403)
    assert _row_counts(session) == before


def test_creating_xs228_again_is_a_409_and_records_nothing(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/products", json={**NPC_T9, "code": "XS228"}, headers=auth_headers("qa")
    )
    assert _problem(response, 409)["detail"] == "A product XS228 already exists."
    assert _row_counts(session) == before


def test_registering_an_existing_site_code_is_a_409_and_records_nothing(
    client, auth_headers, session
):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/sites", json={**WARD, "code": "CRYO-GZ"}, headers=auth_headers("admin")
    )
    _problem(response, 409)
    assert _row_counts(session) == before


def test_an_existing_username_is_a_409_and_records_nothing(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/users", json={**NURSE, "username": "pharmacist"}, headers=auth_headers("admin")
    )
    _problem(response, 409)
    assert _row_counts(session) == before


def test_a_password_under_12_characters_is_refused(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/users", json={**NURSE, "password": "short-pw"}, headers=auth_headers("admin")
    )
    assert list(_problem(response, 422)["errors"]) == ["password"]
    assert _row_counts(session) == before


def test_a_spec_line_with_its_lower_limit_above_the_upper_is_422_and_leaves_nothing(
    client, auth_headers, session
):
    before = _row_counts(session)
    body = {**NPC_T9, "specification": [_spec_line(lower=90, upper=70)]}
    response = client.post("/api/v1/products", json=body, headers=auth_headers("qa"))
    assert list(_problem(response, 422)["errors"]) == ["specification"]
    assert _row_counts(session) == before


def test_a_gtin_with_a_wrong_check_digit_is_422(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/products", json={**NPC_T9, "gtin": "09506000134353"}, headers=auth_headers("qa")
    )
    assert list(_problem(response, 422)["errors"]) == ["gtin"]
    assert _row_counts(session) == before


def test_text_with_a_nul_character_is_422_not_a_database_error(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/products", json={**NPC_T9, "name": "NPC\x00"}, headers=auth_headers("qa")
    )
    assert list(_problem(response, 422)["errors"]) == ["name"]
    assert _row_counts(session) == before


def test_text_with_an_unpaired_surrogate_is_422(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/ledger/events",
        data=json.dumps({**LN2_CHECK, "note": "\ud800"}),
        content_type="application/json",
        headers=auth_headers("manufacturing"),
    )
    assert list(_problem(response, 422)["errors"]) == ["note"]
    assert _row_counts(session) == before


def test_a_spec_limit_too_large_to_store_is_422(client, auth_headers, session):
    before = _row_counts(session)
    body = {**NPC_T9, "specification": [_spec_line(lower="1E+15")]}
    response = client.post("/api/v1/products", json=body, headers=auth_headers("qa"))
    assert list(_problem(response, 422)["errors"]) == ["specification"]
    assert _row_counts(session) == before


def test_an_observed_integer_beyond_canonical_json_is_422(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/ledger/events",
        json={**LN2_CHECK, "observations": {"particle_count": 2**60}},
        headers=auth_headers("manufacturing"),
    )
    assert list(_problem(response, 422)["errors"]) == ["observations"]
    assert _row_counts(session) == before


def test_an_observed_nan_is_422(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/ledger/events",
        data=json.dumps({**LN2_CHECK, "observations": {"ln2_level_percent": float("nan")}}),
        content_type="application/json",
        headers=auth_headers("manufacturing"),
    )
    assert list(_problem(response, 422)["errors"]) == ["observations"]
    assert _row_counts(session) == before


def test_a_time_that_cannot_be_expressed_in_utc_is_422(client, auth_headers, session):
    before = _row_counts(session)
    response = client.post(
        "/api/v1/ledger/events",
        json={**LN2_CHECK, "occurred_at": "0001-01-01T00:00:00+14:00"},
        headers=auth_headers("manufacturing"),
    )
    assert list(_problem(response, 422)["errors"]) == ["occurred_at"]
    assert _row_counts(session) == before


# --- no input is a 500 ------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)


def _like(value: object) -> st.SearchStrategy:
    """Values of the same JSON type as `value`, mostly wrong in some other way."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers()
    if isinstance(value, str):
        return st.text()
    if isinstance(value, list):
        return st.lists(_like(value[0]), min_size=1, max_size=2)
    if isinstance(value, dict):
        return st.fixed_dictionaries({key: _like(item) for key, item in value.items()}) | (
            st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=4)
        )
    return JSON_VALUES


def _bodies(valid: dict) -> st.SearchStrategy[str]:
    """Request bodies: the valid one with one member changed, any JSON, any text."""
    one_changed = st.one_of(
        *(
            (_like(value) | JSON_VALUES).map(lambda new, key=key: {**valid, key: new})
            for key, value in valid.items()
        )
    )
    return st.one_of(one_changed.map(json.dumps), JSON_VALUES.map(json.dumps), st.text())


FUZZ = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _post_and_forget(client, connection, path: str, body: str, headers: dict[str, str]):
    # Each example starts from the same data: a product one example creates would turn the
    # next examples into 409s before they reach the database.
    example = connection.begin_nested()
    try:
        return client.post(path, data=body, content_type="application/json", headers=headers)
    finally:
        example.rollback()


@FUZZ
@given(body=_bodies(NPC_T9))
def test_no_body_sent_to_create_a_product_is_a_500(client, auth_headers, connection, body):
    headers = auth_headers("qa")
    response = _post_and_forget(client, connection, "/api/v1/products", body, headers)
    assert response.status_code < 400 or (
        response.status_code < 500 and response.mimetype == PROBLEM
    ), response.get_data(as_text=True)


@FUZZ
@given(body=_bodies(LN2_CHECK))
def test_no_body_sent_to_record_an_observation_is_a_500(client, auth_headers, connection, body):
    headers = auth_headers("manufacturing")
    response = _post_and_forget(client, connection, "/api/v1/ledger/events", body, headers)
    assert response.status_code < 400 or (
        response.status_code < 500 and response.mimetype == PROBLEM
    ), response.get_data(as_text=True)


def test_a_nul_in_a_path_or_query_is_422_as_in_a_body_not_a_database_error(client, auth_headers):
    path = client.get("/api/v1/products/a%00b", headers=auth_headers("qa"))
    query = client.get("/api/v1/lots?status=a%00", headers=auth_headers("qa"))
    body = client.post("/api/v1/scans", json={"code": "a\x00"}, headers=auth_headers("qa"))
    assert [r.status_code for r in (path, query, body)] == [422, 422, 422]
    assert {r.content_type for r in (path, query, body)} == {"application/problem+json"}
    assert (list(path.json["errors"]), list(query.json["errors"])) == (["path"], ["query"])
    assert path.json["detail"] == query.json["detail"] == body.json["errors"]["code"][0]


def test_a_nul_in_the_login_form_is_refused_before_it_reaches_the_database(client):
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(
        "/login", data={"username": "q\x00a", "password": "x", "csrf_token": token}
    )
    assert response.status_code == 422


def test_a_deeply_nested_json_body_is_a_400(client, auth_headers):
    body = '{"chain": ' + "[" * 5000 + "]" * 5000 + "}"
    response = client.post(
        "/api/v1/ledger/events",
        data=body,
        content_type="application/json",
        headers=auth_headers("qa"),
    )
    assert response.status_code == 400
    assert response.json["detail"] == "The request body is nested too deeply."
