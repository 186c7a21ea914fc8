"""Trial pages: the list, and one trial's sites, visits and subjects of your sites; arms
and emergency unblindings only to unblinded users; a clinician's signed emergency unblinding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, redirect, render_template, request, url_for
from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validate

from app import clock
from app.api.trial_schemas import trial_view
from app.auth import hasher
from app.db import get_session
from app.keys import label_keys
from app.web import bp, signed_in
from app.web.forms import messages
from app.writes import undo, write
from custody.trials import (
    can_see_arm,
    get_trial,
    list_trials,
    print_wristband,
    unblind,
    visible_subjects,
    withdraw_subject,
)
from lots.access import Permission, can
from lots.errors import DomainError
from lots.models import User


class UnblindingForm(Schema):
    """A clinician's emergency unblinding: the subject, the medical reason, the password."""

    class Meta:
        unknown = EXCLUDE

    subject = fields.String(required=True, validate=validate.Length(1, 20))
    reason = fields.String(required=True, validate=validate.Length(1, 2000))
    password = fields.String(required=True, validate=validate.Length(1, 256))

    @pre_load
    def _drop_blanks(self, data: Mapping[str, Any], **_kwargs: Any) -> dict[str, Any]:
        return {key: value.strip() for key, value in data.items() if value.strip()}


class WithdrawalForm(Schema):
    """A withdrawal: the subject, the reason, and whether the subject withdrew consent."""

    class Meta:
        unknown = EXCLUDE

    subject = fields.String(required=True, validate=validate.Length(1, 20))
    reason = fields.String(required=True, validate=validate.Length(1, 2000))
    consent_withdrawn = fields.String(load_default="", validate=validate.OneOf(["", "yes"]))

    @pre_load
    def _drop_blanks(self, data: Mapping[str, Any], **_kwargs: Any) -> dict[str, Any]:
        return {key: value.strip() for key, value in data.items() if value.strip()}


@bp.get("/trials")
@signed_in(Permission.TRIALS_READ)
def trials(user: User) -> str:
    """Every trial."""
    return render_template("trials.html", user=user, trials=list_trials(get_session()))


@bp.get("/trials/<protocol_id>")
@signed_in(Permission.TRIALS_READ)
def trial(user: User, protocol_id: str) -> str:
    """One trial: sites, visits, your sites' subjects; arms only where you may see them."""
    return _render_trial(user, protocol_id)


@bp.post("/trials/<protocol_id>/unblinding")
@signed_in(Permission.UNBLIND)
@write
def trial_unblinding(user: User, protocol_id: str) -> Any:
    """Emergency unblinding of one subject, signed by re-entering the password."""
    session = get_session()
    get_trial(session, protocol_id)
    posted = {k: v for k, v in request.form.to_dict().items() if k in ("subject", "reason")}
    try:
        form = UnblindingForm().load(request.form.to_dict())
        unblind(
            session,
            user,
            protocol_id,
            form["subject"],
            password=form["password"],
            reason=form["reason"],
            hasher=hasher(),
            remote_addr=request.remote_addr or "unknown",
        )
    except ValidationError as error:
        return _render_trial(user, protocol_id, posted, messages(error)), 422
    except DomainError as error:
        undo(error)  # shown on the page rather than raised; a failed signature is kept
        return _render_trial(user, protocol_id, posted, [f"{error.title}: {error.detail}"]), (
            error.status
        )
    return redirect(url_for("web.trial", protocol_id=protocol_id, _anchor="subjects"), 303)


@bp.post("/trials/<protocol_id>/withdrawal")
@signed_in(Permission.SUBJECTS_ENROL)
@write
def trial_withdrawal(user: User, protocol_id: str) -> Any:
    """Withdraw a subject of the user's site from the trial, with the reason."""
    session = get_session()
    get_trial(session, protocol_id)
    posted = {k: v for k, v in request.form.to_dict().items() if k in ("subject", "reason")}
    try:
        form = WithdrawalForm().load(request.form.to_dict())
        withdraw_subject(
            session,
            user,
            protocol_id,
            form["subject"],
            reason=form["reason"],
            consent_withdrawn=form["consent_withdrawn"] == "yes",
            now=clock.now(),
        )
    except ValidationError as error:
        page = _render_trial(user, protocol_id, posted, messages(error), section="withdrawal")
        return page, 422
    except DomainError as error:
        session.rollback()
        page = _render_trial(
            user, protocol_id, posted, [f"{error.title}: {error.detail}"], section="withdrawal"
        )
        return page, error.status
    return redirect(url_for("web.trial", protocol_id=protocol_id, _anchor="subjects"), 303)


@bp.get("/trials/<protocol_id>/subjects/<code>/wristband.pdf")
@signed_in(Permission.SUBJECTS_ENROL)
@write
def subject_wristband(user: User, protocol_id: str, code: str) -> Response:
    """The subject's wristband as a PDF to print (its authenticated code in the QR)."""
    content, mimetype = print_wristband(
        get_session(),
        user,
        protocol_id,
        code,
        fmt="pdf",
        base=current_app.config["PUBLIC_URL"],
        key=label_keys()[0],
        now=clock.now(),
    )
    return Response(
        content,
        mimetype=mimetype,
        headers={"Content-Disposition": f'inline; filename="{protocol_id}-{code}-wristband.pdf"'},
    )


def _render_trial(
    user: User,
    protocol_id: str,
    posted: Mapping[str, str] | None = None,
    errors: list[str] | None = None,
    *,
    section: str = "unblinding",
) -> str:
    session = get_session()
    found = get_trial(session, protocol_id)
    subjects = (
        visible_subjects(session, user, protocol_id) if can(user, Permission.SUBJECTS_READ) else []
    )
    rows = [
        {"subject": subject, "arm": subject.arm if can_see_arm(user, subject) else None}
        for subject in subjects
    ]
    unblindings = [
        subject.unblinding
        for subject in subjects
        if subject.unblinding is not None and (user.unblinded or not found.blinded)
    ]
    # A clinician may unblind a randomized subject of a blinded trial, once.
    unblindable = (
        [
            subject.code
            for subject in subjects
            if subject.randomized_at is not None and subject.unblinding is None
        ]
        if found.blinded and can(user, Permission.UNBLIND)
        else []
    )
    return render_template(
        "trial.html",
        user=user,
        trial=found,
        view=trial_view(found, user),
        rows=rows,
        shows_arms=not found.blinded or user.unblinded or any(row["arm"] for row in rows),
        unblindings=unblindings,
        unblindable=unblindable,
        withdrawable=[subject.code for subject in subjects if not subject.withdrawn]
        if can(user, Permission.SUBJECTS_ENROL)
        else [],
        may_print_wristbands=can(user, Permission.SUBJECTS_ENROL),
        posted=posted or {},
        errors=errors or [],
        section=section,
    )
