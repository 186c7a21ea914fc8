"""Custody events as an EPCIS 2.0 JSON-LD document, in CBV 2.0 vocabulary. Pure code.

Identifiers are GS1 Digital Link URIs on id.gs1.org, which EPCIS 2.0 accepts wherever it
accepts EPC URNs: a vial is `/01/{GTIN}/21/{serial}`, a lot `/01/{GTIN}/10/{lot}`, a shipper
`/00/{SSCC}`, a site's location `/414/{GLN}`, and the site as a party `/417/{GLN}`. The URN
forms (`urn:epc:id:sgtin:…`) split each key into company prefix and reference, and celltrail
does not record the length of a GS1 company prefix; the Digital Link needs none. A site
without a GLN is named by celltrail's own URI, `{base_uri}/sites/{code}`.

Events (the vocabulary is CBV 2.0's; where CBV has no word, celltrail's namespace gives one):

    COMMISSIONED  ObjectEvent ADD       commissioning   active          (+ ilmd lot number)
    PACKED        AggregationEvent ADD  packing         in_progress     parent = the SSCC
    UNPACKED      AggregationEvent DELETE unpacking     in_progress
    SEALED        ObjectEvent OBSERVE   packing         container_closed
    SHIPPED       ObjectEvent OBSERVE   shipping        in_transit      source → destination
    HANDED_OFF    ObjectEvent OBSERVE   transporting    in_transit      giver → taker
    RECEIVED      ObjectEvent OBSERVE   receiving       in_progress
    STORED        ObjectEvent OBSERVE   storing         sellable_not_accessible
    DISPENSED     ObjectEvent OBSERVE   dispensing      reserved
    THAWED        ObjectEvent OBSERVE   celltrail:thawing  (disposition unchanged)
    ADMINISTERED  ObjectEvent OBSERVE   dispensing      dispensed
    QUARANTINED   ObjectEvent OBSERVE   holding         non_sellable_other
    RECALLED      ObjectEvent OBSERVE   holding         recalled
    DESTROYED     ObjectEvent OBSERVE   destroying      destroyed
    RETURNED      ObjectEvent OBSERVE   receiving       returned
    INSPECTED     ObjectEvent OBSERVE   inspecting      (disposition unchanged)
    EXCURSION_DETECTED  ObjectEvent OBSERVE  holding    non_sellable_other
    EXCURSION_DISPOSITIONED  ObjectEvent OBSERVE  inspecting  (disposition unchanged)
    anything else ObjectEvent OBSERVE   sensor_reporting if it carries readings, else
                                        celltrail:{type in lower case}

Why these words:
- HANDED_OFF is "transporting": the shipper moves between carriers on its way; "holding"
  means set aside for review, "arriving"/"departing" are about a location's doors.
- DISPENSED is the pharmacy giving the vial out for its named patient, so "dispensing" with
  "reserved" (set aside for one party); ADMINISTERED completes it, "dispensing" with
  "dispensed", the end of the vial's life as CBV's point-of-care dispensing is.
- THAWED has no CBV step: "inspecting" would claim a check nobody made, so celltrail's own
  `thawing` step, and no disposition, since thawing changes none of CBV's.
- QUARANTINED is "holding" (segregated for review) with "non_sellable_other": not
  "non_conformant", which is QA's verdict, nor "needs_replacement", a returnable asset's.
- In transit (SHIPPED, HANDED_OFF) an event has a read point but no business location.
- EXCURSION_DETECTED holds the shipper (and so what it carries) for QA's review, as a
  quarantine does; QA's disposition is a review of the record ("inspecting"). "Use" lets the
  vials go on as they were; "destroy" is written as DESTROYED events of the vials.

eventID: CBV 2.0's event hash ID (`ni:///sha-256;…?ver=CBV2.0`) is the hash of CBV's own
pre-hash string of the EPCIS event. celltrail's hash is over its own canonical form
(`custody.chain`), so calling it a CBV hash would let a verifier find a mismatch. The eventID
is a UUID derived from celltrail's hash (`urn:uuid:`, version 5): the same event keeps the
same ID in every export. The hash itself, the chain and the ledger's event type travel in
extension fields of celltrail's namespace, `{base_uri}/ns/epcis#`, declared in `@context`.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final
from urllib.parse import quote

from biip.checksums import gs1_standard_check_digit

from custody.ledger import format_time
from custody.shipping import Reading

GS1_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
DIGITAL_LINK: Final = "https://id.gs1.org"
PREFIX: Final = "celltrail"
SCHEMA_VERSION: Final = "2.0"
# Fixed forever: changing it changes every exported eventID.
EVENT_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://celltrail/epcis/event-id")
OBJECT: Final = "ObjectEvent"
AGGREGATION: Final = "AggregationEvent"


@dataclass(frozen=True)
class SiteFacts:
    """What the export needs of a site."""

    code: str
    name: str
    kind: str
    gln: str | None = None
    time_zone: str | None = None  # IANA name, for eventTimeZoneOffset; UTC when unknown


@dataclass(frozen=True)
class VialId:
    """One vial, as GS1 identifies it: GTIN, lot and serial (an SGTIN, plus its lot)."""

    gtin: str
    lot: str
    serial: str


@dataclass(frozen=True)
class LotId:
    """A whole lot (a class of vials), for events about a lot rather than named vials."""

    gtin: str
    lot: str
    quantity: int | None = None


@dataclass(frozen=True)
class EventFacts:
    """One stored custody event, as the service layer hands it to the export."""

    event_type: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    site: str | None  # the site code where it happened
    chain: str
    event_hash: str  # hex SHA-256 of the event's canonical body (custody.chain)
    payload: Mapping[str, Any] = field(default_factory=dict)
    vials: Sequence[VialId] = ()
    sscc: str | None = None  # the shipper, for shipper events
    lots: Sequence[LotId] = ()
    readings: Sequence[Reading] = ()
    source: str | None = None  # site code of the party handing over
    destination: str | None = None  # site code of the party taking over
    source_owner: str | None = None  # site code of the owning party before
    destination_owner: str | None = None  # site code of the owning party after


@dataclass(frozen=True)
class Step:
    """How one ledger event type reads in EPCIS."""

    event: str
    action: str
    biz_step: str
    disposition: str | None


STEPS: Final[Mapping[str, Step]] = {
    "COMMISSIONED": Step(OBJECT, "ADD", "commissioning", "active"),
    "PACKED": Step(AGGREGATION, "ADD", "packing", "in_progress"),
    "UNPACKED": Step(AGGREGATION, "DELETE", "unpacking", "in_progress"),
    "SEALED": Step(OBJECT, "OBSERVE", "packing", "container_closed"),
    "SHIPPED": Step(OBJECT, "OBSERVE", "shipping", "in_transit"),
    "HANDED_OFF": Step(OBJECT, "OBSERVE", "transporting", "in_transit"),
    "RECEIVED": Step(OBJECT, "OBSERVE", "receiving", "in_progress"),
    "STORED": Step(OBJECT, "OBSERVE", "storing", "sellable_not_accessible"),
    "DISPENSED": Step(OBJECT, "OBSERVE", "dispensing", "reserved"),
    "THAWED": Step(OBJECT, "OBSERVE", f"{PREFIX}:thawing", None),
    "ADMINISTERED": Step(OBJECT, "OBSERVE", "dispensing", "dispensed"),
    "QUARANTINED": Step(OBJECT, "OBSERVE", "holding", "non_sellable_other"),
    "RECALLED": Step(OBJECT, "OBSERVE", "holding", "recalled"),
    "DESTROYED": Step(OBJECT, "OBSERVE", "destroying", "destroyed"),
    "RETURNED": Step(OBJECT, "OBSERVE", "receiving", "returned"),
    "INSPECTED": Step(OBJECT, "OBSERVE", "inspecting", None),
    "EXCURSION_DETECTED": Step(OBJECT, "OBSERVE", "holding", "non_sellable_other"),
    "EXCURSION_DISPOSITIONED": Step(OBJECT, "OBSERVE", "inspecting", None),
}


def epcis_document(
    events: Iterable[EventFacts],
    *,
    sites: Mapping[str, SiteFacts],
    base_uri: str,
    created: dt.datetime,
) -> dict[str, Any]:
    """An EPCISDocument of the events, in the order they occurred; JSON-serialisable."""
    base = base_uri.rstrip("/")
    ordered = sorted(events, key=lambda facts: (facts.occurred_at, facts.recorded_at))
    return {
        "@context": [GS1_CONTEXT, {PREFIX: namespace(base)}],
        "type": "EPCISDocument",
        "schemaVersion": SCHEMA_VERSION,
        "creationDate": format_time(created),
        "epcisBody": {"eventList": [epcis_event(facts, sites, base) for facts in ordered]},
    }


def namespace(base_uri: str) -> str:
    """celltrail's JSON-LD namespace for its extension fields and vocabulary."""
    return f"{base_uri.rstrip('/')}/ns/epcis#"


