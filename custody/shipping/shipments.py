"""Shipments: create a dry shipper, pack and unpack vials by scanning, seal it, ship it."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import column, select, table
from sqlalchemy.orm import Session, selectinload

from custody.ledger import (
    EventDraft,
    append_events,
    decided_lots,
    decision_status,
    status_words,
)
from custody.shipping.models import Shipment, ShipmentStatus, ShipmentVial
from custody.shipping.vials import vial_status
from labels.payload import has_check_digit, sscc_from
from lots.access import Permission, require
from lots.accounts import get_site, get_user
from lots.batch import Lot, LotStatus, Vial
from lots.errors import AlreadyExistsError, DomainError, InvalidValueError, NotFoundError
from lots.local_time import local_date
from lots.models import Site, SiteKind, User

# GS1's example company prefix: demo SSCCs never clash with a real company's.
DEFAULT_COMPANY_PREFIX = "0950600"
RECEIVING_KINDS = frozenset({SiteKind.HOSPITAL_PHARMACY, SiteKind.COURIER_DEPOT})


class ShipmentStateError(DomainError):
    """An action the shipment's status does not allow."""

    status = 409
    title = "Not allowed in this shipment status"


class VialNotPackableError(DomainError):
    """Vials that may not go into a shipper, each with its reason."""

    status = 409
    title = "Vial cannot be packed"

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(" ".join(reasons), field="serials", reasons=reasons)


def create_shipment(
    session: Session,
    user: User,
    *,
    to_site_code: str,
    hold_time_hours: int,
    asset_id: str | None = None,
    logger_id: str | None = None,
    storage_limit_c: Decimal | None = None,
    sscc: str | None = None,
    company_prefix: str = DEFAULT_COMPANY_PREFIX,
    now: dt.datetime,
) -> Shipment:
    """Open a shipment from the user's site; its SSCC is given (a pre-printed label) or made."""
    require(user, Permission.SHIPMENTS_MANAGE)
    destination = get_site(session, to_site_code)
    if destination.id == user.site_id:
        raise InvalidValueError("to_site", "A shipment goes to another site.")
    if destination.kind not in RECEIVING_KINDS:
        raise InvalidValueError("to_site", f"{destination.code} does not receive shipments.")
    if not 1 <= hold_time_hours <= 24 * 30:
        raise InvalidValueError("hold_time_hours", "A validated hold time is 1 to 720 hours.")
    if sscc is None:
        sscc = sscc_from(company_prefix, secrets.randbelow(10**9))
    elif len(sscc) != 18 or not sscc.isdigit() or not has_check_digit(sscc):
        raise InvalidValueError("sscc", f"{sscc} is not an SSCC with a valid check digit.")
    if session.scalar(select(Shipment.id).where(Shipment.sscc == sscc)) is not None:
        raise AlreadyExistsError("shipment with SSCC", sscc)
    shipment = Shipment(
        sscc=sscc,
        asset_id=asset_id,
        logger_id=logger_id,
        from_site=user.site,
        to_site=destination,
        storage_limit_c=storage_limit_c,
        hold_time_hours=hold_time_hours,
        status=ShipmentStatus.OPEN,
        created_by=user,
        created_at=now,
    )
    session.add(shipment)
    session.flush()
    _record(
        session,
        user,
        [shipment.chain],
        "SHIPMENT_CREATED",
        {
            "sscc": sscc,
            "from": user.site.code,
            "to": destination.code,
            "asset_id": asset_id,
            "logger_id": logger_id,
            "hold_time_hours": hold_time_hours,
            "storage_limit_c": None if storage_limit_c is None else str(storage_limit_c),
        },
        now=now,
    )
    return shipment


def get_shipment(session: Session, sscc: str, *, for_update: bool = False) -> Shipment:
    """The shipment with this SSCC (locked when about to change: handoffs serialise here)."""
    query = select(Shipment).where(Shipment.sscc == sscc)
    if for_update:
        # populate_existing: a copy loaded earlier in the request (a visibility check, say)
        # must not hide what the writer we waited for committed, e.g. a new custodian.
        query = query.with_for_update().execution_options(populate_existing=True)
    shipment = session.scalar(query)
    if shipment is None:
        raise NotFoundError("shipment with SSCC", sscc)
    return shipment


