"""marshmallow schemas of shipments, courier handoffs, receipts and vial handling."""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from app.api.schemas import Moment, Number, StrictSchema
from custody.manufacturing import MAX_VIALS
from custody.shipping import (
    Confirmation,
    Handoff,
    Receipt,
    Shipment,
    ShipmentStatus,
    TemperatureRecord,
    receipt_complete,
    reconciled,
)
from lots.models import User

SERIAL = fields.String(validate=validate.Length(1, 20))
SSCC = validate.Regexp(r"^\d{18}$", error="An SSCC is 18 digits.")
USERNAME = validate.Length(1, 64)


def _serials(**kwargs: Any) -> fields.List:
    return fields.List(SERIAL, validate=validate.Length(1, MAX_VIALS), **kwargs)


# --- requests ---------------------------------------------------------------------------


class ShipmentQuerySchema(StrictSchema):
    status = fields.String(validate=validate.OneOf([status.value for status in ShipmentStatus]))


class ShipmentCreateSchema(StrictSchema):
    to_site = fields.String(required=True, validate=validate.Length(1, 32))
    hold_time_hours = fields.Integer(
        required=True,
        validate=validate.Range(1, 24 * 30),
        metadata={"description": "The shipper's validated hold time."},
    )
    sscc = fields.String(
        load_default=None,
        allow_none=True,
        validate=SSCC,
        metadata={"description": "A pre-printed shipper label's SSCC; one is made otherwise."},
    )
    asset_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 40))
    logger_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 40))
    storage_limit_c = Number(
        load_default=None,
        allow_none=True,
        places=1,
        validate=validate.Range(-273, 100),
        metadata={"description": "°C; the strictest limit of the packed products by default."},
    )


class SerialsSchema(StrictSchema):
    serials = _serials(required=True)


class SealSchema(StrictSchema):
    seal_number = fields.String(required=True, validate=validate.Length(1, 40))


class ShipSchema(StrictSchema):
    courier = fields.String(required=True, validate=USERNAME)


class HandoffCreateSchema(StrictSchema):
    giver = fields.String(
        required=True,
        validate=USERNAME,
        metadata={"description": "The username (or scanned badge) of the person handing over."},
    )
    occurred_at = Moment(
        load_default=None,
        metadata={
            "description": "When the scan was made; now by default. An earlier time is "
            "an offline capture: accepted if it follows the chain, and flagged late."
        },
    )
    password = fields.String(
        load_default=None,
        load_only=True,
        validate=validate.Length(1, 256),
        metadata={"description": "The taker's password, where the site requires a signature."},
    )


class ReceiptCreateSchema(StrictSchema):
    seal_number = fields.String(required=True, validate=validate.Length(1, 40))
    serials = _serials(
        load_default=None, metadata={"description": "The vials scanned while unpacking."}
    )
    accept_manifest = fields.Boolean(
        load_default=False, metadata={"description": "Receive exactly what was packed."}
    )
    giver = fields.String(
        load_default=None,
        validate=USERNAME,
        metadata={"description": "The courier handing over, unless you already hold it."},
    )
    password = fields.String(load_default=None, load_only=True, validate=validate.Length(1, 256))

    @validates_schema
    def _serials_or_manifest(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("serials") is None) == (not data.get("accept_manifest")):
            raise ValidationError(
                "Scan the vials (serials) or accept the manifest, one of the two.", "serials"
            )


class StoreSchema(SerialsSchema):
    location = fields.String(
        required=True,
        validate=validate.Length(1, 80),
        metadata={"description": "Freezer and position, e.g. 'LN2-02 rack C/3'."},
    )


class DispenseSchema(SerialsSchema):
    ward = fields.String(required=True, validate=validate.Length(1, 32))


class ThawSchema(StrictSchema):
    occurred_at = Moment(load_default=None, metadata={"description": "Now by default."})


# --- answers ----------------------------------------------------------------------------


class PartySchema(StrictSchema):
    user = fields.String()
    name = fields.String()
    site = fields.String()


class HandoffSchema(StrictSchema):
    sscc = fields.String()
    number = fields.Integer()
    giver = fields.Nested(PartySchema)
    taker = fields.Nested(PartySchema)
    occurred_at = fields.DateTime()
    recorded_at = fields.DateTime()
    late = fields.Boolean(metadata={"description": "Captured offline and submitted later."})
    signed = fields.Boolean(metadata={"description": "The taker signed with the password."})
    event_hash = fields.String()
    confirmed_by_giver = fields.Boolean(
        metadata={"description": "The giver confirmed it on their own device (two-sided)."}
    )
    confirmed_at = fields.DateTime(allow_none=True)


class RefusedHandoffSchema(StrictSchema):
    recorded_at = fields.DateTime()
    claimed_at = fields.String()
    giver = fields.String()
    taker = fields.String()
    reason = fields.String()
    event_hash = fields.String()


class PackedVialSchema(StrictSchema):
    serial = fields.String()
    lot = fields.String()
    product = fields.String()
    state = fields.String()
    packed_at = fields.DateTime()
    received_at = fields.DateTime(allow_none=True)


class TransitRecordSchema(StrictSchema):
    """Whether the shipper's logger readings cover its transit, where its products
    require them (the product version's temperature_record_required)."""

    required = fields.Boolean(
        metadata={"description": "A product packed requires logger readings of the transit."}
    )
    covered = fields.Boolean(metadata={"description": "The readings cover sealing to receipt."})
    missing = fields.Boolean(metadata={"description": "Received without the required record."})
    first_reading = fields.DateTime(allow_none=True)
    last_reading = fields.DateTime(allow_none=True)
    problem = fields.String(allow_none=True)


