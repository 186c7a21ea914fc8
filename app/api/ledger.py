"""The custody ledger: read events and chains, record observations, verify, audit trail."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, current_app, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from app.api.schemas import (
    AuditEntrySchema,
    AuditQuerySchema,
    EventSchema,
    Moment,
    ObservationSchema,
    StrictSchema,
    VerificationSchema,
)
from app.auth import ensure_visible, require_user, requires
from app.db import get_session
from app.keys import trusted_keys
from app.writes import write
from custody.integrity import verify_record
from custody.interop import chain_heads, export_epcis, ledger_lines
from custody.ledger import (
    CustodyEvent,
    VerificationReport,
    chain_events,
    record_observation,
)
from custody.trials import chain_hidden
from lots.access import Permission
from lots.errors import InvalidValueError, NotFoundError
from lots.models import AuditEntry, Site

blp = Blueprint("ledger", __name__, url_prefix="/ledger", description="The custody ledger")


class ExportQuerySchema(StrictSchema):
    format = fields.String(
        required=True,
        validate=validate.OneOf(["epcis", "jsonl"]),
        metadata={
            "description": "epcis: an EPCIS 2.0 JSON-LD document (GS1 CBV 2.0). jsonl: every "
            "event as JSON Lines with the exact bytes hashed, for an outside verifier "
            "(docs/verifying-the-ledger.md); only `chain` narrows it."
        },
    )
    chain = fields.String(
        validate=validate.Length(1, 160),
        metadata={"description": "One vial:, shipment: or lot: chain."},
    )
    lot = fields.String(
        validate=validate.Length(1, 20),
        metadata={"description": "A lot, its vials and the shipments that carried them."},
    )
    sscc = fields.String(
        validate=validate.Regexp(r"^\d{18}$", error="An SSCC is 18 digits."),
        metadata={"description": "A shipment and the vials packed in it."},
    )
    since = Moment(metadata={"description": "Events recorded at or after this time."})


@blp.route("/export")
class Export(MethodView):
    @requires(Permission.LEDGER_EXPORT)
    @blp.arguments(ExportQuerySchema, location="query")
    @blp.response(
        200,
        content_type="application/ld+json",
        description="An EPCISDocument; it validates against GS1's EPCIS 2.0 JSON schema.",
    )
    def get(self, query: dict[str, Any]) -> Response:
        """Custody events as EPCIS 2.0 JSON-LD: one event per shipper scan, not per vial.

        Read as the chains are: a blinded reader's export holds no event of a blinded kit's
        vial, and a chain the reader may not read is an unknown chain (404)."""
        session, user = get_session(), require_user()
        chain = query.get("chain")
        if chain is not None and chain_hidden(session, user, chain):
            raise NotFoundError("chain", chain)
        if query["format"] == "jsonl":
            narrowing = sorted({"lot", "sscc", "since"} & query.keys())
            if narrowing:
                raise InvalidValueError(
                    narrowing[0], "The JSON Lines export is narrowed by chain only."
                )
            lines = ledger_lines(session, blinded=not user.unblinded, chain=chain)
            return Response(stream_with_context(lines), mimetype="application/jsonl")
        document = export_epcis(
            session,
            blinded=not user.unblinded,
            base_uri=current_app.config["PUBLIC_URL"],
            chain=chain,
            lot=query.get("lot"),
            sscc=query.get("sscc"),
            since=query.get("since"),
        )
        return Response(orjson.dumps(document), mimetype="application/ld+json")


class ChainHeadSchema(Schema):
    chain = fields.String()
    seq = fields.Integer(metadata={"description": "The chain's last sequence number"})
    hash = fields.String(metadata={"description": "The SHA-256 of the chain's last event"})


@blp.route("/chains")
class Chains(MethodView):
    @requires(Permission.LEDGER_EXPORT)
    @blp.response(200, ChainHeadSchema(many=True))
    def get(self) -> list[dict[str, Any]]:
        """Every chain with its last seq and hash: what a JSON Lines export must end with, so
        a verifier catches a truncated chain. Blinded as the export is."""
        return chain_heads(get_session(), blinded=not require_user().unblinded)


@blp.route("/verify")
class Verify(MethodView):
    @requires(Permission.LEDGER_VERIFY)
    @blp.response(200, VerificationSchema)
    def get(self) -> VerificationReport:
        """Recompute every chain, check every signed checkpoint, and re-derive every state
        column kept beside the ledger from its events (each disagreement is listed)."""
        return verify_record(get_session(), trusted_keys())


@blp.route("/events")
class Events(MethodView):
    @requires(Permission.LEDGER_WRITE)
    @write
    @blp.arguments(ObservationSchema)
    @blp.response(201, EventSchema)
    def post(self, data: dict[str, Any]) -> CustodyEvent:
        """Record an observation (INSPECTED) on a site's or product's chain."""
        return record_observation(get_session(), require_user(), **data)


@blp.route("/events/<int:event_id>")
class EventById(MethodView):
    @requires(Permission.LEDGER_READ)
    @blp.response(200, EventSchema)
    def get(self, event_id: int) -> CustodyEvent:
        """One event, with the exact body that was hashed."""
        session, user = get_session(), require_user()
        event = session.get(CustodyEvent, event_id)
        # An event of a blinded kit vial's chain names the vial: unknown to a blinded reader.
        if event is None or chain_hidden(session, user, event.chain):
            raise NotFoundError("event", event_id)
        ensure_visible(user, [event.site_id], "event", event_id)
        return event


@blp.route("/chains/<path:chain>")
class Chain(MethodView):
    @requires(Permission.LEDGER_READ)
    @blp.response(200, EventSchema(many=True))
    def get(self, chain: str) -> list[CustodyEvent]:
        """A whole chain in order; visible when its subject or any event is at your site."""
        session, user = get_session(), require_user()
        if chain_hidden(session, user, chain):
            raise NotFoundError("chain", chain)
        events = list(chain_events(session, chain))
        if not events:
            raise NotFoundError("chain", chain)
        sites = [event.site_id for event in events]
        if chain.startswith("site:"):
            sites.append(session.scalar(select(Site.id).where(Site.code == chain[5:])))
        ensure_visible(user, sites, "chain", chain)
        return events


audit_blp = Blueprint("audit", __name__, url_prefix="/audit", description="Audit trail")


@audit_blp.route("")
class Audit(MethodView):
    @requires(Permission.AUDIT_READ)
    @audit_blp.arguments(AuditQuerySchema, location="query")
    @audit_blp.response(200, AuditEntrySchema(many=True))
    def get(self, query: dict[str, Any]) -> list[AuditEntry]:
        """Changes to master data and users, newest first, with old and new values."""
        statement = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(query["limit"])
        if "entity_type" in query:
            statement = statement.where(AuditEntry.entity_type == query["entity_type"])
        if "entity_key" in query:
            statement = statement.where(AuditEntry.entity_key == query["entity_key"])
        return list(get_session().scalars(statement))
