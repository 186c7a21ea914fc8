"""FHIR R5 Provenance: a ledger event with its signatures and agents, alone or in a Bundle."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.interop.fhir import (
    is_hidden,
    patient_reference,
    person_reference,
    product_reference,
    site_reference,
)
from custody.ledger import CustodyEvent, canonical_bytes
from custody.trials import Administration, Kit
from lots.batch import Vial
from lots.models import Site

SSCC_SYSTEM = "https://www.gs1.org/sscc"
AGENT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
ENTITY_ROLE_REVISION = "revision"
ASTM_E1762 = "urn:iso-astm:E1762-95:2013"
# ASTM E1762-95 signature types (the FHIR signature-type value set).
AUTHOR = ("1.2.840.10065.1.12.1.1", "Author's Signature")
VALIDATION = ("1.2.840.10065.1.12.1.6", "Validation Signature")
EVENT_WITNESS = ("1.2.840.10065.1.12.1.9", "Event Witness Signature")
# QA's decisions validate a record; everything else is signed by the one who did it, except
# a second person's confirmation, which witnesses the event.
VALIDATING_EVENTS = frozenset(
    {"RELEASED", "EXCEPTIONALLY_RELEASED", "REJECTED", "RECALLED", "EXCURSION_DISPOSITIONED"}
)
AGENT_TYPES = {AUTHOR: "performer", VALIDATION: "verifier", EVENT_WITNESS: "attester"}
CUSTODY_EVENTS = frozenset({"HANDED_OFF", "RECEIVED"})
SIGNATURE_KEYS = frozenset({"user", "name", "meaning", "signed_at"})


def provenance(
    session: Session, event: CustodyEvent, *, base: str, blinded: bool
) -> dict[str, Any]:
    """A ledger event as an R5 Provenance: who did and signed what, when, and after what."""
    body = orjson.loads(event.body)
    payload: Mapping[str, Any] = body["payload"]
    target, patient = _targets(session, event, base=base, blinded=blinded)
    signatures = [
        (manifestation, _signature_type(event.event_type, key, index))
        for index, (key, manifestation) in enumerate(_manifestations(payload))
    ]
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": event.hash,
        "target": target,
        "occurredDateTime": body["occurred_at"],
        "recorded": body["recorded_at"],
        "activity": {"text": event.event_type},
        "agent": _agents(base, event, body, signatures),
    }
    if patient is not None:
        resource["patient"] = patient
    if event.site_id is not None:
        site = session.get_one(Site, event.site_id)
        resource["location"] = site_reference(site, "Location")
    if signatures:
        resource["signature"] = [
            _signature(base, event, manifestation, kind) for manifestation, kind in signatures
        ]
    if event.prev_hash is not None:
        resource["entity"] = [
            {
                "role": ENTITY_ROLE_REVISION,
                "what": {
                    "reference": f"Provenance/{event.prev_hash}",
                    "display": "The previous event of the same chain",
                },
            }
        ]
    return resource


def provenance_bundle(
    session: Session, events: Sequence[CustodyEvent], *, base: str, blinded: bool
) -> dict[str, Any]:
    """A searchset Bundle of Provenance resources."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(events),
        "entry": [
            {
                "fullUrl": f"{base}/api/v1/fhir/Provenance/{event.hash}",
                "resource": provenance(session, event, base=base, blinded=blinded),
                "search": {"mode": "match"},
            }
            for event in events
        ],
    }


def chain_provenance_events(session: Session, vial: Vial) -> list[CustodyEvent]:
    """The events of a vial's chain, in order."""
    return list(
        session.scalars(
            select(CustodyEvent).where(CustodyEvent.chain == vial.chain).order_by(CustodyEvent.seq)
        )
    )


def _targets(
    session: Session, event: CustodyEvent, *, base: str, blinded: bool
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    kind, _, key = event.chain.partition(":")
    targets: list[dict[str, Any]] = []
    patient = None
    if kind == "vial":
        vial = session.scalar(select(Vial).where(Vial.serial == key))
        if vial is not None:
            kit = session.scalar(select(Kit).where(Kit.vial_id == vial.id))
            targets.append(product_reference(vial, kit, hidden=is_hidden(kit, blinded=blinded)))
    elif kind == "lot":
        targets.append(
            {"identifier": {"system": f"{base}/lots", "value": key}, "display": f"Lot {key}"}
        )
    elif kind == "shipment":
        targets.append(
            {"identifier": {"system": SSCC_SYSTEM, "value": key}, "display": f"Shipper {key}"}
        )
    administration = session.scalar(
        select(Administration).where(Administration.event_hash == event.hash)
    )
    if administration is not None:
        targets.append({"reference": f"BiologicallyDerivedProductDispense/{administration.id}"})
        patient = patient_reference(base, administration.subject)
    if not targets:
        targets.append({"display": event.chain})
    return targets, patient


def _manifestations(payload: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """Every signature manifestation in a payload, at its top level or in a list."""
    for key, value in payload.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, Mapping) and item.keys() >= SIGNATURE_KEYS:
                yield key, item


def _signature_type(event_type: str, key: str, index: int) -> tuple[str, str]:
    if event_type in VALIDATING_EVENTS:
        return VALIDATION
    if index > 0 or "witness" in key:
        return EVENT_WITNESS
    return AUTHOR


def _agents(
    base: str,
    event: CustodyEvent,
    body: Mapping[str, Any],
    signatures: Sequence[tuple[Mapping[str, Any], tuple[str, str]]],
) -> list[dict[str, Any]]:
    agents = []
    signers = set()
    for manifestation, kind in signatures:
        code = "custodian" if event.event_type in CUSTODY_EVENTS else AGENT_TYPES[kind]
        agents.append(_agent(base, code, manifestation["user"], manifestation["name"]))
        signers.add(manifestation["user"])
    actor = body.get("actor")
    if actor is not None and actor["user"] not in signers:
        agents.append(_agent(base, "enterer", actor["user"], actor["name"]))
    if not agents:
        agents.append({"type": _agent_type("assembler"), "who": {"display": "celltrail"}})
    return agents


def _agent(base: str, code: str, username: str, name: str) -> dict[str, Any]:
    return {"type": _agent_type(code), "who": person_reference(base, username, name)}


def _agent_type(code: str) -> dict[str, Any]:
    return {"coding": [{"system": AGENT_TYPE_SYSTEM, "code": code}]}


def _signature(
    base: str, event: CustodyEvent, manifestation: Mapping[str, Any], kind: tuple[str, str]
) -> dict[str, Any]:
    # The data is the manifestation exactly as it was hashed into the event (RFC 8785).
    data = base64.b64encode(canonical_bytes(dict(manifestation))).decode()
    return {
        "type": [{"system": ASTM_E1762, "code": kind[0], "display": kind[1]}],
        "when": manifestation["signed_at"],
        "who": person_reference(base, manifestation["user"], manifestation["name"]),
        "targetFormat": "application/json",
        "sigFormat": "application/json",
        "data": data,
    }