class ReceiptSchema(StrictSchema):
    sscc = fields.String()
    received_by = fields.Nested(PartySchema)
    received_at = fields.DateTime()
    seal_number = fields.String()
    complete = fields.Boolean(
        metadata={
            "description": "Reconciled, and the temperature record the products require is "
            "attached: only then may the vials be dispensed towards a patient."
        }
    )
    reconciled = fields.Boolean(
        metadata={"description": "Everything packed arrived, and nothing else."}
    )
    received = fields.List(fields.String())
    missing = fields.List(fields.String())
    extra = fields.List(fields.String(), metadata={"description": "Known vials never packed here."})
    of_another_shipment = fields.Dict(
        keys=fields.String(), values=fields.String(), metadata={"description": "Serial → SSCC."}
    )
    unknown = fields.List(fields.String())
    event_hash = fields.String()
    one_sided_handoffs = fields.List(
        fields.Integer(),
        metadata={"description": "Handoffs on the taker's word only: no giver confirmed them."},
    )
    temperature_record = fields.Nested(TransitRecordSchema)


class ShipmentSummarySchema(StrictSchema):
    sscc = fields.String()
    status = fields.String()
    from_site = fields.String()
    to_site = fields.String()
    custodian = fields.Nested(PartySchema, allow_none=True)
    custodian_since = fields.DateTime(allow_none=True)
    seal_number = fields.String(allow_none=True)
    asset_id = fields.String(allow_none=True)
    logger_id = fields.String(allow_none=True)
    storage_limit_c = Number(allow_none=True)
    hold_time_hours = fields.Integer()
    hold_until = fields.DateTime(
        allow_none=True, metadata={"description": "Shipped time plus the validated hold time."}
    )
    vial_count = fields.Integer()
    created_at = fields.DateTime()
    sealed_at = fields.DateTime(allow_none=True)
    shipped_at = fields.DateTime(allow_none=True)
    received_at = fields.DateTime(allow_none=True)


class ShipmentDetailSchema(ShipmentSummarySchema):
    from_site_name = fields.String()
    to_site_name = fields.String()
    created_by = fields.String()
    vials = fields.List(fields.Nested(PackedVialSchema))
    handoffs = fields.List(fields.Nested(HandoffSchema))
    refused_handoffs = fields.List(fields.Nested(RefusedHandoffSchema))
    receipt = fields.Nested(ReceiptSchema, allow_none=True)
    temperature_record = fields.Nested(TransitRecordSchema)


class HandledVialSchema(StrictSchema):
    serial = fields.String()
    state = fields.String()
    site = fields.String(allow_none=True)


class ThawedVialSchema(HandledVialSchema):
    thawed_at = fields.DateTime()
    use_by = fields.DateTime(
        allow_none=True, metadata={"description": "End of the post-thaw window, if any."}
    )


# --- answers: shipment objects as the fields of their schemas ---------------------------


def party(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"user": user.username, "name": user.full_name, "site": user.site.code}


def handoff_fields(
    sscc: str, handoff: Handoff, confirmation: Confirmation | None = None
) -> dict[str, Any]:
    return {
        "sscc": sscc,
        "number": handoff.number,
        "giver": party(handoff.giver),
        "taker": party(handoff.taker),
        "occurred_at": handoff.occurred_at,
        "recorded_at": handoff.recorded_at,
        "late": handoff.late,
        "signed": handoff.signed,
        "event_hash": handoff.event_hash,
        "confirmed_by_giver": confirmation is not None,
        "confirmed_at": confirmation.confirmed_at if confirmation else None,
    }


def receipt_fields(
    receipt: Receipt, one_sided: list[int], record: TemperatureRecord
) -> dict[str, Any]:
    found = receipt.reconciliation
    lists = {name: found.get(name, []) for name in ("received", "missing", "extra", "unknown")}
    return {
        "sscc": receipt.shipment.sscc,
        "received_by": party(receipt.received_by),
        "received_at": receipt.received_at,
        "seal_number": receipt.seal_number,
        "complete": receipt_complete(receipt, record),
        "reconciled": reconciled(receipt),
        **lists,
        "of_another_shipment": found.get("of_another_shipment", {}),
        "event_hash": receipt.event_hash,
        "one_sided_handoffs": one_sided,
        "temperature_record": record_fields(record),
    }


def record_fields(record: TemperatureRecord) -> dict[str, Any]:
    return {
        "required": record.required,
        "covered": record.covered,
        "missing": record.missing,
        "first_reading": record.first_reading,
        "last_reading": record.last_reading,
        "problem": record.problem,
    }


def shipment_summary(shipment: Shipment, vial_count: int) -> dict[str, Any]:
    hold_until = None
    if shipment.shipped_at is not None:
        hold_until = shipment.shipped_at + dt.timedelta(hours=shipment.hold_time_hours)
    return {
        "sscc": shipment.sscc,
        "status": shipment.status,
        "from_site": shipment.from_site.code,
        "to_site": shipment.to_site.code,
        "custodian": party(shipment.custodian),
        "custodian_since": shipment.custodian_since,
        "seal_number": shipment.seal_number,
        "asset_id": shipment.asset_id,
        "logger_id": shipment.logger_id,
        "storage_limit_c": shipment.storage_limit_c,
        "hold_time_hours": shipment.hold_time_hours,
        "hold_until": hold_until,
        "vial_count": vial_count,
        "created_at": shipment.created_at,
        "sealed_at": shipment.sealed_at,
        "shipped_at": shipment.shipped_at,
        "received_at": shipment.received_at,
    }
