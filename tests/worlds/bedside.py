"""A vial taken to the bedside through the real services, at the real time: shipped from
Suzhou, handed between two couriers, received and stored at the SYSU3 pharmacy, dispensed
to the spine ward and thawed there; and the codes scanned at the bedside."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.demo import XS228_RESULTS
from app.demo.trials import (
    PACKAGING_LOT,
    SEPSIS_GTIN,
    SEPSIS_SUBJECT,
    SEPSIS_TRIAL,
    XS228_TRIAL,
)
from custody.bedside import check_at_bedside, record_administration
from custody.manufacturing import (
    ExceptionalRequest,
    create_lot,
    decide,
    record_result,
    record_step,
)
from custody.shipping import (
    Shipment,
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
from custody.trials import (
    Allocation,
    BedsideCheck,
    Kit,
    Subject,
    Trial,
    allocate_vial,
    enrol_subject,
    kit_expiry,
)
from labels.keys import parse_label_keys
from labels.payload import subject_uri, vial_uri
from lots.accounts import get_site, get_user, password_hasher
from lots.base import utcnow
from lots.batch import Lot, Vial
from lots.products import SPEC_FIELDS, VERSIONED_FIELDS, add_product_version, get_product
from tests.worlds.config import TEST_CONFIG, TEST_LABEL_KEYS
from tests.worlds.manufacturing import oos_confirmed
from tests.worlds.shipping import PASSWORDS

BASE = TEST_CONFIG["PUBLIC_URL"]
KEYS = parse_label_keys(TEST_LABEL_KEYS)
HASHER = password_hasher("cheapest")
# The demo gives SCI-001 its first dose from V0001; these tests dose SCI-901 from V0002,
# enrolled and allocated in each test's own transaction (`enrol_patient`).
VIAL = "XS228-2610-01-V0002"
SUBJECT = "SCI-901"
TRIAL = XS228_TRIAL
WARD = "SYSU3-SPINE"
__all__ = ["SEPSIS_SUBJECT", "SEPSIS_TRIAL", "SUBJECT", "TRIAL", "VIAL"]


def enrol_patient(session: Session) -> None:
    """SCI-901 at the spine ward, day 1 today, VIAL allocated to visit 1 (not yet shipped)."""
    enrol_subject(
        session, get_user(session, "clinician"), TRIAL, code=SUBJECT, site_code=WARD,
        weight_kg=Decimal("70.0"), day_one=utcnow().date(),
    )  # fmt: skip
    allocate_vial(session, get_user(session, "pharmacist"), TRIAL, SUBJECT, 1, VIAL)


def ship_to_pharmacy(session: Session, serials: list[str], to_site: str = "SYSU3-PH") -> Shipment:
    """Pack, seal and ship the vials; courier hands to courier2, the pharmacist receives."""
    maker = get_user(session, "manufacturing")
    shipment = create_shipment(
        session, maker, to_site_code=to_site, hold_time_hours=120, asset_id="DS-17", now=utcnow()
    )
    pack_vials(session, maker, shipment.sscc, serials, now=utcnow())
    seal(session, maker, shipment.sscc, f"SEAL-{shipment.sscc[-6:]}", now=utcnow())
    ship(session, maker, shipment.sscc, "courier", now=utcnow())
    now = utcnow()
    record_handoff(
        session,
        HASHER,
        get_user(session, "courier2"),
        shipment.sscc,
        giver_username="courier",
        occurred_at=now,
        now=now,
    )
    return shipment


def receive_at_pharmacy(
    session: Session, shipment: Shipment, pharmacist: str = "pharmacist"
) -> None:
    """The pharmacist takes the shipper from courier2 and receives every vial."""
    receive(
        session,
        HASHER,
        get_user(session, pharmacist),
        shipment.sscc,
        seal_number=shipment.seal_number or "",
        giver_username="courier2",
        password=PASSWORDS[pharmacist],
        now=utcnow(),
    )


def at_the_ward(session: Session, serial: str = VIAL, *, ward: str = WARD) -> None:
    """Ship, receive, store and dispense the vial to the spine ward (not thawed)."""
    shipment = ship_to_pharmacy(session, [serial])
    receive_at_pharmacy(session, shipment)
    pharmacist = get_user(session, "pharmacist")
    store(session, pharmacist, [serial], location="LN2 dewar 1, rack C", now=utcnow())
    dispense(session, pharmacist, [serial], ward_code=ward, now=utcnow())


def thawed_at_the_ward(
    session: Session, serial: str = VIAL, *, thawed_at: dt.datetime | None = None
) -> None:
    """The vial at the spine ward, thawed there by the clinician."""
    at_the_ward(session, serial)
    thaw(session, get_user(session, "clinician"), serial, occurred_at=thawed_at, now=utcnow())


def vial_code(session: Session, serial: str = VIAL) -> str:
    """The QR text of the vial's label, as celltrail prints it."""
    vial = session.scalar(select(Vial).where(Vial.serial == serial))
    assert vial is not None
    lot = vial.lot
    return vial_uri(
        base=BASE,
        gtin=lot.product.gtin,
        lot=lot.number,
        serial=serial,
        expiry=lot.expires_on,
        key=KEYS[0],
    )


