"""GET /api/v1/ledger/export?format=epcis: a real journey, validated against GS1's schema."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from jsonschema.validators import validator_for

from custody.shipping import dispose_excursion, import_readings, packed, store, thaw
from lots.accounts import get_user, password_hasher
from lots.base import utcnow
from tests.worlds.shipping import (
    LOT,
    PASSWORDS,
    SEALED_AT,
    deliver,
    readings_csv,
    sealed_shipment,
)
from tests.worlds.standards import SCHEMA, problems, read_standard

HASHER = password_hasher("cheapest")
# Every 30 min from sealing to past receipt; one reading warmer than −150 °C at 09:00.
TEMPERATURES = ["-186.0"] * 7 + ["-146.5"] + ["-185.5"] * 10


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = read_standard(SCHEMA)
    cls = validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@pytest.fixture
def journey(session, clock) -> dict[str, Any]:
    """Pack, seal, ship, two handoffs, receipt, readings with an excursion QA clears, then
    storing every vial and thawing one: all through the services."""
    shipment = sealed_shipment(session, clock, vials=3, logger_id="DL-0042-7")
    deliver(session, clock, shipment)
    pharmacist = get_user(session, "pharmacist")
    logger_file = readings_csv(SEALED_AT, TEMPERATURES, minutes=30).replace(
        "Timestamp,", "Serial Number,DL-0042-7\n\nTimestamp,"
    )
    now = clock.advance(hours=1)  # the logger is read out after receipt
    result = import_readings(session, pharmacist, shipment.sscc, logger_file, now=now)
    (excursion,) = result.excursions
    dispose_excursion(
        session,
        HASHER,
        get_user(session, "qa"),
        shipment.sscc,
        excursion.id,
        decision="use",
        reason="One reading at −146.5 °C; stability data cover −140 °C for 2 h.",
        password=PASSWORDS["qa"],
        now=clock.advance(minutes=30),
    )
    serials = [row.vial.serial for row in packed(session, shipment)]
    store(
        session,
        pharmacist,
        serials,
        location="LN2 freezer 2, rack C",
        now=clock.advance(minutes=10),
    )
    thawed_at = clock.advance(days=2)
    thaw(session, pharmacist, serials[0], occurred_at=thawed_at, now=thawed_at)
    session.flush()
    return {"sscc": shipment.sscc, "serials": serials}


def export(client, auth_headers, who="auditor", **query: str):
    return client.get(
        "/api/v1/ledger/export",
        query_string={"format": "epcis", **query},
        headers=auth_headers(who),
    )


def types(document: dict[str, Any]) -> Counter[str]:
    return Counter(e["celltrail:eventType"] for e in document["epcisBody"]["eventList"])


def of_type(document: dict[str, Any], event_type: str) -> list[dict[str, Any]]:
    return [e for e in document["epcisBody"]["eventList"] if e["celltrail:eventType"] == event_type]


def test_the_journey_exported_validates_against_gs1s_schema(
    client, auth_headers, journey, validator
):
    response = export(client, auth_headers, sscc=journey["sscc"])

    assert response.status_code == 200
    assert response.mimetype == "application/ld+json"
    assert list(problems(validator, response.json)) == []


def test_each_shipper_scan_is_one_event_whatever_it_carries(client, auth_headers, journey):
    document = export(client, auth_headers, sscc=journey["sscc"]).json

    counts = types(document)
    assert counts["PACKED"] == counts["SHIPPED"] == counts["RECEIVED"] == 1
    assert counts["HANDED_OFF"] == 2  # courier → courier2, courier2 → pharmacist
    assert counts["COMMISSIONED"] == counts["STORED"] == 3  # one per vial: not shipper scans
    assert counts["THAWED"] == 1


def test_packing_aggregates_the_vials_under_the_sscc(client, auth_headers, journey):
    (packed_event,) = of_type(export(client, auth_headers, sscc=journey["sscc"]).json, "PACKED")

    assert packed_event["type"] == "AggregationEvent"
    assert packed_event["parentID"] == f"https://id.gs1.org/00/{journey['sscc']}"
    assert [uri.rsplit("/", 1)[-1] for uri in packed_event["childEPCs"]] == journey["serials"]


def test_handoffs_name_the_possessing_parties_by_gln(client, auth_headers, journey):
    document = export(client, auth_headers, sscc=journey["sscc"]).json
    first, second = of_type(document, "HANDED_OFF")

    depot, pharmacy = "https://id.gs1.org/417/9506000100043", "https://id.gs1.org/417/9506000100050"
    assert first["sourceList"] == [{"type": "possessing_party", "source": depot}]
    assert second["destinationList"] == [{"type": "possessing_party", "destination": pharmacy}]
    assert first["epcList"] == [f"https://id.gs1.org/00/{journey['sscc']}"]


def test_the_logger_readings_are_temperature_reports(client, auth_headers, journey):
    (logged,) = of_type(
        export(client, auth_headers, sscc=journey["sscc"]).json, "TEMPERATURE_LOGGED"
    )
    (element,) = logged["sensorElementList"]

    assert logged["bizStep"] == "sensor_reporting"
    assert element["sensorMetadata"]["deviceID"].endswith("/loggers/DL-0042-7")
    assert len(element["sensorReport"]) == len(TEMPERATURES)
    assert element["sensorReport"][7]["value"] == -146.5


def test_the_excursion_holds_the_shipper_until_qa_reviews_it(client, auth_headers, journey):
    document = export(client, auth_headers, sscc=journey["sscc"]).json
    (detected,) = of_type(document, "EXCURSION_DETECTED")
    (reviewed,) = of_type(document, "EXCURSION_DISPOSITIONED")

    assert (detected["bizStep"], detected["disposition"]) == ("holding", "non_sellable_other")
    assert reviewed["bizStep"] == "inspecting"


def test_commissioning_carries_the_lot_and_its_expiry(client, auth_headers, journey):
    first = of_type(export(client, auth_headers, sscc=journey["sscc"]).json, "COMMISSIONED")[0]

    assert first["ilmd"]["cbvmda:lotNumber"] == LOT
    assert first["ilmd"]["cbvmda:itemExpirationDate"]


def test_one_vials_chain_exports_its_own_copies_of_the_shipper_scans(
    client, auth_headers, journey, validator
):
    serial = journey["serials"][0]

    document = export(client, auth_headers, chain=f"vial:{serial}").json

    assert list(problems(validator, document)) == []
    assert types(document)["HANDED_OFF"] == 2
    assert all(e["celltrail:chain"] == f"vial:{serial}" for e in document["epcisBody"]["eventList"])


def test_the_lot_export_includes_its_release_and_the_shipments(
    client, auth_headers, journey, validator
):
    document = export(client, auth_headers, lot=LOT).json

    assert list(problems(validator, document)) == []
    assert types(document)["RELEASED"] == 1
    assert journey["sscc"] in {
        e["celltrail:chain"].removeprefix("shipment:") for e in document["epcisBody"]["eventList"]
    }


@pytest.fixture
def before_the_journey():
    """The ledger's clock before the journey fixture records it (fixtures run in order)."""
    return utcnow()


