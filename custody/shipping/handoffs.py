"""Courier handoffs: one scan of the shipper by the person taking custody moves every vial."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import partial
from typing import cast

import orjson
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger import CustodyEvent, EventDraft, append_event, append_events
from custody.shipping.models import Handoff, Shipment
from custody.shipping.rules import HandoffFacts, handoff_refusal
from custody.shipping.shipments import get_shipment, packed
from lots.access import Permission, require
from lots.errors import DomainError, NotFoundError
from lots.models import User
from lots.signatures import sign

# A scan submitted this long after it was made was captured offline: accepted, flagged late.
LATE_AFTER = dt.timedelta(minutes=5)
# The same giver and taker again within this window is the scanner firing twice.
DUPLICATE_WINDOW = dt.timedelta(minutes=10)
# Sites whose receivers sign a handoff with their password (set per site kind).
SIGNING_SITE_KINDS = frozenset({"hospital_pharmacy"})
# The giver confirms a handoff on their own device within this time of its recording; one
# not confirmed by then stays one-sided, shown as such up to the receipt.
CONFIRM_WITHIN = dt.timedelta(minutes=30)
HANDOFF_CONFIRMED = "HANDOFF_CONFIRMED"


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
    now: dt.datetime,
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
    now: dt.datetime,
) -> ScannedHandoff:
    """`record_handoff`, telling a new handoff from a repeated scan (HTTP 201 or 200)."""
    require(taker, Permission.SHIPMENTS_HANDOFF)
    shipment = get_shipment(session, sscc, for_update=True)
    last = _last_handoff(session, shipment)
    if (
        last is not None
        and last.taker_id == taker.id
        and last.giver.username == giver_username
        and abs(last.occurred_at - occurred_at) <= DUPLICATE_WINDOW
    ):
        return ScannedHandoff(last, repeated=True)
    reason = handoff_refusal(
        _facts(shipment, taker, giver_username=giver_username, occurred_at=occurred_at, now=now)
    )
    if reason is not None:
        _refuse(shipment, taker, giver_username, occurred_at, reason, now=now)
    signature = None
    if taker.site.kind in SIGNING_SITE_KINDS:
        if not password:
            _refuse(
                shipment,
                taker,
                giver_username,
                occurred_at,
                f"{taker.site.name} requires the receiver to sign: re-enter your password.",
                now=now,
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
    giver = cast(User, shipment.custodian)  # the rule made sure the giver is the holder
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
    events = append_events(session, drafts)
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


@dataclass(frozen=True)
class Confirmation:
    """The giver's own confirmation of a handoff (the second side)."""

    number: int
    confirmed_at: dt.datetime
    event_hash: str


def confirm_handoff(
    session: Session, giver: User, sscc: str, number: int, *, now: dt.datetime
) -> tuple[Handoff, Confirmation, bool]:
    """The giver confirms, on their own device, that they handed the shipper over: the
    handoff becomes two-sided. Returns it, its confirmation and whether that is new (a repeated
    confirmation returns the first). Only the handoff's giver may confirm, and only within
    `CONFIRM_WITHIN` of its recording; later it stays one-sided."""
    require(giver, Permission.SHIPMENTS_HANDOFF)
    shipment = get_shipment(session, sscc, for_update=True)
    handoff = session.scalar(
        select(Handoff).where(Handoff.shipment_id == shipment.id, Handoff.number == number)
    )
    if handoff is None:
        raise NotFoundError("handoff", f"{sscc}/{number}")
    if handoff.giver_id != giver.id:
        raise HandoffRefusedError(
            f"Only {handoff.giver.full_name}, who handed the shipper over, can confirm "
            f"handoff {number}.",
            sscc=sscc,
        )
    existing = handoff_confirmations(session, shipment).get(number)
    if existing is not None:
        return handoff, existing, False
    if not may_confirm(handoff, giver, now):
        raise HandoffRefusedError(
            f"Handoff {number} can be confirmed only within "
            f"{int(CONFIRM_WITHIN.total_seconds() // 60)} minutes; it stays one-sided.",
            sscc=sscc,
        )
    payload = {
        "sscc": sscc,
        "handoff": number,
        "handed_off": handoff.event_hash,
        "from": {"user": giver.username, "name": giver.full_name, "site": giver.site.code},
        "to": {"user": handoff.taker.username, "name": handoff.taker.full_name},
    }
    event = append_event(
        session, EventDraft(shipment.chain, HANDOFF_CONFIRMED, now, payload, giver, giver.site)
    )
    return handoff, Confirmation(number, event.occurred_at, event.hash), True


