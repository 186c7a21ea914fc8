"""The scan page (a phone camera or a keyboard-wedge scanner), taking custody of a shipper,
receiving it, and the shipment pages."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import zxingcpp
from flask import jsonify, redirect, render_template, request, url_for
from marshmallow import ValidationError, fields, validate
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import clock
from app.api.labels import (
    MAX_SCAN_CHARS,
    kit_answer,
    may_scan,
    scan_answer,
    shipper_answer,
    shipper_scan,
    typed_shipper,
    vial_answer,
)
from app.auth import hasher
from app.db import get_session
from app.keys import resolve_scan
from app.web import bp, signed_in
from app.web.forms import PageForm, messages
from app.writes import undo, write
from custody.ledger import CustodyEvent, chain_events
from custody.shipping import (
    SIGNING_SITE_KINDS,
    Receipt,
    Shipment,
    ShipmentStatus,
    ShipmentVial,
    TemperatureRecord,
    can_see_shipment,
    confirm_handoff,
    dispense,
    find_shipment,
    get_visible_shipment,
    handoff_confirmations,
    may_confirm,
    may_take_custody,
    one_sided_handoffs,
    packed,
    packed_counts,
    receipt_complete,
    receipt_of,
    receive,
    record_handoff,
    refused_handoffs,
    shipment_handoffs,
    store,
    temperature_record,
    thaw,
    visible_shipments,
)
from custody.trials import dispense_kits, reader_states, thaw_kit
from labels.resolution import Kind, Problem
from lots.access import Permission, can
from lots.accounts import supplied_wards
from lots.batch import Vial
from lots.errors import DomainError, NotFoundError
from lots.models import Site, User

_LINES = re.compile(r"[\r\n]+")


class CustodyForm(PageForm):
    """Taking custody: who hands the shipper over, and the password where the site signs."""

    code = fields.String(load_default=None, validate=validate.Length(1, MAX_SCAN_CHARS))
    giver = fields.String(
        required=True,
        validate=validate.Length(1, 64),
        error_messages={"required": "Name the person handing the shipper over."},
    )
    password = fields.String(load_default=None, validate=validate.Length(1, 256))


class ReceiptForm(PageForm):
    """Receiving: the seal read off the shipper, and each vial scanned (or the manifest)."""

    seal = fields.String(
        required=True,
        validate=validate.Length(1, 40),
        error_messages={"required": "Enter the seal number read off the shipper."},
    )
    vials = fields.String(load_default=None, validate=validate.Length(1, 200_000))
    manifest = fields.String(load_default=None)


@dataclass
class Scanned:
    """One scan answered: the API's answer (kind, reason, problem, item, actions), and the
    shipment behind a shipper's code or the shipper a scanned vial is packed in."""

    text: str
    answer: dict[str, Any]
    shipment: Shipment | None = None
    in_shipper: Shipment | None = None

    @property
    def refused(self) -> bool:
        """Whether the scan must not be acted on (forged, unreadable, unknown)."""
        return self.answer["problem"] is not None


@dataclass
class ShipperView:
    """What the scan page and the shipment page show of a shipment to this user."""

    shipment: Shipment
    vials: int
    visible: bool  # the user may open the shipment page (not only scan the shipper)
    yours: bool
    may_take_custody: bool
    must_sign: bool
    may_receive: bool
    hold_until: dt.datetime | None
    hold_exceeded: bool
    receipt: Receipt | None
    receipt_complete: bool
    temperature_record: TemperatureRecord


@dataclass
class PageState:
    """A refused form: which one, its values, why."""

    form: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


# --- The scan page ------------------------------------------------------------------------------


@bp.get("/scan")
@signed_in(Permission.SCAN)
def scan(user: User) -> Any:
    """Scan or type a code: what it is, its state, and what you may do next."""
    code = request.args.get("code", "")
    if len(code) > MAX_SCAN_CHARS:
        code = code[:MAX_SCAN_CHARS]
    scanned = look_up(get_session(), user, code) if code.strip() else None
    return _scan_page(user, scanned, PageState())


