"""A vial's state, derived from the last event of its chain, its lot's status and the
excursions of the shipments it travelled in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from custody.ledger import DISPUTED, CustodyEvent, LotRecord, decided_lots, decision_status
from custody.shipping.cold_chain_models import ShipmentExcursion
from custody.shipping.models import ShipmentVial
from lots.batch import LotStatus, Vial
from lots.models import Site

# The vial state each event type leaves behind (DESIGN.md §2).
STATE_AFTER = {
    "COMMISSIONED": "in_stock",
    "UNPACKED": "in_stock",
    "PACKED": "packed",
    "SHIPPED": "in_transit",
    "HANDED_OFF": "in_transit",
    "RECEIVED": "received",
    "STORED": "stored",
    "DISPENSED": "dispensed",
    "THAWED": "thawed",
    "ADMINISTERED": "administered",
    "DESTROYED": "destroyed",
    "RETURNED": "returned",
    "QUARANTINED": "quarantined",
    "REPORTED_MISSING": "quarantined",  # not received with its shipment: never to be used
}
FINAL_STATES = frozenset({"administered", "destroyed"})
BLOCKING_LOT_STATUSES = frozenset({LotStatus.RECALLED, LotStatus.REJECTED, DISPUTED})


def derive_state(last_event_type: str | None, lot_status: str, *, excursion: bool = False) -> str:
    """The state of a vial: a recall or rejection of its lot quarantines it wherever it is,
    and so does a lot row that disagrees with the lot's chain (`DISPUTED`) and a
    temperature excursion of a shipper it travelled in that QA has not yet disposed of
    (`excursion`), unless it has already been administered or destroyed."""
    state = STATE_AFTER.get(last_event_type or "", "in_stock")
    held = lot_status in BLOCKING_LOT_STATUSES or excursion
    if held and state not in FINAL_STATES:
        return "quarantined"
    return state


def vial_states(session: Session, vials: Sequence[Vial]) -> dict[str, str]:
    """The derived state of each vial, by serial, in one query."""
    return {serial: state for serial, (state, _) in vial_status(session, vials).items()}


def vial_status(
    session: Session,
    vials: Sequence[Vial],
    *,
    lot_status: Mapping[int, str] | None = None,
    decided: Mapping[int, tuple[LotRecord, list[str]]] | None = None,
) -> dict[str, tuple[str, str | None]]:
    """Each vial's derived state and the code of the site it is at, by serial.

    A vial is judged by its lot's status as the lot's chain has it, and is quarantined when
    the lot's row disagrees with the chain. `lot_status` (by vial id) judges a vial by a
    status other than its own lot's: a blinded kit's vial by its packaging lot's worst, so
    the state reads alike for both arms. `decided` is `custody.ledger.decided_lots` of the
    vials' lots, where the caller has it already.

    Only state-changing events count: an observation or a bedside check on a vial's chain
    leaves its state and place as they were. A dispensed vial is at the ward it was sent to.
    A vial packed in a shipper (and not unpacked before it left) whose shipment has an
    excursion without QA's disposition is quarantined, wherever it is now.
    """
    if not vials:
        return {}
    chains = {vial.chain: vial for vial in vials}
    newest = (
        select(CustodyEvent.chain, func.max(CustodyEvent.seq).label("seq"))
        .where(CustodyEvent.chain.in_(list(chains)), CustodyEvent.event_type.in_(STATE_AFTER))
        .group_by(CustodyEvent.chain)
        .subquery()
    )
    last = session.execute(
        select(CustodyEvent.chain, CustodyEvent.event_type, Site.code, CustodyEvent.body)
        .join(newest, and_(CustodyEvent.chain == newest.c.chain, CustodyEvent.seq == newest.c.seq))
        .outerjoin(Site, Site.id == CustodyEvent.site_id)
    )
    found: dict[str, tuple[str | None, str | None]] = {}
    for chain, event_type, site, body in last:
        ward = orjson.loads(body)["payload"].get("ward") if event_type == "DISPENSED" else None
        found[chain] = (event_type, ward or site)
    held = _held_by_excursion(session, [vial.id for vial in vials])
    lots = decided if decided is not None else decided_lots(session, [v.lot for v in vials])
    status: dict[str, tuple[str, str | None]] = {}
    for chain, vial in chains.items():
        last_type, place = found.get(chain, (None, None))
        judged_by = (lot_status or {}).get(vial.id) or decision_status(lots[vial.lot_id])
        state = derive_state(last_type, judged_by, excursion=vial.id in held)
        status[vial.serial] = (state, place)
    return status


def _held_by_excursion(session: Session, vial_ids: Sequence[int]) -> set[int]:
    """The vials that travelled in a shipper with an excursion QA has not disposed of."""
    return set(
        session.scalars(
            select(ShipmentVial.vial_id)
            .join(ShipmentExcursion, ShipmentExcursion.shipment_id == ShipmentVial.shipment_id)
            .where(
                ShipmentVial.vial_id.in_(vial_ids),
                ShipmentVial.unpacked_at.is_(None),
                ShipmentExcursion.disposition.is_(None),
            )
            .distinct()
        )
    )
