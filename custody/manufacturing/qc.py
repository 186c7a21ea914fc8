"""QC results against the specification the lot was made under; a correction supersedes.

An out-of-specification result opens an investigation at once (custody.manufacturing.oos)
and is never corrected: only QA's signed invalidation lets a retest supersede it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from custody.ledger import EventDraft, append_event
from custody.manufacturing.batch_record import LotStateError, get_lot
from custody.manufacturing.oos import Outcome, investigation_of, open_investigation
from lots.access import Permission, require
from lots.base import utcnow
from lots.batch import Lot, LotStatus, QcResult
from lots.errors import InvalidValueError
from lots.models import SpecificationLine, User
from lots.qc_rules import Conformance, Line, ResultRefusedError, judge
from lots.time_rules import is_in_the_future

# qc_results.numeric_value is NUMERIC(24, 8): PostgreSQL refuses 10**16 and beyond.
NUMERIC_LIMIT = Decimal(10) ** 16


def as_line(line: SpecificationLine) -> Line:
    """The judging parts of a stored specification line."""
    return Line(
        test=line.test,
        unit=line.unit,
        criterion=line.criterion,
        lower=line.lower,
        lower_inclusive=line.lower_inclusive,
        upper=line.upper,
        upper_inclusive=line.upper_inclusive,
        expected=line.expected,
    )


def record_result(
    session: Session,
    user: User,
    lot_number: str,
    *,
    test: str,
    value: str,
    unit: str | None,
    method: str | None,
    tested_at: dt.datetime,
    supersedes: int | None = None,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> QcResult:
    """Record a QC result against the specification the lot was made under.

    A result is never edited: a correction names the result it supersedes, with a reason.
    """
    require(user, Permission.QC_RESULTS_WRITE)
    now = now or utcnow()
    lot = get_lot(session, lot_number, for_update=True)
    if lot.status not in (LotStatus.IN_PROCESS, LotStatus.QUARANTINE):
        raise LotStateError(
            f"Lot {lot.number} is {lot.status.replace('_', ' ')}; its QC results are closed.",
            lot=lot.number,
            status=lot.status,
        )
    if is_in_the_future(tested_at, now):
        raise InvalidValueError("tested_at", "The time of the test is in the future.")
    line = next((line for line in lot.product_version.specification if line.test == test), None)
    if line is None:
        raise InvalidValueError(
            "test",
            f"{test!r} is not in the specification of {lot.product.code} "
            f"v{lot.product_version.version}.",
        )
    previous, reason = _superseded(session, lot, line, supersedes, reason)
    try:
        judgement = judge(as_line(line), value, unit)
    except ResultRefusedError as error:
        raise InvalidValueError(error.field, str(error)) from error
    if judgement.numeric is not None and abs(judgement.numeric) >= NUMERIC_LIMIT:
        raise InvalidValueError("value", f"{line.test}: {value} is too large to record.")
    result = QcResult(
        lot_id=lot.id,
        line=line,
        value=value.strip(),
        numeric_value=judgement.numeric,
        unit=unit,
        method=method or line.method,
        conformance=judgement.conformance,
        analyst=user,
        tested_at=tested_at,
        recorded_at=now,
        supersedes_id=previous.id if previous else None,
        supersede_reason=reason if previous else None,
        event_hash="",
    )
    event = append_event(
        session,
        EventDraft(
            lot.chain,
            "QC_RESULT_RECORDED",
            tested_at,
            {
                "lot": lot.number,
                "test": line.test,
                "value": result.value,
                "unit": unit,
                "method": result.method,
                "acceptance": as_line(line).describe(),
                "conformance": judgement.conformance.value,
                "supersedes": previous.id if previous else None,
                "reason": reason if previous else None,
            },
            user,
            user.site,
        ),
    )
    result.event_hash = event.hash
    session.add(result)
    session.flush()
    if judgement.conformance == Conformance.OUT_OF_SPECIFICATION:
        open_investigation(session, user, lot, result, acceptance=as_line(line).describe())
    return result


def lot_results(session: Session, lot: Lot) -> Sequence[QcResult]:
    """Every result of the lot, superseded ones included, oldest first."""
    return session.scalars(
        select(QcResult)
        .where(QcResult.lot_id == lot.id)
        .order_by(QcResult.id)
        .options(selectinload(QcResult.line), selectinload(QcResult.analyst))
    ).all()


def current_results(session: Session, lot: Lot) -> dict[str, QcResult]:
    """The result in force per test: the one no other result supersedes."""
    results = lot_results(session, lot)
    replaced = {result.supersedes_id for result in results if result.supersedes_id}
    return {result.line.test: result for result in results if result.id not in replaced}


def _superseded(
    session: Session, lot: Lot, line: SpecificationLine, supersedes: int | None, reason: str | None
) -> tuple[QcResult | None, str | None]:
    """The current result this one replaces (with the reason), or none for a first result."""
    current = current_results(session, lot).get(line.test)
    if supersedes is None:
        if current is not None:
            raise InvalidValueError(
                "supersedes",
                f"{line.test} already has a result (#{current.id}); a correction names the "
                "result it supersedes and the reason.",
            )
        return None, None
    if current is None or current.id != supersedes:
        raise InvalidValueError(
            "supersedes", f"Result #{supersedes} is not the current {line.test} result of the lot."
        )
    investigation = investigation_of(session, lot, current.id)
    if investigation is not None:
        # An OOS result is never corrected: only QA's invalidation opens it to a retest.
        if investigation.outcome is not Outcome.INVALIDATED:
            state = "still open" if investigation.is_open else "closed: the OOS is confirmed"
            raise OosResultError(
                f"Result #{current.id} ({line.test} {current.value}) is out of specification "
                f"and {investigation.label} is {state}: it can be superseded only by a retest "
                "after QA invalidates it."
            )
        reason = reason or f"Retest after {investigation.label} invalidated result #{current.id}."
    if not reason:
        raise InvalidValueError("reason", "A correction states why it supersedes a result.")
    return current, reason


class OosResultError(LotStateError):
    """A correction of an out-of-specification result outside its investigation."""

    title = "Out-of-specification result under investigation"
