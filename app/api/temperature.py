"""A shipper's temperature record: logger uploads, its excursions and QA's disposition."""

from __future__ import annotations

from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates

from app import clock
from app.api.schemas import Number, StrictSchema
from app.auth import hasher, require_user, requires
from app.db import get_session
from app.writes import write
from custody.shipping import (
    Disposition,
    ImportResult,
    ReadingsError,
    ShipmentExcursion,
    dispose_excursion,
    get_visible_shipment,
    import_readings,
    judged_window,
    parse_zone,
    plain,
    shipment_excursions,
    shipment_readings,
)
from lots.access import Permission
from lots.errors import DomainError, NotFoundError

TABLE_TYPES = frozenset({"text/csv", "text/plain", "text/tab-separated-values"})

blp = Blueprint(
    "temperature",
    __name__,
    url_prefix="",
    description="Shipper temperature records, excursions and QA's disposition",
)


class UnsupportedUploadError(DomainError):
    """A request body that is neither a logger file nor the JSON readings document."""

    status = 415
    title = "Unsupported media type"


# --- schemas ------------------------------------------------------------------------------


class UploadQuerySchema(StrictSchema):
    timezone = fields.String(
        validate=validate.Length(1, 64),
        metadata={
            "description": "The zone of times without a UTC offset when the file states none: "
            "an IANA name (Asia/Shanghai) or an offset (+08:00)."
        },
    )
    day_first = fields.Boolean(
        metadata={"description": "For dates such as 03/07/2025 when no day is above 12."},
    )

    @validates("timezone")
    def _known_zone(self, value: str, **_kwargs: Any) -> None:
        try:
            parse_zone(value)
        except ReadingsError as error:
            raise ValidationError(str(error)) from error


class ReadingSchema(Schema):
    t = fields.AwareDateTime(attribute="at", metadata={"description": "UTC."})
    c = Number(attribute="celsius", metadata={"description": "°C."})
    logger_id = fields.String()


class ExcursionSchema(Schema):
    id = fields.Integer()
    kind = fields.String(metadata={"description": "temperature or hold_time"})
    logger_id = fields.String(allow_none=True)
    start = fields.AwareDateTime(attribute="started_at")
    end = fields.AwareDateTime(attribute="ended_at")
    peak_c = fields.Function(lambda e: None if e.peak_c is None else plain(e.peak_c))
    readings = fields.Integer(attribute="reading_count")
    ongoing = fields.Boolean(metadata={"description": "The record ends inside it."})
    detected_at = fields.AwareDateTime()
    event_hash = fields.String()
    open = fields.Boolean(
        metadata={"description": "No disposition yet: the shipper's vials are quarantined."}
    )
    disposition = fields.String(allow_none=True)
    disposition_reason = fields.String(allow_none=True)
    disposed_by = fields.Function(lambda e: e.disposed_by.username if e.disposed_by else None)
    disposed_by_name = fields.Function(lambda e: e.disposed_by.full_name if e.disposed_by else None)
    disposed_at = fields.AwareDateTime(allow_none=True)
    disposition_event_hash = fields.String(allow_none=True)


class UploadResultSchema(Schema):
    sscc = fields.String()
    added = fields.Integer(metadata={"description": "Readings attached by this upload."})
    already_recorded = fields.Integer(metadata={"description": "Readings already on record."})
    event_hash = fields.String(allow_none=True, metadata={"description": "TEMPERATURE_LOGGED."})
    excursions = fields.List(
        fields.Nested(ExcursionSchema), metadata={"description": "Found by this upload."}
    )


class TemperatureRecordSchema(Schema):
    sscc = fields.String()
    storage_limit_c = Number(allow_none=True)
    hold_time_hours = fields.Integer()
    judged_from = fields.AwareDateTime(
        allow_none=True, metadata={"description": "Sealing: readings count from here."}
    )
    judged_until = fields.AwareDateTime(
        allow_none=True, metadata={"description": "Receipt: readings count up to here."}
    )
    readings = fields.List(fields.Nested(ReadingSchema))
    excursions = fields.List(fields.Nested(ExcursionSchema))