def packed(session: Session, shipment: Shipment) -> list[ShipmentVial]:
    """The vials in the shipper now (packed and not unpacked), in packing order."""
    return list(
        session.scalars(
            select(ShipmentVial)
            .where(ShipmentVial.shipment_id == shipment.id, ShipmentVial.unpacked_at.is_(None))
            .order_by(ShipmentVial.id)
            .options(selectinload(ShipmentVial.vial).selectinload(Vial.lot))
        )
    )


def pack_vials(
    session: Session, user: User, sscc: str, serials: Sequence[str], *, now: dt.datetime
) -> Shipment:
    """Pack scanned vials: only in-stock vials of released lots made at the shipping site."""
    require(user, Permission.SHIPMENTS_MANAGE)
    shipment = _open(session, sscc)
    vials = _vials(session, serials)
    lots = decided_lots(session, [vial.lot for vial in vials])
    states = {s: state for s, (state, _) in vial_status(session, vials, decided=lots).items()}
    reasons = [
        reason
        for vial in vials
        if (
            reason := _not_packable(
                session,
                vial,
                states[vial.serial],
                decision_status(lots[vial.lot_id]),
                shipment,
                now,
            )
        )
        is not None
    ]
    if reasons:
        raise VialNotPackableError(reasons)
    session.add_all(
        ShipmentVial(shipment_id=shipment.id, vial_id=v.id, packed_at=now) for v in vials
    )
    limits = [vial.lot.product_version.storage_limit_c for vial in vials]
    strictest = min(limits)
    if shipment.storage_limit_c is None or strictest < shipment.storage_limit_c:
        shipment.storage_limit_c = strictest
    _record_each(session, user, shipment, vials, "PACKED", at=now)
    return shipment


def unpack_vials(
    session: Session, user: User, sscc: str, serials: Sequence[str], *, now: dt.datetime
) -> Shipment:
    """Take vials back out of an open shipper."""
    require(user, Permission.SHIPMENTS_MANAGE)
    shipment = _open(session, sscc)
    inside = {row.vial.serial: row for row in packed(session, shipment)}
    missing = [serial for serial in serials if serial not in inside]
    if missing:
        raise InvalidValueError("serials", f"Not in shipper {sscc}: {', '.join(missing)}.")
    for serial in serials:
        inside[serial].unpacked_at = now
    _record_each(session, user, shipment, [inside[s].vial for s in serials], "UNPACKED", at=now)
    return shipment


def seal(
    session: Session, user: User, sscc: str, seal_number: str, *, now: dt.datetime
) -> Shipment:
    """Close the shipper with a numbered seal; nothing goes in or out after this."""
    require(user, Permission.SHIPMENTS_MANAGE)
    shipment = _open(session, sscc)
    if not packed(session, shipment):
        raise ShipmentStateError(f"Shipper {sscc} is empty; pack vials before sealing it.")
    shipment.status, shipment.seal_number, shipment.sealed_at = (
        ShipmentStatus.SEALED,
        seal_number,
        now,
    )
    _record(
        session,
        user,
        [shipment.chain],
        "SEALED",
        {"sscc": sscc, "seal_number": seal_number},
        now=now,
    )
    return shipment


def ship(
    session: Session, user: User, sscc: str, courier_username: str, *, now: dt.datetime
) -> Shipment:
    """Hand the sealed shipper to the first courier: the vials are in transit from now."""
    require(user, Permission.SHIPMENTS_MANAGE)
    shipment = get_shipment(session, sscc, for_update=True)
    if shipment.status != ShipmentStatus.SEALED:
        raise ShipmentStateError(
            f"Shipper {sscc} is {shipment.status.replace('_', ' ')}; only a sealed shipper ships."
        )
    courier = get_user(session, courier_username)
    if courier.role != "courier" or not courier.active:
        raise InvalidValueError("courier", f"{courier_username} is not an active courier.")
    shipment.status, shipment.shipped_at = ShipmentStatus.IN_TRANSIT, now
    shipment.custodian, shipment.custodian_since = courier, now
    vials = [row.vial for row in packed(session, shipment)]
    _record_each(
        session,
        user,
        shipment,
        vials,
        "SHIPPED",
        at=now,
        courier=courier.username,
        courier_name=courier.full_name,
        seal_number=shipment.seal_number,
    )
    return shipment


def _open(session: Session, sscc: str) -> Shipment:
    shipment = get_shipment(session, sscc, for_update=True)
    if shipment.status != ShipmentStatus.OPEN:
        raise ShipmentStateError(
            f"Shipper {sscc} is {shipment.status.replace('_', ' ')}; it can no longer be packed."
        )
    return shipment


