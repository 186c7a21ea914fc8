"""Printing a lot's vial labels, and label reconciliation (FACT 8th ed.): every print and
reprint recorded per vial, a reprint only with a reason.

Lives in custody/ because each print job is a ledger event on the lot's chain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.ledger import EventDraft, append_event
from custody.manufacturing.batch_record import get_lot, lot_vials
from custody.manufacturing.models import LabelPrint, LabelPrintJob
from labels.keys import LabelKey
from labels.payload import vial_uri
from labels.render import (
    NOT_RENDERABLE,
    Format,
    Layout,
    Progress,
    VialLabel,
    media_type,
    render,
)
from labels.resolve import Printed
from lots.access import Permission, require
from lots.base import utcnow
from lots.batch import Lot, LotStatus, Vial
from lots.errors import DomainError, InvalidValueError
from lots.models import User

PRINTABLE = frozenset({LotStatus.QUARANTINE, LotStatus.RELEASED, LotStatus.EXCEPTIONALLY_RELEASED})
SINGLE_LABEL_FORMATS = frozenset({Format.PNG, Format.SVG})


class LotNotPrintableError(DomainError):
    """Labels of a lot that is rejected, recalled or still in process."""

    status = 409
    title = "Lot not printable"

    def __init__(self, lot: str, status: str) -> None:
        super().__init__(
            f"Lot {lot} is {status.replace('_', ' ')}: only released or quarantined lots "
            "print labels.",
            lot=lot,
            status=status,
        )


class ReprintReasonRequiredError(DomainError):
    """Printing a label for a vial that already has one, without saying why."""

    status = 409
    title = "Reprint needs a reason"

    def __init__(self, lot: str, serials: list[str]) -> None:
        shown = ", ".join(serials[:3]) + (
            f" and {len(serials) - 3} more" if len(serials) > 3 else ""
        )
        super().__init__(
            f"{len(serials)} vial(s) of lot {lot} already have a label ({shown}); a reprint "
            "states its reason.",
            lot=lot,
            field="reason",
            serials=serials,
        )


class LabelsNotRenderableError(DomainError):
    """The labels cannot be laid out in full: a required element does not fit, or the
    configured public URL is too long for the QR. Nothing is printed or recorded."""

    status = 409
    title = "Labels cannot be rendered"

    def __init__(self, lot: str, why: str) -> None:
        super().__init__(f"The labels of lot {lot} cannot be rendered: {why}", lot=lot)


@dataclass(frozen=True)
class PrintedLabels:
    """The document to send to the printer, and the job that recorded it."""

    content: bytes
    media_type: str
    job: LabelPrintJob


@dataclass
class Reconciliation:
    """Labels printed against vials: what an inspector checks before a lot ships."""

    vials: int = 0
    labels_printed: int = 0
    reprints: int = 0
    unlabelled: list[str] = field(default_factory=list)
    several_live: list[str] = field(default_factory=list)

    @property
    def reconciled(self) -> bool:
        """Every vial has exactly one live label."""
        return not self.unlabelled and not self.several_live


def print_labels(
    session: Session,
    user: User,
    lot_number: str,
    *,
    fmt: str,
    base: str,
    key: LabelKey,
    layout: str = Layout.ROLL,
    dpi: int = 300,
    serials: Sequence[str] | None = None,
    reason: str | None = None,
    progress: Progress | None = None,
) -> PrintedLabels:
    """Render labels for the lot's vials (or some of them) and record the print per vial."""
    require(user, Permission.LABELS_PRINT)
    fmt_ = Format(fmt)
    lot = get_lot(session, lot_number, for_update=True)
    if lot.status not in PRINTABLE:
        raise LotNotPrintableError(lot.number, lot.status)
    vials = _chosen(session, lot, serials)
    if fmt_ in SINGLE_LABEL_FORMATS and len(vials) != 1:
        raise InvalidValueError("serial", f"A {fmt_.value.upper()} holds one label: name one vial.")
    live = _live_labels(session, [vial.id for vial in vials])
    earlier = _print_counts(session, [vial.id for vial in vials])
    relabelled = [vial.serial for vial in vials if vial.id in live]
    if relabelled and not reason:
        raise ReprintReasonRequiredError(lot.number, relabelled)
    content = _rendered(
        lot,
        lambda: render(
            _vial_labels(lot, vials, base=base, key=key, generations=earlier),
            fmt_,
            layout=layout,
            dpi=dpi,
            progress=progress,
        ),
    )
    now = utcnow()
    event = append_event(
        session,
        EventDraft(
            lot.chain,
            "LABELS_PRINTED",
            now,
            {
                "lot": lot.number,
                "format": fmt_.value,
                "labels": len(vials),
                "first": vials[0].serial,
                "last": vials[-1].serial,
                "reprinted": len(relabelled),
                "reason": reason,
                "quarantined": lot.status == LotStatus.QUARANTINE,
            },
            user,
            user.site,
        ),
    )
    job = LabelPrintJob(
        lot_id=lot.id,
        format=fmt_.value,
        layout=Layout(layout).value if fmt_ == Format.PDF else None,
        dpi=dpi,
        label_count=len(vials),
        reason=reason,
        quarantined=lot.status == LotStatus.QUARANTINE,
        printed_by=user,
        printed_at=now,
        event_hash=event.hash,
    )
    session.add(job)
    session.flush()
    session.add_all(
        LabelPrint(job_id=job.id, vial_id=vial.id, replaces_id=live.get(vial.id)) for vial in vials
    )
    session.flush()
    return PrintedLabels(content, media_type(fmt_), job)


