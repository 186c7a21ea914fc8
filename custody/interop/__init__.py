"""Interoperability: the ledger as EPCIS 2.0 events and the records as FHIR R5 resources.
It reads every capability; nothing in custody imports it."""

from __future__ import annotations

from custody.interop.epcis import (
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
from custody.interop.epcis_export import export_epcis
from custody.interop.fhir import (
    biologically_derived_product,
    dispense_site_ids,
    event_is_hidden,
    event_site_ids,
    find_administration,
    find_event,
    find_product,
    product_dispense,
    product_site_ids,
    product_status,
)
from custody.interop.fhir_provenance import chain_provenance_events, provenance, provenance_bundle
from custody.interop.jsonl_export import chain_heads, ledger_lines

__all__ = [
    "EventFacts",
    "LotId",
    "SiteFacts",
    "VialId",
    "biologically_derived_product",
    "chain_heads",
    "chain_provenance_events",
    "dispense_site_ids",
    "epcis_document",
    "event_id",
    "event_is_hidden",
    "event_site_ids",
    "export_epcis",
    "find_administration",
    "find_event",
    "find_product",
    "ledger_lines",
    "lot_uri",
    "product_dispense",
    "product_site_ids",
    "product_status",
    "provenance",
    "provenance_bundle",
    "shipper_uri",
    "vial_uri",
]
