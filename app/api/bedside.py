"""The bedside check (vial × wristband → GO or NO-GO) and the two-person administration."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app import clock
from app.api.schemas import Moment, Number, StrictSchema
from app.auth import hasher, require_user, requires
from app.db import get_session
from app.keys import label_keys
from app.writes import write
from custody.bedside import (
    DEFAULT_VALIDITY,
    administration_of,
    check_at_bedside,
    get_administration,
    get_check,
    record_administration,
)
from custody.trials import Administration, BedsideCheck
from lots.access import Permission

MAX_SCAN = 2000

blp = Blueprint(
    "bedside",
    __name__,
    url_prefix="",
    description="The bedside check of a vial against a wristband, and the administration",
)


class CheckCreateSchema(StrictSchema):
    vial_code = fields.String(
        required=True,
        validate=validate.Length(1, MAX_SCAN),
        metadata={"description": "The vial's or kit's scanned code, as the scanner sent it."},
    )
    wristband_code = fields.String(
        required=True,
        validate=validate.Length(1, MAX_SCAN),
        metadata={"description": "The patient's wristband, scanned (or the subject code)."},
    )
    visit = fields.Integer(
        load_default=None,
        validate=validate.Range(1, 1000),
        metadata={"description": "The visit; by default the one the vial is allocated to."},
    )


class CheckLineSchema(Schema):
    name = fields.String()
    passed = fields.Boolean()
    sentence = fields.String()


class CheckSchema(Schema):
    reference = fields.String()
    outcome = fields.String(metadata={"description": "GO or NO-GO"})
    checks = fields.List(fields.Nested(CheckLineSchema))
    subject = fields.String(allow_none=True)
    visit = fields.Integer(allow_none=True)
    item = fields.String(allow_none=True, metadata={"description": "vial … or kit …"})
    checked_by = fields.String()
    site = fields.String()
    checked_at = fields.DateTime()
    expires_at = fields.DateTime()
    administration = fields.Integer(allow_none=True)
    event_hash = fields.String()


class AdministrationCreateSchema(StrictSchema):
    check = fields.String(required=True, validate=validate.Length(1, 32))
    password = fields.String(required=True, load_only=True, validate=validate.Length(1, 256))
    witness = fields.String(required=True, validate=validate.Length(1, 64))
    witness_password = fields.String(
        required=True, load_only=True, validate=validate.Length(1, 256)
    )
    route = fields.String(required=True, validate=validate.Length(1, 32))
    dose_cells = fields.Integer(load_default=None, validate=validate.Range(0, 10**15))
    volume_ml = Number(load_default=None, places=2, validate=validate.Range(0, 999999))
    administered_at = Moment(load_default=None)


class SignerSchema(Schema):
    username = fields.String()
    name = fields.String()
    role = fields.String()


class AdministrationSchema(Schema):
    id = fields.Integer()
    check = fields.String()
    subject = fields.String()
    visit = fields.Integer(allow_none=True)
    item = fields.String()
    administered_at = fields.DateTime()
    route = fields.String()
    dose_cells = fields.Integer(allow_none=True)
    volume_ml = Number(allow_none=True)
    site = fields.String()
    administered_by = fields.Nested(SignerSchema)
    witness = fields.Nested(SignerSchema)
    recorded_at = fields.DateTime()
    event_hash = fields.String()


@blp.route("/bedside/checks")
class BedsideChecks(MethodView):
    @requires(Permission.BEDSIDE_CHECK)
    @write
    @blp.arguments(CheckCreateSchema)
    @blp.response(201, CheckSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Check a scanned vial (or kit) against a scanned wristband: GO or NO-GO.

        Every check is listed with a plain sentence. A forged, unknown or unreadable code is
        a NO-GO, never an error; NO-GO attempts are recorded too (the near-miss record). A
        GO stands for a few minutes: the administration must follow on it.
        """
        session = get_session()
        bedside = check_at_bedside(
            session,
            require_user(),
            vial_code=data["vial_code"],
            wristband_code=data["wristband_code"],
            visit_number=data["visit"],
            base=current_app.config["PUBLIC_URL"],
            keys=label_keys(),
            validity=go_validity(),
            now=clock.now(),
        )
        return check_fields(bedside, None)