@bp.post("/scan/image")
@signed_in(Permission.SCAN)
def scan_image(user: User) -> Any:
    """A camera frame or a photo, decoded here (zxing-cpp), then answered like a typed scan."""
    upload = request.files.get("image")
    data = upload.read() if upload is not None else b""
    if not data and request.mimetype.startswith("image/"):
        data = request.get_data()
    code, reason = decode_image(data)
    if _wants_json():
        if code is None:
            return jsonify(reason=reason), 422
        return jsonify(code=code, scan=url_for("web.scan", code=code))
    if code is None:
        return _scan_page(user, None, PageState("image", {}, [reason])), 422
    return redirect(url_for("web.scan", code=code), 303)


def look_up(db: Session, user: User, text: str) -> Scanned:
    """What a scanned or typed code is, as POST /api/v1/scans answers it, with the shipment
    behind a shipper's code (or the shipper a scanned vial is in)."""
    resolution = resolve_scan(db, text)
    if resolution.refused:
        return Scanned(text, scan_answer(resolution))
    if (kit := kit_answer(db, user, resolution)) is not None:
        return Scanned(text, kit)
    match resolution.kind:
        case Kind.VIAL | Kind.SERIAL_ONLY:
            typed = typed_shipper(db, user, resolution)
            if typed is None:
                answer = vial_answer(db, user, resolution)
                in_shipper = None
                if answer["item"] is not None and answer["problem"] is None:
                    in_shipper = _shipper_of(db, user, answer["item"]["serial"])
                return Scanned(text, answer, in_shipper=in_shipper)
            return Scanned(text, shipper_answer(db, user, *typed), shipment=typed[1])
        case Kind.SHIPPER:
            answer = shipper_scan(db, user, resolution)
            found = find_shipment(db, answer["item"]["sscc"]) if answer["item"] else None
            return Scanned(text, answer, shipment=found)
    who = resolution.gsrn or resolution.subject_code
    trial = f" in trial {resolution.trial}" if resolution.trial else ""
    unknown = resolution.refuse(Problem.UNKNOWN_IDENTIFIER, identifier=f"subject {who}{trial}")
    return Scanned(text, scan_answer(unknown))


def decode_image(data: bytes) -> tuple[str | None, str]:
    """The one code in a picture, or None and why not, in plain words."""
    if not data:
        return None, "No picture arrived: take the picture again."
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            barcodes = zxingcpp.read_barcodes(image.convert("L"))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        return None, "The file is not a picture celltrail can read (JPEG or PNG)."
    texts = list(dict.fromkeys(barcode.text for barcode in barcodes if barcode.valid))
    if not texts:
        return None, (
            "No barcode found in the picture: hold the code flat and steady, fill the frame "
            "with it, and try again."
        )
    if len(texts) > 1:
        return None, f"The picture shows {len(texts)} codes: show one code at a time."
    return texts[0], ""


# --- Taking custody and receiving ---------------------------------------------------------------


@bp.post("/shipments/<sscc>/custody")
@signed_in(Permission.SHIPMENTS_HANDOFF)
@write
def take_custody(user: User, sscc: str) -> Any:
    """The user scanned the shipper and takes it from the person named: custody moves."""
    db = get_session()
    shipment = _scannable_shipment(db, user, sscc)
    posted = {k: v for k, v in request.form.to_dict().items() if k not in ("password",)}
    code = posted.get("code") or sscc
    try:
        form = CustodyForm().load(request.form.to_dict())
        now = clock.now()
        record_handoff(
            db,
            hasher(),
            user,
            shipment.sscc,
            giver_username=form["giver"],
            occurred_at=now,
            password=form["password"],
            remote_addr=request.remote_addr or "unknown",
            now=now,
        )
    except ValidationError as error:
        state = PageState("custody", posted, messages(error))
        return _scan_page(user, _rescan(db, user, code, shipment), state), 422
    except DomainError as error:
        undo(error)  # shown on the page; a refused handoff or failed signature is kept
        state = PageState("custody", posted, [error.detail])
        return _scan_page(user, _rescan(db, user, code, shipment), state), error.status
    return redirect(url_for("web.scan", code=code), 303)


