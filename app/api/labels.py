"""Vial labels (print and reprint, per-vial reconciliation) and scans of anything celltrail
prints or a GS1 scanner sends."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from flask_wtf.csrf import CSRFError
from marshmallow import fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.lot_schemas import TEXT
from app.api.schemas import StrictSchema
from app.auth import require_user, requires
from app.db import get_session
from app.keys import label_keys, resolve_scan
from app.writes import write
from custody.manufacturing import (
    MAX_VIALS,
    PRINTABLE,
    LabelPrint,
    LabelPrintJob,
    lot_print_jobs,
    preview_labels,
    print_labels,
    reconcile,
)
from custody.shipping import (
    Shipment,
    ShipmentStatus,
    can_see_shipment,
    find_shipment,
    handling_steps,
    packed_counts,
    vial_states,
    vial_status,
)
from custody.trials import (
    Kit,
    Subject,
    can_see_kits,
    can_see_subject,
    find_kit_by_label,
    find_subject_by_wristband,
    get_visible_lot,
    hides_kit_vial,
    kit_views,
    visible_lot_site_ids,
)
from labels.payload import has_check_digit
from labels.render import Format, Layout
from labels.resolution import Kind, Problem, Resolution
from lots.access import Permission, can, can_see
from lots.base import utcnow
from lots.batch import LotStatus, Vial
from lots.errors import NotFoundError
from lots.local_time import local_date
from lots.models import SiteKind, User

MAX_SCAN_CHARS = 2000
RECALLABLE = frozenset({LotStatus.QUARANTINE, LotStatus.RELEASED, LotStatus.EXCEPTIONALLY_RELEASED})

blp = Blueprint(
    "labels", __name__, url_prefix="", description="Vial labels, label reconciliation and scans"
)


# --- schemas ----------------------------------------------------------------------------


class LabelQuerySchema(StrictSchema):
    format = fields.String(required=True, validate=validate.OneOf([f.value for f in Format]))
    layout = fields.String(
        load_default=Layout.ROLL.value,
        validate=validate.OneOf([layout.value for layout in Layout]),
        metadata={"description": "PDF only: one label per page (roll) or a sheet."},
    )
    dpi = fields.Integer(
        load_default=300,
        validate=validate.OneOf([203, 300]),
        metadata={"description": "The printer's resolution: QR modules are whole dots."},
    )
    serial = fields.List(
        fields.String(validate=validate.Length(1, 20)),
        load_default=None,
        validate=validate.Length(1, MAX_VIALS),
        metadata={"description": "Repeatable; only these vials. PNG and SVG name exactly one."},
    )
    reason = fields.String(
        load_default=None,
        validate=TEXT,
        metadata={"description": "Why vials that already have a label are labelled again."},
    )
    preview = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Render without printing: marked PREVIEW, its code unsigned (every "
            "scan refuses it), nothing recorded."
        },
    )


class PrintJobSchema(StrictSchema):
    id = fields.Integer()
    printed_by = fields.String()
    printed_by_name = fields.String()
    printed_at = fields.DateTime()
    format = fields.String()
    layout = fields.String(allow_none=True)
    dpi = fields.Integer()
    labels = fields.Integer()
    reprinted = fields.Integer(metadata={"description": "Labels that replaced a live one."})
    reason = fields.String(allow_none=True)
    quarantined = fields.Boolean()
    event_hash = fields.String()
    serials = fields.List(fields.String())


class ReconciliationSchema(StrictSchema):
    lot = fields.String()
    lot_status = fields.String()
    vials = fields.Integer()
    labels_printed = fields.Integer()
    reprints = fields.Integer()
    reconciled = fields.Boolean(metadata={"description": "Every vial has exactly one live label."})
    unlabelled = fields.List(fields.String())
    several_live = fields.List(fields.String())
    print_jobs = fields.List(fields.Nested(PrintJobSchema))


class ScanSchema(StrictSchema):
    code = fields.String(
        required=True,
        validate=validate.Length(max=MAX_SCAN_CHARS),
        metadata={
            "description": "The text exactly as the scanner sent it: a Digital Link URI, an "
            "element string with its ]d2/]Q1 prefix and GS separators, the (01)… form, or a "
            "serial typed by hand."
        },
    )


class ScanItemSchema(StrictSchema):
    """A vial (serial … expired) or a shipper (sscc … vial_count); `state` for both."""

    serial = fields.String()
    lot = fields.String()
    product = fields.String()
    product_name = fields.String()
    state = fields.String(metadata={"description": "A vial's state or a shipment's status."})
    lot_status = fields.String()
    expires_on = fields.Date()
    expired = fields.Boolean()
    sscc = fields.String()
    from_site = fields.String()
    from_site_name = fields.String()
    to_site = fields.String()
    to_site_name = fields.String()
    custodian = fields.String(allow_none=True)
    custodian_name = fields.String(allow_none=True)
    custodian_since = fields.DateTime(allow_none=True)
    vial_count = fields.Integer()
    kit = fields.String(metadata={"description": "A blinded kit's number (never its vial)."})
    trial = fields.String()
    packaging_lot = fields.String()
    subject = fields.String()
    site = fields.String()


class ScanActionSchema(StrictSchema):
    action = fields.String()
    method = fields.String()
    href = fields.String()
    label = fields.String()


class ScanAnswerSchema(StrictSchema):
    kind = fields.String(
        metadata={"description": "vial, kit, shipper, subject, serial_only or unreadable."}
    )
    recognised = fields.Boolean(metadata={"description": "celltrail knows the item."})
    authentication = fields.String()
    key_id = fields.String(allow_none=True)
    source = fields.String(allow_none=True)
    reason = fields.String()
    problem = fields.String(allow_none=True)
    identifiers = fields.Dict(keys=fields.String(), values=fields.String())
    item = fields.Nested(ScanItemSchema, allow_none=True)
    actions = fields.List(fields.Nested(ScanActionSchema))


# --- labels -----------------------------------------------------------------------------


@blp.route("/lots/<number>/labels")
class LotLabels(MethodView):
    @requires(Permission.LABELS_PRINT)
    @write
    @blp.arguments(LabelQuerySchema, location="query")
    @blp.response(
        200,
        content_type="application/pdf",
        description="The labels as PDF, ZPL II, PNG or SVG, by `format`.",
    )
    def get(self, query: dict[str, Any], number: str) -> Response:
        """Print the lot's vial labels; every call is a recorded print job, per vial.

        Only released or quarantined lots print (quarantined labels carry QUARANTINE). A vial
        that already has a label is relabelled only with a `reason` (the old label is void).
        """
        session, user = get_session(), require_user()
        _refuse_cross_site_print()
        lot = get_visible_lot(session, user, number)
        fmt = query["format"]
        if query["preview"]:
            return _preview(session, user, lot.number, query)
        printed = print_labels(
            session,
            user,
            lot.number,
            fmt=fmt,
            base=current_app.config["PUBLIC_URL"],
            key=label_keys()[0],
            layout=query["layout"],
            dpi=query["dpi"],
            serials=query["serial"],
            reason=(query["reason"] or "").strip() or None,
        )
        filename = label_filename(lot.number, fmt, query["serial"])
        disposition = "attachment" if fmt == Format.ZPL else "inline"
        return Response(
            printed.content,
            mimetype=printed.media_type,
            headers={
                "Content-Disposition": f'{disposition}; filename="{filename}"',
                "X-Label-Print-Job": str(printed.job.id),
            },
        )


def _preview(session: Session, user: User, number: str, query: dict[str, Any]) -> Response:
    content, mimetype = preview_labels(
        session,
        user,
        number,
        fmt=query["format"],
        base=current_app.config["PUBLIC_URL"],
        layout=query["layout"],
        dpi=query["dpi"],
        serials=query["serial"],
    )
    filename = f"preview-{label_filename(number, query['format'], query['serial'])}"
    return Response(
        content,
        mimetype=mimetype,
        headers={"Content-Disposition": f'inline; filename="{filename}"'},
    )


@blp.route("/lots/<number>/labels/reconciliation")
class LabelReconciliation(MethodView):
    @requires(Permission.LOTS_READ)
    @blp.response(200, ReconciliationSchema)
    def get(self, number: str) -> dict[str, Any]:
        """Labels printed against vials, vials with no label or several live ones, and every
        print job (who, when, format, reason)."""
        session = get_session()
        lot = get_visible_lot(session, require_user(), number)
        result = reconcile(session, lot)
        return {
            "lot": lot.number,
            "lot_status": lot.status,
            "vials": result.vials,
            "labels_printed": result.labels_printed,
            "reprints": result.reprints,
            "reconciled": result.reconciled,
            "unlabelled": result.unlabelled,
            "several_live": result.several_live,
            "print_jobs": _job_rows(session, lot_print_jobs(session, lot)),
        }


def _refuse_cross_site_print() -> None:
    # A print is a write on a GET, so a signed-in browser's cookie must not print labels from
    # a link on another site (SameSite=Lax sends it on top-level navigations). Browsers say
    # where a request comes from in Sec-Fetch-Site; bearer tokens are not sent implicitly.
    if g.get("auth_via") == "session" and request.headers.get("Sec-Fetch-Site") not in (
        None,
        "same-origin",
        "none",  # typed into the address bar, or a bookmark
    ):
        raise CSRFError("Labels are printed from celltrail's own pages, not from another site.")


def label_filename(lot: str, fmt: str, serials: Sequence[str] | None) -> str:
    """`{lot}-labels.pdf|zpl`, or `{serial}-label.png|svg` for the one label of a PNG or SVG."""
    if Format(fmt) in (Format.PNG, Format.SVG) and serials and len(serials) == 1:
        return f"{serials[0]}-label.{fmt}"
    return f"{lot}-labels.{fmt}"


def _job_rows(session: Session, jobs: Sequence[LabelPrintJob]) -> list[dict[str, Any]]:
    serials: dict[int, list[str]] = {job.id: [] for job in jobs}
    reprinted: dict[int, int] = dict.fromkeys(serials, 0)
    if jobs:
        rows = session.execute(
            select(LabelPrint.job_id, Vial.serial, LabelPrint.replaces_id)
            .join(Vial, Vial.id == LabelPrint.vial_id)
            .where(LabelPrint.job_id.in_(list(serials)))
            .order_by(LabelPrint.job_id, Vial.position)
        )
        for job_id, serial, replaces in rows:
            serials[job_id].append(serial)
            reprinted[job_id] += replaces is not None
    return [
        {
            "id": job.id,
            "printed_by": job.printed_by.username,
            "printed_by_name": job.printed_by.full_name,
            "printed_at": job.printed_at,
            "format": job.format,
            "layout": job.layout,
            "dpi": job.dpi,
            "labels": job.label_count,
            "reprinted": reprinted[job.id],
            "reason": job.reason,
            "quarantined": job.quarantined,
            "event_hash": job.event_hash,
            "serials": serials[job.id],
        }
        for job in jobs
    ]


# --- scans ------------------------------------------------------------------------------


@blp.route("/scans")
class Scans(MethodView):
    @requires(Permission.SCAN)
    @blp.arguments(ScanSchema)
    @blp.response(200, ScanAnswerSchema)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """What a scanned code is, its current state, and what you may do next.

        Read-only: nothing is recorded. A refused scan (forged, unknown, not this vial's
        product or lot) answers 200 with `recognised: false`, the `problem` and a sentence.
        Items of sites you may not see answer exactly like unknown ones. A shipper's SSCC
        (its label, an element string with AI 00, or the 18 digits typed) answers with the
        shipment's status and custodian, and taking custody or receiving where you may.
        """
        session, user = get_session(), require_user()
        resolution = resolve_scan(session, data["code"])
        if resolution.refused:
            return scan_answer(resolution)
        match resolution.kind:
            case Kind.VIAL | Kind.SERIAL_ONLY:
                return kit_answer(session, user, resolution) or _vial_or_shipper(
                    session, user, resolution
                )
            case Kind.SHIPPER:
                return shipper_scan(session, user, resolution)
            case Kind.SUBJECT:
                return _subject_answer(session, user, resolution)
        return scan_answer(resolution)  # pragma: no cover - the resolver refuses anything else


def _vial_or_shipper(session: Session, user: User, resolution: Resolution) -> dict[str, Any]:
    typed = typed_shipper(session, user, resolution)
    if typed is not None:
        return shipper_answer(session, user, *typed)
    return vial_answer(session, user, resolution)


def vial_answer(session: Session, user: User, resolution: Resolution) -> dict[str, Any]:
    serial = resolution.serial or ""
    vial = session.scalar(select(Vial).where(Vial.serial == serial))
    typed = resolution.kind is Kind.SERIAL_ONLY
    if (
        vial is None
        or hides_kit_vial(session, user, vial)
        or not can_see(user, visible_lot_site_ids(session, user, vial.lot))
    ):
        # A vial of a site the user may not see, or a blinded kit's vial to a blinded user
        # (custody/trials/blinding.py), reads exactly like one that does not exist.
        identifier = f"a vial, shipment or subject {serial}" if typed else f"vial {serial}"
        return scan_answer(resolution.refuse(Problem.UNKNOWN_IDENTIFIER, identifier=identifier))
    lot = vial.lot
    if resolution.lot is not None and resolution.lot != lot.number:
        return scan_answer(resolution.refuse(Problem.SERIAL_NOT_IN_LOT))
    if resolution.gtin is not None and _gtin14(resolution.gtin) != _gtin14(lot.product.gtin):
        return scan_answer(resolution.refuse(Problem.GTIN_NOT_THE_VIALS_PRODUCT))
    if resolution.expiry is not None and resolution.expiry != lot.expires_on:
        return scan_answer(
            resolution.refuse(
                Problem.EXPIRY_NOT_THE_LOTS,
                expiry=resolution.expiry.isoformat(),
                expires_on=lot.expires_on.isoformat(),
            )
        )
    if typed:
        resolution = replace(
            resolution,
            kind=Kind.VIAL,
            reason=f"Vial {serial} of lot {lot.number}, from its typed serial: a typed serial "
            "proves nothing about the label, so compare the label with this record.",
        )
    state = vial_states(session, [vial])[vial.serial]
    item = {
        "serial": vial.serial,
        "lot": lot.number,
        "product": lot.product.code,
        "product_name": lot.product_version.name,
        "state": state,
        "lot_status": lot.status,
        "expires_on": lot.expires_on,
        "expired": lot.expires_on < local_date(utcnow(), user.site.time_zone),  # the scanner's
    }
    return scan_answer(resolution, item=item, actions=_actions(session, user, vial, state))


def _actions(session: Session, user: User, vial: Vial, state: str) -> list[dict[str, str]]:
    """What this user may do next with the vial, given their role and the vial's state."""
    lot = vial.lot
    actions = []
    if can(user, Permission.LOTS_READ):
        actions += [
            _action("view_vial", "GET", f"/vials/{vial.serial}", f"Open vial {vial.serial}"),
            _action("view_lot", "GET", f"/lots/{lot.number}", f"Open lot {lot.number}"),
        ]
    if can(user, Permission.LABELS_PRINT) and lot.status in PRINTABLE:
        labelled = session.scalar(select(LabelPrint.id).where(LabelPrint.vial_id == vial.id))
        if labelled:
            # A reprint needs its reason: the lot page's label form, with this vial chosen.
            query = urlencode({"reprint": vial.serial})
            actions.append(
                _action(
                    "reprint_label",
                    "GET",
                    f"/lots/{lot.number}?{query}#labels",
                    "Reprint this vial's label (give the reason; the old label is destroyed)",
                )
            )
        else:
            query = urlencode({"format": "pdf", "layout": "roll", "serial": vial.serial})
            actions.append(
                _action(
                    "print_label",
                    "GET",
                    f"/api/v1/lots/{lot.number}/labels?{query}",
                    "Print this vial's label",
                )
            )
    if can(user, Permission.LOTS_RELEASE) and lot.status == LotStatus.QUARANTINE:
        actions.append(
            _action(
                "release_lot",
                "POST",
                f"/api/v1/lots/{lot.number}/release",
                f"Release or reject lot {lot.number}",
            )
        )
    if can(user, Permission.LOTS_RECALL) and lot.status in RECALLABLE:
        actions.append(_action("recall_lot", "POST", "/api/v1/recalls", f"Recall lot {lot.number}"))
    # No observation on a vial: the ledger takes observations on site and product chains
    # only, and a scan offers nothing the API would refuse.
    return actions + _handling_actions(session, user, vial)


