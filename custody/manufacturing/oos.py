"""Out-of-specification investigations (FDA, "Investigating OOS Test Results"; 21 CFR
211.192; EU GMP Part I ch. 6).

An OOS result opens an investigation on its lot at once (phase I, the laboratory: is there
an assignable cause?). While one is open the lot cannot be released. The laboratory records
the assignable cause it found, or that it found none, which opens phase II (manufacturing),
linked to a deviation of the lot. QA closes the investigation with an e-signature, never the
analyst of the result nor whoever proposed the cause:

- `invalidated`: the result is invalid (phase I: the laboratory cause; phase II: justified).
  It stays on the record; only then may a retest supersede it, and a retest is a new result.
- `confirmed`: the OOS stands; the lot can only be rejected (or released exceptionally for
  one named subject).

Every step is an event on the lot's chain, and the course of an investigation is read from
those events: the `oos_investigations` row only numbers it and names its result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import orjson
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from custody.ledger import CustodyEvent, EventDraft, append_event
from custody.manufacturing.batch_record import LotStateError, deviation_label, get_lot
from custody.manufacturing.models import OosInvestigation
from lots.access import Permission, require
from lots.batch import Deviation, Lot, LotStatus, QcResult
from lots.errors import DomainError, InvalidValueError, NotFoundError
from lots.models import User
from lots.signatures import sign

OPENED: Final = "OOS_INVESTIGATION_OPENED"
CAUSE_FOUND: Final = "OOS_LABORATORY_CAUSE_FOUND"
PHASE_TWO: Final = "OOS_PHASE_II_OPENED"
CLOSED: Final = "OOS_INVESTIGATION_CLOSED"
EVENT_TYPES: Final = (OPENED, CAUSE_FOUND, PHASE_TWO, CLOSED)
INVALIDATE_MEANING: Final = "OOS investigation closed: the result is invalid (QA)"
CONFIRM_MEANING: Final = "OOS investigation closed: the result is confirmed (QA)"


class Phase(StrEnum):
    LABORATORY = "laboratory"  # phase I
    MANUFACTURING = "manufacturing"  # phase II


class Outcome(StrEnum):
    INVALIDATED = "invalidated"
    CONFIRMED = "confirmed"


class InvestigationStateError(DomainError):
    """A step the investigation's course does not allow now."""

    status = 409
    title = "Investigation step refused"


@dataclass(frozen=True)
class Investigation:
    """An OOS investigation as its events tell it."""

    number: int
    lot: str
    result_id: int
    test: str
    value: str
    acceptance: str
    analyst: str
    opened_at: dt.datetime
    phase: Phase
    cause: str | None = None
    cause_by: str | None = None
    finding: str | None = None
    finding_by: str | None = None
    deviation: str | None = None
    outcome: Outcome | None = None
    reason: str | None = None
    closed_by: str | None = None
    closed_at: dt.datetime | None = None
    signature: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """How people name it: OOS-<lot>-<n>."""
        return f"OOS-{self.lot}-{self.number:02d}"

    @property
    def is_open(self) -> bool:
        return self.outcome is None

    @property
    def status(self) -> str:
        return "open" if self.outcome is None else f"closed: {self.outcome}"


def open_investigation(
    session: Session, user: User, lot: Lot, result: QcResult, *, acceptance: str
) -> OosInvestigation:
    """Open the investigation of an OOS result, in the transaction that records it."""
    number = 1 + (
        session.scalar(
            select(func.max(OosInvestigation.number)).where(OosInvestigation.lot_id == lot.id)
        )
        or 0
    )
    event = append_event(
        session,
        EventDraft(
            lot.chain,
            OPENED,
            result.recorded_at,
            {
                "lot": lot.number,
                "investigation": number,
                "result": result.id,
                "test": result.line.test,
                "value": result.value,
                "unit": result.unit,
                "acceptance": acceptance,
                "phase": Phase.LABORATORY.value,
            },
            user,
            user.site,
        ),
    )
    row = OosInvestigation(
        lot_id=lot.id,
        number=number,
        result_id=result.id,
        opened_at=result.recorded_at,
        event_hash=event.hash,
    )
    session.add(row)
    session.flush()
    return row


