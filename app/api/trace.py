"""Recall traces: a vial back to its donor; a lot, bank or donor forward to every vial,
shipment, site and subject. Oversight only (TRACE_READ), every site.

Blinding: a reader without the `unblinded` flag sees a blinded trial's kit vials by kit
number only, never by serial or lot (a kit vial's serial traces as an unknown one), and a
kit of an affected lot widens to every kit of its packaging lot, so a recall of a control
lot still reaches its subjects without telling which of them received control. A blinded
trial's subject never shows an arm.
"""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from app.auth import require_user, requires
from app.db import get_session
from custody.trace import Lineage, Trace, TraceKind, trace_back, trace_forward
from custody.trials import hides_serial
from lots.access import Permission
from lots.errors import NotFoundError

blp = Blueprint("trace", __name__, url_prefix="/trace", description="Recall traces")


class TracedKitSchema(Schema):
    trial = fields.String()
    number = fields.String()
    packaging_lot = fields.String()


class TracedBankStepSchema(Schema):
    code = fields.String()
    kind = fields.String()
    passage = fields.Integer(allow_none=True)
    site = fields.String()


class TracedDonorSchema(Schema):
    code = fields.String()
    eligibility = fields.String()
    note = fields.String()
    determined_at = fields.DateTime(allow_none=True)


class TracedLineageSchema(Schema):
    serial = fields.String(allow_none=True, metadata={"description": "None for a blinded kit."})
    state = fields.String()
    site = fields.String(allow_none=True)
    kit = fields.Nested(TracedKitSchema, allow_none=True)
    blinded = fields.Boolean(
        metadata={"description": "A blinded kit: lot, product, banks and donor are withheld."}
    )
    lot = fields.String(allow_none=True)
    lot_status = fields.String(allow_none=True)
    expires_on = fields.Date(allow_none=True)
    product = fields.String(allow_none=True)
    product_name = fields.String(allow_none=True)
    product_version = fields.Integer(allow_none=True)
    gtin = fields.String(allow_none=True)
    banks = fields.List(
        fields.Nested(TracedBankStepSchema), metadata={"description": "Nearest first."}
    )
    donor = fields.Nested(TracedDonorSchema, allow_none=True)


class TracedLotSchema(Schema):
    number = fields.String()
    product = fields.String()
    product_version = fields.Integer()
    bank = fields.String()
    status = fields.String()
    expires_on = fields.Date()
    site = fields.String()
    vials = fields.Integer()


class TracedVialSchema(Schema):
    serial = fields.String(allow_none=True)
    lot = fields.String(allow_none=True)
    kit = fields.Nested(TracedKitSchema, allow_none=True)
    state = fields.String()
    site = fields.String(allow_none=True)


class TracedShipmentSchema(Schema):
    sscc = fields.String()
    from_site = fields.String()
    to_site = fields.String()
    status = fields.String()
    vials = fields.Integer(metadata={"description": "Traced vials it carried."})


class TracedSiteSchema(Schema):
    code = fields.String()
    name = fields.String()
    kind = fields.String()


class TracedSubjectSchema(Schema):
    trial = fields.String()
    code = fields.String(metadata={"description": "Pseudonymous subject code."})
    site = fields.String()
    relation = fields.String(metadata={"description": "administered or allocated"})
    serial = fields.String(allow_none=True)
    kit = fields.String(allow_none=True)
    arm = fields.String(allow_none=True, metadata={"description": "Open-label trials only."})
    at = fields.DateTime()


class TraceSchema(Schema):
    kind = fields.String()
    code = fields.String()
    blinded = fields.Boolean()
    banks = fields.List(fields.String())
    lots = fields.List(fields.Nested(TracedLotSchema))
    vials = fields.List(fields.Nested(TracedVialSchema))
    shipments = fields.List(fields.Nested(TracedShipmentSchema))
    sites = fields.List(fields.Nested(TracedSiteSchema))
    subjects = fields.List(fields.Nested(TracedSubjectSchema))
    blinded_packaging_lots = fields.List(
        fields.String(),
        metadata={"description": "trial/packaging lot whose every kit is listed (blinded)."},
    )


@blp.route("/vials/<serial>")
class VialTrace(MethodView):
    @requires(Permission.TRACE_READ)
    @blp.response(200, TracedLineageSchema)
    def get(self, serial: str) -> Lineage:
        """A vial back to its lot, product version, banks up to the cell line, and donor.

        A blinded trial's kit vial is an unknown serial to a reader without the flag."""
        session, user = get_session(), require_user()
        if hides_serial(session, user, serial):
            raise NotFoundError("vial", serial)
        return trace_back(session, serial, blinded=not user.unblinded)


@blp.route("/lots/<number>")
class LotTrace(MethodView):
    @requires(Permission.TRACE_READ)
    @blp.response(200, TraceSchema)
    def get(self, number: str) -> Trace:
        """A lot forward to every vial, shipment, site and subject."""
        return trace_forward(get_session(), TraceKind.LOT, number, blinded=_blinded())


@blp.route("/banks/<code>")
class BankTrace(MethodView):
    @requires(Permission.TRACE_READ)
    @blp.response(200, TraceSchema)
    def get(self, code: str) -> Trace:
        """A cell bank and every bank made from it, forward to every lot, vial and subject."""
        return trace_forward(get_session(), TraceKind.BANK, code, blinded=_blinded())


@blp.route("/donors/<code>")
class DonorTrace(MethodView):
    @requires(Permission.TRACE_READ)
    @blp.response(200, TraceSchema)
    def get(self, code: str) -> Trace:
        """A donor's banks forward to every lot, vial, shipment, site and subject."""
        return trace_forward(get_session(), TraceKind.DONOR, code, blinded=_blinded())


def _blinded() -> bool:
    return not require_user().unblinded