def _handling_actions(session: Session, user: User, vial: Vial) -> list[dict[str, str]]:
    """Store, dispense and thaw, each offered where the step's own rule allows it here."""
    if not can(user, Permission.VIALS_HANDLE):
        return []
    serial, api = vial.serial, "/api/v1/vials"
    offers = [
        ("store", "store_vial", f"{api}/store", f"Store vial {serial} (freezer and position)"),
        ("dispense", "dispense_vial", f"{api}/dispense", f"Send vial {serial} to a ward"),
        ("thaw", "thaw_vial", f"{api}/{serial}/thaw", f"Thaw vial {serial} now"),
    ]
    steps = handling_steps(session, user, vial)
    return [
        _action(action, "POST", href, label)
        for step, action, href, label in offers
        if step in steps
    ]


def shipper_scan(session: Session, user: User, resolution: Resolution) -> dict[str, Any]:
    shipment = find_shipment(session, resolution.sscc or "")
    if shipment is None or not may_scan(session, user, shipment):
        # A shipment the user may not see reads exactly like one that does not exist.
        return scan_answer(
            _unknown(resolution, f"No shipment with SSCC {resolution.sscc} is known.")
        )
    return shipper_answer(session, user, resolution, shipment)


def typed_shipper(
    session: Session, user: User, resolution: Resolution
) -> tuple[Resolution, Shipment] | None:
    """A typed (or prefix-less) SSCC: 18 digits, or 20 with AI 00 in front, of a shipment."""
    text = resolution.serial or ""
    if resolution.kind is not Kind.SERIAL_ONLY or not text.isdigit():
        return None
    sscc = text[2:] if len(text) == 20 and text.startswith("00") else text
    if len(sscc) != 18 or not has_check_digit(sscc):
        return None
    shipment = find_shipment(session, sscc)
    if shipment is None or not may_scan(session, user, shipment):
        return None
    typed = replace(
        resolution,
        kind=Kind.SHIPPER,
        sscc=sscc,
        serial=None,
        reason=f"Shipper {sscc}, from its typed SSCC: a typed number proves nothing about the "
        "label, so compare the label with this record.",
    )
    return typed, shipment