@bp.post("/shipments/<sscc>/handoffs/<int:number>/confirm")
@signed_in(Permission.SHIPMENTS_HANDOFF)
@write
def handoff_confirm(user: User, sscc: str, number: int) -> Any:
    """The giver confirms on their own device that they handed the shipper over."""
    try:
        confirm_handoff(get_session(), user, sscc, number, now=clock.now())
    except DomainError as error:
        undo(error)
        return render_template(
            "error.html", status=error.status, title=error.title, detail=error.detail
        ), error.status
    return redirect(url_for("web.shipment", sscc=sscc, _anchor="handoffs"), 303)


@bp.get("/shipments/<sscc>/receive")
@signed_in(Permission.SHIPMENTS_RECEIVE)
def receipt_step(user: User, sscc: str) -> Any:
    """The receipt step: scan each vial (or accept the manifest) and enter the seal."""
    db = get_session()
    shipment = get_visible_shipment(db, user, sscc)
    if not shipper_view(db, user, shipment).may_receive:
        return redirect(url_for("web.scan", code=shipment.sscc), 303)
    return _receipt_page(user, shipment, PageState())


@bp.post("/shipments/<sscc>/receive")
@signed_in(Permission.SHIPMENTS_RECEIVE)
@write
def receive_shipment(user: User, sscc: str) -> Any:
    """Receive the shipper: check its seal and reconcile the vials against the manifest."""
    db = get_session()
    shipment = get_visible_shipment(db, user, sscc)
    posted = request.form.to_dict()
    try:
        form = ReceiptForm().load(posted)
        serials = None if form["manifest"] else _serials(form["vials"])
        receive(
            db,
            hasher(),
            user,
            shipment.sscc,
            seal_number=form["seal"],
            serials=serials,
            remote_addr=request.remote_addr or "unknown",
            now=clock.now(),
        )
    except ValidationError as error:
        return _receipt_page(user, shipment, PageState("receipt", posted, messages(error))), 422
    except DomainError as error:
        undo(error)  # shown on the page; a refused handoff or failed signature is kept
        state = PageState("receipt", posted, [error.detail])
        return _receipt_page(user, shipment, state), error.status
    return redirect(url_for("web.scan", code=shipment.sscc, _anchor="receipt"), 303)


# --- The shipment pages -------------------------------------------------------------------------


@bp.get("/shipments")
@signed_in(Permission.SHIPMENTS_READ)
def shipments(user: User) -> str:
    """Shipments the user's site sends, receives or carries (every one for oversight roles)."""
    db = get_session()
    status = request.args.get("status") or None
    if status not in set(ShipmentStatus):
        status = None
    found = visible_shipments(db, user, status=status)
    counts = packed_counts(db, found)
    return render_template(
        "shipments.html",
        user=user,
        shipments=found,
        counts=counts,
        statuses=list(ShipmentStatus),
        status=status,
    )


@bp.get("/shipments/<sscc>")
@signed_in(Permission.SHIPMENTS_READ)
def shipment(user: User, sscc: str) -> str:
    """One shipment: route, custody, seal, limits, vials, handoffs, receipt and ledger."""
    db = get_session()
    found = get_visible_shipment(db, user, sscc)
    rows = packed(db, found)
    events = chain_events(db, found.chain)
    actor_ids = {event.actor_user_id for event in events if event.actor_user_id}
    site_ids = {event.site_id for event in events if event.site_id}
    handoffs = shipment_handoffs(db, found)
    now = clock.now()
    return render_template(
        "shipment.html",
        user=user,
        shipment=found,
        view=shipper_view(db, user, found),
        rows=rows,
        states=reader_states(db, user, [row.vial for row in rows]),
        handoffs=handoffs,
        confirmations=handoff_confirmations(db, found),
        confirmable={h.number for h in handoffs if may_confirm(h, user, now)},
        refused=refused_handoffs(db, found),
        events=events,
        payloads={event.id: _payload(event) for event in events},
        actors=_names(db, User, actor_ids, "full_name"),
        sites=_names(db, Site, site_ids, "name"),
    )


