"""Blinded kit labels: the trial's blinded GTIN, the packaging lot and the kit number, the
earliest expiry of either arm's lots; nothing on them tells the arm. Each print is recorded
on the trial's chain."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session

from custody.ledger import EventDraft, append_event
from custody.trials.errors import TrialStateError
from custody.trials.kits import kit_expiry, trial_kits
from custody.trials.models import Kit, Trial
from custody.trials.protocols import get_trial
from custody.trials.subjects import get_subject
from labels.keys import LabelKey
from labels.payload import subject_uri, vial_uri
from labels.render import (
    NOT_RENDERABLE,
    Format,
    VialLabel,
    WristbandLabel,
    media_type,
    render,
)
from lots.access import Permission, require
from lots.base import utcnow
from lots.models import User

KIT_STATEMENT = "For clinical trial use only"


def kit_label(
    trial: Trial, kit: Kit, expiry_by_lot: Mapping[str, dt.date], *, base: str, key: LabelKey
) -> VialLabel:
    """One kit's label: only what both arms share."""
    expiry = expiry_by_lot[kit.packaging_lot]
    version = kit.vial.lot.product_version  # storage is the same for every arm (blindable)
    payload = vial_uri(
        base=base,
        gtin=trial.blinded_gtin or "",
        lot=kit.packaging_lot,
        serial=kit.number,
        expiry=expiry,
        key=key,
    )
    return VialLabel(
        product_name=trial.blinded_name or trial.protocol_id,
        lot=kit.packaging_lot,
        serial=kit.number,
        expiry=expiry,
        storage_condition=version.storage_condition,
        storage_limit_c=version.storage_limit_c,
        cells_per_vial=None,
        payload=payload,
        statement=KIT_STATEMENT,
    )


def print_kit_labels(
    session: Session,
    user: User,
    protocol_id: str,
    *,
    fmt: Format | str,
    base: str,
    key: LabelKey,
    numbers: Sequence[str] = (),
) -> tuple[bytes, str]:
    """Render the trial's kit labels (all, or the kits named) and record the print."""
    require(user, Permission.LABELS_PRINT)
    trial = get_trial(session, protocol_id)
    kits = [kit for kit in trial_kits(session, trial) if not numbers or kit.number in numbers]
    if not trial.blinded or not kits:
        raise TrialStateError(f"Trial {protocol_id} has no kits to label.")
    if Format(fmt) in (Format.PNG, Format.SVG):
        kits = kits[:1]
    expiries = {
        lot: kit_expiry(session, trial, lot) or dt.date.min
        for lot in {kit.packaging_lot for kit in kits}
    }
    try:
        content = render([kit_label(trial, kit, expiries, base=base, key=key) for kit in kits], fmt)
    except NOT_RENDERABLE as error:
        # Nothing is cut from a label: a blinded name too long for it is a refusal.
        raise TrialStateError(
            f"The kit labels of trial {protocol_id} cannot be rendered: {error}"
        ) from error
    append_event(
        session,
        EventDraft(
            trial.chain,
            "KIT_LABELS_PRINTED",
            utcnow(),
            {"trial": protocol_id, "format": str(fmt), "kits": [kit.number for kit in kits]},
            user,
            user.site,
        ),
    )
    return content, media_type(fmt)


def print_wristband(
    session: Session,
    user: User,
    protocol_id: str,
    code: str,
    *,
    fmt: Format | str,
    base: str,
    key: LabelKey,
    now: dt.datetime,
) -> tuple[bytes, str]:
    """Render a subject's wristband with its authenticated code, and record the print on the
    subject's chain: the bedside takes an authenticated wristband only (unless the site has
    allowed plain ones), as it takes an authenticated vial label only."""
    require(user, Permission.SUBJECTS_ENROL)
    subject = get_subject(session, user, protocol_id, code)
    label = WristbandLabel(
        subject=subject.code,
        trial=protocol_id,
        site=subject.site.name,
        payload=subject_uri(base=base, key=key, subject=subject.code, trial=protocol_id),
    )
    content = render([label], fmt)
    append_event(
        session,
        EventDraft(
            subject.chain,
            "WRISTBAND_PRINTED",
            now,
            {"trial": protocol_id, "subject": subject.code, "format": str(fmt), "key": key.key_id},
            user,
            user.site,
        ),
    )
    return content, media_type(fmt)