class DispositionSchema(StrictSchema):
    decision = fields.String(
        required=True, validate=validate.OneOf([decision.value for decision in Disposition])
    )
    reason = fields.String(required=True, validate=validate.Length(1, 2000))
    password = fields.String(required=True, load_only=True, validate=validate.Length(1, 256))
    meaning = fields.String(
        load_default=None,
        validate=validate.Length(1, 200),
        metadata={"description": "What the signature means; a default per decision."},
    )


# --- endpoints ----------------------------------------------------------------------------

UPLOAD_BODY = {
    "required": True,
    "description": "A logger export (CSV or TSV with a timestamp and a °C or °F column, as "
    "a file field `file` or as the body), or the JSON document "
    '`{"logger_id": "DL-0042-7", "readings": [{"t": "2025-07-14T06:00:00Z", "c": -185.2}]}`.',
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
                "required": ["file"],
            }
        },
        "text/csv": {"schema": {"type": "string"}},
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "logger_id": {"type": "string"},
                    "readings": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "t": {"type": "string", "format": "date-time"},
                                "c": {"type": "number"},
                            },
                        },
                    },
                },
            }
        },
    },
}


@blp.route("/shipments/<sscc>/temperatures")
class Temperatures(MethodView):
    @requires(Permission.SHIPMENTS_READ)
    @blp.response(200, TemperatureRecordSchema)
    def get(self, sscc: str) -> dict[str, Any]:
        """The shipper's readings in time order, its storage limit and its excursions."""
        session = get_session()
        shipment = get_visible_shipment(session, require_user(), sscc)
        start, end = judged_window(shipment)
        return {
            "sscc": shipment.sscc,
            "storage_limit_c": shipment.storage_limit_c,
            "hold_time_hours": shipment.hold_time_hours,
            "judged_from": start,
            "judged_until": end,
            "readings": shipment_readings(session, shipment),
            "excursions": shipment_excursions(session, shipment),
        }

    @requires(Permission.TEMPERATURE_IMPORT)
    @write
    @blp.arguments(UploadQuerySchema, location="query")
    @blp.doc(requestBody=UPLOAD_BODY)
    @blp.response(201, UploadResultSchema)
    @blp.alt_response(200, schema=UploadResultSchema, description="Nothing new: all on record.")
    def post(self, query: dict[str, Any], sscc: str) -> tuple[dict[str, Any], int]:
        """Attach a logger file; excursions found quarantine the shipper's vials until QA
        decides. Re-sending a file adds nothing (200); a bad line is a 422 naming it."""
        session, user = get_session(), require_user()
        get_visible_shipment(session, user, sscc)
        content, filename = _upload()
        zone = query.get("timezone")
        result = import_readings(
            session,
            user,
            sscc,
            content,
            filename=filename,
            timezone=parse_zone(zone) if zone else None,
            day_first=query.get("day_first"),
            now=clock.now(),
        )
        return _result(result), 201 if result.added else 200


@blp.route("/shipments/<sscc>/excursions/<int:excursion_id>/disposition")
class ExcursionDisposition(MethodView):
    @requires(Permission.EXCURSIONS_DISPOSE)
    @write
    @blp.arguments(DispositionSchema)
    @blp.response(200, ExcursionSchema)
    def post(self, data: dict[str, Any], sscc: str, excursion_id: int) -> ShipmentExcursion:
        """QA's signed decision: "use" lifts the quarantine, "destroy" destroys the vials."""
        session, user = get_session(), require_user()
        get_visible_shipment(session, user, sscc)
        if excursion_id > 2**31 - 1:
            raise NotFoundError("excursion", f"{excursion_id} of shipper {sscc}")
        return dispose_excursion(
            session,
            hasher(),
            user,
            sscc,
            excursion_id,
            remote_addr=request.remote_addr or "unknown",
            now=clock.now(),
            **data,
        )


def _upload() -> tuple[bytes, str | None]:
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise UnsupportedUploadError('Send the logger file in the form field "file".')
        return upload.read(), upload.filename or None
    if request.mimetype in TABLE_TYPES or request.mimetype == "application/json":
        return request.get_data(), None
    raise UnsupportedUploadError(
        'Send a logger file (multipart/form-data field "file", or a text/csv body) or the '
        "JSON readings document (application/json)."
    )


def _result(result: ImportResult) -> dict[str, Any]:
    return {
        "sscc": result.shipment.sscc,
        "added": result.added,
        "already_recorded": result.already_recorded,
        "event_hash": result.event_hash,
        "excursions": result.excursions,
    }
