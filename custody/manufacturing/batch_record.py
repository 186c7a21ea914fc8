"""The batch record: a lot and its vials commissioned, its process steps and deviations.

These services live in custody/ because each of them writes the ledger (lots/ sits below
custody/ and cannot): the rules they apply come from lots/.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.ledger import (
    CustodyEvent,
    EventDraft,
    append_event,
    append_events,
    require_lot_agrees,
)
from lots.access import Permission, require
from lots.banks import get_bank, lineage
from lots.base import utcnow
from lots.batch import BankKind, Deviation, Eligibility, Lot, LotStatus, Vial
from lots.errors import AlreadyExistsError, DomainError, InvalidValueError, NotFoundError
from lots.models import Site, SiteKind, User
from lots.products import get_product
from lots.qc_rules import expiry_date
from lots.signatures import sign
from lots.time_rules import is_in_the_future

# GS1 AI 10/21 allow 20 characters; "-V0001" takes 6 of the serial's, so a lot number has 14.
LOT_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,13}$")
MAX_VIALS = 9999


class Step(enum.StrEnum):
    """Process steps of the manufacturing record."""

    WCB_THAW = "wcb_thaw"
    EXPANSION = "expansion"
    DIFFERENTIATION = "differentiation"
    HARVEST = "harvest"
    FORMULATION = "formulation"
    FILL = "fill"
    CONTROLLED_RATE_FREEZING = "controlled_rate_freezing"
    BATCH_RECORD_COMPLETED = "batch_record_completed"


class Severity(enum.StrEnum):
    """How grave a deviation is."""

    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


class LotStateError(DomainError):
    """An action the lot's status does not allow."""

    status = 409
    title = "Not allowed in this lot status"


class DonorNotEligibleError(DomainError):
    """A lot from a bank whose donor is not (yet) eligible, without a justification."""

    status = 409
    title = "Donor not eligible"

    def __init__(self, donor: str, eligibility: str) -> None:
        super().__init__(
            f"Donor {donor} is {eligibility}: a lot from this bank needs a written "
            "justification (donor_eligibility_justification).",
            donor=donor,
            eligibility=eligibility,
        )


class PassageLimitError(DomainError):
    """Cells beyond the product's maximum passage number."""

    status = 409
    title = "Passage limit exceeded"

    def __init__(self, passage: int, maximum: int) -> None:
        super().__init__(
            f"Passage {passage} is beyond the product's maximum of {maximum}.",
            passage=passage,
            maximum=maximum,
        )


def create_lot(
    session: Session,
    user: User,
    *,
    number: str,
    product_code: str,
    bank_code: str,
    manufacture_start: dt.datetime,
    manufacture_end: dt.datetime,
    vials_filled: int,
    cells_per_vial: int,
    volume_ml: Decimal,
    qc_site: Site | None = None,
    donor_eligibility_justification: str | None = None,
    now: dt.datetime | None = None,
) -> Lot:
    """Record a lot and commission its vials, one COMMISSIONED event per vial, in one go."""
    require(user, Permission.LOTS_MANUFACTURE)
    now = now or utcnow()
    if not LOT_NUMBER.match(number):
        raise InvalidValueError(
            "number", "A lot number has 1 to 14 letters, digits or '-', starting alphanumeric."
        )
    if not 1 <= vials_filled <= MAX_VIALS:
        raise InvalidValueError("vials_filled", f"A lot fills 1 to {MAX_VIALS} vials.")
    if manufacture_end < manufacture_start:
        raise InvalidValueError("manufacture_end", "Manufacture ends before it starts.")
    if is_in_the_future(manufacture_end, now):
        raise InvalidValueError("manufacture_end", "The end of manufacture is in the future.")
    if qc_site is not None and qc_site.kind != SiteKind.QC_LAB:
        raise InvalidValueError("qc_site", f"{qc_site.code} is not a QC laboratory.")
    if session.scalar(select(Lot.id).where(Lot.number == number)) is not None:
        raise AlreadyExistsError("lot", number)
    product = get_product(session, product_code)
    version = product.current
    bank = get_bank(session, bank_code)
    if bank.kind == BankKind.CELL_LINE:
        raise InvalidValueError("bank", "Lots are made from a master, working or donor bank.")
    if version.max_passage is not None and (bank.passage or 0) > version.max_passage:
        raise PassageLimitError(bank.passage or 0, version.max_passage)
    donor = next((b.donor for b in lineage(bank) if b.donor is not None), None)
    if (
        donor is not None
        and donor.eligibility != Eligibility.ELIGIBLE
        and not donor_eligibility_justification
    ):
        raise DonorNotEligibleError(donor.code, donor.eligibility)
    lot = Lot(
        number=number,
        product=product,
        product_version=version,
        bank=bank,
        site=user.site,
        qc_site=qc_site,
        manufacture_start=manufacture_start,
        manufacture_end=manufacture_end,
        expires_on=expiry_date(manufacture_end, version.shelf_life_days, user.site.time_zone),
        vials_filled=vials_filled,
        cells_per_vial=cells_per_vial,
        volume_ml=volume_ml,
        status=LotStatus.IN_PROCESS,
        donor_eligibility_justification=donor_eligibility_justification,
        created_by=user,
    )
    session.add(lot)
    session.flush()
    serials = [f"{number}-V{position:04d}" for position in range(1, vials_filled + 1)]
    session.add_all(
        Vial(serial=serial, lot_id=lot.id, position=position)
        for position, serial in enumerate(serials, start=1)
    )
    lot_facts = {
        "lot": number,
        "product": product.code,
        "gtin": product.gtin,
        "product_version": version.version,
        "bank": bank.code,
        "donor": donor.code if donor else None,
        "donor_eligibility": donor.eligibility if donor else None,
        "donor_eligibility_justification": donor_eligibility_justification,
        "manufacture_start": _iso(manufacture_start),
        "manufacture_end": _iso(manufacture_end),
        "expires_on": lot.expires_on.isoformat(),
        "vials_filled": vials_filled,
        "cells_per_vial": cells_per_vial,
        "volume_ml": str(volume_ml),
    }
    drafts = [EventDraft(lot.chain, "LOT_CREATED", now, lot_facts, user, user.site)]
    drafts.extend(
        EventDraft(
            f"vial:{serial}",
            "COMMISSIONED",
            now,
            {"lot": number, "serial": serial, "gtin": product.gtin, "position": position},
            user,
            user.site,
        )
        for position, serial in enumerate(serials, start=1)
    )
    append_events(session, drafts)
    return lot


