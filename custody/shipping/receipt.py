"""Receipt at the hospital pharmacy, with reconciliation; then storing, dispensing, thawing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from typing import Final

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from custody.ledger import CustodyEvent, EventDraft, append_event, append_events
from custody.shipping.cold_chain import TemperatureRecord, judge_shipment, temperature_record
from custody.shipping.handoffs import HandoffRefusedError, record_handoff
from custody.shipping.models import Receipt, Shipment, ShipmentStatus, ShipmentVial
from custody.shipping.shipments import get_shipment, packed
from custody.shipping.vials import STATE_AFTER, vial_status
from lots.access import Permission, require
from lots.accounts import get_site
from lots.batch import Vial
from lots.errors import DomainError, InvalidValueError, NotFoundError
from lots.models import Site, SiteKind, User
from lots.time_rules import is_before, is_in_the_future


@dataclass
class Reconciliation:
    """What arrived against what was packed."""

    received: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    of_another_shipment: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Everything packed arrived, and nothing else."""
        return not (self.missing or self.extra or self.of_another_shipment or self.unknown)


def reconciled(receipt: Receipt) -> bool:
    """Whether the receipt found everything packed, and nothing else."""
    found = receipt.reconciliation
    names = {item.name for item in fields(Reconciliation)}
    return Reconciliation(**{name: found[name] for name in names if name in found}).complete


def receipt_complete(receipt: Receipt, record: TemperatureRecord) -> bool:
    """Reconciled, and the temperature record its products require is attached: only then
    may its vials be dispensed towards a patient."""
    return reconciled(receipt) and not record.missing


class VialHandlingError(DomainError):
    """A vial that cannot be stored, dispensed or thawed in its state or place."""

    status = 409
    title = "Vial cannot be handled"

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(" ".join(reasons), field="serials", reasons=reasons)


def receive(
    session: Session,
    hasher: PasswordHasher,
    user: User,
    sscc: str,
    *,
    seal_number: str,
    serials: Sequence[str] | None = None,
    giver_username: str | None = None,
    password: str | None = None,
    remote_addr: str = "unknown",
    now: dt.datetime,
) -> Receipt:
    """Receive a shipper: check its seal, reconcile the vials scanned (or the manifest).

    If the pharmacist does not hold the shipper yet, the courier's handoff to them is
    recorded first, in the same transaction.
    """
    require(user, Permission.SHIPMENTS_RECEIVE)
    shipment = get_shipment(session, sscc, for_update=True)
    if shipment.to_site_id != user.site_id:
        raise InvalidValueError(
            "sscc", f"Shipper {sscc} is addressed to {shipment.to_site.name}, not to your site."
        )
    if shipment.status == ShipmentStatus.RECEIVED:
        raise HandoffRefusedError(f"Shipper {sscc} was already received.", sscc=sscc)
    if shipment.custodian_id != user.id:
        if giver_username is None:
            raise InvalidValueError("giver", "Name the courier handing the shipper over.")
        record_handoff(
            session,
            hasher,
            user,
            sscc,
            giver_username=giver_username,
            occurred_at=now,
            password=password,
            remote_addr=remote_addr,
            now=now,
        )
    if seal_number != shipment.seal_number:
        error = HandoffRefusedError(
            f"Seal {seal_number} is not the seal applied at packing ({shipment.seal_number}): "
            "do not open the shipper; quarantine it and call QA.",
            sscc=sscc,
        )
        # The transaction rolls back; the refusal itself must stay on the shipper's record.
        error.after_rollback = partial(
            _record_seal_mismatch,
            sscc=sscc,
            user_id=user.id,
            now=now,
            payload={"sscc": sscc, "seal_number": seal_number, "reason": str(error)},
        )
        raise error
    inside = {row.vial.serial: row for row in packed(session, shipment)}
    scanned = list(inside) if serials is None else list(dict.fromkeys(serials))
    result = _reconcile(session, shipment, inside, scanned)
    for serial in result.received:
        inside[serial].received_at = now
    shipment.status, shipment.received_at = ShipmentStatus.RECEIVED, now
    payload = {"sscc": sscc, "seal_number": seal_number, **asdict(result)}
    drafts = [EventDraft(shipment.chain, "RECEIVED", now, payload, user, user.site)]
    drafts += [
        EventDraft(
            inside[s].vial.chain, "RECEIVED", now, {"sscc": sscc, "serial": s}, user, user.site
        )
        for s in result.received
    ]
    drafts += [
        EventDraft(
            inside[s].vial.chain,
            "REPORTED_MISSING",
            now,
            {"sscc": sscc, "serial": s},
            user,
            user.site,
        )
        for s in result.missing
    ]
    events = append_events(session, drafts)
    judge_shipment(session, user, shipment, now=now)
    receipt = Receipt(
        shipment_id=shipment.id,
        received_by=user,
        received_at=now,
        seal_number=seal_number,
        reconciliation=payload,
        event_hash=events[0].hash,
    )
    session.add(receipt)
    session.flush()
    return receipt


