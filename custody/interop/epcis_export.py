"""The ledger's custody events read from the database and written as EPCIS 2.0 (custody.epcis).

What is exported: every event of vial and shipment chains, and the status decisions of lot
chains (release, exceptional release, rejection, recall); batch-record steps, QC results and
observations of sites stay in celltrail. Each EPCIS event stands for exactly one ledger
event, whose hash it carries, so an auditor can match the two.

A shipper's events are written once, at shipper level: packing, shipping, each handoff and
receipt are recorded on the shipment's chain (listing the vials) and on each vial's chain;
the export keeps the shipment's event and leaves out the vials' copies of it, so handing over
a 500-vial shipper is one event, not 501. A vial's copy stays when the shipment's event is not
in the export (a single vial's chain asked for).

Events of a vial chain with no vial on record (no GTIN or lot to name it by) are left out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from sqlalchemy import literal, or_, select
from sqlalchemy.orm import Session

from custody.interop.epcis import EventFacts, LotId, SiteFacts, VialId, epcis_document
from custody.ledger import CustodyEvent
from custody.shipping import Reading, Shipment, ShipmentVial, TemperatureReading
from custody.trials import hidden_kit_chains
from lots.base import utcnow
from lots.batch import Lot, Vial
from lots.errors import InvalidValueError, NotFoundError
from lots.models import Product, Site

LOT_DECISIONS: Final = frozenset({"RELEASED", "EXCEPTIONALLY_RELEASED", "REJECTED", "RECALLED"})
# Vial events that copy a shipment-chain event of the same type, shipper and time.
SHIPPER_LEVEL: Final = frozenset({"PACKED", "UNPACKED", "SHIPPED", "HANDED_OFF", "RECEIVED"})
AGGREGATIONS: Final = frozenset({"PACKED", "UNPACKED"})
CHAIN_KINDS: Final = ("vial:", "shipment:", "lot:")


@dataclass(frozen=True)
class _Stored:
    chain: str
    event_type: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    event_hash: str
    site: str | None
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class _Context:
    sites: Mapping[str, SiteFacts]
    vials: Mapping[str, tuple[VialId, str]]  # serial -> (identity, lot expiry)
    lots: Mapping[str, str]  # lot number -> GTIN
    shipments: Mapping[str, tuple[str, str]]  # SSCC -> (from site, to site)
    readings: Mapping[str, list[Reading]]  # TEMPERATURE_LOGGED hash -> readings it added


def export_epcis(
    session: Session,
    *,
    base_uri: str,
    chain: str | None = None,
    lot: str | None = None,
    sscc: str | None = None,
    since: dt.datetime | None = None,
    created: dt.datetime | None = None,
    blinded: bool = False,
) -> dict[str, Any]:
    """An EPCISDocument of the custody events; filters narrow it (all must match).

    `chain` is one vial, shipment or lot chain; `lot` a lot with its vials and the shipments
    that carried them; `sscc` a shipment with the vials packed in it; `since` keeps events
    recorded at or after that time (recordTime: an incremental export also picks up scans
    captured offline and submitted late). With `blinded` (a reader without the unblinded
    flag) no event of a blinded trial's kit vial is exported: its product, lot and time
    would name the arm of the subject given that kit.
    """
    stored = _events(
        session, _scope(session, chain=chain, lot=lot, sscc=sscc), since, blinded=blinded
    )
    context = _context(session, stored, blinded=blinded)
    facts = _facts(stored, context)
    created = created or utcnow()
    return epcis_document(facts, sites=context.sites, base_uri=base_uri, created=created)


def _scope(
    session: Session, *, chain: str | None, lot: str | None, sscc: str | None
) -> set[str] | None:
    """The chains to export, or None for every exportable chain."""
    scopes: list[set[str]] = []
    if chain is not None:
        if not chain.startswith(CHAIN_KINDS):
            raise InvalidValueError(
                "chain", "Only vial:, shipment: and lot: chains hold custody events."
            )
        scopes.append({chain})
    if lot is not None:
        scopes.append(_lot_chains(session, lot))
    if sscc is not None:
        scopes.append(_shipment_chains(session, sscc))
    if not scopes:
        return None
    return set.intersection(*scopes)


def _lot_chains(session: Session, number: str) -> set[str]:
    found = session.scalar(select(Lot.id).where(Lot.number == number))
    if found is None:
        raise NotFoundError("lot", number)
    serials = set(session.scalars(select(Vial.serial).where(Vial.lot_id == found)))
    ssccs = session.scalars(
        select(Shipment.sscc)
        .join(ShipmentVial, ShipmentVial.shipment_id == Shipment.id)
        .join(Vial, Vial.id == ShipmentVial.vial_id)
        .where(Vial.lot_id == found)
        .distinct()
    )
    return {f"lot:{number}"} | {f"vial:{s}" for s in serials} | {f"shipment:{s}" for s in ssccs}


def _shipment_chains(session: Session, sscc: str) -> set[str]:
    found = session.scalar(select(Shipment.id).where(Shipment.sscc == sscc))
    if found is None:
        raise NotFoundError("shipment with SSCC", sscc)
    serials = session.scalars(
        select(Vial.serial)
        .join(ShipmentVial, ShipmentVial.vial_id == Vial.id)
        .where(ShipmentVial.shipment_id == found)
    )
    return {f"shipment:{sscc}"} | {f"vial:{serial}" for serial in serials}


def _events(
    session: Session, chains: set[str] | None, since: dt.datetime | None, *, blinded: bool
) -> list[_Stored]:
    lot_decision = CustodyEvent.chain.startswith("lot:") & CustodyEvent.event_type.in_(
        LOT_DECISIONS
    )
    custody = or_(
        CustodyEvent.chain.startswith("vial:"),
        CustodyEvent.chain.startswith("shipment:"),
        lot_decision,
    )
    query = (
        select(
            CustodyEvent.chain,
            CustodyEvent.event_type,
            CustodyEvent.occurred_at,
            CustodyEvent.recorded_at,
            CustodyEvent.hash,
            CustodyEvent.body,
        )
        .where(custody)
        .order_by(CustodyEvent.id)
    )
    if since is not None:
        query = query.where(CustodyEvent.recorded_at >= since)
    if blinded:
        query = query.where(CustodyEvent.chain.not_in(hidden_kit_chains()))
    if chains is not None:
        if not chains:
            return []
        query = query.where(CustodyEvent.chain.in_(sorted(chains)))
    stored = []
    for chain, event_type, occurred_at, recorded_at, event_hash, body in session.execute(query):
        parsed = orjson.loads(body)
        stored.append(
            _Stored(
                chain,
                event_type,
                occurred_at,
                recorded_at,
                event_hash,
                parsed.get("site"),
                parsed.get("payload") or {},
            )
        )
    return stored


def _context(session: Session, stored: Sequence[_Stored], *, blinded: bool) -> _Context:
    serials: set[str] = set()
    numbers: set[str] = set()
    ssccs: set[str] = set()
    logged: list[str] = []
    for event in stored:
        kind, _, key = event.chain.partition(":")
        if kind == "vial":
            serials.add(key)
        elif kind == "lot":
            numbers.add(key)
        else:
            ssccs.add(key)
            serials.update(_listed(event.payload, "vials", "received"))
            if event.event_type == "TEMPERATURE_LOGGED":
                logged.append(event.event_hash)
    return _Context(
        sites=_sites(session),
        vials=_vials(session, serials, blinded=blinded),
        lots=_lots(session, numbers),
        shipments=_shipments(session, ssccs),
        readings=_readings(session, logged),
    )


def _sites(session: Session) -> dict[str, SiteFacts]:
    return {
        site.code: SiteFacts(site.code, site.name, site.kind, site.gln, site.time_zone)
        for site in session.scalars(select(Site))
    }


def _vials(session: Session, serials: set[str], *, blinded: bool) -> dict[str, tuple[VialId, str]]:
    """The vials the events name; for a blinded reader, no blinded kit's vial (a shipper's
    events then list the other vials only)."""
    if not serials:
        return {}
    query = (
        select(Vial.serial, Product.gtin, Lot.number, Lot.expires_on)
        .join(Lot, Lot.id == Vial.lot_id)
        .join(Product, Product.id == Lot.product_id)
        .where(Vial.serial.in_(sorted(serials)))
    )
    if blinded:
        query = query.where((literal("vial:") + Vial.serial).not_in(hidden_kit_chains()))
    rows = session.execute(query)
    return {
        serial: (VialId(gtin, number, serial), expires_on.isoformat())
        for serial, gtin, number, expires_on in rows
    }


def _lots(session: Session, numbers: set[str]) -> dict[str, str]:
    if not numbers:
        return {}
    rows = session.execute(
        select(Lot.number, Product.gtin)
        .join(Product, Product.id == Lot.product_id)
        .where(Lot.number.in_(sorted(numbers)))
    )
    return dict(rows.all())


def _shipments(session: Session, ssccs: set[str]) -> dict[str, tuple[str, str]]:
    if not ssccs:
        return {}
    origin, destination = Site.__table__.alias("origin"), Site.__table__.alias("destination")
    rows = session.execute(
        select(Shipment.sscc, origin.c.code, destination.c.code)
        .join(origin, origin.c.id == Shipment.from_site_id)
        .join(destination, destination.c.id == Shipment.to_site_id)
        .where(Shipment.sscc.in_(sorted(ssccs)))
    )
    return {sscc: (source, target) for sscc, source, target in rows}


def _readings(session: Session, hashes: Sequence[str]) -> dict[str, list[Reading]]:
    found: dict[str, list[Reading]] = {}
    if not hashes:
        return found
    rows = session.scalars(
        select(TemperatureReading)
        .where(TemperatureReading.event_hash.in_(hashes))
        .order_by(TemperatureReading.at, TemperatureReading.logger_id)
    )
    for row in rows:
        reading = Reading(row.at, row.celsius, row.logger_id, row.fahrenheit)
        found.setdefault(row.event_hash, []).append(reading)
    return found


def _facts(stored: Sequence[_Stored], context: _Context) -> list[EventFacts]:
    shipper_level = {
        (event.event_type, event.chain.removeprefix("shipment:"), event.occurred_at)
        for event in stored
        if event.chain.startswith("shipment:")
    }
    facts = []
    for event in stored:
        kind, _, key = event.chain.partition(":")
        if kind == "vial":
            sscc = event.payload.get("sscc")
            copy = (event.event_type, sscc, event.occurred_at) in shipper_level
            if event.event_type in SHIPPER_LEVEL and copy:
                continue
            made = _vial_event(event, key, context)
        elif kind == "lot":
            made = _lot_event(event, key, context)
        else:
            made = _shipment_event(event, key, context)
        if made is not None:
            facts.append(made)
    return facts


def _vial_event(event: _Stored, serial: str, context: _Context) -> EventFacts | None:
    known = context.vials.get(serial)
    if known is None:
        return None
    vial, expires_on = known
    payload = dict(event.payload)
    if event.event_type == "COMMISSIONED":
        payload.setdefault("expires_on", expires_on)
    sscc = event.payload.get("sscc")
    return _made(
        event,
        payload=payload,
        vials=[vial],
        sscc=sscc if event.event_type in AGGREGATIONS else None,
        **_parties(event, sscc, context),
    )


def _lot_event(event: _Stored, number: str, context: _Context) -> EventFacts | None:
    gtin = context.lots.get(number)
    if gtin is None:
        return None
    return _made(event, lots=[LotId(gtin, number)])


def _shipment_event(event: _Stored, sscc: str, context: _Context) -> EventFacts | None:
    listed = "received" if event.event_type == "RECEIVED" else "vials"
    shown = event.event_type in AGGREGATIONS or event.event_type == "RECEIVED"
    serials = _listed(event.payload, listed) if shown else []
    vials = [context.vials[s][0] for s in serials if s in context.vials]
    if serials and not vials:
        return None  # only vials this reader may not know of: a blinded reader's export
    return _made(
        event,
        vials=vials,
        sscc=sscc,
        readings=context.readings.get(event.event_hash, []),
        **_parties(event, sscc, context),
    )


def _parties(event: _Stored, sscc: object, context: _Context) -> dict[str, str | None]:
    """Possessing parties: a handoff's giver and taker; shipping and receipt name the
    business transfer, from the shipping site to the receiving one."""
    if event.event_type == "HANDED_OFF":
        giver, taker = event.payload.get("from"), event.payload.get("to")
        source = giver.get("site") if isinstance(giver, dict) else None
        destination = taker.get("site") if isinstance(taker, dict) else None
        return {"source": _known(source, context), "destination": _known(destination, context)}
    if event.event_type in ("SHIPPED", "RECEIVED") and isinstance(sscc, str):
        ends = context.shipments.get(sscc)
        if ends is not None:
            return {"source": ends[0], "destination": ends[1]}
    return {}


def _known(code: object, context: _Context) -> str | None:
    return code if isinstance(code, str) and code in context.sites else None


def _made(event: _Stored, **facts: Any) -> EventFacts:
    return EventFacts(
        event_type=event.event_type,
        occurred_at=event.occurred_at,
        recorded_at=event.recorded_at,
        site=event.site,
        chain=event.chain,
        event_hash=event.event_hash,
        payload=facts.pop("payload", event.payload),
        **facts,
    )


def _listed(payload: Mapping[str, Any], *names: str) -> list[str]:
    values: Iterable[object] = (
        item for name in names for item in (payload.get(name) or []) if isinstance(item, str)
    )
    return [str(value) for value in values]
