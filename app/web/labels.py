"""Label pages: a scanned GS1 Digital Link opened in a browser, the vial page, and printing a
lot's labels from its page."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import Response, current_app, redirect, render_template, request, url_for
from marshmallow import ValidationError, fields, validate, validates_schema
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import get_session
from app.keys import label_keys, resolve_scan
from app.web import bp, signed_in
from app.web.forms import PageForm, messages
from app.web.lots import PageState, label_preview, refused, render_lot, visible_lot
from app.writes import write
from custody.ledger import chain_events
from custody.manufacturing import LabelPrint, LabelPrintJob, print_labels, reconcile
from custody.shipping import BLOCKING_LOT_STATUSES, vial_states
from custody.trials import get_visible_vial, hides_kit_vial, visible_lot_site_ids
from labels.render import ZPL_DPI, Format, Layout
from labels.resolution import Kind, Problem, Resolution
from lots.access import Permission, can_see
from lots.base import utcnow
from lots.batch import Lot, Vial
from lots.errors import DomainError
from lots.local_time import local_date
from lots.models import Site, User

PRINT_FORMATS = (Format.PDF, Format.ZPL)
WHICH_VIALS = ("all", "unlabelled", "listed")
_SERIAL_SEPARATORS = re.compile(r"[\s,;]+")


class PrintForm(PageForm):
    """The print form of a lot page: format, layout, printer resolution, which vials, why."""

    format = fields.String(
        required=True, validate=validate.OneOf(PRINT_FORMATS, error="Choose PDF or ZPL.")
    )
    layout = fields.String(load_default=Layout.A4, validate=validate.OneOf(list(Layout)))
    dpi = fields.Integer(
        load_default=300,
        strict=False,
        validate=validate.OneOf(ZPL_DPI, error="Choose the printer's 203 or 300 dpi."),
    )
    vials = fields.String(load_default="all", validate=validate.OneOf(WHICH_VIALS))
    serials = fields.String(load_default=None, validate=validate.Length(1, 2000))
    reason = fields.String(load_default=None, validate=validate.Length(1, 2000))

    @validates_schema
    def _names_the_vials(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("vials") == "listed" and not data.get("serials"):
            raise ValidationError("List the serials of the vials to print.", "serials")


@dataclass(frozen=True)
class VialLabelRow:
    """One label printed for a vial, and the label that replaced it, if any."""

    label: LabelPrint
    job: LabelPrintJob
    replaced_by: LabelPrint | None

    @property
    def live(self) -> bool:
        """Whether the label is still on the vial (nothing replaced it)."""
        return self.replaced_by is None


# --- GS1 Digital Link paths, opened by a phone camera or typed into a browser -------------------
# GS1 Digital Link: after the primary key (01) the key qualifiers come in the order 22, 10, 21,
# each optional, so a vial's link is /01/{gtin}/10/{lot}/21/{serial} or /01/{gtin}/21/{serial}.


@bp.get("/01/<gtin>/10/<lot>/21/<serial>")
@bp.get("/01/<gtin>/21/<serial>")
@signed_in(Permission.SCAN)
def vial_link(user: User, **_identifiers: str) -> Any:
    """Verify a vial's label (authentication code and records), then show the vial's page."""
    resolution = _resolve_request()
    if resolution.refused:
        return _unverified(resolution)
    if resolution.kind is not Kind.VIAL or resolution.serial is None:
        return _unverified(resolution.refuse(Problem.NOT_A_CELLTRAIL_CODE))
    db = get_session()
    vial = db.scalar(select(Vial).where(Vial.serial == resolution.serial))
    if (
        vial is None
        or hides_kit_vial(db, user, vial)
        or not can_see(user, visible_lot_site_ids(db, user, vial.lot))
    ):
        # The same answer for a vial of a site the user may not see: its existence is private.
        unknown = resolution.refuse(
            Problem.UNKNOWN_IDENTIFIER, identifier=f"vial {resolution.serial}"
        )
        return _unverified(unknown)
    if resolution.lot is not None and resolution.lot != vial.lot.number:
        return _unverified(resolution.refuse(Problem.SERIAL_NOT_IN_LOT))
    if resolution.gtin != vial.lot.product.gtin.rjust(14, "0"):
        return _unverified(resolution.refuse(Problem.GTIN_NOT_THE_VIALS_PRODUCT))
    return redirect(url_for("web.vial", serial=vial.serial), 303)


@bp.get("/00/<sscc>")
@signed_in(Permission.SCAN)
def shipper_link(user: User, sscc: str) -> Any:
    """A shipper's SSCC: checked like a vial's label, then shown on the scan page, which
    applies the user's visibility and offers their next actions (take custody, receive)."""
    del user, sscc  # the resolver reads the SSCC from the link as printed
    resolution = _resolve_request()
    if resolution.refused:
        return _unverified(resolution)
    return redirect(url_for("web.scan", code=_link_as_printed()), code=303)


