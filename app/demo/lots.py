"""The demo's cell banks, donors and lots, made, tested and (one) released through the services."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.demo.people import ACTOR, USERS
from custody.manufacturing import create_lot, decide, record_result, record_step
from lots.accounts import get_site, get_user
from lots.banks import create_bank, create_donor
from lots.batch import CellBank, Donor, Lot

BANKS = [
    # code, kind, parent, donor, passage, description
    ("XS-iPSC-L1", "cell_line", None, None, 10, "Clinical-grade iPSC line for XS228"),
    ("XS-MCB-01", "master", "XS-iPSC-L1", None, 15, "XS228 master cell bank"),
    ("XS-WCB-01", "working", "XS-MCB-01", None, 20, "XS228 working cell bank"),
    ("UC-D017-MCB", "donor", None, "UCD-2025-017", 2, "Umbilical cord MSC bank, donor 017"),
    ("UC-D017-WCB-01", "working", "UC-D017-MCB", None, 4, "UC-MSC working bank, donor 017"),
    ("UC-D023-MCB", "donor", None, "UCD-2025-023", 2, "Umbilical cord MSC bank, donor 023"),
]
DONORS = [
    ("UCD-2025-017", "eligible", "Screening and testing complete; eligible (21 CFR 1271.45)."),
    ("UCD-2025-023", "pending", "Infectious-disease test results outstanding."),
]
# XS228 results that meet the specification, entered by the demo QC analyst.
XS228_RESULTS = [
    ("Sterility", "No growth", None),
    ("Mycoplasma", "Not detected", None),
    ("Bacterial endotoxin", "0.05", "EU/kg"),
    ("Viability", "91.5", "%"),
    ("Viable cells per vial", "10.2", "10^6 cells"),
    ("Identity: SOX2 positive", "93.1", "%"),
    ("Identity: HOXB4 positive (spinal)", "71.4", "%"),
    ("Residual undifferentiated cells (TRA-1-60 positive)", "0.02", "%"),
    ("Karyotype", "Normal", None),
]
LOTS = [
    # number, product, bank, vials, cells per vial, end of manufacture, released
    (
        "XS228-2610-01",
        "XS228",
        "XS-WCB-01",
        24,
        10_000_000,
        dt.datetime(2026, 10, 12, 9, 0, tzinfo=dt.UTC),
        True,
    ),
    (
        "XS228-2611-01",
        "XS228",
        "XS-WCB-01",
        24,
        10_000_000,
        dt.datetime(2026, 11, 9, 9, 0, tzinfo=dt.UTC),
        False,
    ),
    (
        "UCR-2611-01",
        "UCMSC-REG",
        "UC-D017-WCB-01",
        40,
        100_000_000,
        dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC),
        False,
    ),
]


def load_banks(session: Session) -> list[str]:
    created = []
    for code, eligibility, note in DONORS:
        if session.scalar(select(Donor.id).where(Donor.code == code)) is None:
            create_donor(session, actor=ACTOR, code=code, eligibility=eligibility, note=note)
            created.append(f"donor {code}")
    for code, kind, parent, donor, passage, description in BANKS:
        if session.scalar(select(CellBank.id).where(CellBank.code == code)) is None:
            site = get_site(session, "AMU-CTC" if code.startswith("UC") else "XSM-SZ")
            create_bank(
                session,
                actor=ACTOR,
                code=code,
                kind=kind,
                site=site,
                parent_code=parent,
                donor_code=donor,
                passage=passage,
                description=description,
            )
            created.append(f"bank {code}")
    return created


def load_lots(session: Session, hasher: PasswordHasher) -> list[str]:
    """Demo lots made, tested and (one) released through the same services as everyone."""
    created = []
    people = {user.username: (get_user(session, user.username), user.password) for user in USERS}
    maker, maker_password = people["manufacturing"]
    for number, product, bank, vials, cells, end, released in LOTS:
        if session.scalar(select(Lot.id).where(Lot.number == number)) is not None:
            continue
        create_lot(
            session,
            maker,
            number=number,
            product_code=product,
            bank_code=bank,
            manufacture_start=end - dt.timedelta(days=28),
            manufacture_end=end,
            vials_filled=vials,
            cells_per_vial=cells,
            volume_ml=Decimal("1.0"),
            qc_site=get_site(session, "XSM-QC"),
            now=end,
        )
        record_step(
            session,
            hasher,
            maker,
            number,
            step="batch_record_completed",
            occurred_at=end,
            password=maker_password,
            now=end,
        )
        created.append(f"lot {number}")
        if not released:
            continue
        analyst, _ = people["qc"]
        for test, value, unit in XS228_RESULTS:
            record_result(
                session,
                analyst,
                number,
                test=test,
                value=value,
                unit=unit,
                method=None,
                tested_at=end + dt.timedelta(days=7),
            )
        qa, qa_password = people["qa"]
        decide(
            session,
            hasher,
            qa,
            number,
            decision="release",
            password=qa_password,
            meaning="Released for clinical use (QA)",
        )
    return created