def may_scan(session: Session, user: User, shipment: Shipment) -> bool:
    # Whoever may take custody can scan a shipper in transit: having it in hand is the point.
    return can_see_shipment(session, user, shipment) or (
        can(user, Permission.SHIPMENTS_HANDOFF) and shipment.status == ShipmentStatus.IN_TRANSIT
    )


def shipper_answer(
    session: Session, user: User, resolution: Resolution, shipment: Shipment
) -> dict[str, Any]:
    holder = shipment.custodian
    item = {
        "sscc": shipment.sscc,
        "state": shipment.status,
        "from_site": shipment.from_site.code,
        "from_site_name": shipment.from_site.name,
        "to_site": shipment.to_site.code,
        "to_site_name": shipment.to_site.name,
        "custodian": holder.username if holder else None,
        "custodian_name": holder.full_name if holder else None,
        "custodian_since": shipment.custodian_since,
        "vial_count": packed_counts(session, [shipment])[shipment.id],
    }
    return scan_answer(resolution, item=item, actions=_shipper_actions(session, user, shipment))


def _shipper_actions(session: Session, user: User, shipment: Shipment) -> list[dict[str, str]]:
    """What this user may do next with the shipper, given their role, site and its status."""
    sscc, api = shipment.sscc, f"/api/v1/shipments/{shipment.sscc}"
    actions = []
    if can(user, Permission.SHIPMENTS_READ) and can_see_shipment(session, user, shipment):
        actions.append(
            _action("view_shipment", "GET", f"/shipments/{sscc}", f"Open shipment {sscc}")
        )
    if can(user, Permission.SHIPMENTS_MANAGE) and user.site_id == shipment.from_site_id:
        if shipment.status == ShipmentStatus.OPEN:
            actions += [
                _action("pack_vials", "POST", f"{api}/vials", f"Pack vials into shipper {sscc}"),
                _action("seal", "POST", f"{api}/seal", f"Seal shipper {sscc}"),
            ]
        elif shipment.status == ShipmentStatus.SEALED:
            actions.append(
                _action("ship", "POST", f"{api}/ship", f"Hand shipper {sscc} to the first courier")
            )
    if shipment.status != ShipmentStatus.IN_TRANSIT:
        return actions
    holder = shipment.custodian
    if can(user, Permission.SHIPMENTS_HANDOFF) and holder is not None and holder.id != user.id:
        actions.append(
            _action(
                "take_custody",
                "POST",
                f"{api}/handoffs",
                f"Take custody of shipper {sscc} from {holder.full_name}",
            )
        )
    if can(user, Permission.SHIPMENTS_RECEIVE) and user.site_id == shipment.to_site_id:
        actions.append(
            _action("receive", "POST", f"{api}/receipt", f"Receive shipper {sscc}: check the seal")
        )
    return actions


