"""Reading shipments: who may see which, what is packed in each, and the refused handoffs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from custody.ledger import CustodyEvent
from custody.shipping.models import Handoff, Shipment, ShipmentVial
from lots.access import can_see, sees_all_sites
from lots.errors import NotFoundError
from lots.models import User


@dataclass(frozen=True)
class RefusedHandoff:
    """A handoff the chain did not allow, as its HANDOFF_REFUSED event recorded it."""

    recorded_at: dt.datetime
    claimed_at: str
    giver: str
    taker: str
    reason: str
    event_hash: str


def find_shipment(session: Session, sscc: str) -> Shipment | None:
    """The shipment with this SSCC, if there is one."""
    return session.scalar(select(Shipment).where(Shipment.sscc == sscc))


def get_visible_shipment(session: Session, user: User, sscc: str) -> Shipment:
    """The shipment with this SSCC, if the user may see it (see `can_see_shipment`).

    404, never 403: a shipment the user may not see does not exist for them.
    """
    shipment = find_shipment(session, sscc)
    if shipment is None or not can_see_shipment(session, user, shipment):
        raise NotFoundError("shipment with SSCC", sscc)
    return shipment


def can_see_shipment(session: Session, user: User, shipment: Shipment) -> bool:
    """Oversight, the two ends' sites, and whoever holds or has held the shipper."""
    if can_see(user, [shipment.from_site_id, shipment.to_site_id]):
        return True
    if shipment.custodian_id == user.id:
        return True
    return session.scalar(_handled_by(user).where(Handoff.shipment_id == shipment.id)) is not None


def visible_shipments(
    session: Session, user: User, *, status: str | None = None
) -> Sequence[Shipment]:
    """The shipments the user may see (see `can_see_shipment`), newest first."""
    query = (
        select(Shipment)
        .order_by(Shipment.id.desc())
        .options(
            selectinload(Shipment.from_site),
            selectinload(Shipment.to_site),
            selectinload(Shipment.custodian),
        )
    )
    if status is not None:
        query = query.where(Shipment.status == status)
    if not sees_all_sites(user):
        handled = _handled_by(user).where(Handoff.shipment_id == Shipment.id).exists()
        query = query.where(
            or_(
                Shipment.from_site_id == user.site_id,
                Shipment.to_site_id == user.site_id,
                Shipment.custodian_id == user.id,
                handled,
            )
        )
    return session.scalars(query).all()


def packed_counts(session: Session, shipments: Sequence[Shipment]) -> dict[int, int]:
    """How many vials each shipment holds now (packed, not unpacked), by shipment id."""
    ids = [shipment.id for shipment in shipments]
    if not ids:
        return {}
    rows = session.execute(
        select(ShipmentVial.shipment_id, func.count(ShipmentVial.id))
        .where(ShipmentVial.shipment_id.in_(ids), ShipmentVial.unpacked_at.is_(None))
        .group_by(ShipmentVial.shipment_id)
    )
    counts = dict.fromkeys(ids, 0)
    for shipment_id, count in rows:
        counts[shipment_id] = count
    return counts


def refused_handoffs(session: Session, shipment: Shipment) -> list[RefusedHandoff]:
    """The shipment's refused handoffs, oldest first."""
    events = session.scalars(
        select(CustodyEvent)
        .where(CustodyEvent.chain == shipment.chain, CustodyEvent.event_type == "HANDOFF_REFUSED")
        .order_by(CustodyEvent.seq)
    )
    refusals = []
    for event in events:
        payload = orjson.loads(event.body)["payload"]
        refusals.append(
            RefusedHandoff(
                recorded_at=event.recorded_at,
                claimed_at=payload["claimed_at"],
                giver=payload["giver"],
                taker=payload["taker"],
                reason=payload["reason"],
                event_hash=event.hash,
            )
        )
    return refusals


def _handled_by(user: User) -> Select[int]:
    return select(Handoff.id).where(or_(Handoff.giver_id == user.id, Handoff.taker_id == user.id))
