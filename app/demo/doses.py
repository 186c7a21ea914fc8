"""Demo: XS228's first-patient dosing. The vial allocated to SCI-001's first visit is shipped
to the Sun Yat-sen pharmacy, received, stored, dispensed to the spine ward and thawed; the
bedside check is GO and the dose is given by the clinician, confirmed by the pharmacist.

Everything goes through the same services as a user's request; nothing happens once the
vial has left stock, so loading twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.demo.trials import (
    SEPSIS_SUBJECT,
    SEPSIS_TRIAL,
    XS228_ALLOCATED_VIAL,
    XS228_SUBJECT,
    XS228_TRIAL,
)
from custody.bedside import check_at_bedside, record_administration
from custody.shipping import (
    create_shipment,
    dispense,
    pack_vials,
    receive,
    record_handoff,
    seal,
    ship,
    store,
    thaw,
    vial_states,
)
from custody.trials import Administration, Allocation, Kit, Subject, Trial, kit_expiry
from labels.keys import LabelKey
from labels.payload import subject_uri, vial_uri
from lots.accounts import get_user
from lots.base import utcnow
from lots.batch import Vial
from lots.local_time import local_date

WARD = "SYSU3-SPINE"
PHARMACY = "SYSU3-PH"
# The demo scans its own freshly signed codes: a one-off key stands for the printed labels,
# since the demo loader is given no label keys (they live in the app's configuration).
_BASE = "https://demo.celltrail.invalid"


class DemoDoseError(RuntimeError):
    """The demo's bedside check was not GO: the seed data no longer fits together."""


def load_first_dose(
    session: Session, hasher: PasswordHasher, passwords: Mapping[str, str]
) -> list[str]:
    """Take SCI-001's allocated vial to the bedside and record its administration."""
    vial = session.scalar(select(Vial).where(Vial.serial == XS228_ALLOCATED_VIAL))
    if vial is None or session.scalar(
        select(Administration.id).where(Administration.vial_id == vial.id)
    ):
        return []
    if vial_states(session, [vial])[vial.serial] != "in_stock":
        return []  # someone has taken it on its way already: leave it to them
    _ship_and_receive(session, hasher, passwords, vial.serial)
    pharmacist, clinician = get_user(session, "pharmacist"), get_user(session, "clinician")
    store(session, pharmacist, [vial.serial], location="LN2 dewar 1, rack A", now=utcnow())
    dispense(session, pharmacist, [vial.serial], ward_code=WARD, now=utcnow())
    thaw(session, clinician, vial.serial, now=utcnow())
    lot = vial.lot
    _dose_at_bedside(
        session,
        hasher,
        passwords,
        _Bedside(clinician="clinician", witness="pharmacist", route="intrathecal"),
        subject=(XS228_TRIAL, XS228_SUBJECT),
        label=(lot.product.gtin, lot.number, vial.serial, lot.expires_on),
        dose=(lot.cells_per_vial, lot.volume_ml),
    )
    return [f"first dose of {XS228_SUBJECT} ({vial.serial})"]


