"""QC results against the specification, and QA's signed decisions: release, exceptional
release, reject, recall."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from custody.ledger import EventDraft, append_event, append_events
from custody.manufacturing.batch_record import (
    CLOCK_SKEW,
    LotStateError,
    deviation_label,
    get_lot,
    lot_deviations,
    manufacturers,
)
from lots.access import Permission, require
from lots.banks import descendants, get_bank, get_donor
from lots.base import utcnow
from lots.batch import CellBank, Lot, LotStatus, QcResult, ReleaseDecision
from lots.errors import DomainError, InvalidValueError, NotFoundError
from lots.models import SpecificationLine, User
from lots.qc_rules import (
    CurrentResult,
    Line,
    ReleaseFacts,
    ResultRefusedError,
    judge,
    release_blockers,
)
from lots.signatures import sign

# qc_results.numeric_value is NUMERIC(24, 8): PostgreSQL refuses 10**16 and beyond.
NUMERIC_LIMIT = Decimal(10) ** 16


class Decision(enum.StrEnum):
    """What QA decides about a lot in quarantine."""

    RELEASE = "release"
    EXCEPTIONAL_RELEASE = "exceptional_release"
    REJECT = "reject"


class ReleaseRefusedError(DomainError):
    """A release with reasons against it; every reason is listed."""

    status = 409
    title = "Release refused"

    def __init__(self, lot: str, blockers: list[str]) -> None:
        # `field` and `reasons` make the problem body list each blocker under errors.release.
        super().__init__(
            f"Lot {lot} cannot be released: " + " ".join(blockers),
            lot=lot,
            field="release",
            reasons=blockers,
        )
        self.blockers = blockers


@dataclass(frozen=True)
class ExceptionalRequest:
    """The treating physician's request for an out-of-specification lot, for one subject."""

    subject_code: str
    physician_name: str
    request_reference: str
    risk_evaluation: str


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
    if tested_at > now + CLOCK_SKEW:
        raise InvalidValueError("tested_at", "The time of the test is in the future.")
    line = next((line for line in lot.product_version.specification if line.test == test), None)
    if line is None:
        raise InvalidValueError(
            "test",
            f"{test!r} is not in the specification of {lot.product.code} "
            f"v{lot.product_version.version}.",
        )
    previous = _superseded(session, lot, line, supersedes, reason)
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


def decide(
    session: Session,
    hasher: PasswordHasher,
    user: User,
    lot_number: str,
    *,
    decision: str,
    password: str,
    meaning: str,
    reason: str | None = None,
    exceptional: ExceptionalRequest | None = None,
    remote_addr: str = "unknown",
    today: dt.date | None = None,
) -> ReleaseDecision:
    """QA's signed decision on a lot in quarantine: the only way it leaves quarantine."""
    require(user, Permission.LOTS_RELEASE)
    if decision not in set(Decision):
        raise InvalidValueError("decision", f"{decision!r} is not a release decision.")
    lot = get_lot(session, lot_number, for_update=True)
    if decision == Decision.REJECT:
        if not reason:
            raise InvalidValueError("reason", "A rejection states its reason.")
        if lot.status not in (LotStatus.IN_PROCESS, LotStatus.QUARANTINE):
            raise LotStateError(
                f"Lot {lot.number} is {lot.status.replace('_', ' ')}; only a lot in process or "
                "in quarantine can be rejected.",
                lot=lot.number,
                status=lot.status,
            )
    else:
        if decision == Decision.EXCEPTIONAL_RELEASE and exceptional is None:
            raise InvalidValueError(
                "exceptional",
                "An exceptional release names the subject, the treating physician, the "
                "request reference and the risk evaluation.",
            )
        blockers = release_blockers(
            release_facts(session, lot),
            user.username,
            today or utcnow().date(),
            exceptional=decision == Decision.EXCEPTIONAL_RELEASE,
        )
        if blockers:
            raise ReleaseRefusedError(lot.number, blockers)
    signature = sign(
        session, hasher, user, password=password, meaning=meaning, remote_addr=remote_addr
    )
    status, event_type = {
        Decision.RELEASE: (LotStatus.RELEASED, "RELEASED"),
        Decision.EXCEPTIONAL_RELEASE: (LotStatus.EXCEPTIONALLY_RELEASED, "EXCEPTIONALLY_RELEASED"),
        Decision.REJECT: (LotStatus.REJECTED, "REJECTED"),
    }[Decision(decision)]
    payload = {"lot": lot.number, "reason": reason, "signature": signature}
    if exceptional is not None and decision == Decision.EXCEPTIONAL_RELEASE:
        payload["exceptional"] = exceptional.__dict__
        lot.exceptional_subject = exceptional.subject_code
    lot.status = status
    event = append_event(
        session, EventDraft(lot.chain, event_type, utcnow(), payload, user, user.site)
    )
    return _decision_row(
        session,
        lot,
        decision=status,
        signature=signature,
        reason=reason,
        event_hash=event.hash,
        exceptional=exceptional,
    )


