"""Courier handoffs: one scan of the shipper by the person taking custody moves every vial."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import partial
from typing import cast

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger import EventDraft, append_event, append_events
from custody.shipping.models import Handoff, Shipment, ShipmentStatus
from custody.shipping.shipments import get_shipment, packed
from lots.access import Permission, Role, require
from lots.base import utcnow
from lots.errors import DomainError
from lots.models import User
from lots.signatures import sign

# Device clocks drift: a handoff may look up to this much older than the one before it.
CLOCK_SKEW = dt.timedelta(minutes=2)
# A scan submitted this long after it was made was captured offline: accepted, flagged late.
LATE_AFTER = dt.timedelta(minutes=5)
# The same giver and taker again within this window is the scanner firing twice.
DUPLICATE_WINDOW = dt.timedelta(minutes=10)
# Sites whose receivers sign a handoff with their password (set per site kind).
SIGNING_SITE_KINDS = frozenset({"hospital_pharmacy"})


class HandoffRefusedError(DomainError):
    """A handoff that does not follow from the chain; the refusal itself is recorded."""

    status = 409
    title = "Handoff refused"


@dataclass(frozen=True)
class ScannedHandoff:
    """The handoff a scan stands for, and whether it was that scan that recorded it."""

    handoff: Handoff
    repeated: bool  # the same scan again: the first handoff, nothing new recorded


def record_handoff(
    session: Session,
    hasher: PasswordHasher,
    taker: User,
    sscc: str,
    *,
    giver_username: str,
    occurred_at: dt.datetime,
    password: str | None = None,
    remote_addr: str = "unknown",
    now: dt.datetime | None = None,
) -> Handoff:
    """The taker scanned the shipper and named the giver: custody of every vial moves.

    The shipment row is locked first, so two couriers scanning at once serialise here;
    the second finds the first's handoff and gets it back, or a refusal naming the holder.
    """
    return scan_handoff(
        session,
        hasher,
        taker,
        sscc,
        giver_username=giver_username,
        occurred_at=occurred_at,
        password=password,
        remote_addr=remote_addr,
        now=now,
    ).handoff


def scan_handoff(
    session: Session,
    hasher: PasswordHasher,
    taker: User,
    sscc: str,
    *,
    giver_username: str,
    occurred_at: dt.datetime,
    password: str | None = None,
    remote_addr: str = "unknown",
    now: dt.datetime | None = None,
) -> ScannedHandoff:
    """`record_handoff`, telling a new handoff from a repeated scan (HTTP 201 or 200)."""
    require(taker, Permission.SHIPMENTS_HANDOFF)
    now = now or utcnow()
    shipment = get_shipment(session, sscc, for_update=True)
    last = _last_handoff(session, shipment)
    if (
        last is not None
        and last.taker_id == taker.id
        and last.giver.username == giver_username
        and abs(last.occurred_at - occurred_at) <= DUPLICATE_WINDOW
    ):
        return ScannedHandoff(last, repeated=True)
    reason = _refusal(
        shipment,
        taker=taker,
        giver_username=giver_username,
        occurred_at=occurred_at,
        now=now,
    )
    if reason is not None:
        _refuse(shipment, taker, giver_username, occurred_at, reason)
    signature = None
    if taker.site.kind in SIGNING_SITE_KINDS:
        if not password:
            _refuse(
                shipment,
                taker,
                giver_username,
                occurred_at,
                f"{taker.site.name} requires the receiver to sign: re-enter your password.",
            )
        signature = sign(
            session,
            hasher,
            taker,
            password=password or "",
            meaning="Custody accepted",
            remote_addr=remote_addr,
            now=now,
        )
    giver = cast(User, shipment.custodian)  # `_refusal` made sure the giver is the holder
    late = now - occurred_at > LATE_AFTER
    facts = {
        "sscc": sscc,
        "from": {"user": giver.username, "name": giver.full_name, "site": giver.site.code},
        "to": {"user": taker.username, "name": taker.full_name, "site": taker.site.code},
        "late": late,
        "signature": signature,
    }
    vials = [row.vial for row in packed(session, shipment)]
    drafts = [
        EventDraft(
            shipment.chain,
            "HANDED_OFF",
            occurred_at,
            {**facts, "vials": [vial.serial for vial in vials]},
            taker,
            taker.site,
        )
    ]
    drafts += [
        EventDraft(
            vial.chain,
            "HANDED_OFF",
            occurred_at,
            {**facts, "serial": vial.serial},
            taker,
            taker.site,
        )
        for vial in vials
    ]
    events = append_events(session, drafts, recorded_at=now)
    shipment.custodian, shipment.custodian_since = taker, occurred_at
    handoff = Handoff(
        shipment_id=shipment.id,
        number=(last.number if last else 0) + 1,
        giver=giver,
        taker=taker,
        occurred_at=occurred_at,
        recorded_at=now,
        late=late,
        signed=signature is not None,
        event_hash=events[0].hash,
    )
    session.add(handoff)
    session.flush()
    return ScannedHandoff(handoff, repeated=False)


def shipment_handoffs(session: Session, shipment: Shipment) -> list[Handoff]:
    """The shipment's handoffs in order."""
    return list(
        session.scalars(
            select(Handoff).where(Handoff.shipment_id == shipment.id).order_by(Handoff.number)
        )
    )