def load_sepsis_dose(
    session: Session, hasher: PasswordHasher, passwords: Mapping[str, str]
) -> list[str]:
    """SEP-001's infusion from the kit the system dispensed: the blinded clinician scans the
    kit's label and the wristband, the unblinded pharmacist witnesses; neither is told the
    arm, and nothing recorded names it."""
    kit = session.scalar(
        select(Kit)
        .join(Allocation, Allocation.kit_id == Kit.id)
        .join(Subject, Subject.id == Allocation.subject_id)
        .join(Trial, Trial.id == Subject.trial_id)
        .where(Trial.protocol_id == SEPSIS_TRIAL, Subject.code == SEPSIS_SUBJECT)
    )
    if kit is None or session.scalar(
        select(Administration.id).where(Administration.vial_id == kit.vial_id)
    ):
        return []
    if vial_states(session, [kit.vial])[kit.vial.serial] != "stored":
        return []  # not where the demo left it: someone has handled it since
    pharmacist, clinician = get_user(session, "amu-pharmacist"), get_user(session, "amu-clinician")
    dispense(session, pharmacist, [kit.vial.serial], ward_code="AMU-SW-ICU", now=utcnow())
    thaw(session, clinician, kit.vial.serial, now=utcnow())
    expiry = kit_expiry(session, kit.trial, kit.packaging_lot) or local_date(
        utcnow(), clinician.site.time_zone
    )
    # The blinded clinician reads the kit's label and records no dose: it would tell the arm.
    _dose_at_bedside(
        session,
        hasher,
        passwords,
        _Bedside(clinician="amu-clinician", witness="amu-pharmacist", route="intravenous"),
        subject=(SEPSIS_TRIAL, SEPSIS_SUBJECT),
        label=(kit.trial.blinded_gtin or "", kit.packaging_lot, kit.number, expiry),
        dose=(None, None),
    )
    return [f"infusion of {SEPSIS_SUBJECT} from kit {kit.number}"]


@dataclass(frozen=True)
class _Bedside:
    """Who gives a demo dose, who confirms it, and by which route."""

    clinician: str
    witness: str
    route: str


def _dose_at_bedside(
    session: Session,
    hasher: PasswordHasher,
    passwords: Mapping[str, str],
    people: _Bedside,
    *,
    subject: tuple[str, str],
    label: tuple[str, str, str, dt.date],
    dose: tuple[int | None, Decimal | None],
) -> None:
    """Scan the label and the wristband, require GO, record the two-person administration.

    The demo scans codes it signs itself with a one-off key, since the loader holds no label
    keys (they live in the app's configuration)."""
    key = LabelKey("seed", secrets.token_bytes(32))
    gtin, lot, serial, expiry = label
    trial, code = subject
    clinician = get_user(session, people.clinician)
    check = check_at_bedside(
        session,
        clinician,
        vial_code=vial_uri(base=_BASE, gtin=gtin, lot=lot, serial=serial, expiry=expiry, key=key),
        wristband_code=subject_uri(base=_BASE, key=key, subject=code, trial=trial),
        visit_number=1,
        base=_BASE,
        keys=[key],
    )
    if check.outcome != "GO":
        reasons = "; ".join(c["sentence"] for c in check.checks if not c["passed"])
        raise DemoDoseError(f"The demo's bedside check for {code} is NO-GO: {reasons}")
    record_administration(
        session,
        hasher,
        clinician,
        check_reference=check.reference,
        password=passwords[people.clinician],
        witness_username=people.witness,
        witness_password=passwords[people.witness],
        route=people.route,
        dose_cells=dose[0],
        volume_ml=dose[1],
        base=_BASE,
        keys=[key],
    )


def _ship_and_receive(
    session: Session, hasher: PasswordHasher, passwords: Mapping[str, str], serial: str
) -> None:
    maker = get_user(session, "manufacturing")
    shipment = create_shipment(
        session, maker, to_site_code=PHARMACY, hold_time_hours=72, asset_id="DS-17", now=utcnow()
    )
    pack_vials(session, maker, shipment.sscc, [serial], now=utcnow())
    seal(session, maker, shipment.sscc, f"SEAL-{shipment.sscc[-6:]}", now=utcnow())
    ship(session, maker, shipment.sscc, "courier", now=utcnow())
    now = utcnow()
    record_handoff(
        session,
        hasher,
        get_user(session, "courier2"),
        shipment.sscc,
        giver_username="courier",
        occurred_at=now,
        now=now,
    )
    receive(
        session,
        hasher,
        get_user(session, "pharmacist"),
        shipment.sscc,
        seal_number=shipment.seal_number or "",
        giver_username="courier2",
        password=passwords["pharmacist"],
        now=utcnow(),
    )
