"""The bedside page, made for a tablet: scan the wristband and the vial (keyboard wedge or
camera), read GO or NO-GO with every reason, and the second person confirms on the device."""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from marshmallow import ValidationError, fields, validate

from app import clock
from app.api.bedside import MAX_SCAN, check_fields, go_validity
from app.auth import hasher
from app.db import get_session
from app.keys import label_keys
from app.web import bp, signed_in
from app.web.forms import PageForm, messages
from app.writes import undo, write
from custody.bedside import administration_of, check_at_bedside, get_check, record_administration
from lots.access import Permission, can
from lots.errors import DomainError
from lots.models import User


class CheckForm(PageForm):
    """The two scans and, if the clinician names it, the visit."""

    wristband = fields.String(load_default=None, validate=validate.Length(1, MAX_SCAN))
    vial = fields.String(load_default=None, validate=validate.Length(1, MAX_SCAN))
    visit = fields.Integer(load_default=None, strict=False, validate=validate.Range(1, 1000))


class ConfirmForm(PageForm):
    """The administering clinician's and the second person's signatures."""

    route = fields.String(required=True, validate=validate.Length(1, 32))
    dose_cells = fields.Integer(load_default=None, strict=False, validate=validate.Range(0))
    password = fields.String(
        required=True,
        validate=validate.Length(1, 256),
        error_messages={"required": "Re-enter your password to sign."},
    )
    witness = fields.String(
        required=True,
        validate=validate.Length(1, 64),
        error_messages={"required": "The second person enters their username."},
    )
    witness_password = fields.String(
        required=True,
        validate=validate.Length(1, 256),
        error_messages={"required": "The second person enters their password."},
    )


@bp.get("/bedside")
@signed_in(Permission.BEDSIDE_CHECK)
def bedside(user: User) -> str:
    """Scan the wristband, then the vial."""
    return render_template("bedside.html", user=user, values={}, errors=[], focus="wristband")


@bp.post("/bedside")
@signed_in(Permission.BEDSIDE_CHECK)
@write
def bedside_check(user: User) -> Any:
    """Both scans in: run the check and show it; with one scan, ask for the other."""
    try:
        data = CheckForm().load(request.form)
    except ValidationError as error:
        return _scan_page(user, dict(request.form), messages(error)), 422
    if not data["wristband"] or not data["vial"]:
        # A wedge scanner sent Enter after the first scan: keep it and ask for the other.
        focus = "vial" if data["wristband"] else "wristband"
        return _scan_page(user, data, [], focus=focus)
    check = check_at_bedside(
        get_session(),
        user,
        vial_code=data["vial"],
        wristband_code=data["wristband"],
        visit_number=data["visit"],
        base=current_app.config["PUBLIC_URL"],
        keys=label_keys(),
        validity=go_validity(),
        now=clock.now(),
    )
    return redirect(url_for("web.bedside_result", reference=check.reference), 303)


@bp.get("/bedside/checks/<reference>")
@signed_in(Permission.BEDSIDE_CHECK)
def bedside_result(user: User, reference: str) -> str:
    """GO in green or NO-GO in red, every reason in large type; the confirmation after a GO."""
    return _result_page(user, reference, {}, [])


@bp.post("/bedside/checks/<reference>/administration")
@signed_in(Permission.ADMINISTER)
@write
def bedside_confirm(user: User, reference: str) -> Any:
    """The clinician and the second person sign on this device: the dose is recorded."""
    values = {k: v for k, v in request.form.items() if "password" not in k}
    try:
        data = ConfirmForm().load(request.form)
    except ValidationError as error:
        return _result_page(user, reference, values, messages(error)), 422
    try:
        record_administration(
            get_session(),
            hasher(),
            user,
            check_reference=reference,
            password=data["password"],
            witness_username=data["witness"],
            witness_password=data["witness_password"],
            route=data["route"],
            dose_cells=data["dose_cells"],
            base=current_app.config["PUBLIC_URL"],
            keys=label_keys(),
            now=clock.now(),
            remote_addr=request.remote_addr or "unknown",
        )
    except DomainError as error:
        undo(error)  # shown on the page rather than raised; a failed signature is kept
        return _result_page(user, reference, values, [error.detail]), error.status
    return redirect(url_for("web.bedside_result", reference=reference), 303)


def _scan_page(
    user: User, values: dict[str, Any], errors: list[str], *, focus: str = "wristband"
) -> str:
    return render_template("bedside.html", user=user, values=values, errors=errors, focus=focus)


def _result_page(user: User, reference: str, values: dict[str, Any], errors: list[str]) -> str:
    session = get_session()
    check = get_check(session, user, reference)
    administration = administration_of(session, check)
    route = None
    if check.subject is not None and check.subject.arm is not None:
        route = check.subject.arm.route  # both arms of a blinded trial share the route
    return render_template(
        "bedside_result.html",
        user=user,
        check=check_fields(check, administration.id if administration else None),
        administration=administration,
        expired=clock.now() > check.expires_at,
        may_administer=can(user, Permission.ADMINISTER),
        route=route,
        values=values,
        errors=errors,
    )