def _resolve_request() -> Resolution:
    return resolve_scan(get_session(), _link_as_printed())


def _link_as_printed() -> str:
    """The link as it was printed: the configured public base, then the path and query received.

    Never the Host header: behind a proxy it names the upstream, and the authentication code
    binds the public address the label carries.
    """
    query = request.query_string.decode("utf-8", "replace")
    return f"{_public_url()}{quote(request.path)}" + (f"?{query}" if query else "")


def _public_url() -> str:
    return str(current_app.config["PUBLIC_URL"]).rstrip("/")


def _unverified(resolution: Resolution) -> tuple[str, int]:
    status = 404 if resolution.problem is Problem.UNKNOWN_IDENTIFIER else 409
    return render_template("label_check.html", resolution=resolution, refused=True), status


# --- The vial page ------------------------------------------------------------------------------


@bp.get("/vials/<serial>")
@signed_in(Permission.LOTS_READ)
def vial(user: User, serial: str) -> str:
    """One vial: product, lot, expiry, derived state, custody timeline and labels."""
    db = get_session()
    found = get_visible_vial(db, user, serial)
    events = chain_events(db, found.chain)
    actor_ids = {event.actor_user_id for event in events if event.actor_user_id}
    site_ids = {event.site_id for event in events if event.site_id}
    actors = {u.id: u.full_name for u in db.scalars(select(User).where(User.id.in_(actor_ids)))}
    sites = {s.id: s.name for s in db.scalars(select(Site).where(Site.id.in_(site_ids)))}
    return render_template(
        "vial.html",
        user=user,
        vial=found,
        lot=found.lot,
        state=vial_states(db, [found])[found.serial],
        lot_blocks=found.lot.status in BLOCKING_LOT_STATUSES,
        events=events,
        actors=actors,
        sites=sites,
        labels=_vial_labels(db, found),
        today=local_date(utcnow(), user.site.time_zone),
        label_preview=label_preview(user, found.lot, found.serial),
    )


def _vial_labels(db: Session, found: Vial) -> list[VialLabelRow]:
    rows = db.execute(
        select(LabelPrint, LabelPrintJob)
        .join(LabelPrintJob, LabelPrintJob.id == LabelPrint.job_id)
        .where(LabelPrint.vial_id == found.id)
        .order_by(LabelPrint.id)
    ).all()
    replaced_by = {label.replaces_id: label for label, _ in rows if label.replaces_id is not None}
    return [VialLabelRow(label, job, replaced_by.get(label.id)) for label, job in rows]


# --- Printing from the lot page -----------------------------------------------------------------


@bp.post("/lots/<number>/labels")
@signed_in(Permission.LABELS_PRINT)
@write
def lot_labels(user: User, number: str) -> Any:
    """Print the lot's labels (all, the unlabelled, or listed vials); the file downloads."""
    db = get_session()
    found = visible_lot(db, user, number)
    posted = {k: v for k, v in request.form.to_dict().items() if k != "csrf_token"}
    try:
        form = PrintForm().load(posted)
        printed = print_labels(
            db,
            user,
            found.number,
            fmt=form["format"],
            base=_public_url(),
            key=label_keys()[0],
            layout=form["layout"],
            dpi=form["dpi"],
            serials=_chosen_serials(db, found, form),
            reason=form["reason"],
        )
    except ValidationError as error:
        return render_lot(user, found, PageState("labels", posted, messages(error))), 422
    except DomainError as error:
        return refused(user, found, error, PageState("labels", posted, [error.detail]))
    name = f"labels-{found.number}-job{printed.job.id}.{printed.job.format}"
    return Response(
        printed.content,
        mimetype=printed.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            # Each download is a recorded print job: no cache may hand the file out again.
            "Cache-Control": "no-store",
        },
    )


def _chosen_serials(db: Session, found: Lot, form: dict[str, Any]) -> list[str] | None:
    if form["vials"] == "listed":
        return [s for s in _SERIAL_SEPARATORS.split(form["serials"]) if s]
    if form["vials"] == "unlabelled":
        unlabelled = reconcile(db, found).unlabelled
        if not unlabelled:
            raise ValidationError("Every vial already has a label.", "vials")
        return unlabelled
    return None