def shipper_view(db: Session, user: User, found: Shipment) -> ShipperView:
    """The facts and the actions a shipment offers this user now."""
    now = clock.now()
    yours = found.custodian_id == user.id
    in_transit = found.status == ShipmentStatus.IN_TRANSIT
    at_destination = found.to_site_id == user.site_id
    # The handoff's own rule decides (the pharmacist's destination, the holder, the status).
    may_take = can(user, Permission.SHIPMENTS_HANDOFF) and may_take_custody(found, user, now=now)
    hold_until = None
    if found.sealed_at is not None:
        hold_until = found.sealed_at + dt.timedelta(hours=found.hold_time_hours)
    ended = found.received_at or now
    receipt = receipt_of(db, found) if found.status == ShipmentStatus.RECEIVED else None
    record = temperature_record(db, found)
    return ShipperView(
        shipment=found,
        vials=packed_counts(db, [found])[found.id],
        visible=can_see_shipment(db, user, found),
        yours=yours,
        may_take_custody=may_take,
        must_sign=user.site.kind in SIGNING_SITE_KINDS,
        may_receive=(
            in_transit and yours and at_destination and can(user, Permission.SHIPMENTS_RECEIVE)
        ),
        hold_until=hold_until,
        hold_exceeded=hold_until is not None and ended > hold_until,
        receipt=receipt,
        receipt_complete=receipt is not None and receipt_complete(receipt, record),
        temperature_record=record,
    )


# --- helpers ------------------------------------------------------------------------------------


def _scan_page(user: User, scanned: Scanned | None, state: PageState) -> str:
    db = get_session()
    view = None
    if scanned is not None and scanned.shipment is not None:
        view = shipper_view(db, user, scanned.shipment)
    # The actions the answer offers that this page performs itself, by name.
    actions = {
        action["action"]: action
        for action in (scanned.answer.get("actions") or [] if scanned is not None else [])
    }
    return render_template(
        "scan.html",
        user=user,
        scanned=scanned,
        view=view,
        state=state,
        links=_links(scanned),
        actions=actions,
        wards=supplied_wards(db, user.site_id) if DISPENSING & actions.keys() else [],
    )


@bp.post("/trials/<protocol_id>/kits/<number>/thaw")
@signed_in(Permission.VIALS_HANDLE)
@write
def kit_thaw(user: User, protocol_id: str, number: str) -> Any:
    """Thaw a kit at the ward, from its scanned label: the post-thaw clock starts."""
    return _handling_step(user, "kit", lambda db, now: thaw_kit(
        db, user, protocol_id, number, now=now
    ))  # fmt: skip


@bp.post("/trials/<protocol_id>/kits/<number>/dispense")
@signed_in(Permission.VIALS_HANDLE)
@write
def kit_dispense(user: User, protocol_id: str, number: str) -> Any:
    """Send a kit from the pharmacy to one of the wards it supplies."""
    ward = request.form.get("ward", "").strip()
    return _handling_step(user, "kit", lambda db, now: dispense_kits(
        db, user, protocol_id, [number], ward_code=ward, now=now
    ))  # fmt: skip


DISPENSING = {"dispense_kit", "dispense_vial"}


class StoreForm(PageForm):
    location = fields.String(required=True, validate=validate.Length(1, 80))


class WardForm(PageForm):
    ward = fields.String(required=True, validate=validate.Length(1, 32))


@bp.post("/vials/<serial>/store")
@signed_in(Permission.VIALS_HANDLE)
@write
def vial_store(user: User, serial: str) -> Any:
    """Put a received vial into this site's storage (freezer and position)."""
    return _handling_step(user, "vial", lambda db, now: store(
        db, user, [serial], location=StoreForm().load(request.form.to_dict())["location"], now=now
    ))  # fmt: skip


@bp.post("/vials/<serial>/dispense")
@signed_in(Permission.VIALS_HANDLE)
@write
def vial_dispense(user: User, serial: str) -> Any:
    """Send a stored vial to one of the wards this pharmacy supplies."""
    return _handling_step(user, "vial", lambda db, now: dispense(
        db, user, [serial], ward_code=WardForm().load(request.form.to_dict())["ward"], now=now
    ))  # fmt: skip


@bp.post("/vials/<serial>/thaw")
@signed_in(Permission.VIALS_HANDLE)
@write
def vial_thaw(user: User, serial: str) -> Any:
    """Thaw a vial where it is: the post-thaw clock starts."""
    return _handling_step(user, "vial", lambda db, now: thaw(db, user, serial, now=now))


