"""The whole record verified: the ledger's chains and checkpoints, and every state column kept
beside the ledger re-derived from the events it projects.

A column (a lot's status, a shipment's custodian, a closed deviation, a withdrawal, an
allocation) is written in the same transaction as its event; an edit behind the ledger's
back leaves the chains intact and the row disagreeing with them. Each disagreement is
reported by table and row, and makes the record not intact.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from custody.ledger import (
    CustodyEvent,
    LotRecord,
    SignedCheckpoint,
    VerificationReport,
    decided_rows,
    status_words,
    verify_ledger,
)
from custody.manufacturing import deviation_label
from custody.shipping import Shipment, ShipmentStatus
from custody.trials import Allocation, Kit, RandomizationSlot, Subject, Trial, Visit
from lots.batch import Deviation, Lot, Vial
from lots.models import User

# The shipment chain's events that move its status.
SHIPMENT_STATUS_AFTER: Mapping[str, ShipmentStatus] = {
    "SHIPMENT_CREATED": ShipmentStatus.OPEN,
    "SEALED": ShipmentStatus.SEALED,
    "SHIPPED": ShipmentStatus.IN_TRANSIT,
    "RECEIVED": ShipmentStatus.RECEIVED,
}
_CUSTODY_EVENTS = ("SHIPPED", "HANDED_OFF")


@dataclass(frozen=True)
class Disagreement:
    """A row whose state column says other than the events it projects."""

    table: str
    key: str
    reason: str


def verify_record(
    session: Session,
    public_keys: Mapping[str, Ed25519PublicKey],
    anchors: Sequence[SignedCheckpoint] = (),
) -> VerificationReport:
    """`verify_ledger`, then every projection re-derived from the events."""
    report = verify_ledger(session, public_keys, anchors)
    report.disagreements = [
        (found.table, found.key, found.reason) for found in verify_projections(session)
    ]
    return report


def verify_projections(session: Session) -> list[Disagreement]:
    """Every state column kept beside the ledger, compared with its events."""
    return [
        *_lots(session),
        *_shipments(session),
        *_deviations(session),
        *_subjects(session),
        *_allocations(session),
    ]


def _lots(session: Session) -> Iterator[Disagreement]:
    rows = {
        number: LotRecord(status, trial, code)
        for number, status, trial, code in session.execute(
            select(Lot.number, Lot.status, Lot.exceptional_trial, Lot.exceptional_subject)
        )
    }
    for number, (_, problems) in sorted(decided_rows(session, rows).items()):
        for problem in problems:
            yield Disagreement("lots", number, _sentence(problem))


def _shipments(session: Session) -> Iterator[Disagreement]:
    events: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    wanted = [*SHIPMENT_STATUS_AFTER, *_CUSTODY_EVENTS]
    for chain, event_type, body in session.execute(
        select(CustodyEvent.chain, CustodyEvent.event_type, CustodyEvent.body)
        .where(CustodyEvent.chain.startswith("shipment:"), CustodyEvent.event_type.in_(wanted))
        .order_by(CustodyEvent.chain, CustodyEvent.seq)
    ):
        payload = orjson.loads(body)["payload"]
        events.setdefault(chain.removeprefix("shipment:"), []).append((event_type, payload))
    custodian = aliased(User)
    rows = session.execute(
        select(Shipment.sscc, Shipment.status, Shipment.seal_number, custodian.username)
        .outerjoin(custodian, custodian.id == Shipment.custodian_id)
        .order_by(Shipment.sscc)
    )
    for sscc, status, seal_number, holder in rows:
        status_after, seal_after, holder_after = _fold_shipment(events.get(sscc, []))
        if status != status_after:
            yield Disagreement(
                "shipments",
                sscc,
                f"Shipper {sscc} reads {status_words(status)} but its ledger says "
                f"{status_words(status_after) if status_after else 'nothing'}.",
            )
        if seal_number != seal_after:
            yield Disagreement(
                "shipments",
                sscc,
                f"Shipper {sscc} reads seal {seal_number} but its ledger says {seal_after}.",
            )
        if holder != holder_after:
            yield Disagreement(
                "shipments",
                sscc,
                f"Shipper {sscc} reads held by {holder or 'nobody'} but its ledger says "
                f"{holder_after or 'nobody'}.",
            )


def _fold_shipment(
    events: list[tuple[str, dict[str, Any]]],
) -> tuple[str | None, str | None, str | None]:
    """(status, seal number, custodian's username) after a shipment chain's events."""
    status = seal = holder = None
    for event_type, payload in events:
        status = SHIPMENT_STATUS_AFTER.get(event_type, status)
        if event_type == "SEALED":
            seal = payload.get("seal_number")
        elif event_type == "SHIPPED":
            holder = payload.get("courier")
        elif event_type == "HANDED_OFF":
            holder = (payload.get("to") or {}).get("user")
    return status, seal, holder


def _deviations(session: Session) -> Iterator[Disagreement]:
    closed: dict[tuple[str, str], str | None] = {}
    raised: set[tuple[str, str]] = set()
    for chain, event_type, body, actor in session.execute(
        select(CustodyEvent.chain, CustodyEvent.event_type, CustodyEvent.body, User.username)
        .outerjoin(User, User.id == CustodyEvent.actor_user_id)
        .where(CustodyEvent.event_type.in_(["DEVIATION_RAISED", "DEVIATION_CLOSED"]))
    ):
        key = (chain, orjson.loads(body)["payload"].get("deviation"))
        if event_type == "DEVIATION_RAISED":
            raised.add(key)
        else:
            closed[key] = actor
    closer = aliased(User)
    rows = session.execute(
        select(Lot, Deviation, closer.username)
        .join(Deviation, Deviation.lot_id == Lot.id)
        .outerjoin(closer, closer.id == Deviation.closed_by_id)
        .order_by(Lot.number, Deviation.number)
    )
    for lot, deviation, closed_by in rows:
        label = deviation_label(lot, deviation)
        key = (lot.chain, label)
        if key not in raised:
            yield Disagreement("deviations", label, f"Deviation {label} has no raising event.")
        if deviation.is_open and key in closed:
            yield Disagreement(
                "deviations", label, f"Deviation {label} reads open but its ledger closed it."
            )
        elif not deviation.is_open and (key not in closed or closed[key] != closed_by):
            yield Disagreement(
                "deviations",
                label,
                f"Deviation {label} reads closed by {closed_by} but its ledger "
                + (f"says {closed[key]}." if key in closed else "never closed it."),
            )


def _subjects(session: Session) -> Iterator[Disagreement]:
    facts: dict[str, dict[str, Any]] = {}
    for chain, event_type, body in session.execute(
        select(CustodyEvent.chain, CustodyEvent.event_type, CustodyEvent.body).where(
            CustodyEvent.event_type.in_(["WITHDRAWN", "RANDOMIZED"])
        )
    ):
        facts.setdefault(chain, {})[event_type] = orjson.loads(body)["payload"]
    rows = session.execute(
        select(Trial.protocol_id, Subject, RandomizationSlot)
        .join(Subject, Subject.trial_id == Trial.id)
        .outerjoin(RandomizationSlot, RandomizationSlot.subject_id == Subject.id)
        .order_by(Trial.protocol_id, Subject.code)
    )
    for protocol_id, subject, slot in rows:
        key = f"{protocol_id}:{subject.code}"
        found = facts.get(f"subject:{key}", {})
        if subject.withdrawn != ("WITHDRAWN" in found):
            reads = "withdrawn" if subject.withdrawn else "active"
            yield Disagreement(
                "subjects", key, f"Subject {key} reads {reads} but its ledger says otherwise."
            )
        randomized = found.get("RANDOMIZED")
        if slot is None and randomized is None:
            continue
        if (
            slot is None
            or randomized is None
            or subject.arm_id != slot.arm_id
            or randomized.get("arm_commitment") != slot.arm_commitment
        ):
            # Says nothing of the arm: the report is read by blinded auditors too.
            yield Disagreement(
                "subjects",
                key,
                f"Subject {key}'s randomization disagrees with its list slot or its ledger.",
            )


def _allocations(session: Session) -> Iterator[Disagreement]:
    rows = session.execute(
        select(
            Allocation.id,
            Trial.protocol_id,
            Subject.code,
            Visit.number,
            Vial.serial,
            Kit.number,
            CustodyEvent.chain,
            CustodyEvent.event_type,
            CustodyEvent.body,
        )
        .join(Subject, Subject.id == Allocation.subject_id)
        .join(Trial, Trial.id == Subject.trial_id)
        .join(Visit, Visit.id == Allocation.visit_id)
        .outerjoin(Vial, Vial.id == Allocation.vial_id)
        .outerjoin(Kit, Kit.id == Allocation.kit_id)
        .outerjoin(CustodyEvent, CustodyEvent.hash == Allocation.event_hash)
        .order_by(Allocation.id)
    )
    for allocation_id, protocol_id, code, visit, serial, kit, chain, event_type, body in rows:
        key = f"{protocol_id}:{code} visit {visit}"
        payload = orjson.loads(body)["payload"] if body is not None else {}
        agrees = (
            chain == f"subject:{protocol_id}:{code}"
            and event_type == "ALLOCATED"
            and payload.get("visit") == visit
            and (kit is None or payload.get("kit") == kit)
            and (kit is not None or serial is None or payload.get("serial") == serial)
        )
        if not agrees:
            yield Disagreement(
                "allocations",
                key,
                f"Allocation {allocation_id} ({key}) disagrees with the event it names.",
            )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]