def _vials(session: Session, serials: Sequence[str]) -> list[Vial]:
    if not serials:
        raise InvalidValueError("serials", "Scan at least one vial.")
    if len(set(serials)) != len(serials):
        raise InvalidValueError("serials", "A vial was scanned twice in one request.")
    found = {
        vial.serial: vial
        for vial in session.scalars(
            select(Vial).where(Vial.serial.in_(serials)).options(selectinload(Vial.lot))
        )
    }
    unknown = [serial for serial in serials if serial not in found]
    if unknown:
        raise NotFoundError("vial", ", ".join(unknown))
    return [found[serial] for serial in serials]


# Shipping sits below trials in custody's layers: it reads the two columns it needs by name.
_SUBJECTS = table("subjects", column("trial_id"), column("site_id"), column("code"))
_TRIALS = table("trials", column("id"), column("protocol_id"))


def exceptional_destination(session: Session, lot: Lot) -> int | None:
    """The pharmacy that supplies the ward of the subject an exceptional release names (its
    site id), or None while that subject is not enrolled."""
    ward_id = session.scalar(
        select(_SUBJECTS.c.site_id)
        .join(_TRIALS, _TRIALS.c.id == _SUBJECTS.c.trial_id)
        .where(
            _TRIALS.c.protocol_id == lot.exceptional_trial,
            _SUBJECTS.c.code == lot.exceptional_subject,
        )
    )
    if ward_id is None:
        return None
    ward = session.get(Site, ward_id)
    return ward.supplied_by_id if ward is not None else None


def _not_for_this_destination(session: Session, vial: Vial, shipment: Shipment) -> str | None:
    """Why an exceptionally released vial may not go where this shipper goes, if it may not."""
    lot: Lot = vial.lot
    destination = exceptional_destination(session, lot)
    if destination is None:
        return (
            f"{vial.serial}: lot {lot.number} is released for subject "
            f"{lot.exceptional_subject} of {lot.exceptional_trial} only, who is not enrolled yet."
        )
    if destination != shipment.to_site_id:
        return (
            f"{vial.serial}: lot {lot.number} is released for subject "
            f"{lot.exceptional_subject} only; it ships only to that subject's pharmacy."
        )
    return None


def _not_packable(  # noqa: PLR0917 - one vial's facts, judged together
    session: Session,
    vial: Vial,
    state: str,
    lot_status: str,
    shipment: Shipment,
    now: dt.datetime,
) -> str | None:
    """Why the vial may not go into the shipper, if it may not; `lot_status` is the lot's
    status as its chain has it (`custody.ledger.decision_status`)."""
    lot: Lot = vial.lot
    if lot_status == LotStatus.EXCEPTIONALLY_RELEASED:
        if (reason := _not_for_this_destination(session, vial, shipment)) is not None:
            return reason
    elif lot_status != LotStatus.RELEASED:
        return f"{vial.serial}: lot {lot.number} is {status_words(lot_status)}, not released."
    if state != "in_stock":
        return f"{vial.serial} is {state.replace('_', ' ')}, not in stock."
    if lot.site_id != shipment.from_site_id:
        return f"{vial.serial} is not at {shipment.from_site.code}."
    # A date-only expiry holds through the end of that day at the shipping site.
    if lot.expires_on < local_date(now, shipment.from_site.time_zone):
        return f"{vial.serial}: lot {lot.number} expired on {lot.expires_on.isoformat()}."
    return None


def _record(
    session: Session,
    user: User,
    chains: list[str],
    event_type: str,
    payload: dict[str, object],
    *,
    now: dt.datetime,
) -> None:
    append_events(
        session,
        [EventDraft(chain, event_type, now, payload, user, user.site) for chain in chains],
    )


def _record_each(
    session: Session,
    user: User,
    shipment: Shipment,
    vials: Sequence[Vial],
    event_type: str,
    *,
    at: dt.datetime,
    **facts: object,
) -> None:
    """One event on the shipment's chain listing the vials, and one on each vial's chain."""
    serials = [vial.serial for vial in vials]
    common = {"sscc": shipment.sscc, **facts}
    drafts = [
        EventDraft(shipment.chain, event_type, at, {**common, "vials": serials}, user, user.site)
    ]
    drafts += [
        EventDraft(vial.chain, event_type, at, {**common, "serial": vial.serial}, user, user.site)
        for vial in vials
    ]
    append_events(session, drafts)
