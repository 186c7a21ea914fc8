"""Shipping and the cold chain: shipments packed into a dry shipper, courier handoffs, receipt
and reconciliation at the pharmacy, storing, dispensing and thawing, temperature logger files
and excursions, and the vial state derived from its custody events."""

from __future__ import annotations

from custody.shipping.cold_chain import (
    DESTROY_MEANING,
    UNNAMED_LOGGER,
    USE_MEANING,
    ExcursionStateError,
    ImportResult,
    ReadingsRefusedError,
    dispose_excursion,
    import_readings,
    judged_window,
    plain,
    shipment_excursions,
    shipment_readings,
)
from custody.shipping.cold_chain_models import Disposition, ShipmentExcursion, TemperatureReading
from custody.shipping.handoffs import (
    SIGNING_SITE_KINDS,
    HandoffRefusedError,
    record_handoff,
    scan_handoff,
    shipment_handoffs,
)
from custody.shipping.models import Handoff, Receipt, Shipment, ShipmentStatus, ShipmentVial
from custody.shipping.queries import (
    can_see_shipment,
    find_shipment,
    packed_counts,
    refused_handoffs,
    visible_shipments,
)
from custody.shipping.receipt import VialHandlingError, dispense, receipt_of, receive, store, thaw
from custody.shipping.shipments import (
    ShipmentStateError,
    VialNotPackableError,
    create_shipment,
    pack_vials,
    packed,
    seal,
    ship,
    unpack_vials,
)
from custody.shipping.temperature import (
    Excursion,
    ExcursionKind,
    Reading,
    ReadingsError,
    find_excursions,
    parse_readings,
    parse_zone,
)
from custody.shipping.vials import (
    BLOCKING_LOT_STATUSES,
    FINAL_STATES,
    STATE_AFTER,
    derive_state,
    vial_states,
    vial_status,
)

__all__ = [
    "BLOCKING_LOT_STATUSES",
    "DESTROY_MEANING",
    "FINAL_STATES",
    "SIGNING_SITE_KINDS",
    "STATE_AFTER",
    "UNNAMED_LOGGER",
    "USE_MEANING",
    "Disposition",
    "Excursion",
    "ExcursionKind",
    "ExcursionStateError",
    "Handoff",
    "HandoffRefusedError",
    "ImportResult",
    "Reading",
    "ReadingsError",
    "ReadingsRefusedError",
    "Receipt",
    "Shipment",
    "ShipmentExcursion",
    "ShipmentStateError",
    "ShipmentStatus",
    "ShipmentVial",
    "TemperatureReading",
    "VialHandlingError",
    "VialNotPackableError",
    "can_see_shipment",
    "create_shipment",
    "derive_state",
    "dispense",
    "dispose_excursion",
    "find_excursions",
    "find_shipment",
    "import_readings",
    "judged_window",
    "pack_vials",
    "packed",
    "packed_counts",
    "parse_readings",
    "parse_zone",
    "plain",
    "receipt_of",
    "receive",
    "record_handoff",
    "refused_handoffs",
    "scan_handoff",
    "seal",
    "ship",
    "shipment_excursions",
    "shipment_handoffs",
    "shipment_readings",
    "store",
    "thaw",
    "unpack_vials",
    "vial_states",
    "vial_status",
    "visible_shipments",
]