def epcis_event(facts: EventFacts, sites: Mapping[str, SiteFacts], base: str) -> dict[str, Any]:
    """One custody event as an EPCIS ObjectEvent or AggregationEvent."""
    step = step_for(facts)
    site = _site(facts.site, sites) if facts.site else None
    event: dict[str, Any] = {
        "type": step.event,
        "eventID": event_id(facts.event_hash),
        "eventTime": format_time(facts.occurred_at),
        "eventTimeZoneOffset": _offset(facts.occurred_at, site),
        "recordTime": format_time(facts.recorded_at),
        "action": step.action,
        **_objects(facts, step),
        "bizStep": step.biz_step,
    }
    if step.disposition:
        event["disposition"] = step.disposition
    if site is not None:
        event["readPoint"] = {"id": location_uri(site, base)}
        if step.disposition != "in_transit":
            event["bizLocation"] = {"id": location_uri(site, base)}
    event.update(_parties(facts, sites, base))
    if facts.readings:
        event["sensorElementList"] = sensor_elements(facts.readings, base)
    if step.event == OBJECT and step.action == "ADD":
        event.update(_ilmd(facts))
    event[f"{PREFIX}:eventType"] = facts.event_type
    event[f"{PREFIX}:chain"] = facts.chain
    event[f"{PREFIX}:hash"] = facts.event_hash
    return event


