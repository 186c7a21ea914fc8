"""A vial's state, derived from the last event of its chain and its lot's status."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from custody.models import CustodyEvent
from lots.batch import LotStatus, Vial

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
}
FINAL_STATES = frozenset({"administered", "destroyed"})
BLOCKING_LOT_STATUSES = frozenset({LotStatus.RECALLED, LotStatus.REJECTED})


def derive_state(last_event_type: str | None, lot_status: str) -> str:
    """The state of a vial: a recall or rejection of its lot quarantines it wherever it is,
    unless it has already been administered or destroyed."""
    state = STATE_AFTER.get(last_event_type or "", "in_stock")
    if lot_status in BLOCKING_LOT_STATUSES and state not in FINAL_STATES:
        return "quarantined"
    return state


def vial_states(session: Session, vials: Sequence[Vial]) -> dict[str, str]:
    """The derived state of each vial, by serial, in one query.

    Only state-changing events count: an observation or a bedside check on a vial's chain
    leaves its state as it was.
    """
    if not vials:
        return {}
    chains = {vial.chain: vial for vial in vials}
    stateful = list(STATE_AFTER)
    newest = (
        select(CustodyEvent.chain, func.max(CustodyEvent.seq).label("seq"))
        .where(CustodyEvent.chain.in_(list(chains)), CustodyEvent.event_type.in_(stateful))
        .group_by(CustodyEvent.chain)
        .subquery()
    )
    last = session.execute(
        select(CustodyEvent.chain, CustodyEvent.event_type).join(
            newest, and_(CustodyEvent.chain == newest.c.chain, CustodyEvent.seq == newest.c.seq)
        )
    )
    types: dict[str, str] = dict(last.all())
    return {
        vial.serial: derive_state(types.get(chain), vial.lot.status)
        for chain, vial in chains.items()
    }