def recall(
    session: Session,
    hasher: PasswordHasher,
    user: User,
    *,
    scope: str,
    code: str,
    reason: str,
    password: str,
    meaning: str = "Recall ordered",
    remote_addr: str = "unknown",
) -> list[ReleaseDecision]:
    """Recall a lot, a cell bank (every lot made from it or its descendants) or a donor.

    Every affected lot gets one RECALLED event; its vials are quarantined wherever they are,
    because a vial's state follows its lot's recall.
    """
    require(user, Permission.LOTS_RECALL)
    lots = _lots_in_scope(session, scope, code)
    live = [lot for lot in lots if lot.status not in (LotStatus.RECALLED, LotStatus.REJECTED)]
    if not live:
        raise LotStateError(
            f"Nothing to recall: no lot of {scope} {code} is in use.", scope=scope, code=code
        )
    signature = sign(
        session, hasher, user, password=password, meaning=meaning, remote_addr=remote_addr
    )
    now = utcnow()
    scope_text = f"{scope}:{code}"
    events = append_events(
        session,
        [
            EventDraft(
                lot.chain,
                "RECALLED",
                now,
                {
                    "lot": lot.number,
                    "scope": scope_text,
                    "previous_status": lot.status,
                    "reason": reason,
                    "signature": signature,
                },
                user,
                user.site,
            )
            for lot in live
        ],
        recorded_at=now,
    )
    decisions = []
    for lot, event in zip(live, events, strict=True):
        lot.status = LotStatus.RECALLED
        decisions.append(
            _decision_row(
                session,
                lot,
                decision=LotStatus.RECALLED,
                signature=signature,
                reason=reason,
                event_hash=event.hash,
                recall_scope=scope_text,
            )
        )
    return decisions


def release_facts(session: Session, lot: Lot) -> ReleaseFacts:
    """What the release rules look at for this lot."""
    results = current_results(session, lot)
    return ReleaseFacts(
        lot=lot.number,
        status=lot.status,
        expires_on=lot.expires_on,
        specification=[as_line(line) for line in lot.product_version.specification],
        results={
            test: CurrentResult(
                test=test,
                value=result.value,
                unit=result.unit,
                conformance=result.conformance,
                analyst=result.analyst.username,
            )
            for test, result in results.items()
        },
        open_deviations=[
            f"{deviation_label(lot, deviation)} ({deviation.severity})"
            for deviation in lot_deviations(session, lot)
            if deviation.is_open
        ],
        manufactured_by=manufacturers(session, lot),
    )


def lot_decisions(session: Session, lot: Lot) -> Sequence[ReleaseDecision]:
    """The lot's signed decisions, oldest first."""
    return session.scalars(
        select(ReleaseDecision).where(ReleaseDecision.lot_id == lot.id).order_by(ReleaseDecision.id)
    ).all()


def _superseded(
    session: Session, lot: Lot, line: SpecificationLine, supersedes: int | None, reason: str | None
) -> QcResult | None:
    current = current_results(session, lot).get(line.test)
    if supersedes is None:
        if current is not None:
            raise InvalidValueError(
                "supersedes",
                f"{line.test} already has a result (#{current.id}); a correction names the "
                "result it supersedes and the reason.",
            )
        return None
    if not reason:
        raise InvalidValueError("reason", "A correction states why it supersedes a result.")
    if current is None or current.id != supersedes:
        raise InvalidValueError(
            "supersedes", f"Result #{supersedes} is not the current {line.test} result of the lot."
        )
    return current


def _lots_in_scope(session: Session, scope: str, code: str) -> list[Lot]:
    if scope == "lot":
        return [get_lot(session, code, for_update=True)]
    if scope == "bank":
        banks = descendants(session, get_bank(session, code))
    elif scope == "donor":
        donor = get_donor(session, code)
        roots = session.scalars(select(CellBank).where(CellBank.donor_id == donor.id)).all()
        banks = [bank for root in roots for bank in descendants(session, root)]
    else:
        raise InvalidValueError("scope", f"{scope!r} is not a recall scope (lot, bank, donor).")
    ids = sorted({bank.id for bank in banks})
    lots = session.scalars(
        select(Lot).where(Lot.bank_id.in_(ids)).order_by(Lot.number).with_for_update()
    ).all()
    if not lots:
        raise NotFoundError(f"lot made from {scope}", code)
    return list(lots)


def _decision_row(
    session: Session,
    lot: Lot,
    *,
    decision: str,
    signature: dict[str, str],
    reason: str | None,
    event_hash: str,
    exceptional: ExceptionalRequest | None = None,
    recall_scope: str | None = None,
) -> ReleaseDecision:
    row = ReleaseDecision(
        lot_id=lot.id,
        decision=decision,
        meaning=signature["meaning"],
        reason=reason,
        signer_id=session.scalar(select(User.id).where(User.username == signature["user"])),
        signer_name=signature["name"],
        signed_at=dt.datetime.strptime(signature["signed_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=dt.UTC
        ),
        subject_code=exceptional.subject_code if exceptional else None,
        physician_name=exceptional.physician_name if exceptional else None,
        physician_request_ref=exceptional.request_reference if exceptional else None,
        risk_evaluation=exceptional.risk_evaluation if exceptional else None,
        recall_scope=recall_scope,
        event_hash=event_hash,
    )
    session.add(row)
    session.flush()
    return row
