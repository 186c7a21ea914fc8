"""Shipments: pack and seal a dry shipper, courier handoffs, receipt with reconciliation, and
storing, dispensing and thawing the vials at the hospital."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app import clock
from app.api.schemas import StrictSchema
from app.api.shipment_schemas import (
    DispenseSchema,
    HandledVialSchema,
    HandoffCreateSchema,
    HandoffSchema,
    ReceiptCreateSchema,
    ReceiptSchema,
    SealSchema,
    SerialsSchema,
    ShipmentCreateSchema,
    ShipmentDetailSchema,
    ShipmentQuerySchema,
    ShipmentSummarySchema,
    ShipSchema,
    StoreSchema,
    ThawedVialSchema,
    ThawSchema,
    handoff_fields,
    receipt_fields,
    record_fields,
    shipment_summary,
)
from app.auth import ensure_visible, hasher, require_user, requires
from app.db import get_session
from app.keys import label_keys
from app.writes import write
from custody.shipping import (
    Receipt,
    Shipment,
    confirm_handoff,
    create_shipment,
    dispense,
    find_shipment,
    get_visible_shipment,
    handoff_confirmations,
    one_sided_handoffs,
    pack_vials,
    packed,
    packed_counts,
    receipt_of,
    receive,
    refused_handoffs,
    scan_handoff,
    seal,
    ship,
    shipment_handoffs,
    store,
    temperature_record,
    thaw,
    unpack_vials,
    vial_status,
    visible_shipments,
)
from custody.trials import print_shipper_label, reader_states
from lots.access import Permission
from lots.batch import Vial
from lots.errors import NotFoundError
from lots.models import User

SHIPMENT = "shipment with SSCC"

blp = Blueprint(
    "shipments",
    __name__,
    url_prefix="",
    description="Shipments, courier handoffs, receipt, and vials at the hospital",
)


@blp.route("/shipments")
class Shipments(MethodView):
    @requires(Permission.SHIPMENTS_READ)
    @blp.arguments(ShipmentQuerySchema, location="query")
    @blp.response(200, ShipmentSummarySchema(many=True))
    def get(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Shipments from or to your site, and those you hold or held; newest first."""
        session = get_session()
        shipments = visible_shipments(session, require_user(), status=query.get("status"))
        counts = packed_counts(session, shipments)
        return [shipment_summary(shipment, counts[shipment.id]) for shipment in shipments]

    @requires(Permission.SHIPMENTS_MANAGE)
    @write
    @blp.arguments(ShipmentCreateSchema)
    @blp.response(201, ShipmentDetailSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Open a shipment from your site: a dry shipper with its SSCC, logger and hold time."""
        session = get_session()
        shipment = create_shipment(
            session, require_user(), to_site_code=data.pop("to_site"), **data, now=clock.now()
        )
        return _detail(session, shipment)


@blp.route("/shipments/<sscc>")
class ShipmentBySscc(MethodView):
    @requires(Permission.SHIPMENTS_READ)
    @blp.response(200, ShipmentDetailSchema)
    def get(self, sscc: str) -> dict[str, Any]:
        """One shipment: custodian, seal, limits, packed vials, handoffs, refusals, receipt."""
        session = get_session()
        return _detail(session, get_visible_shipment(session, require_user(), sscc))


@blp.route("/shipments/<sscc>/vials")
class ShipmentVials(MethodView):
    @requires(Permission.SHIPMENTS_MANAGE)
    @write
    @blp.arguments(SerialsSchema)
    @blp.response(200, ShipmentDetailSchema)
    def post(self, data: dict[str, Any], sscc: str) -> dict[str, Any]:
        """Pack scanned vials: in-stock vials of released lots made here; each refusal named."""
        session, user = get_session(), require_user()
        _managed(session, user, sscc)
        shipment = pack_vials(session, user, sscc, data["serials"], now=clock.now())
        return _detail(session, shipment)

    @requires(Permission.SHIPMENTS_MANAGE)
    @write
    @blp.arguments(SerialsSchema)
    @blp.response(200, ShipmentDetailSchema)
    def delete(self, data: dict[str, Any], sscc: str) -> dict[str, Any]:
        """Take vials back out of an open shipper (same as POST …/vials/remove)."""
        return _unpack(data, sscc)


@blp.route("/shipments/<sscc>/vials/remove")
class ShipmentVialsRemoval(MethodView):
    @requires(Permission.SHIPMENTS_MANAGE)
    @write
    @blp.arguments(SerialsSchema)
    @blp.response(200, ShipmentDetailSchema)
    def post(self, data: dict[str, Any], sscc: str) -> dict[str, Any]:
        """Take vials back out of an open shipper."""
        return _unpack(data, sscc)


@blp.route("/shipments/<sscc>/seal")
class ShipmentSeal(MethodView):
    @requires(Permission.SHIPMENTS_MANAGE)
    @write
    @blp.arguments(SealSchema)
    @blp.response(200, ShipmentDetailSchema)
    def post(self, data: dict[str, Any], sscc: str) -> dict[str, Any]:
        """Close the shipper with a numbered seal; an empty shipper is refused."""
        session, user = get_session(), require_user()
        _managed(session, user, sscc)
        shipment = seal(session, user, sscc, data["seal_number"], now=clock.now())
        return _detail(session, shipment)


@blp.route("/shipments/<sscc>/ship")
class ShipmentShip(MethodView):
    @requires(Permission.SHIPMENTS_MANAGE)
    @write
    @blp.arguments(ShipSchema)
    @blp.response(200, ShipmentDetailSchema)
    def post(self, data: dict[str, Any], sscc: str) -> dict[str, Any]:
        """Hand the sealed shipper to the first courier: its vials are in transit."""
        session, user = get_session(), require_user()
        _managed(session, user, sscc)
        shipment = ship(session, user, sscc, data["courier"], now=clock.now())
        return _detail(session, shipment)


@blp.route("/shipments/<sscc>/handoffs")
class ShipmentHandoffs(MethodView):
    @requires(Permission.SHIPMENTS_READ)
    @blp.response(200, HandoffSchema(many=True))
    def get(self, sscc: str) -> list[dict[str, Any]]:
        """The shipper's handoffs in order."""
        session = get_session()
        shipment = get_visible_shipment(session, require_user(), sscc)
        return _handoffs(session, shipment)

    @requires(Permission.SHIPMENTS_HANDOFF)
    @write
    @blp.arguments(HandoffCreateSchema)
    @blp.response(201, HandoffSchema)
    @blp.alt_response(200, schema=HandoffSchema, description="The same scan again: the first.")
    def post(self, data: dict[str, Any], sscc: str) -> tuple[dict[str, Any], int]:
        """Take custody: you scanned the shipper and name (or scan) the person handing over.

        Every vial inside moves in this one transaction. The giver must hold the shipper and
        the time must follow the previous handoff; a refusal is recorded with its reason. The
        same scan again answers 200 with the first handoff.
        """
        # Whoever has the shipper in hand may scan it: no visibility check, the chain decides.
        now = clock.now()
        occurred_at = data["occurred_at"] or now
        scanned = scan_handoff(
            get_session(),
            hasher(),
            require_user(),
            sscc,
            giver_username=data["giver"],
            occurred_at=occurred_at.astimezone(dt.UTC),
            password=data["password"],
            remote_addr=_remote(),
            now=now,
        )
        return handoff_fields(sscc, scanned.handoff), 200 if scanned.repeated else 201


@blp.route("/shipments/<sscc>/handoffs/<int:number>/confirmation")
class HandoffConfirmation(MethodView):
    @requires(Permission.SHIPMENTS_HANDOFF)
    @write
    @blp.response(201, HandoffSchema)
    @blp.alt_response(200, schema=HandoffSchema, description="Already confirmed: the first.")
    @blp.alt_response(409, description="Not your handoff to confirm, or too late (one-sided)")
    def post(self, sscc: str, number: int) -> tuple[dict[str, Any], int]:
        """The giver confirms, on their own device, that they handed the shipper over: the
        handoff becomes two-sided. Within 30 minutes of its recording; after that it stays
        one-sided and the receipt shows it."""
        handoff, confirmation, new = confirm_handoff(
            get_session(), require_user(), sscc, number, now=clock.now()
        )
        return handoff_fields(sscc, handoff, confirmation), 201 if new else 200


class ShipperLabelQuerySchema(StrictSchema):
    format = fields.String(
        load_default="pdf", validate=validate.OneOf(["pdf", "png", "svg", "zpl"])
    )
    dpi = fields.Integer(
        load_default=300,
        validate=validate.OneOf([203, 300]),
        metadata={"description": "The label printer's resolution: bars are whole dots."},
    )


@blp.route("/shipments/<sscc>/label")
class ShipperLabelDocument(MethodView):
    @requires(Permission.SHIPMENTS_READ)
    @write
    @blp.arguments(ShipperLabelQuerySchema, location="query")
    @blp.response(200, content_type="application/pdf", description="The label by `format`.")
    def get(self, query: dict[str, Any], sscc: str) -> Response:
        """Print the shipper's GS1 logistic label (100 × 150 mm): the SSCC as GS1-128 for
        AI (00) and as an authenticated QR; the print is recorded on the shipment's chain."""
        content, mimetype = print_shipper_label(
            get_session(),
            require_user(),
            sscc,
            fmt=query["format"],
            dpi=query["dpi"],
            base=current_app.config["PUBLIC_URL"],
            key=label_keys()[0],
            now=clock.now(),
        )
        return Response(
            content,
            mimetype=mimetype,
            headers={"Content-Disposition": f'inline; filename="{sscc}-label.{query["format"]}"'},
        )


@blp.route("/shipments/<sscc>/receipt")
class ShipmentReceipt(MethodView):
    @requires(Permission.SHIPMENTS_RECEIVE)
    @write
    @blp.arguments(ReceiptCreateSchema)
    @blp.response(201, ReceiptSchema)
    def post(self, data: dict[str, Any], sscc: str) -> dict[str, Any]:
        """Receive at the destination: check the seal, reconcile the vials scanned (or the
        manifest); missing, extra, other shipments' and unknown vials are each recorded."""
        receipt = receive(
            get_session(),
            hasher(),
            require_user(),
            sscc,
            seal_number=data["seal_number"],
            serials=None if data["accept_manifest"] else data["serials"],
            giver_username=data["giver"],
            password=data["password"],
            remote_addr=_remote(),
            now=clock.now(),
        )
        return _receipt(get_session(), receipt)


@blp.route("/vials/store")
class VialStorage(MethodView):
    @requires(Permission.VIALS_HANDLE)
    @write
    @blp.arguments(StoreSchema)
    @blp.response(200, HandledVialSchema(many=True))
    def post(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """Store received vials at your site (freezer and position)."""
        session = get_session()
        store(session, require_user(), data["serials"], location=data["location"], now=clock.now())
        return _handled(session, data["serials"])


@blp.route("/vials/dispense")
class VialDispensing(MethodView):
    @requires(Permission.VIALS_HANDLE)
    @write
    @blp.arguments(DispenseSchema)
    @blp.response(200, HandledVialSchema(many=True))
    def post(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """Send stored vials to a ward of the hospital."""
        session = get_session()
        dispense(session, require_user(), data["serials"], ward_code=data["ward"], now=clock.now())
        return _handled(session, data["serials"])


@blp.route("/vials/<serial>/thaw")
class VialThaw(MethodView):
    @requires(Permission.VIALS_HANDLE)
    @write
    @blp.arguments(ThawSchema)
    @blp.response(200, ThawedVialSchema)
    def post(self, data: dict[str, Any], serial: str) -> dict[str, Any]:
        """Thaw a stored or dispensed vial: the post-thaw clock starts."""
        session = get_session()
        now = clock.now()
        thawed_at = (data["occurred_at"] or now).astimezone(dt.UTC)
        use_by = thaw(session, require_user(), serial, occurred_at=thawed_at, now=now)
        (handled,) = _handled(session, [serial])
        return {
            **handled,
            "thawed_at": thawed_at,
            "use_by": None if use_by == thawed_at else use_by,
        }


def _managed(session: Session, user: User, sscc: str) -> None:
    """Only the shipping site packs, seals and ships; other sites see no such shipment."""
    shipment = find_shipment(session, sscc)
    if shipment is None:
        raise NotFoundError(SHIPMENT, sscc)
    ensure_visible(user, [shipment.from_site_id], SHIPMENT, sscc)


def _unpack(data: dict[str, Any], sscc: str) -> dict[str, Any]:
    session, user = get_session(), require_user()
    _managed(session, user, sscc)
    shipment = unpack_vials(session, user, sscc, data["serials"], now=clock.now())
    return _detail(session, shipment)


def _handled(session: Session, serials: Sequence[str]) -> list[dict[str, Any]]:
    vials = session.scalars(
        select(Vial).where(Vial.serial.in_(list(serials))).options(selectinload(Vial.lot))
    ).all()
    status = vial_status(session, vials)
    return [
        {"serial": serial, "state": status[serial][0], "site": status[serial][1]}
        for serial in serials
    ]


def _detail(session: Session, shipment: Shipment) -> dict[str, Any]:
    rows = packed(session, shipment)
    # A blinded reader sees a blinded kit's vial without its state (custody/trials/blinding.py).
    states = reader_states(session, require_user(), [row.vial for row in rows])
    receipt = receipt_of(session, shipment)
    return {
        **shipment_summary(shipment, len(rows)),
        "from_site_name": shipment.from_site.name,
        "to_site_name": shipment.to_site.name,
        "created_by": shipment.created_by.username,
        "vials": [
            {
                "serial": row.vial.serial,
                "lot": row.vial.lot.number,
                "product": row.vial.lot.product.code,
                "state": states[row.vial.serial],
                "packed_at": row.packed_at,
                "received_at": row.received_at,
            }
            for row in rows
        ],
        "handoffs": _handoffs(session, shipment),
        "refused_handoffs": [asdict(refusal) for refusal in refused_handoffs(session, shipment)],
        "receipt": _receipt(session, receipt) if receipt else None,
        "temperature_record": record_fields(temperature_record(session, shipment)),
    }


def _receipt(session: Session, receipt: Receipt) -> dict[str, Any]:
    shipment = receipt.shipment
    return receipt_fields(
        receipt, one_sided_handoffs(session, shipment), temperature_record(session, shipment)
    )


def _handoffs(session: Session, shipment: Shipment) -> list[dict[str, Any]]:
    confirmed = handoff_confirmations(session, shipment)
    return [
        handoff_fields(shipment.sscc, handoff, confirmed.get(handoff.number))
        for handoff in shipment_handoffs(session, shipment)
    ]


def _remote() -> str:
    return request.remote_addr or "unknown"
