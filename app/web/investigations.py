"""The lot page's out-of-specification investigations: the laboratory's findings (QC) and
QA's signed outcome, through the same services as the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import redirect, request, url_for
from marshmallow import ValidationError, fields, validate

from app import clock
from app.auth import hasher
from app.db import get_session
from app.web import bp, signed_in
from app.web.forms import PageForm, messages
from app.web.lots import PageState, refused, render_lot, visible_lot
from app.writes import write
from custody.manufacturing import (
    Outcome,
    close_investigation,
    open_phase_two,
    record_laboratory_cause,
)
from lots.access import Permission
from lots.errors import DomainError
from lots.models import User

TEXT = validate.Length(1, 2000)


class CauseForm(PageForm):
    cause = fields.String(required=True, validate=TEXT)


class PhaseTwoForm(PageForm):
    finding = fields.String(required=True, validate=TEXT)
    deviation = fields.Integer(required=True, validate=validate.Range(1, 2**31 - 1))


class OutcomeForm(PageForm):
    outcome = fields.String(required=True, validate=validate.OneOf([o.value for o in Outcome]))
    reason = fields.String(required=True, validate=TEXT)
    password = fields.String(required=True, validate=validate.Length(1, 256))


@bp.post("/lots/<number>/investigations/<int:investigation>/laboratory-cause")
@signed_in(Permission.OOS_INVESTIGATE)
@write
def investigation_cause(user: User, number: str, investigation: int) -> Any:
    """Phase I names the assignable laboratory cause it found."""
    return _step(user, number, investigation, CauseForm, lambda form: record_laboratory_cause(
        get_session(), user, number, investigation, cause=form["cause"], now=clock.now()
    ))  # fmt: skip


@bp.post("/lots/<number>/investigations/<int:investigation>/phase-two")
@signed_in(Permission.OOS_INVESTIGATE)
@write
def investigation_phase_two(user: User, number: str, investigation: int) -> Any:
    """No assignable laboratory cause: phase II, linked to a deviation of the lot."""
    return _step(user, number, investigation, PhaseTwoForm, lambda form: open_phase_two(
        get_session(), user, number, investigation,
        finding=form["finding"], deviation=form["deviation"], now=clock.now(),
    ))  # fmt: skip


@bp.post("/lots/<number>/investigations/<int:investigation>/closure")
@signed_in(Permission.OOS_DECIDE)
@write
def investigation_closure(user: User, number: str, investigation: int) -> Any:
    """QA's signed outcome: the result invalidated, or the OOS confirmed."""
    return _step(user, number, investigation, OutcomeForm, lambda form: close_investigation(
        get_session(), hasher(), user, number, investigation,
        outcome=form["outcome"], reason=form["reason"], password=form["password"],
        remote_addr=request.remote_addr or "unknown", now=clock.now(),
    ))  # fmt: skip


def _step(
    user: User,
    number: str,
    investigation: int,
    form: type[PageForm],
    step: Callable[[dict[str, Any]], object],
) -> Any:
    """Run one step from its form; back to the investigation, or the page with the refusal."""
    db = get_session()
    found = visible_lot(db, user, number)
    posted = {k: v for k, v in request.form.to_dict().items() if k != "password"}
    name = f"investigation-{investigation}"
    try:
        step(form().load(request.form.to_dict()))
    except ValidationError as error:
        return render_lot(user, found, PageState(name, posted, messages(error))), 422
    except DomainError as error:
        return refused(
            user, found, error, PageState(name, posted, [f"{error.title}: {error.detail}"])
        )
    anchor = f"investigation-{investigation}"
    return redirect(url_for("web.lot", number=found.number, _anchor=anchor), 303)