def kit_answer(session: Session, user: User, resolution: Resolution) -> dict[str, Any] | None:
    """A blinded kit's label: its number, trial, packaging lot and state, nothing that
    tells the arm (no vial serial, lot or product). Another site's kit reads like no kit."""
    if resolution.kind is not Kind.VIAL or resolution.gtin is None or resolution.serial is None:
        return None
    kit = find_kit_by_label(session, resolution.gtin, resolution.serial)
    if kit is None or not can_see_kits(user, kit.trial):
        return None
    if resolution.lot is not None and resolution.lot != kit.packaging_lot:
        return scan_answer(resolution.refuse(Problem.SERIAL_NOT_IN_LOT))
    view = kit_views(session, [kit])[kit.id]
    answer = scan_answer(
        replace(resolution, reason=f"Kit {kit.number} of trial {kit.trial.protocol_id}."),
        item={
            "kit": kit.number,
            "trial": kit.trial.protocol_id,
            "packaging_lot": kit.packaging_lot,
            "state": view.state,
        },
        actions=_kit_actions(session, user, kit, view.state),
    )
    return {**answer, "kind": "kit"}


def _kit_actions(session: Session, user: User, kit: Kit, state: str) -> list[dict[str, str]]:
    """A kit is handled by its number: dispensed from its pharmacy, thawed at its ward."""
    if not can(user, Permission.VIALS_HANDLE):
        return []
    (place,) = (site for _, site in vial_status(session, [kit.vial]).values())
    if place != user.site.code:
        return []
    api = f"/api/v1/trials/{kit.trial.protocol_id}/kits"
    if state in {"stored", "allocated"} and user.site.kind == SiteKind.HOSPITAL_PHARMACY:
        return [
            _action("dispense_kit", "POST", f"{api}/dispense", f"Send kit {kit.number} to a ward")
        ]
    if state == "dispensed":
        return [_action("thaw_kit", "POST", f"{api}/{kit.number}/thaw", f"Thaw kit {kit.number}")]
    return []


