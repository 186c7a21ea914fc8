"""Out-of-specification investigations of a lot: the laboratory's findings and QA's signed
outcome (custody.manufacturing.oos)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate
from sqlalchemy.orm import Session

from app import clock
from app.api.lot_schemas import TEXT, SignedSchema
from app.api.schemas import StrictSchema
from app.auth import hasher, require_user, requires
from app.db import get_session
from app.writes import write
from custody.manufacturing import (
    Investigation,
    Outcome,
    close_investigation,
    lot_investigations,
    open_phase_two,
    record_laboratory_cause,
)
from custody.trials import get_visible_lot
from lots.access import Permission
from lots.errors import NotFoundError
from lots.models import User

MAX_INTEGER = 2**31 - 1

blp = Blueprint(
    "investigations",
    __name__,
    url_prefix="",
    description="Out-of-specification investigations: phase I, phase II, QA's signed outcome",
)


class LaboratoryCauseSchema(StrictSchema):
    cause = fields.String(
        required=True,
        validate=TEXT,
        metadata={"description": "The assignable laboratory cause phase I found."},
    )


class PhaseTwoSchema(StrictSchema):
    finding = fields.String(
        required=True,
        validate=TEXT,
        metadata={"description": "What phase I examined: no assignable laboratory cause."},
    )
    deviation = fields.Integer(
        required=True,
        validate=validate.Range(1, MAX_INTEGER),
        metadata={"description": "The number of the lot's deviation phase II is linked to."},
    )


class ClosureSchema(SignedSchema):
    outcome = fields.String(required=True, validate=validate.OneOf([o.value for o in Outcome]))
    reason = fields.String(required=True, validate=TEXT)


class InvestigationSchema(StrictSchema):
    number = fields.Integer()
    label = fields.String()
    status = fields.String(metadata={"description": "open, or closed: <outcome>"})
    phase = fields.String(metadata={"description": "laboratory (phase I) or manufacturing"})
    result = fields.Integer(metadata={"description": "The id of the OOS result."})
    test = fields.String()
    value = fields.String()
    acceptance = fields.String()
    analyst = fields.String()
    opened_at = fields.DateTime()
    cause = fields.String(allow_none=True)
    cause_by = fields.String(allow_none=True)
    finding = fields.String(allow_none=True)
    finding_by = fields.String(allow_none=True)
    deviation = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    closed_by = fields.String(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    signature = fields.Dict(allow_none=True)


def investigation_fields(found: Investigation) -> dict[str, Any]:
    facts = asdict(found)
    return {
        **{key: value for key, value in facts.items() if key != "result_id"},
        "label": found.label,
        "status": found.status,
        "result": found.result_id,
    }


@blp.route("/lots/<number>/investigations")
class Investigations(MethodView):
    @requires(Permission.LOTS_READ)
    @blp.response(200, InvestigationSchema(many=True))
    def get(self, number: str) -> list[dict[str, Any]]:
        """Every OOS investigation of the lot, open and closed, as its ledger events tell it."""
        session = get_session()
        lot = get_visible_lot(session, require_user(), number)
        return [investigation_fields(found) for found in lot_investigations(session, lot)]


@blp.route("/lots/<number>/investigations/<int:investigation>/laboratory-cause")
class LaboratoryCause(MethodView):
    @requires(Permission.OOS_INVESTIGATE)
    @write
    @blp.arguments(LaboratoryCauseSchema)
    @blp.response(200, InvestigationSchema)
    def post(self, data: dict[str, Any], number: str, investigation: int) -> dict[str, Any]:
        """Phase I found an assignable laboratory cause; QA may then invalidate the result."""
        return _step(number, investigation, lambda session, user, n: record_laboratory_cause(
            session, user, number, n, now=clock.now(), **data
        ))  # fmt: skip


@blp.route("/lots/<number>/investigations/<int:investigation>/phase-two")
class PhaseTwo(MethodView):
    @requires(Permission.OOS_INVESTIGATE)
    @write
    @blp.arguments(PhaseTwoSchema)
    @blp.response(200, InvestigationSchema)
    def post(self, data: dict[str, Any], number: str, investigation: int) -> dict[str, Any]:
        """No assignable laboratory cause: phase II, linked to a deviation of the lot."""
        return _step(number, investigation, lambda session, user, n: open_phase_two(
            session, user, number, n, now=clock.now(), **data
        ))  # fmt: skip


@blp.route("/lots/<number>/investigations/<int:investigation>/closure")
class Closure(MethodView):
    @requires(Permission.OOS_DECIDE)
    @write
    @blp.arguments(ClosureSchema)
    @blp.response(200, InvestigationSchema)
    def post(self, data: dict[str, Any], number: str, investigation: int) -> dict[str, Any]:
        """QA's signed outcome: the result invalidated (a retest may then supersede it) or
        the OOS confirmed (the lot can only be rejected)."""
        return _step(number, investigation, lambda session, user, n: close_investigation(
            session, hasher(), user, number, n,
            remote_addr=request.remote_addr or "unknown", now=clock.now(), **data,
        ))  # fmt: skip


def _step(
    lot: str, investigation: int, step: Callable[[Session, User, int], Investigation]
) -> dict[str, Any]:
    """One step on an investigation of a lot this user may see (404 for any other)."""
    session, user = get_session(), require_user()
    get_visible_lot(session, user, lot)
    if investigation > MAX_INTEGER:
        raise NotFoundError("investigation", f"{investigation} of lot {lot}")
    return investigation_fields(step(session, user, investigation))