def test_since_keeps_the_events_recorded_from_then_on(
    client, auth_headers, before_the_journey, journey
):
    """`since` is the EPCIS recordTime (GE_recordTime): an incremental export gets what the
    ledger recorded after the last one, however long before the steps themselves happened
    (this journey happened in July 2025)."""
    after_the_journey = utcnow()
    sscc = journey["sscc"]

    recorded_since = types(
        export(client, auth_headers, sscc=sscc, since=before_the_journey.isoformat()).json
    )
    nothing_since = types(
        export(client, auth_headers, sscc=sscc, since=after_the_journey.isoformat()).json
    )

    assert recorded_since <= types(export(client, auth_headers, sscc=sscc).json)
    assert recorded_since["PACKED"] == recorded_since["RECEIVED"] == recorded_since["THAWED"] == 1
    assert nothing_since == Counter()


def test_the_whole_ledger_exports_and_validates(client, auth_headers, journey, validator):
    response = export(client, auth_headers)

    assert response.status_code == 200
    assert list(problems(validator, response.json)) == []


@pytest.mark.parametrize("who", ["manufacturing", "courier", "pharmacist", "clinician", "qc"])
def test_only_oversight_exports_the_ledger(client, auth_headers, who):
    assert export(client, auth_headers, who=who).status_code == 403


def test_other_formats_are_refused(client, auth_headers):
    response = client.get("/api/v1/ledger/export?format=xml", headers=auth_headers("qa"))

    assert response.status_code == 422
    assert "format" in response.json["errors"]


def test_a_chain_that_holds_no_custody_events_is_refused(client, auth_headers):
    response = export(client, auth_headers, chain="site:XSM-SZ")

    assert response.status_code == 422