def kit_code(session: Session, kit: Kit) -> str:
    """The QR text of a blinded kit's label: the trial's GTIN, packaging lot, kit number."""
    expiry = kit_expiry(session, kit.trial, kit.packaging_lot)
    assert expiry is not None
    return vial_uri(
        base=BASE,
        gtin=SEPSIS_GTIN,
        lot=PACKAGING_LOT,
        serial=kit.number,
        expiry=expiry,
        key=KEYS[0],
    )


def wristband(subject: str = SUBJECT, trial: str = TRIAL) -> str:
    """The QR text of the subject's wristband (celltrail's /subject/ link)."""
    return subject_uri(base=BASE, key=KEYS[0], subject=subject, trial=trial)


def sepsis_kit(session: Session) -> Kit:
    """The kit the demo dispensed to SEP-001's first infusion."""
    kit = session.scalar(
        select(Kit)
        .join(Allocation, Allocation.kit_id == Kit.id)
        .join(Subject, Subject.id == Allocation.subject_id)
        .join(Trial, Trial.id == Subject.trial_id)
        .where(Trial.protocol_id == SEPSIS_TRIAL, Subject.code == SEPSIS_SUBJECT)
    )
    assert kit is not None
    return kit


def check(
    session: Session,
    *,
    username: str = "clinician",
    serial: str = VIAL,
    code: str | None = None,
    band: str | None = None,
    visit: int | None = 1,
    now: dt.datetime | None = None,
) -> BedsideCheck:
    """A bedside check of the vial against SCI-901's wristband (or what is given)."""
    return check_at_bedside(
        session,
        get_user(session, username),
        vial_code=code if code is not None else vial_code(session, serial),
        wristband_code=band if band is not None else wristband(),
        visit_number=visit,
        base=BASE,
        keys=KEYS,
        now=now,
    )


def administer(
    session: Session,
    reference: str,
    *,
    username: str = "clinician",
    witness: str = "pharmacist",
    route: str = "intrathecal",
    now: dt.datetime | None = None,
    witness_password: str | None = None,
):
    """The clinician gives the dose on the check, the pharmacist confirms."""
    return record_administration(
        session,
        HASHER,
        get_user(session, username),
        check_reference=reference,
        password=PASSWORDS[username],
        witness_username=witness,
        witness_password=witness_password or PASSWORDS.get(witness, "wrong"),
        route=route,
        dose_cells=10_000_000,
        base=BASE,
        keys=KEYS,
        now=now,
    )