def step_for(facts: EventFacts) -> Step:
    """The EPCIS reading of a ledger event type (see the module's table)."""
    known = STEPS.get(facts.event_type)
    if known is not None:
        return known
    if facts.readings:
        return Step(OBJECT, "OBSERVE", "sensor_reporting", None)
    return Step(OBJECT, "OBSERVE", f"{PREFIX}:{facts.event_type.lower()}", None)


def event_id(event_hash: str) -> str:
    """`urn:uuid:` of a version-5 UUID of celltrail's event hash: stable across exports."""
    return f"urn:uuid:{uuid.uuid5(EVENT_ID_NAMESPACE, event_hash.lower())}"


def vial_uri(vial: VialId) -> str:
    """GS1 Digital Link of a vial's SGTIN: `https://id.gs1.org/01/{GTIN-14}/21/{serial}`."""
    return f"{DIGITAL_LINK}/01/{_gtin14(vial.gtin)}/21/{_escape(vial.serial)}"


def lot_uri(lot: LotId) -> str:
    """GS1 Digital Link of a lot (LGTIN class): `https://id.gs1.org/01/{GTIN-14}/10/{lot}`."""
    return f"{DIGITAL_LINK}/01/{_gtin14(lot.gtin)}/10/{_escape(lot.lot)}"


def shipper_uri(sscc: str) -> str:
    """GS1 Digital Link of a shipper's SSCC: `https://id.gs1.org/00/{SSCC}`."""
    return f"{DIGITAL_LINK}/00/{_checked(sscc, 18, 'SSCC')}"


def location_uri(site: SiteFacts, base: str) -> str:
    """The site as a location: `https://id.gs1.org/414/{GLN}`, or celltrail's site URI."""
    if site.gln:
        return f"{DIGITAL_LINK}/414/{_checked(site.gln, 13, 'GLN')}"
    return f"{base}/sites/{_escape(site.code)}"


def party_uri(site: SiteFacts, base: str) -> str:
    """The site as a party: `https://id.gs1.org/417/{GLN}`, or celltrail's site URI.

    A GLN names a party (AI 417) or a location (AI 414); celltrail keeps one per site.
    """
    if site.gln:
        return f"{DIGITAL_LINK}/417/{_checked(site.gln, 13, 'GLN')}"
    return f"{base}/sites/{_escape(site.code)}"


def sensor_elements(readings: Sequence[Reading], base: str) -> list[dict[str, Any]]:
    """One sensorElement per logger: each reading a Temperature report in °C (CEL)."""
    by_logger: dict[str | None, list[Reading]] = {}
    for reading in sorted(readings, key=lambda reading: reading.at):
        by_logger.setdefault(reading.logger_id, []).append(reading)
    elements = []
    for logger_id, series in by_logger.items():
        metadata = {"startTime": format_time(series[0].at), "endTime": format_time(series[-1].at)}
        if logger_id:
            metadata["deviceID"] = f"{base}/loggers/{_escape(logger_id)}"
        reports = [_report(reading) for reading in series]
        elements.append({"sensorMetadata": metadata, "sensorReport": reports})
    return elements


