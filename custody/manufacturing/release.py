"""QA's signed decisions on a lot: release, exceptional release, reject, recall."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger import EventDraft, append_event, append_events, decided_lots
from custody.manufacturing.batch_record import (
    LotStateError,
    deviation_label,
    get_lot,
    lot_deviations,
    manufacturers,
)
from custody.manufacturing.oos import Outcome, lot_investigations
from custody.manufacturing.qc import as_line, current_results
from lots.access import Permission, require
from lots.banks import descendants, get_bank, get_donor
from lots.base import utcnow
from lots.batch import CellBank, Lot, LotStatus, ReleaseDecision
from lots.errors import DomainError, InvalidValueError, NotFoundError
from lots.local_time import local_date
from lots.models import User
from lots.qc_rules import CurrentResult, ReleaseFacts, release_blockers
from lots.signatures import sign


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
    """The treating physician's request for an out-of-specification lot, for one subject.

    The subject is named by its trial's protocol id and its code: codes repeat across trials.
    """

    protocol_id: str
    subject_code: str
    physician_name: str
    request_reference: str
    risk_evaluation: str


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
            today or local_date(utcnow(), user.site.time_zone),
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
        lot.exceptional_trial = exceptional.protocol_id
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
    decided = decided_lots(session, lots)
    ended = (LotStatus.RECALLED, LotStatus.REJECTED)
    live = [lot for lot in lots if decided[lot.id][0].status not in ended]
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
                    "previous_status": decided[lot.id][0].status,
                    "reason": reason,
                    "signature": signature,
                },
                user,
                user.site,
            )
            for lot in live
        ],
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
    investigations = lot_investigations(session, lot)
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
        open_investigations=[
            f"{investigation.label} ({investigation.test})"
            for investigation in investigations
            if investigation.is_open
        ],
        invalidated_by=[
            investigation.closed_by
            for investigation in investigations
            if investigation.outcome is Outcome.INVALIDATED and investigation.closed_by
        ],
    )


def lot_decisions(session: Session, lot: Lot) -> Sequence[ReleaseDecision]:
    """The lot's signed decisions, oldest first."""
    return session.scalars(
        select(ReleaseDecision).where(ReleaseDecision.lot_id == lot.id).order_by(ReleaseDecision.id)
    ).all()


def _lots_in_scope(session: Session, scope: str, code: str) -> list[Lot]:
    if scope == "lot":
        # A recall is never refused, not even for a lot whose row disagrees with its chain.
        return [get_lot(session, code, for_update=True, disputed_ok=True)]
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
