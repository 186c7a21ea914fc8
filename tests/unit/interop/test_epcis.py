"""The EPCIS 2.0 export of a vial's journey, validated against GS1's own JSON schema."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from jsonschema.protocols import Validator

from custody.interop import (
    EventFacts,
    LotId,
    SiteFacts,
    VialId,
    epcis_document,
    event_id,
    lot_uri,
    shipper_uri,
    vial_uri,
)
from custody.shipping import Reading
from tests.worlds.standards import STANDARDS, epcis_validator, problems, read_standard


@pytest.fixture(scope="module")
def validator():
    return epcis_validator()


GS1_EXAMPLES = ["example-aggregation-event.jsonld", "example-sensor-data.jsonld"]

BASE = "https://trail.example.org"
GTIN = "09506000134352"
SSCC = "095060001343523452"
LOT = "XS228-2507-01"
VIALS = [VialId(GTIN, LOT, f"{LOT}-V{n:04d}") for n in (1, 2, 3)]
SITES = {
    "MFG-LEI": SiteFacts("MFG-LEI", "XS Cell Manufacturing", "manufacturer", "9506000000015"),
    "CRYO-AMS": SiteFacts(
        "CRYO-AMS", "CryoCourier Amsterdam", "courier_depot", "9506000000022", "Europe/Amsterdam"
    ),
    "CRYO-CGN": SiteFacts("CRYO-CGN", "CryoCourier Köln", "courier_depot"),  # no GLN
    "PHA-BER": SiteFacts(
        "PHA-BER", "Charité Pharmacy", "hospital_pharmacy", "9506000000039", "Europe/Berlin"
    ),
}
READINGS = [
    Reading(dt.datetime(2025, 7, 14, 6, m, tzinfo=dt.UTC), Decimal(c), "DL-0042-7")
    for m, c in ((0, "-185.2"), (15, "-184.9"), (30, "-149.6"), (45, "-185.0"))
]


def moment(day: int, hour: int) -> dt.datetime:
    return dt.datetime(2025, 7, day, hour, 0, 0, 123456, tzinfo=dt.UTC)


def facts(number: int, event_type: str, day: int, hour: int, **more: Any) -> EventFacts:
    return EventFacts(
        event_type=event_type,
        occurred_at=moment(day, hour),
        recorded_at=moment(day, hour) + dt.timedelta(seconds=2),
        site=more.pop("site", "MFG-LEI"),
        chain=more.pop("chain", f"vial:{VIALS[0].serial}"),
        event_hash=f"{number:064x}",
        **more,
    )


# fmt: off
JOURNEY = [
    *(
        facts(n, "COMMISSIONED", 1, 8, vials=[v], chain=f"vial:{v.serial}")
        for n, v in enumerate(VIALS, start=1)
    ),
    facts(4, "RELEASED", 10, 9, chain=f"lot:{LOT}", lots=[LotId(GTIN, LOT, 3)]),
    facts(5, "PACKED", 13, 7, vials=VIALS, sscc=SSCC, chain=f"shipper:{SSCC}"),
    facts(6, "SHIPPED", 13, 9, sscc=SSCC, source="MFG-LEI", destination="PHA-BER"),
    facts(7, "HANDED_OFF", 13, 15, sscc=SSCC, site="CRYO-AMS",
          source="MFG-LEI", destination="CRYO-AMS"),
    facts(8, "HANDED_OFF", 14, 3, sscc=SSCC, site="CRYO-CGN",
          source="CRYO-AMS", destination="CRYO-CGN"),
    facts(9, "TEMPERATURE_LOGGED", 14, 7, sscc=SSCC, site="CRYO-CGN", readings=READINGS),
    facts(10, "RECEIVED", 14, 9, sscc=SSCC, vials=VIALS, site="PHA-BER",
          source="CRYO-CGN", destination="PHA-BER",
          source_owner="MFG-LEI", destination_owner="MFG-LEI"),
    facts(11, "STORED", 14, 10, vials=VIALS, site="PHA-BER"),
    facts(12, "DISPENSED", 20, 7, vials=VIALS[:1], site="PHA-BER"),
    facts(13, "THAWED", 20, 8, vials=VIALS[:1], site="PHA-BER"),
    facts(14, "ADMINISTERED", 20, 9, vials=VIALS[:1], site="PHA-BER"),
    facts(15, "RECALLED", 25, 12, lots=[LotId(GTIN, LOT)], chain=f"lot:{LOT}"),
    facts(16, "DESTROYED", 26, 10, vials=VIALS[1:], site="PHA-BER"),
]
# fmt: on


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return epcis_document(JOURNEY, sites=SITES, base_uri=BASE, created=moment(27, 12))


def events_of(document: dict[str, Any], event_type: str) -> list[dict[str, Any]]:
    return [e for e in document["epcisBody"]["eventList"] if e["celltrail:eventType"] == event_type]


# --- the harness ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", GS1_EXAMPLES)
def test_gs1s_own_examples_pass_our_validator(validator: Validator, name: str) -> None:
    assert list(problems(validator, read_standard(STANDARDS / name))) == []


def test_the_validator_checks_formats_and_the_events_inside(validator: Validator) -> None:
    example = read_standard(STANDARDS / GS1_EXAMPLES[0])
    bad_time, bad_uri, bad_step = (copy.deepcopy(example) for _ in range(3))
    bad_time["creationDate"] = "11 July 2005"
    bad_uri["epcisBody"]["eventList"][0]["parentID"] = "not a URI"
    bad_step["epcisBody"]["eventList"][0]["disposition"] = "quarantined"

    assert not validator.is_valid(bad_time)
    assert not validator.is_valid(bad_uri)
    assert not validator.is_valid(bad_step)


def test_missing_gs1_files_fail_in_ci_and_skip_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="GS1's EPCIS files are not in"):
        read_standard(tmp_path / "EPCIS-JSON-Schema.json")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        read_standard(tmp_path / "EPCIS-JSON-Schema.json")


# --- the journey ---------------------------------------------------------------------------


def test_the_journey_validates_against_gs1s_schema(
    validator: Validator, document: dict[str, Any]
) -> None:
    assert list(problems(validator, document)) == []
    assert list(problems(validator, json.loads(json.dumps(document)))) == []


def test_each_ledger_event_reads_as_its_cbv_step_and_disposition(document: dict[str, Any]) -> None:
    steps = {
        e["celltrail:eventType"]: (e["type"], e["action"], e["bizStep"], e.get("disposition"))
        for e in document["epcisBody"]["eventList"]
    }

    assert steps == {
        "COMMISSIONED": ("ObjectEvent", "ADD", "commissioning", "active"),
        "RELEASED": ("ObjectEvent", "OBSERVE", "celltrail:released", None),
        "PACKED": ("AggregationEvent", "ADD", "packing", "in_progress"),
        "SHIPPED": ("ObjectEvent", "OBSERVE", "shipping", "in_transit"),
        "HANDED_OFF": ("ObjectEvent", "OBSERVE", "transporting", "in_transit"),
        "TEMPERATURE_LOGGED": ("ObjectEvent", "OBSERVE", "sensor_reporting", None),
        "RECEIVED": ("ObjectEvent", "OBSERVE", "receiving", "in_progress"),
        "STORED": ("ObjectEvent", "OBSERVE", "storing", "sellable_not_accessible"),
        "DISPENSED": ("ObjectEvent", "OBSERVE", "dispensing", "reserved"),
        "THAWED": ("ObjectEvent", "OBSERVE", "celltrail:thawing", None),
        "ADMINISTERED": ("ObjectEvent", "OBSERVE", "dispensing", "dispensed"),
        "RECALLED": ("ObjectEvent", "OBSERVE", "holding", "recalled"),
        "DESTROYED": ("ObjectEvent", "OBSERVE", "destroying", "destroyed"),
    }


def test_packing_aggregates_the_three_vials_under_the_shippers_sscc(
    document: dict[str, Any],
) -> None:
    (packed,) = events_of(document, "PACKED")

    assert packed["parentID"] == f"https://id.gs1.org/00/{SSCC}"
    assert packed["childEPCs"] == [
        f"https://id.gs1.org/01/{GTIN}/21/XS228-2507-01-V000{n}" for n in (1, 2, 3)
    ]


def test_shipping_names_who_hands_over_and_who_receives(document: dict[str, Any]) -> None:
    (shipped,) = events_of(document, "SHIPPED")

    assert shipped["epcList"] == [shipper_uri(SSCC)]
    assert shipped["sourceList"] == [
        {"type": "possessing_party", "source": "https://id.gs1.org/417/9506000000015"}
    ]
    assert shipped["destinationList"] == [
        {"type": "possessing_party", "destination": "https://id.gs1.org/417/9506000000039"}
    ]
    assert shipped["readPoint"] == {"id": "https://id.gs1.org/414/9506000000015"}
    assert "bizLocation" not in shipped  # in transit: at no business location


def test_a_courier_without_a_gln_is_named_by_celltrails_site_uri(
    document: dict[str, Any],
) -> None:
    second = events_of(document, "HANDED_OFF")[1]

    assert second["destinationList"][0]["destination"] == f"{BASE}/sites/CRYO-CGN"
    assert second["readPoint"] == {"id": f"{BASE}/sites/CRYO-CGN"}


def test_receipt_carries_owning_parties_beside_possessing_ones(document: dict[str, Any]) -> None:
    (received,) = events_of(document, "RECEIVED")

    assert [s["type"] for s in received["sourceList"]] == ["possessing_party", "owning_party"]
    assert received["bizLocation"] == {"id": "https://id.gs1.org/414/9506000000039"}


def test_commissioning_records_the_lot_as_instance_master_data(document: dict[str, Any]) -> None:
    first = events_of(document, "COMMISSIONED")[0]

    assert first["epcList"] == [vial_uri(VIALS[0])]
    assert first["ilmd"] == {"cbvmda:lotNumber": LOT}


def test_a_lot_recall_names_the_lot_as_a_class(document: dict[str, Any]) -> None:
    (recall,) = events_of(document, "RECALLED")

    assert recall["quantityList"] == [{"epcClass": f"https://id.gs1.org/01/{GTIN}/10/{LOT}"}]
    assert lot_uri(LotId(GTIN, LOT)) == recall["quantityList"][0]["epcClass"]


def test_logger_readings_become_temperature_reports_in_celsius(document: dict[str, Any]) -> None:
    (logged,) = events_of(document, "TEMPERATURE_LOGGED")
    (element,) = logged["sensorElementList"]

    assert element["sensorMetadata"]["deviceID"] == f"{BASE}/loggers/DL-0042-7"
    assert element["sensorReport"][2] == {
        "type": "Temperature",
        "time": "2025-07-14T06:30:00.000000Z",
        "value": -149.6,
        "uom": "CEL",
    }
    assert len(element["sensorReport"]) == len(READINGS)


def test_times_are_utc_with_the_sites_local_offset(document: dict[str, Any]) -> None:
    (stored,) = events_of(document, "STORED")
    (shipped,) = events_of(document, "SHIPPED")

    assert stored["eventTime"] == "2025-07-14T10:00:00.123456Z"
    assert stored["eventTimeZoneOffset"] == "+02:00"  # Berlin in summer
    assert shipped["eventTimeZoneOffset"] == "+00:00"  # a site with no time zone on record
    assert stored["recordTime"] == "2025-07-14T10:00:02.123456Z"


def test_every_event_carries_celltrails_hash_and_a_stable_id(document: dict[str, Any]) -> None:
    events = document["epcisBody"]["eventList"]
    again = epcis_document(reversed(JOURNEY), sites=SITES, base_uri=BASE, created=moment(28, 9))

    assert document["@context"][1] == {"celltrail": f"{BASE}/ns/epcis#"}
    assert [e["celltrail:hash"] for e in events] == [f"{n:064x}" for n in range(1, 17)]
    assert len({e["eventID"] for e in events}) == len(events)
    assert events[0]["eventID"] == event_id(f"{1:064x}")
    ids = {e["celltrail:hash"]: e["eventID"] for e in events}
    assert {e["celltrail:hash"]: e["eventID"] for e in again["epcisBody"]["eventList"]} == ids


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (facts(1, "PACKED", 1, 8, vials=VIALS), "needs the shipper's SSCC"),
        (facts(1, "STORED", 1, 8), "names no vial, shipper or lot"),
        (facts(1, "STORED", 1, 8, vials=VIALS, site="NOWHERE"), "'NOWHERE' is not among"),
        (facts(1, "STORED", 1, 8, vials=[VialId("09506000134353", LOT, "V1")]), "check digit"),
        (facts(1, "SHIPPED", 1, 8, sscc="12345"), "SSCC '12345' must be 18 digits"),
    ],
)
def test_events_the_export_cannot_state_truthfully_are_refused(
    event: EventFacts, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        epcis_document([event], sites=SITES, base_uri=BASE, created=moment(27, 12))