def released_lot(
    session: Session,
    number: str,
    vials: int = 2,
    *,
    bank_code: str = "XS-WCB-01",
    exceptional: ExceptionalRequest | None = None,
) -> str:
    """A new XS228 lot made, tested and released through the services; its number. With
    `exceptional`, its viability is out of specification and QA releases it exceptionally
    for the named subject."""
    maker, qc, qa = (get_user(session, name) for name in ("manufacturing", "qc", "qa"))
    end = utcnow() - dt.timedelta(days=10)
    create_lot(
        session, maker, number=number, product_code="XS228", bank_code=bank_code,
        manufacture_start=end - dt.timedelta(days=28), manufacture_end=end, vials_filled=vials,
        cells_per_vial=10_000_000, volume_ml=Decimal("1.0"), qc_site=get_site(session, "XSM-QC"),
        now=end,
    )  # fmt: skip
    record_step(
        session, HASHER, maker, number, step="batch_record_completed", occurred_at=end,
        password=PASSWORDS["manufacturing"], now=end,
    )  # fmt: skip
    for test, value, unit in XS228_RESULTS:
        out_of_specification = exceptional is not None and test == "Viability"
        record_result(
            session, qc, number, test=test, value="65.0" if out_of_specification else value,
            unit=unit, method=None,
            tested_at=end + dt.timedelta(days=7),
        )  # fmt: skip
    if exceptional is not None:
        oos_confirmed(session, number)  # the OOS stands: only then an exceptional release
    decide(
        session, HASHER, qa, number, password=PASSWORDS["qa"],
        decision="release" if exceptional is None else "exceptional_release",
        meaning="Released for clinical use (QA)", exceptional=exceptional,
    )  # fmt: skip
    return number


def new_patient(
    session: Session, serial: str | None = None, *, thawed: bool = True
) -> tuple[str, str]:
    """A new XS228 subject at the spine ward with day 1 today and a vial allocated to visit 1,
    taken to the ward (and thawed); (subject code, serial). For tests that commit."""
    code = f"BED-{secrets.token_hex(4).upper()}"
    enrol_subject(
        session, get_user(session, "clinician"), TRIAL, code=code, site_code=WARD,
        day_one=utcnow().date(),
    )  # fmt: skip
    if serial is None:
        serial = spare_vial(session)
    allocate_vial(session, get_user(session, "pharmacist"), TRIAL, code, 1, serial)
    if thawed:
        thawed_at_the_ward(session, serial)
    else:
        at_the_ward(session, serial)
    return code, serial


def spare_vial(session: Session) -> str:
    """An in-stock, unallocated vial of the demo's released lot, from the middle of the lot
    (other tests take the first and the last ones)."""
    vials = list(
        session.scalars(
            select(Vial)
            .join(Lot, Lot.id == Vial.lot_id)
            .outerjoin(Allocation, Allocation.vial_id == Vial.id)
            .where(Lot.number == "XS228-2610-01", Allocation.id.is_(None))
            .order_by(Vial.position)
        )
    )
    states = vial_states(session, vials)
    spare = [vial.serial for vial in vials if states[vial.serial] == "in_stock"]
    assert spare, "no spare vial of XS228-2610-01 is left in stock"
    return spare[len(spare) // 2]


def failed(bedside: BedsideCheck) -> dict[str, str]:
    """The failed checks of a stored check, name → sentence."""
    return {c["name"]: c["sentence"] for c in bedside.checks if not c["passed"]}


def temperature_record_policy(session: Session, *, required: bool, code: str = "XS228") -> None:
    """A new version of the product, as its current one but with this logger policy: lots
    made from now on require (or not) a temperature record of every transit."""
    current = get_product(session, code).current
    add_product_version(
        session,
        actor="qa",
        code=code,
        version={
            **{field: getattr(current, field) for field in VERSIONED_FIELDS},
            "temperature_record_required": required,
        },
        specification=[
            {field: getattr(line, field) for field in SPEC_FIELDS} for line in current.specification
        ],
        change_reason="Logger coverage policy for every transit (QA).",
    )