def record_laboratory_cause(
    session: Session,
    user: User,
    lot_number: str,
    number: int,
    *,
    cause: str,
    now: dt.datetime,
) -> Investigation:
    """Phase I found an assignable laboratory cause (an instrument, a calculation, a sample
    preparation error): QA may now invalidate the result."""
    require(user, Permission.OOS_INVESTIGATE)
    lot, found = _open(session, lot_number, number)
    if found.phase is not Phase.LABORATORY:
        raise InvestigationStateError(
            f"{found.label} is in phase II: a laboratory cause is found in phase I only."
        )
    if found.cause is not None:
        raise InvestigationStateError(
            f"{found.label} already names its laboratory cause ({found.cause})."
        )
    cause = _text("cause", cause, "The assignable laboratory cause is stated.")
    _append(
        session, user, found, lot=lot, event_type=CAUSE_FOUND, now=now, payload={"cause": cause}
    )
    return get_investigation(session, lot, number)


def open_phase_two(
    session: Session,
    user: User,
    lot_number: str,
    number: int,
    *,
    finding: str,
    deviation: int,
    now: dt.datetime,
) -> Investigation:
    """Phase I found no assignable laboratory cause: the investigation goes to manufacturing,
    linked to a deviation of the lot (and through it, to its CAPA)."""
    require(user, Permission.OOS_INVESTIGATE)
    lot, found = _open(session, lot_number, number)
    if found.phase is Phase.MANUFACTURING:
        raise InvestigationStateError(f"{found.label} is already in phase II.")
    if found.cause is not None:
        raise InvestigationStateError(
            f"{found.label} names a laboratory cause ({found.cause}): QA decides it in phase I."
        )
    finding = _text("finding", finding, "Say what phase I examined and found.")
    linked = session.scalar(
        select(Deviation).where(Deviation.lot_id == lot.id, Deviation.number == deviation)
    )
    if linked is None:
        raise InvalidValueError(
            "deviation", f"Lot {lot.number} has no deviation {deviation}: raise it first."
        )
    payload = {"finding": finding, "deviation": deviation_label(lot, linked)}
    _append(session, user, found, lot=lot, event_type=PHASE_TWO, now=now, payload=payload)
    return get_investigation(session, lot, number)


def close_investigation(
    session: Session,
    hasher: PasswordHasher,
    user: User,
    lot_number: str,
    number: int,
    *,
    outcome: str,
    reason: str,
    password: str,
    meaning: str | None = None,
    remote_addr: str = "unknown",
    now: dt.datetime,
) -> Investigation:
    """QA's signed outcome. Neither the result's analyst nor whoever found the cause signs."""
    require(user, Permission.OOS_DECIDE)
    if outcome not in set(Outcome):
        raise InvalidValueError("outcome", f"{outcome!r} is neither 'invalidated' nor 'confirmed'.")
    lot, found = _open(session, lot_number, number)
    reason = _text("reason", reason, "The outcome states its reason.")
    if outcome == Outcome.INVALIDATED and found.phase is Phase.LABORATORY and not found.cause:
        raise InvestigationStateError(
            f"{found.label}: a result is invalidated in phase I only for an assignable "
            "laboratory cause, and none is recorded. Record it, or open phase II."
        )
    involved = {found.analyst, found.cause_by, found.finding_by} - {None}
    if user.username in involved:
        raise InvestigationStateError(
            f"You took part in {found.label} (the result or its findings); another QA "
            "person reviews and signs its outcome."
        )
    default = INVALIDATE_MEANING if outcome == Outcome.INVALIDATED else CONFIRM_MEANING
    signature = sign(
        session,
        hasher,
        user,
        password=password,
        meaning=meaning or default,
        remote_addr=remote_addr,
        now=now,
    )
    payload = {"outcome": outcome, "reason": reason, "signature": signature}
    _append(session, user, found, lot=lot, event_type=CLOSED, now=now, payload=payload)
    return get_investigation(session, lot, number)