def _handling_step(user: User, form: str, step: Callable[[Session, dt.datetime], object]) -> Any:
    """Run a vial's or kit's step; back to its scan, with the refusal shown if refused."""
    db = get_session()
    code = request.form.get("code", "")[:MAX_SCAN_CHARS]
    try:
        step(db, clock.now())
    except ValidationError as error:
        db.rollback()
        page = _scan_page(user, look_up(db, user, code), PageState(form, {}, messages(error)))
        return page, 422
    except DomainError as error:
        undo(error)
        page = _scan_page(
            user, look_up(db, user, code), PageState(form, {}, [f"{error.title}: {error.detail}"])
        )
        return page, error.status
    return redirect(url_for("web.scan", code=code), 303)


def _receipt_page(user: User, found: Shipment, state: PageState) -> str:
    db = get_session()
    rows = packed(db, found)
    return render_template(
        "scan.html",
        user=user,
        scanned=None,
        receipt_of=shipper_view(db, user, found),
        one_sided=one_sided_handoffs(db, found),
        rows=rows,
        state=state,
        links=[],
    )


def _links(scanned: Scanned | None) -> list[dict[str, str]]:
    """The API's suggested next steps that a browser can follow (pages, not API calls)."""
    if scanned is None or scanned.refused:
        return []
    return [
        action
        for action in scanned.answer["actions"]
        if action["method"] == "GET" and not action["href"].startswith("/api/")
    ]


def _rescan(db: Session, user: User, code: str, found: Shipment) -> Scanned:
    """The scan a refused form came from, shown again (the shipper itself, if it was not)."""
    scanned = look_up(db, user, code)
    if scanned.shipment is None or scanned.shipment.id != found.id:
        scanned = look_up(db, user, found.sscc)
    return scanned


def _serials(text: str | None) -> list[str]:
    """The vial serials of the scans in the receipt box, one scan per line."""
    lines = [line.strip() for line in _LINES.split(text or "") if line.strip()]
    if not lines:
        raise ValidationError("Scan each vial, or accept the manifest.", "vials")
    serials, problems = [], []
    for number, line in enumerate(lines, start=1):
        resolution = resolve_scan(get_session(), line)
        if resolution.refused:
            problems.append(f"Scan {number} ({line}): {resolution.reason}")
        elif resolution.kind not in (Kind.VIAL, Kind.SERIAL_ONLY) or not resolution.serial:
            problems.append(f"Scan {number} ({line}) is a {resolution.kind} code, not a vial.")
        else:
            serials.append(resolution.serial)
    if problems:
        raise ValidationError(problems, "vials")
    return serials


def _scannable_shipment(db: Session, user: User, sscc: str) -> Shipment:
    """A shipper the user may scan: one they may see, or any in transit for whoever may take
    custody (having it in hand is the point), as the scan API answers."""
    found = find_shipment(db, sscc)
    if found is None or not may_scan(db, user, found):
        raise NotFoundError("shipment with SSCC", sscc)
    return found


def _shipper_of(db: Session, user: User, serial: str) -> Shipment | None:
    """The shipper the vial is in now (packed, not unpacked nor received), if visible."""
    found = db.scalar(
        select(Shipment)
        .join(ShipmentVial, ShipmentVial.shipment_id == Shipment.id)
        .join(Vial, Vial.id == ShipmentVial.vial_id)
        .where(
            Vial.serial == serial,
            ShipmentVial.unpacked_at.is_(None),
            Shipment.status != ShipmentStatus.RECEIVED,
        )
        .order_by(ShipmentVial.id.desc())
        .limit(1)
    )
    return found if found is not None and can_see_shipment(db, user, found) else None


def _payload(event: CustodyEvent) -> dict[str, Any]:
    payload = orjson.loads(event.body).get("payload")
    return payload if isinstance(payload, dict) else {}


def _names(db: Session, model: type[User] | type[Site], ids: set[int], attr: str) -> dict[int, str]:
    if not ids:
        return {}
    return {
        row.id: getattr(row, attr) for row in db.scalars(select(model).where(model.id.in_(ids)))
    }


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"