def may_confirm(handoff: Handoff, user: User, now: dt.datetime) -> bool:
    """Whether `user` may confirm `handoff` now: its giver, within `CONFIRM_WITHIN` of its
    recording (the page offers the button on the same rule)."""
    return handoff.giver_id == user.id and now - handoff.recorded_at <= CONFIRM_WITHIN


def handoff_confirmations(session: Session, shipment: Shipment) -> dict[int, Confirmation]:
    """The shipment's confirmed handoffs by number, read from its chain."""
    rows = session.execute(
        select(CustodyEvent.occurred_at, CustodyEvent.hash, CustodyEvent.body).where(
            CustodyEvent.chain == shipment.chain, CustodyEvent.event_type == HANDOFF_CONFIRMED
        )
    )
    found: dict[int, Confirmation] = {}
    for occurred_at, event_hash, body in rows:
        number = int(orjson.loads(body)["payload"]["handoff"])
        found.setdefault(number, Confirmation(number, occurred_at, event_hash))
    return found


def one_sided_handoffs(session: Session, shipment: Shipment) -> list[int]:
    """The numbers of the shipment's handoffs that no giver confirmed (taker's word only)."""
    confirmed = handoff_confirmations(session, shipment)
    return [h.number for h in shipment_handoffs(session, shipment) if h.number not in confirmed]


def shipment_handoffs(session: Session, shipment: Shipment) -> list[Handoff]:
    """The shipment's handoffs in order."""
    return list(
        session.scalars(
            select(Handoff).where(Handoff.shipment_id == shipment.id).order_by(Handoff.number)
        )
    )


def may_take_custody(shipment: Shipment, taker: User, *, now: dt.datetime) -> bool:
    """Whether the taker may take the shipper from whoever holds it now (the scan page asks
    before offering the custody form; the handoff itself asks the same rule)."""
    holder = shipment.custodian
    giver = holder.username if holder is not None else ""
    facts = _facts(shipment, taker, giver_username=giver, occurred_at=now, now=now)
    return handoff_refusal(facts) is None


def _last_handoff(session: Session, shipment: Shipment) -> Handoff | None:
    return session.scalar(
        select(Handoff)
        .where(Handoff.shipment_id == shipment.id)
        .order_by(Handoff.number.desc())
        .limit(1)
    )


def _facts(
    shipment: Shipment,
    taker: User,
    *,
    giver_username: str,
    occurred_at: dt.datetime,
    now: dt.datetime,
) -> HandoffFacts:
    holder = shipment.custodian
    return HandoffFacts(
        sscc=shipment.sscc,
        status=shipment.status,
        destination_site_id=shipment.to_site_id,
        destination_name=shipment.to_site.name,
        holder_id=holder.id if holder else None,
        holder_username=holder.username if holder else None,
        holder_name=holder.full_name if holder else None,
        holder_since=shipment.custodian_since,
        taker_id=taker.id,
        taker_role=taker.role,
        taker_site_id=taker.site_id,
        taker_site_name=taker.site.name,
        giver_username=giver_username,
        occurred_at=occurred_at,
        now=now,
    )


def _refuse(
    shipment: Shipment,
    taker: User,
    giver_username: str,
    occurred_at: dt.datetime,
    reason: str,
    *,
    now: dt.datetime,
) -> None:
    error = HandoffRefusedError(reason, sscc=shipment.sscc)
    error.after_rollback = partial(
        _record_refusal,
        chain=shipment.chain,
        taker_id=taker.id,
        now=now,
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
    session: Session, *, chain: str, taker_id: int, now: dt.datetime, payload: dict[str, object]
) -> None:
    taker = session.get(User, taker_id)
    append_event(
        session,
        EventDraft(chain, "HANDOFF_REFUSED", now, payload, taker, taker.site if taker else None),
    )