def lot_investigations(session: Session, lot: Lot) -> list[Investigation]:
    """The lot's investigations, oldest first, each as its events tell it."""
    rows = session.scalars(
        select(OosInvestigation)
        .where(OosInvestigation.lot_id == lot.id)
        .order_by(OosInvestigation.number)
        .options(selectinload(OosInvestigation.result).selectinload(QcResult.analyst))
    ).all()
    if not rows:
        return []
    steps: dict[int, list[tuple[str, dict[str, Any], str, dt.datetime]]] = {}
    events = session.execute(
        select(CustodyEvent.event_type, CustodyEvent.body, User.username, CustodyEvent.occurred_at)
        .join(User, User.id == CustodyEvent.actor_user_id)
        .where(CustodyEvent.chain == lot.chain, CustodyEvent.event_type.in_(EVENT_TYPES))
        .order_by(CustodyEvent.seq)
    )
    for event_type, body, actor, at in events:
        payload = orjson.loads(body)["payload"]
        steps.setdefault(int(payload["investigation"]), []).append((event_type, payload, actor, at))
    return [_told(lot, row, steps.get(row.number, [])) for row in rows]


def get_investigation(session: Session, lot: Lot, number: int) -> Investigation:
    found = next((i for i in lot_investigations(session, lot) if i.number == number), None)
    if found is None:
        raise NotFoundError("investigation", f"OOS-{lot.number}-{number:02d}")
    return found


def investigation_of(session: Session, lot: Lot, result_id: int) -> Investigation | None:
    """The investigation a result opened, if it was out of specification."""
    return next((i for i in lot_investigations(session, lot) if i.result_id == result_id), None)


def _told(
    lot: Lot, row: OosInvestigation, steps: Sequence[tuple[str, dict[str, Any], str, dt.datetime]]
) -> Investigation:
    result = row.result
    opened = next((payload for kind, payload, _, _ in steps if kind == OPENED), {})
    facts: dict[str, Any] = {
        "number": row.number,
        "lot": lot.number,
        "result_id": row.result_id,
        "test": opened.get("test", ""),
        "value": result.value,
        "acceptance": opened.get("acceptance", ""),
        "analyst": result.analyst.username,
        "opened_at": row.opened_at,
        "phase": Phase.LABORATORY,
    }
    for kind, payload, actor, at in steps:
        if kind == CAUSE_FOUND:
            facts |= {"cause": payload["cause"], "cause_by": actor}
        elif kind == PHASE_TWO:
            facts |= {
                "phase": Phase.MANUFACTURING,
                "finding": payload["finding"],
                "finding_by": actor,
                "deviation": payload["deviation"],
            }
        elif kind == CLOSED:
            facts |= {
                "outcome": Outcome(payload["outcome"]),
                "reason": payload["reason"],
                "closed_by": actor,
                "closed_at": at,
                "signature": payload["signature"],
            }
    return Investigation(**facts)


def _open(session: Session, lot_number: str, number: int) -> tuple[Lot, Investigation]:
    lot = get_lot(session, lot_number, for_update=True)
    found = get_investigation(session, lot, number)
    if not found.is_open:
        raise InvestigationStateError(f"{found.label} is closed ({found.outcome}).")
    if lot.status not in (LotStatus.IN_PROCESS, LotStatus.QUARANTINE):
        raise LotStateError(
            f"Lot {lot.number} is {lot.status.replace('_', ' ')}; its investigations are closed.",
            lot=lot.number,
            status=lot.status,
        )
    return lot, found


def _append(
    session: Session,
    user: User,
    found: Investigation,
    *,
    lot: Lot,
    event_type: str,
    now: dt.datetime,
    payload: dict[str, Any],
) -> None:
    body = {"lot": lot.number, "investigation": found.number, "result": found.result_id}
    append_event(session, EventDraft(lot.chain, event_type, now, body | payload, user, user.site))


def _text(field: str, value: str, message: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidValueError(field, message)
    return value