@blp.route("/bedside/checks/<reference>")
class BedsideCheckByReference(MethodView):
    @requires(Permission.SUBJECTS_READ)
    @blp.response(200, CheckSchema)
    def get(self, reference: str) -> dict[str, Any]:
        """One bedside check of your site: its outcome, every check, and its administration."""
        session = get_session()
        bedside = get_check(session, require_user(), reference)
        administration = administration_of(session, bedside)
        return check_fields(bedside, administration.id if administration else None)


@blp.route("/administrations")
class Administrations(MethodView):
    @requires(Permission.ADMINISTER)
    @write
    @blp.arguments(AdministrationCreateSchema)
    @blp.response(201, AdministrationSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Record the dose given on a GO: you sign as the administering clinician, a second
        clinician or pharmacist of the ward or its pharmacy confirms with their password.

        Refused when the GO expired, was NO-GO, or a fact changed since (check again); a vial
        already administered answers 409 naming the first administration.
        """
        session = get_session()
        administered_at = data["administered_at"]
        administration = record_administration(
            session,
            hasher(),
            require_user(),
            check_reference=data["check"],
            password=data["password"],
            witness_username=data["witness"],
            witness_password=data["witness_password"],
            route=data["route"],
            dose_cells=data["dose_cells"],
            volume_ml=data["volume_ml"],
            administered_at=administered_at.astimezone(dt.UTC) if administered_at else None,
            base=current_app.config["PUBLIC_URL"],
            keys=label_keys(),
            now=clock.now(),
            remote_addr=request.remote_addr or "unknown",
        )
        return administration_fields(administration)


@blp.route("/administrations/<int:administration_id>")
class AdministrationById(MethodView):
    @requires(Permission.SUBJECTS_READ)
    @blp.response(200, AdministrationSchema)
    def get(self, administration_id: int) -> dict[str, Any]:
        """One administration of your site, with both signers."""
        administration = get_administration(get_session(), require_user(), administration_id)
        return administration_fields(administration)


def check_fields(bedside: BedsideCheck, administration: int | None) -> dict[str, Any]:
    """A check as the API and the page show it: never the arm, product or lot of a kit."""
    item = None
    if bedside.kit is not None:
        item = f"kit {bedside.kit.number}"
    elif bedside.vial is not None:
        item = f"vial {bedside.vial.serial}"
    return {
        "reference": bedside.reference,
        "outcome": bedside.outcome,
        "checks": bedside.checks,
        "subject": bedside.subject.code if bedside.subject else None,
        "visit": bedside.visit.number if bedside.visit else None,
        "item": item,
        "checked_by": bedside.checked_by.username,
        "site": bedside.checked_by.site.code,
        "checked_at": bedside.checked_at,
        "expires_at": bedside.expires_at,
        "administration": administration,
        "event_hash": bedside.event_hash,
    }


def administration_fields(administration: Administration) -> dict[str, Any]:
    """An administration with its two signers."""
    bedside = administration.check
    return {
        "id": administration.id,
        "check": bedside.reference,
        "subject": administration.subject.code,
        "visit": administration.visit.number if administration.visit else None,
        "item": check_fields(bedside, None)["item"],
        "administered_at": administration.administered_at,
        "route": administration.route,
        "dose_cells": administration.dose_cells,
        "volume_ml": administration.volume_ml,
        "site": administration.site.code,
        "administered_by": _signer(administration.administered_by),
        "witness": _signer(administration.witness),
        "recorded_at": administration.recorded_at,
        "event_hash": administration.event_hash,
    }


def _signer(user: Any) -> dict[str, str]:
    return {"username": user.username, "name": user.full_name, "role": user.role}


def go_validity() -> dt.timedelta:
    """How long a GO stands: BEDSIDE_GO_MINUTES in the config, else ten minutes."""
    minutes = current_app.config.get("BEDSIDE_GO_MINUTES")
    return dt.timedelta(minutes=int(minutes)) if minutes else DEFAULT_VALIDITY