def get_lot(
    session: Session, number: str, *, for_update: bool = False, disputed_ok: bool = False
) -> Lot:
    """The lot with this number (locked for the transaction when it is about to change).

    A lot about to change must agree with its chain: a status edited behind the ledger's
    back is refused (`LedgerDisagreementError`), never built on, unless `disputed_ok`
    (a recall, which is never refused).
    """
    query = select(Lot).where(Lot.number == number)
    if for_update:
        query = query.with_for_update()
    lot = session.scalar(query)
    if lot is None:
        raise NotFoundError("lot", number)
    if for_update and not disputed_ok:
        require_lot_agrees(session, lot)
    return lot


def list_lots(
    session: Session, *, status: str | None = None, product_code: str | None = None
) -> Sequence[Lot]:
    """Lots, newest first, optionally by status and product."""
    query = select(Lot).order_by(Lot.created_at.desc(), Lot.id.desc())
    if status:
        query = query.where(Lot.status == status)
    if product_code:
        query = query.where(Lot.product_id == get_product(session, product_code).id)
    return session.scalars(query).all()


def lot_vials(session: Session, lot: Lot) -> Sequence[Vial]:
    """The lot's vials in fill order."""
    return session.scalars(select(Vial).where(Vial.lot_id == lot.id).order_by(Vial.position)).all()


def record_step(
    session: Session,
    hasher: PasswordHasher,
    user: User,
    lot_number: str,
    *,
    step: str,
    occurred_at: dt.datetime,
    password: str,
    meaning: str = "Performed by",
    details: Mapping[str, Any] | None = None,
    remote_addr: str = "unknown",
    now: dt.datetime | None = None,
) -> CustodyEvent:
    """An e-signed process step of the manufacturing record.

    `batch_record_completed` closes the record and moves the lot into quarantine.
    """
    require(user, Permission.LOTS_MANUFACTURE)
    now = now or utcnow()
    details = dict(details or {})
    if step not in set(Step):
        raise InvalidValueError("step", f"{step!r} is not a process step.")
    if is_in_the_future(occurred_at, now):
        raise InvalidValueError("occurred_at", "The step's time is in the future.")
    lot = get_lot(session, lot_number, for_update=True)
    if lot.status != LotStatus.IN_PROCESS:
        raise LotStateError(
            f"Lot {lot.number} is {lot.status.replace('_', ' ')}; its manufacturing record "
            "is closed.",
            lot=lot.number,
            status=lot.status,
        )
    if step == Step.EXPANSION:
        passage = details.get("passage")
        if not isinstance(passage, int) or passage < 1:
            raise InvalidValueError("passage", "An expansion step names its passage number.")
        maximum = lot.product_version.max_passage
        if maximum is not None and passage > maximum:
            raise PassageLimitError(passage, maximum)
    if step == Step.CONTROLLED_RATE_FREEZING and not details.get("freezer_run_id"):
        raise InvalidValueError("freezer_run_id", "Controlled-rate freezing names its run id.")
    signature = sign(
        session, hasher, user, password=password, meaning=meaning, remote_addr=remote_addr, now=now
    )
    if step == Step.BATCH_RECORD_COMPLETED:
        lot.status = LotStatus.QUARANTINE
    return append_event(
        session,
        EventDraft(
            lot.chain,
            "BATCH_RECORD_COMPLETED" if step == Step.BATCH_RECORD_COMPLETED else "STEP_RECORDED",
            occurred_at,
            {"lot": lot.number, "step": step, **details, "signature": signature},
            user,
            user.site,
        ),
    )


