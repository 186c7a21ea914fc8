"""Sites name their IANA time zone: local dates are judged in it."""

from __future__ import annotations

import pytest

ICU = {
    "code": "DMU1-ICU",
    "name": "DMU1 intensive care unit",
    "kind": "ward",
    "supplied_by": "DMU1-PH",
}


def test_a_new_site_is_registered_with_its_time_zone(client, auth_headers):
    response = client.post(
        "/api/v1/sites", json={**ICU, "time_zone": "Asia/Shanghai"}, headers=auth_headers("admin")
    )
    assert response.status_code == 201
    assert response.json["time_zone"] == "Asia/Shanghai"
    again = client.get("/api/v1/sites/DMU1-ICU", headers=auth_headers("admin"))
    assert again.json["time_zone"] == "Asia/Shanghai"


def test_a_site_without_a_time_zone_is_refused(client, auth_headers):
    response = client.post("/api/v1/sites", json=ICU, headers=auth_headers("admin"))
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert "time_zone" in response.json["errors"]


@pytest.mark.parametrize("zone", ["+08:00", "CST", "Asia/Nowhere", "Asia/Shanghai "])
def test_a_time_zone_that_is_no_iana_name_is_refused_and_nothing_is_made(
    client, auth_headers, zone
):
    response = client.post(
        "/api/v1/sites", json={**ICU, "time_zone": zone}, headers=auth_headers("admin")
    )
    assert response.status_code == 422
    assert "IANA" in str(response.json["errors"]["time_zone"])
    assert client.get("/api/v1/sites/DMU1-ICU", headers=auth_headers("admin")).status_code == 404


def test_every_demo_site_is_in_china_s_time_zone(client, auth_headers):
    sites = client.get("/api/v1/sites", headers=auth_headers("admin")).json
    assert sites
    assert {site["time_zone"] for site in sites} == {"Asia/Shanghai"}


def test_a_ward_names_the_pharmacy_that_supplies_it(client, auth_headers):
    sites = client.get("/api/v1/sites", headers=auth_headers("admin")).json
    supply = {site["code"]: site["supplied_by"] for site in sites if site["kind"] == "ward"}
    assert supply == {"SYSU3-SPINE": "SYSU3-PH", "AMU-SW-ICU": "AMU-SW-PH"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"supplied_by": None}, "names the hospital pharmacy"),
        ({"supplied_by": "SYSU3-SPINE"}, "not a hospital pharmacy"),
        ({"supplied_by": "NOWHERE"}, "not a hospital pharmacy"),
        ({"kind": "courier_depot"}, "Only a ward"),
    ],
)
def test_a_ward_without_a_pharmacy_or_a_supplied_non_ward_is_refused(
    client, auth_headers, change, message
):
    body = {**ICU, "time_zone": "Asia/Shanghai", **change}
    response = client.post("/api/v1/sites", json=body, headers=auth_headers("admin"))
    assert response.status_code == 422
    assert message in str(response.json["errors"]["supplied_by"])
    assert client.get("/api/v1/sites/DMU1-ICU", headers=auth_headers("admin")).status_code == 404