def preview_labels(
    session: Session,
    user: User,
    lot_number: str,
    *,
    fmt: str,
    base: str,
    layout: str = Layout.ROLL,
    dpi: int = 300,
    serials: Sequence[str] | None = None,
) -> tuple[bytes, str]:
    """The labels as they would print, marked PREVIEW and with an unsigned code (every scan
    refuses it): nothing is recorded, so a preview is never a label to use."""
    require(user, Permission.LABELS_PRINT)
    fmt_ = Format(fmt)
    lot = get_lot(session, lot_number)
    if lot.status not in PRINTABLE:
        raise LotNotPrintableError(lot.number, lot.status)
    vials = _chosen(session, lot, serials)
    if fmt_ in SINGLE_LABEL_FORMATS and len(vials) != 1:
        raise InvalidValueError("serial", f"A {fmt_.value.upper()} holds one label: name one vial.")
    content = _rendered(
        lot,
        lambda: render(
            _vial_labels(lot, vials, base=base, key=None, generations={}, preview=True),
            fmt_,
            layout=layout,
            dpi=dpi,
        ),
    )
    return content, media_type(fmt_)


def _rendered(lot: Lot, draw: Callable[[], bytes]) -> bytes:
    """The document, or the reason it cannot be laid out in full, as a refusal."""
    try:
        return draw()
    except NOT_RENDERABLE as error:
        raise LabelsNotRenderableError(lot.number, str(error)) from error


def _vial_labels(
    lot: Lot,
    vials: Sequence[Vial],
    *,
    base: str,
    key: LabelKey | None,
    generations: dict[int, int],
    preview: bool = False,
) -> list[VialLabel]:
    """One label per vial; a reprint signs the next generation (the label it replaces is
    then superseded)."""
    version = lot.product_version
    return [
        VialLabel(
            product_name=version.label_name or version.name,
            lot=lot.number,
            serial=vial.serial,
            expiry=lot.expires_on,
            storage_condition=version.storage_condition,
            storage_limit_c=version.storage_limit_c,
            cells_per_vial=lot.cells_per_vial,
            payload=vial_uri(
                base=base,
                gtin=lot.product.gtin,
                lot=lot.number,
                serial=vial.serial,
                expiry=lot.expires_on,
                key=key,
                generation=generations.get(vial.id, 0) + 1,
            ),
            quarantined=lot.status == LotStatus.QUARANTINE,
            preview=preview,
        )
        for vial in vials
    ]


def reconcile(session: Session, lot: Lot) -> Reconciliation:
    """Labels printed vs vials, with the vials that have no label or more than one live label."""
    vials = lot_vials(session, lot)
    prints = session.execute(
        select(LabelPrint.id, LabelPrint.vial_id, LabelPrint.replaces_id)
        .join(Vial, Vial.id == LabelPrint.vial_id)
        .where(Vial.lot_id == lot.id)
    ).all()
    replaced = {replaces for _, _, replaces in prints if replaces is not None}
    live_count: dict[int, int] = {}
    for label_id, vial_id, _ in prints:
        if label_id not in replaced:
            live_count[vial_id] = live_count.get(vial_id, 0) + 1
    return Reconciliation(
        vials=len(vials),
        labels_printed=len(prints),
        reprints=len(replaced),
        unlabelled=[vial.serial for vial in vials if vial.id not in live_count],
        several_live=[vial.serial for vial in vials if live_count.get(vial.id, 0) > 1],
    )


def lot_print_jobs(session: Session, lot: Lot) -> Sequence[LabelPrintJob]:
    """The lot's print jobs, oldest first."""
    return session.scalars(
        select(LabelPrintJob).where(LabelPrintJob.lot_id == lot.id).order_by(LabelPrintJob.id)
    ).all()


def _chosen(session: Session, lot: Lot, serials: Sequence[str] | None) -> list[Vial]:
    vials = list(lot_vials(session, lot))
    if serials is None:
        return vials
    wanted = set(serials)
    chosen = [vial for vial in vials if vial.serial in wanted]
    unknown = sorted(wanted - {vial.serial for vial in chosen})
    if unknown:
        raise InvalidValueError("serial", f"Not vials of lot {lot.number}: {', '.join(unknown)}.")
    return chosen


def label_generations(session: Session) -> Printed:
    """How many labels were printed for a vial, by serial: the generation of its live label
    (`labels.resolve` reads an older generation as a superseded label)."""

    def printed(serial: str) -> int:
        count = session.scalar(
            select(func.count(LabelPrint.id))
            .join(Vial, Vial.id == LabelPrint.vial_id)
            .where(Vial.serial == serial)
        )
        return max(1, count or 0)

    return printed


def _print_counts(session: Session, vial_ids: list[int]) -> dict[int, int]:
    """How many labels each vial has had printed so far."""
    if not vial_ids:
        return {}
    rows = session.execute(
        select(LabelPrint.vial_id, func.count(LabelPrint.id))
        .where(LabelPrint.vial_id.in_(vial_ids))
        .group_by(LabelPrint.vial_id)
    )
    return {vial_id: int(count) for vial_id, count in rows}


def _live_labels(session: Session, vial_ids: list[int]) -> dict[int, int]:
    """For each vial with a live label, that label's id (the newest one not replaced)."""
    if not vial_ids:
        return {}
    prints = session.execute(
        select(LabelPrint.id, LabelPrint.vial_id, LabelPrint.replaces_id)
        .where(LabelPrint.vial_id.in_(vial_ids))
        .order_by(LabelPrint.id)
    ).all()
    replaced = {replaces for _, _, replaces in prints if replaces is not None}
    return {vial_id: label_id for label_id, vial_id, _ in prints if label_id not in replaced}