def raise_deviation(
    session: Session,
    user: User,
    lot_number: str,
    *,
    description: str,
    severity: str,
    capa_reference: str | None = None,
) -> Deviation:
    """Raise a deviation against a lot; while it is open, the lot cannot be released."""
    require(user, Permission.DEVIATIONS_RAISE)
    if severity not in set(Severity):
        raise InvalidValueError("severity", f"{severity!r} is not a severity.")
    lot = get_lot(session, lot_number, for_update=True)
    number = (
        session.scalar(select(func.max(Deviation.number)).where(Deviation.lot_id == lot.id)) or 0
    ) + 1
    deviation = Deviation(
        lot_id=lot.id,
        number=number,
        description=description,
        severity=severity,
        capa_reference=capa_reference,
        raised_by=user,
        raised_at=utcnow(),
    )
    session.add(deviation)
    session.flush()
    append_event(
        session,
        EventDraft(
            lot.chain,
            "DEVIATION_RAISED",
            deviation.raised_at,
            {
                "lot": lot.number,
                "deviation": deviation_label(lot, deviation),
                "severity": severity,
                "description": description,
                "capa_reference": capa_reference,
            },
            user,
            user.site,
        ),
    )
    return deviation


def close_deviation(
    session: Session,
    hasher: PasswordHasher,
    user: User,
    lot_number: str,
    number: int,
    *,
    note: str,
    password: str,
    meaning: str = "Deviation closed",
    remote_addr: str = "unknown",
) -> Deviation:
    """QA closes a deviation with a signature."""
    require(user, Permission.DEVIATIONS_CLOSE)
    lot = get_lot(session, lot_number, for_update=True)
    deviation = session.scalar(
        select(Deviation).where(Deviation.lot_id == lot.id, Deviation.number == number)
    )
    if deviation is None:
        raise NotFoundError("deviation", f"{number} of lot {lot_number}")
    if not deviation.is_open:
        raise LotStateError(
            f"Deviation {deviation_label(lot, deviation)} is already closed.",
            deviation=deviation_label(lot, deviation),
        )
    signature = sign(
        session, hasher, user, password=password, meaning=meaning, remote_addr=remote_addr
    )
    deviation.closed_by, deviation.closed_at, deviation.closure_note = user, utcnow(), note
    session.flush()
    append_event(
        session,
        EventDraft(
            lot.chain,
            "DEVIATION_CLOSED",
            deviation.closed_at,
            {
                "lot": lot.number,
                "deviation": deviation_label(lot, deviation),
                "note": note,
                "signature": signature,
            },
            user,
            user.site,
        ),
    )
    return deviation


def lot_deviations(session: Session, lot: Lot) -> Sequence[Deviation]:
    """The lot's deviations in the order they were raised."""
    return session.scalars(
        select(Deviation).where(Deviation.lot_id == lot.id).order_by(Deviation.number)
    ).all()


def deviation_label(lot: Lot, deviation: Deviation) -> str:
    """How people name a deviation: DEV-<lot>-<n>."""
    return f"DEV-{lot.number}-{deviation.number:02d}"


def manufacturers(session: Session, lot: Lot) -> set[str]:
    """Usernames of everyone who created the lot or signed one of its process steps."""
    signers = session.scalars(
        select(User.username)
        .join(CustodyEvent, CustodyEvent.actor_user_id == User.id)
        .where(
            CustodyEvent.chain == lot.chain,
            CustodyEvent.event_type.in_(["LOT_CREATED", "STEP_RECORDED", "BATCH_RECORD_COMPLETED"]),
        )
    )
    return {lot.created_by.username, *signers}


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