def store(
    session: Session, user: User, serials: Sequence[str], *, location: str, now: dt.datetime
) -> None:
    """Put received vials into the site's storage (a freezer and position)."""
    require(user, Permission.VIALS_HANDLE)
    vials = _at_my_site(session, user, serials, step="store")
    _record(session, user, vials, "STORED", {"location": location}, now=now)


def dispense(
    session: Session, user: User, serials: Sequence[str], *, ward_code: str, now: dt.datetime
) -> None:
    """Send stored vials to a ward this pharmacy supplies (no other ward may receive them)."""
    require(user, Permission.VIALS_HANDLE)
    ward = get_site(session, ward_code)
    if ward.kind != SiteKind.WARD:
        raise InvalidValueError("ward", f"{ward_code} is not a ward.")
    if ward.supplied_by_id != user.site_id:
        raise InvalidValueError(
            "ward",
            f"{ward.name} is not supplied by {user.site.name}: dispense only to the wards "
            "your pharmacy supplies.",
        )
    vials = _at_my_site(session, user, serials, step="dispense")
    _refuse_without_temperature_record(session, vials)
    _record(session, user, vials, "DISPENSED", {"ward": ward.code}, now=now)


def _refuse_without_temperature_record(session: Session, vials: Sequence[Vial]) -> None:
    """A vial leaves the pharmacy for a patient only once the shipper that brought it has
    the temperature record its product requires (the reasons name shippers, never vials)."""
    shipments = session.scalars(
        select(Shipment)
        .join(ShipmentVial, ShipmentVial.shipment_id == Shipment.id)
        .where(
            ShipmentVial.vial_id.in_([vial.id for vial in vials]),
            ShipmentVial.unpacked_at.is_(None),
            Shipment.received_at.is_not(None),
        )
        .distinct()
        .order_by(Shipment.sscc)
    )
    problems = [
        problem
        for shipment in shipments
        if (problem := temperature_record(session, shipment).problem) is not None
    ]
    if problems:
        raise VialHandlingError(
            [*problems, "Attach the logger readings before dispensing these vials."]
        )


def thaw(
    session: Session,
    user: User,
    serial: str,
    *,
    occurred_at: dt.datetime | None = None,
    now: dt.datetime,
) -> dt.datetime:
    """Thaw a vial: the post-thaw clock starts; returns the time by which it must be used."""
    require(user, Permission.VIALS_HANDLE)
    (vial,) = _at_my_site(session, user, [serial], step="thaw")
    thawed_at = occurred_at or now
    if is_in_the_future(thawed_at, now):
        # The post-thaw clock would start in the future and the vial look usable for longer.
        raise InvalidValueError("occurred_at", "The thaw time is in the future; check the clock.")
    before = session.scalar(
        select(CustodyEvent.occurred_at)
        .where(CustodyEvent.chain == vial.chain, CustodyEvent.event_type.in_(STATE_AFTER))
        .order_by(CustodyEvent.seq.desc())
        .limit(1)
    )
    if before is not None and is_before(thawed_at, before):
        # A thaw back-dated before the vial reached the ward would make the clock look later.
        raise InvalidValueError(
            "occurred_at",
            f"The thaw time {thawed_at:%Y-%m-%d %H:%M} UTC is before the vial's last recorded "
            f"step ({before:%Y-%m-%d %H:%M} UTC).",
        )
    window = vial.lot.product_version.post_thaw_window_minutes
    use_by = thawed_at + dt.timedelta(minutes=window) if window else None
    _record(
        session,
        user,
        [vial],
        "THAWED",
        {
            "thawed_at": thawed_at.isoformat(),
            "post_thaw_window_minutes": window,
            "use_by": use_by.isoformat() if use_by else None,
        },
        at=thawed_at,
        now=now,
    )
    return use_by or thawed_at


def _record_seal_mismatch(
    session: Session, *, sscc: str, user_id: int, now: dt.datetime, payload: dict[str, object]
) -> None:
    user = session.get(User, user_id)
    append_event(
        session,
        EventDraft(
            f"shipment:{sscc}",
            "SEAL_MISMATCH",
            now,
            payload,
            user,
            user.site if user else None,
        ),
    )