def _report(reading: Reading) -> dict[str, Any]:
    return {
        "type": "Temperature",
        "time": format_time(reading.at),
        "value": _number(reading.celsius),
        "uom": "CEL",
    }


def _objects(facts: EventFacts, step: Step) -> dict[str, Any]:
    vials = [vial_uri(vial) for vial in facts.vials]
    quantities = [_quantity(lot) for lot in facts.lots]
    if step.event == AGGREGATION:
        if facts.sscc is None:
            raise ValueError(f"a {facts.event_type} event needs the shipper's SSCC")
        if step.action == "ADD" and not vials and not quantities:
            raise ValueError(f"a {facts.event_type} event needs the vials packed")
        objects: dict[str, Any] = {"parentID": shipper_uri(facts.sscc), "childEPCs": vials}
        if quantities:
            objects["childQuantityList"] = quantities
        return objects
    epcs = ([shipper_uri(facts.sscc)] if facts.sscc else []) + vials
    if not epcs and not quantities:
        raise ValueError(
            f"the {facts.event_type} event of {facts.chain} names no vial, shipper or lot"
        )
    objects = {"epcList": epcs}
    if quantities:
        objects["quantityList"] = quantities
    return objects


def _quantity(lot: LotId) -> dict[str, Any]:
    element: dict[str, Any] = {"epcClass": lot_uri(lot)}
    if lot.quantity is not None:
        element["quantity"] = lot.quantity
    return element


def _parties(
    facts: EventFacts, sites: Mapping[str, SiteFacts], base: str
) -> dict[str, list[dict[str, str]]]:
    sources = [
        {"type": kind, "source": party_uri(_site(code, sites), base)}
        for kind, code in (("possessing_party", facts.source), ("owning_party", facts.source_owner))
        if code
    ]
    destinations = [
        {"type": kind, "destination": party_uri(_site(code, sites), base)}
        for kind, code in (
            ("possessing_party", facts.destination),
            ("owning_party", facts.destination_owner),
        )
        if code
    ]
    lists = {"sourceList": sources, "destinationList": destinations}
    return {name: entries for name, entries in lists.items() if entries}


def _ilmd(facts: EventFacts) -> dict[str, Any]:
    # Instance/lot master data at commissioning, written as GS1's EPCIS 2.0 examples write it.
    lots = {vial.lot for vial in facts.vials}
    ilmd: dict[str, Any] = {}
    if len(lots) == 1:
        ilmd["cbvmda:lotNumber"] = lots.pop()
    expires_on = facts.payload.get("expires_on")
    if isinstance(expires_on, str) and expires_on:
        ilmd["cbvmda:itemExpirationDate"] = expires_on
    return {"ilmd": ilmd} if ilmd else {}


def _site(code: str, sites: Mapping[str, SiteFacts]) -> SiteFacts:
    site = sites.get(code)
    if site is None:
        raise ValueError(f"the site {code!r} is not among the sites given to the export")
    return site


def _offset(moment: dt.datetime, site: SiteFacts | None) -> str:
    if site is None or site.time_zone is None:
        return "+00:00"
    try:
        zone = zoneinfo.ZoneInfo(site.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"the site {site.code!r} has an unknown time zone") from error
    local = moment.astimezone(zone).strftime("%z")
    return f"{local[:3]}:{local[3:5]}"


def _gtin14(gtin: str) -> str:
    if len(gtin) not in (8, 12, 13, 14):
        raise ValueError(f"the GTIN {gtin!r} must be 8, 12, 13 or 14 digits")
    return _checked(gtin, len(gtin), "GTIN").rjust(14, "0")


def _checked(number: str, length: int, name: str) -> str:
    if not (number.isascii() and number.isdigit() and len(number) == length):
        raise ValueError(f"the {name} {number!r} must be {length} digits")
    if gs1_standard_check_digit(number[:-1]) != int(number[-1]):
        raise ValueError(f"the {name} {number!r} has a wrong check digit")
    return number


def _escape(value: str) -> str:
    # GS1 Digital Link: percent-encode everything outside the URI unreserved set.
    return quote(value, safe="")


def _number(value: Decimal) -> int | float:
    # JSON numbers: the schema's decimal is a JSON number, and json cannot write a Decimal.
    return int(value) if value == value.to_integral_value() else float(value)
