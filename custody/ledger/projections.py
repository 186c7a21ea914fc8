"""What the ledger itself says about the decision columns kept beside it.

A lot's `status` (and the subject of an exceptional release) is a projection of the lot's
chain, written in the same transaction as the event that changes it. A column can still be
edited behind the ledger's back (`UPDATE lots SET status = ...`): every decision that turns
on a lot's status reads the status folded from the lot's own events here, and treats a row
that disagrees with its chain as a record changed outside celltrail. `celltrail ledger
verify` reports each such row (see `custody.integrity`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger.models import CustodyEvent
from lots.batch import Lot, LotStatus
from lots.errors import DomainError

# The lot chain's events that set its status; no other event changes it.
LOT_STATUS_AFTER: Mapping[str, LotStatus] = {
    "LOT_CREATED": LotStatus.IN_PROCESS,
    "BATCH_RECORD_COMPLETED": LotStatus.QUARANTINE,
    "RELEASED": LotStatus.RELEASED,
    "EXCEPTIONALLY_RELEASED": LotStatus.EXCEPTIONALLY_RELEASED,
    "REJECTED": LotStatus.REJECTED,
    "RECALLED": LotStatus.RECALLED,
}
# The status a decision reads for a lot whose row disagrees with its chain: no lot status,
# it blocks everything a recall blocks and names the cause.
DISPUTED = "disputed"
_CHUNK = 5_000  # chains per query, far below any database's bind-parameter limit


@dataclass(frozen=True)
class LotRecord:
    """A lot's decision facts as its chain has them."""

    status: str
    exceptional_trial: str | None = None
    exceptional_subject: str | None = None


class LedgerDisagreementError(DomainError):
    """A decision column that disagrees with the ledger: nothing is decided on it."""

    status = 409
    title = "Record disagrees with the ledger"

    def __init__(self, kind: str, key: str, problems: list[str]) -> None:
        super().__init__(
            f"The record of {kind} {key} was changed outside celltrail: "
            + " ".join(problems)
            + " Nothing was done; QA must investigate before this record is used.",
            kind=kind,
            key=key,
            field="record",
            reasons=problems,
        )


def fold_lot(events: Iterable[tuple[str, Mapping[str, Any]]]) -> LotRecord | None:
    """The lot's record after its status events, in chain order (None: no such event)."""
    record: LotRecord | None = None
    for event_type, payload in events:
        status = LOT_STATUS_AFTER.get(event_type)
        if status is None:
            continue
        if status == LotStatus.EXCEPTIONALLY_RELEASED:
            exceptional = payload.get("exceptional") or {}
            record = LotRecord(
                status, exceptional.get("protocol_id"), exceptional.get("subject_code")
            )
        else:
            # A later recall keeps the exceptional release's subject on the row.
            record = LotRecord(
                status,
                record.exceptional_trial if record else None,
                record.exceptional_subject if record else None,
            )
    return record


def row_record(lot: Lot) -> LotRecord:
    """The decision facts as the lot's row has them."""
    return LotRecord(lot.status, lot.exceptional_trial, lot.exceptional_subject)


def lot_row_problems(number: str, row: LotRecord, record: LotRecord | None) -> list[str]:
    """How the lot's row differs from its chain, in words (empty: it agrees)."""
    if record is None:
        return [f"lot {number} has no status event on its chain."]
    problems = []
    if row.status != record.status:
        problems.append(
            f"lot {number} reads {status_words(row.status)} but its ledger says "
            f"{status_words(record.status)}."
        )
    ours = (row.exceptional_trial, row.exceptional_subject)
    if ours != (record.exceptional_trial, record.exceptional_subject):
        problems.append(
            f"lot {number}'s exceptional release names {_subject(*ours)} but its ledger "
            f"names {_subject(record.exceptional_trial, record.exceptional_subject)}."
        )
    return problems


def ledger_lot_records(session: Session, numbers: Collection[str]) -> dict[str, LotRecord]:
    """Each lot's record folded from its chain's status events, by lot number."""
    wanted = sorted(set(numbers))
    events: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for start in range(0, len(wanted), _CHUNK):
        chains = [f"lot:{number}" for number in wanted[start : start + _CHUNK]]
        rows = session.execute(
            select(CustodyEvent.chain, CustodyEvent.event_type, CustodyEvent.body)
            .where(
                CustodyEvent.chain.in_(chains),
                CustodyEvent.event_type.in_(list(LOT_STATUS_AFTER)),
            )
            .order_by(CustodyEvent.chain, CustodyEvent.seq)
        )
        for chain, event_type, body in rows:
            # Only an exceptional release's payload matters; the rest is not parsed.
            payload = (
                orjson.loads(body)["payload"] if event_type == "EXCEPTIONALLY_RELEASED" else {}
            )
            events.setdefault(chain.removeprefix("lot:"), []).append((event_type, payload))
    folded = {number: fold_lot(found) for number, found in events.items()}
    return {number: record for number, record in folded.items() if record is not None}


def decided_rows(
    session: Session, rows: Mapping[str, LotRecord]
) -> dict[str, tuple[LotRecord, list[str]]]:
    """For each lot row (by number): the record decisions go by, which is the ledger's, and
    how the row disagrees with it (empty when it agrees). A lot with no status event at all
    is judged in process, and disagrees."""
    records = ledger_lot_records(session, list(rows))
    return {
        number: (
            records.get(number, LotRecord(LotStatus.IN_PROCESS)),
            lot_row_problems(number, row, records.get(number)),
        )
        for number, row in rows.items()
    }


def decision_status(decided: tuple[LotRecord, list[str]]) -> str:
    """The status a decision reads: the chain's, or `DISPUTED` when the row disagrees."""
    record, problems = decided
    return DISPUTED if problems else record.status


def decided_lots(session: Session, lots: Iterable[Lot]) -> dict[int, tuple[LotRecord, list[str]]]:
    """`decided_rows` for lot objects, by lot id."""
    by_number = {lot.number: lot for lot in lots}
    decided = decided_rows(session, {n: row_record(lot) for n, lot in by_number.items()})
    return {lot.id: decided[number] for number, lot in by_number.items()}


def require_lot_agrees(session: Session, lot: Lot) -> None:
    """Refuse to decide anything on a lot whose row disagrees with its chain."""
    _, problems = decided_lots(session, [lot])[lot.id]
    if problems:
        raise LedgerDisagreementError("lot", lot.number, problems)


def status_words(status: str) -> str:
    """A decision status in words: "in process", or what a disputed lot means."""
    if status == DISPUTED:
        return "recorded differently outside the ledger (QA must investigate)"
    return status.replace("_", " ")


def _subject(trial: str | None, code: str | None) -> str:
    return "no subject" if trial is None and code is None else f"subject {code} of {trial}"
