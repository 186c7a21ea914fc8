"""Demo trials: XS228 (open-label) and the sepsis MSC trial (blinded, 3:1), their first
subjects, the sepsis kits shipped to the Southwest Hospital pharmacy, and first allocations.

Everything goes through the same services as a user's request; each step is skipped when
its result exists, so loading twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.demo.people import TIME_ZONE, gs1
from custody.manufacturing import create_lot, decide, get_lot, record_result, record_step
from custody.shipping import create_shipment, pack_vials, receive, seal, ship, store
from custody.trials import (
    Allocation,
    ArmSpec,
    Kit,
    Subject,
    Trial,
    VisitSpec,
    allocate_vial,
    create_kits,
    create_trial,
    dispense_kit,
    enrol_subject,
    get_trial,
    randomize,
)
from lots.accounts import get_user
from lots.base import utcnow
from lots.batch import Lot, LotStatus
from lots.local_time import local_date

XS228_TRIAL = "NCT06976229"
SEPSIS_TRIAL = "NCT06882811"
XS228_SUBJECT = "SCI-001"
SEPSIS_SUBJECT = "SEP-001"
# The released XS228 vial set aside for SCI-001's first visit (the bedside demo ships it).
XS228_ALLOCATED_VIAL = "XS228-2610-01-V0001"
ACTIVE_LOT = "UCR-2611-01"
CONTROL_LOT = "CTRL-2611-01"
PACKAGING_LOT = "PK-2611-01"
ACTIVE_KITS = 9
CONTROL_KITS = 3


SEPSIS_GTIN = gs1("0950600010050")
MSC_RESULTS = [
    ("Sterility", "No growth", None),
    ("Mycoplasma", "Not detected", None),
    ("Bacterial endotoxin", "0.8", "EU/kg"),
    ("Viability", "93.2", "%"),
    ("Viable cells per dose", "101", "10^6 cells"),
    ("CD73 positive", "99.1", "%"),
    ("CD90 positive", "98.7", "%"),
    ("CD105 positive", "97.9", "%"),
    ("CD34 positive", "0.3", "%"),
    ("CD45 positive", "0.2", "%"),
    ("CD14 positive", "0.4", "%"),
    ("CD19 positive", "0.1", "%"),
    ("HLA-DR positive", "0.5", "%"),
    ("Potency: T-cell proliferation suppression", "46", "%"),
]
CONTROL_RESULTS = [
    ("Sterility", "No growth", None),
    ("Bacterial endotoxin", "0.1", "EU/kg"),
]


def load_trials(
    session: Session, hasher: PasswordHasher, passwords: Mapping[str, str]
) -> list[str]:
    """Create whatever of the demo trials is missing."""
    created: list[str] = []
    created += _xs228(session)
    created += _sepsis(session, hasher, passwords)
    return created


def _exists(session: Session, protocol_id: str) -> bool:
    return session.scalar(select(Trial.id).where(Trial.protocol_id == protocol_id)) is not None


def _subject(session: Session, protocol_id: str, code: str) -> Subject | None:
    return session.scalar(
        select(Subject)
        .join(Trial, Trial.id == Subject.trial_id)
        .where(Trial.protocol_id == protocol_id, Subject.code == code)
    )


def _xs228(session: Session) -> list[str]:
    created = []
    admin = get_user(session, "admin")
    if not _exists(session, XS228_TRIAL):
        create_trial(
            session,
            admin,
            protocol_id=XS228_TRIAL,
            title="XS228 iPSC-derived spinal neural progenitor cells for chronic spinal cord "
            "injury after C4/5 ACDF",
            phase="Phase I",
            sponsor="XellSmart Biomedical (Suzhou)",
            blinded=False,
            arms=[
                ArmSpec(
                    code="XS228",
                    name="XS228 intrathecal injection",
                    route="intrathecal",
                    products=["XS228"],
                    cells_per_dose=10_000_000,
                    volume_ml=Decimal("1.0"),
                    doses=4,
                )
            ],
            visits=[
                VisitSpec(number, f"Day {day}", day, 2 if number > 1 else 0, 2)
                for number, day in enumerate((1, 15, 29, 43), start=1)
            ],
            sites=[("SYSU3-SPINE", "SYSU3-PH")],
            planned_subjects=12,
        )
        created.append(f"trial {XS228_TRIAL}")
    if _subject(session, XS228_TRIAL, XS228_SUBJECT) is None:
        # Day 1 is the day the demo is first loaded: the released lot is in date for every
        # visit, and the bedside demo can dose visit 1 today.
        enrol_subject(
            session,
            get_user(session, "clinician"),
            XS228_TRIAL,
            code=XS228_SUBJECT,
            site_code="SYSU3-SPINE",
            weight_kg=Decimal("68.5"),
            day_one=local_date(utcnow(), TIME_ZONE),
        )
        allocate_vial(
            session,
            get_user(session, "pharmacist"),
            XS228_TRIAL,
            XS228_SUBJECT,
            1,
            XS228_ALLOCATED_VIAL,
        )
        created.append(f"subject {XS228_SUBJECT}")
    return created


def _sepsis(session: Session, hasher: PasswordHasher, passwords: Mapping[str, str]) -> list[str]:
    created = []
    if not _exists(session, SEPSIS_TRIAL):
        create_trial(
            session,
            get_user(session, "admin"),
            protocol_id=SEPSIS_TRIAL,
            title="Regulatory umbilical-cord MSC and CD83+ MSC in sepsis: randomized, double "
            "blind, sham-controlled",
            phase="Phase I/II",
            sponsor="Army Medical University",
            blinded=True,
            arms=[
                ArmSpec(
                    code="ARM-ACT",
                    name="Active: regulatory UC-MSC or CD83+ MSC",
                    route="intravenous",
                    products=["UCMSC-REG", "CD83-MSC"],
                    ratio=3,
                    cells_per_dose=100_000_000,
                    doses=3,
                ),
                ArmSpec(
                    code="ARM-SHAM",
                    name="Sham: control solution",
                    route="intravenous",
                    products=["CTRL-SOL"],
                    ratio=1,
                    control=True,
                    doses=3,
                ),
            ],
            visits=[
                VisitSpec(number, f"Infusion {number} (day {day})", day, 0, 1)
                for number, day in enumerate((1, 3, 5), start=1)
            ],
            sites=[("AMU-SW-ICU", "AMU-SW-PH")],
            blinded_gtin=SEPSIS_GTIN,
            blinded_name="NCT06882811 blinded IMP",  # printed in full on every kit label
            block_multipliers=[1, 2],
            planned_subjects=180,
        )
        created.append(f"trial {SEPSIS_TRIAL}")
    trial = get_trial(session, SEPSIS_TRIAL)
    if session.scalar(select(Kit.id).where(Kit.trial_id == trial.id)) is None:
        _release_kit_lots(session, hasher, passwords)
        _pack_and_ship_kits(session, hasher, passwords)
        created.append(f"{ACTIVE_KITS + CONTROL_KITS} kits of {SEPSIS_TRIAL}")
    subject = _subject(session, SEPSIS_TRIAL, SEPSIS_SUBJECT)
    if subject is None:
        clinician = get_user(session, "amu-clinician")
        enrol_subject(
            session,
            clinician,
            SEPSIS_TRIAL,
            code=SEPSIS_SUBJECT,
            site_code="AMU-SW-ICU",
            weight_kg=Decimal("72.0"),
            day_one=local_date(utcnow(), TIME_ZONE),
        )
        subject = randomize(session, clinician, SEPSIS_TRIAL, SEPSIS_SUBJECT)
        created.append(f"subject {SEPSIS_SUBJECT}")
    if session.scalar(select(Allocation.id).where(Allocation.subject_id == subject.id)) is None:
        dispense_kit(session, get_user(session, "amu-pharmacist"), SEPSIS_TRIAL, SEPSIS_SUBJECT, 1)
    return created


def _release_kit_lots(
    session: Session, hasher: PasswordHasher, passwords: Mapping[str, str]
) -> None:
    maker = get_user(session, "manufacturing")
    if session.scalar(select(Lot.id).where(Lot.number == CONTROL_LOT)) is None:
        end = dt.datetime(2026, 11, 10, 9, 0, tzinfo=dt.UTC)
        create_lot(
            session,
            maker,
            number=CONTROL_LOT,
            product_code="CTRL-SOL",
            bank_code="UC-D023-MCB",
            manufacture_start=end - dt.timedelta(days=2),
            manufacture_end=end,
            vials_filled=16,
            cells_per_vial=1,
            volume_ml=Decimal("1.0"),
            # The vehicle carries no cells: the model needs a bank, the donor is immaterial.
            donor_eligibility_justification="Control solution: vehicle only, no donor cells.",
            now=end,
        )
        record_step(
            session,
            hasher,
            maker,
            CONTROL_LOT,
            step="batch_record_completed",
            occurred_at=end,
            password=passwords["manufacturing"],
            now=end,
        )
    analyst, qa = get_user(session, "qc"), get_user(session, "qa")
    for number, results in ((ACTIVE_LOT, MSC_RESULTS), (CONTROL_LOT, CONTROL_RESULTS)):
        lot = get_lot(session, number)
        if lot.status != LotStatus.QUARANTINE:
            continue
        for test, value, unit in results:
            record_result(
                session,
                analyst,
                number,
                test=test,
                value=value,
                unit=unit,
                method=None,
                tested_at=lot.manufacture_end + dt.timedelta(days=7),
            )
        decide(
            session,
            hasher,
            qa,
            number,
            decision="release",
            password=passwords["qa"],
            meaning="Released for clinical use (QA)",
        )


def _pack_and_ship_kits(
    session: Session, hasher: PasswordHasher, passwords: Mapping[str, str]
) -> None:
    active = [f"{ACTIVE_LOT}-V{n:04d}" for n in range(1, ACTIVE_KITS + 1)]
    control = [f"{CONTROL_LOT}-V{n:04d}" for n in range(1, CONTROL_KITS + 1)]
    create_kits(
        session,
        get_user(session, "kit-packer"),
        SEPSIS_TRIAL,
        packaging_lot=PACKAGING_LOT,
        serials_by_arm={"ARM-ACT": active, "ARM-SHAM": control},
    )
    maker = get_user(session, "manufacturing")
    shipment = create_shipment(
        session,
        maker,
        to_site_code="AMU-SW-PH",
        hold_time_hours=96,
        asset_id="DS-31",
        now=utcnow(),
    )
    pack_vials(session, maker, shipment.sscc, [*active, *control], now=utcnow())
    seal(session, maker, shipment.sscc, f"SEAL-{shipment.sscc[-6:]}", now=utcnow())
    ship(session, maker, shipment.sscc, "courier", now=utcnow())
    pharmacist = get_user(session, "amu-pharmacist")
    receive(
        session,
        hasher,
        pharmacist,
        shipment.sscc,
        seal_number=shipment.seal_number or "",
        giver_username="courier",
        password=passwords["amu-pharmacist"],
        now=utcnow(),
    )
    store(session, pharmacist, [*active, *control], location="LN2 dewar 2", now=utcnow())