def _subject_answer(session: Session, user: User, resolution: Resolution) -> dict[str, Any]:
    """A wristband: the subject, if the user may see it; otherwise as unknown."""
    subject = _wristband_subject(session, user, resolution)
    if subject is None:
        who = resolution.gsrn or resolution.subject_code
        trial = f" in trial {resolution.trial}" if resolution.trial else ""
        return scan_answer(_unknown(resolution, f"No subject {who}{trial} is known."))
    return scan_answer(
        replace(resolution, reason=f"Subject {subject.code} of trial {subject.trial.protocol_id}."),
        item={
            "subject": subject.code,
            "trial": subject.trial.protocol_id,
            "site": subject.site.code,
        },
    )


def _wristband_subject(session: Session, user: User, resolution: Resolution) -> Subject | None:
    try:
        subject = find_subject_by_wristband(
            session, resolution.gsrn or resolution.subject_code or ""
        )
    except NotFoundError:
        return None
    if resolution.trial is not None and resolution.trial != subject.trial.protocol_id:
        return None
    return subject if can_see_subject(user, subject) else None


def _action(action: str, method: str, href: str, label: str) -> dict[str, str]:
    return {"action": action, "method": method, "href": href, "label": label}


def _unknown(resolution: Resolution, reason: str) -> Resolution:
    return replace(resolution, problem=Problem.UNKNOWN_IDENTIFIER, reason=reason)


def scan_answer(
    resolution: Resolution,
    *,
    item: dict[str, Any] | None = None,
    actions: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    identifiers = {
        "gtin": resolution.gtin,
        "lot": resolution.lot,
        "serial": resolution.serial,
        "expiry": resolution.expiry.isoformat() if resolution.expiry else None,
        "sscc": resolution.sscc,
        "gsrn": resolution.gsrn,
        "subject": resolution.subject_code,
        "trial": resolution.trial,
    }
    return {
        "kind": resolution.kind,
        "recognised": item is not None and not resolution.refused,
        "authentication": resolution.authentication,
        "key_id": resolution.key_id,
        "source": resolution.source,
        "reason": resolution.reason,
        "problem": resolution.problem,
        "identifiers": {name: value for name, value in identifiers.items() if value is not None},
        "item": item,
        "actions": actions or [],
    }


def _gtin14(gtin: str) -> str:
    return gtin.rjust(14, "0")