def _last_handoff(session: Session, shipment: Shipment) -> Handoff | None:
    return session.scalar(
        select(Handoff)
        .where(Handoff.shipment_id == shipment.id)
        .order_by(Handoff.number.desc())
        .limit(1)
    )


def _refusal(  # noqa: PLR0911 - one return per reason a handoff is refused
    shipment: Shipment,
    *,
    taker: User,
    giver_username: str,
    occurred_at: dt.datetime,
    now: dt.datetime,
) -> str | None:
    if shipment.status in (ShipmentStatus.OPEN, ShipmentStatus.SEALED):
        state = "not sealed" if shipment.status == ShipmentStatus.OPEN else "sealed but not shipped"
        return f"Shipper {shipment.sscc} is {state}: it is not in a courier's hands yet."
    if shipment.status == ShipmentStatus.RECEIVED:
        return f"Shipper {shipment.sscc} was already received at {shipment.to_site.name}."
    holder = shipment.custodian
    if holder is None or holder.username != giver_username:
        named = holder.full_name if holder else "nobody"
        return (
            f"{giver_username} does not hold shipper {shipment.sscc}; it is in the custody of "
            f"{named}."
        )
    if taker.id == holder.id:
        return f"You already hold shipper {shipment.sscc}."
    if taker.role == Role.PHARMACIST and taker.site_id != shipment.to_site_id:
        # A pharmacy takes custody only of what is addressed to it; couriers relay anywhere.
        return (
            f"Shipper {shipment.sscc} is addressed to {shipment.to_site.name}; "
            f"{taker.site.name} cannot take custody of it."
        )
    if occurred_at > now + CLOCK_SKEW:
        return "The time of the scan is in the future; check the device clock."
    since = shipment.custodian_since
    if since is not None and occurred_at < since - CLOCK_SKEW:
        return (
            f"The scan's time {occurred_at:%Y-%m-%d %H:%M} UTC is before the previous handoff "
            f"({since:%Y-%m-%d %H:%M} UTC, {int(CLOCK_SKEW.total_seconds() // 60)} min tolerance)."
        )
    return None


def _refuse(
    shipment: Shipment, taker: User, giver_username: str, occurred_at: dt.datetime, reason: str
) -> None:
    error = HandoffRefusedError(reason, sscc=shipment.sscc)
    error.after_rollback = partial(
        _record_refusal,
        chain=shipment.chain,
        taker_id=taker.id,
        payload={
            "sscc": shipment.sscc,
            "giver": giver_username,
            "taker": taker.username,
            "claimed_at": occurred_at.isoformat(),
            "reason": reason,
        },
    )
    raise error


def _record_refusal(
    session: Session, *, chain: str, taker_id: int, payload: dict[str, object]
) -> None:
    taker = session.get(User, taker_id)
    append_event(
        session,
        EventDraft(
            chain, "HANDOFF_REFUSED", utcnow(), payload, taker, taker.site if taker else None
        ),
    )