def receipt_of(session: Session, shipment: Shipment) -> Receipt | None:
    """The shipment's receipt, once received."""
    return session.scalar(select(Receipt).where(Receipt.shipment_id == shipment.id))


def _reconcile(
    session: Session, shipment: Shipment, inside: dict[str, ShipmentVial], scanned: list[str]
) -> Reconciliation:
    result = Reconciliation()
    result.received = [serial for serial in scanned if serial in inside]
    result.missing = [serial for serial in inside if serial not in set(scanned)]
    strangers = [serial for serial in scanned if serial not in inside]
    if strangers:
        known = {
            vial.serial: vial
            for vial in session.scalars(select(Vial).where(Vial.serial.in_(strangers)))
        }
        elsewhere = dict(
            session.execute(
                select(Vial.serial, Shipment.sscc)
                .join(ShipmentVial, ShipmentVial.vial_id == Vial.id)
                .join(Shipment, Shipment.id == ShipmentVial.shipment_id)
                .where(
                    Vial.serial.in_(strangers),
                    ShipmentVial.unpacked_at.is_(None),
                    Shipment.id != shipment.id,
                )
            ).all()
        )
        for serial in strangers:
            if serial in elsewhere:
                result.of_another_shipment[serial] = elsewhere[serial]
            elif serial in known:
                result.extra.append(serial)
            else:
                result.unknown.append(serial)
    return result


# The states from which each step may handle a vial.
HANDLING: Final = {
    "store": frozenset({"received", "dispensed"}),
    "dispense": frozenset({"stored"}),
    "thaw": frozenset({"stored", "dispensed"}),
}


def handling_refusals(
    session: Session, user: User, vials: Sequence[Vial], step: str
) -> dict[str, str | None]:
    """Why each vial cannot take this step by this user where it is now, or None when it
    can (a thaw happens only where the vial is). The scan offers a step on the same rule."""
    require(user, Permission.VIALS_HANDLE)
    status, supplied = vial_status(session, vials), _supplied(session, user)
    return {
        vial.serial: _refusal(
            vial.serial, *status[vial.serial], step=step, user=user, supplied=supplied
        )
        for vial in vials
    }


def handling_steps(session: Session, user: User, vial: Vial) -> list[str]:
    """The steps of `HANDLING` this user may take with the vial now (what a scan offers),
    judged by the same rule as the steps themselves, from one read of its state."""
    require(user, Permission.VIALS_HANDLE)
    (state, site), supplied = vial_status(session, [vial])[vial.serial], _supplied(session, user)
    return [
        step
        for step in HANDLING
        if _refusal(vial.serial, state, site, step=step, user=user, supplied=supplied) is None
    ]


def _supplied(session: Session, user: User) -> set[str]:
    """The codes of the wards the user's site supplies."""
    return set(session.scalars(select(Site.code).where(Site.supplied_by_id == user.site_id)))


def _refusal(
    serial: str, state: str, site: str | None, *, step: str, user: User, supplied: set[str]
) -> str | None:
    allowed = HANDLING[step]
    # A dispensed vial is at its ward; the pharmacy that supplies the ward may take it back.
    returned = state == "dispensed" and site in supplied and "dispensed" in allowed
    if site != user.site.code and not (returned and step != "thaw"):
        return f"{serial} is not at {user.site.name}."
    if state not in allowed:
        return f"{serial} is {state.replace('_', ' ')}."
    if step == "dispense" and not supplied:
        return f"{user.site.name} supplies no ward."
    return None


def _at_my_site(session: Session, user: User, serials: Sequence[str], *, step: str) -> list[Vial]:
    """The vials, each of which may take this step here, or VialHandlingError naming each
    that may not."""
    vials = list(
        session.scalars(
            select(Vial).where(Vial.serial.in_(list(serials))).options(selectinload(Vial.lot))
        )
    )
    found = {vial.serial for vial in vials}
    unknown = [serial for serial in serials if serial not in found]
    if unknown:
        raise NotFoundError("vial", ", ".join(unknown))
    refusals = handling_refusals(session, user, vials, step)
    reasons = [reason for reason in refusals.values() if reason]
    if reasons:
        raise VialHandlingError(reasons)
    return vials


def _record(
    session: Session,
    user: User,
    vials: Sequence[Vial],
    event_type: str,
    payload: dict[str, object],
    *,
    at: dt.datetime | None = None,
    now: dt.datetime,
) -> None:
    append_events(
        session,
        [
            EventDraft(
                vial.chain,
                event_type,
                at or now,
                {**payload, "serial": vial.serial},
                user,
                user.site,
            )
            for vial in vials
        ],
    )
