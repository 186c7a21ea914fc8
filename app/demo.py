"""Demo data from ../shared/seeds/: the XS228 and sepsis-MSC trials' sites, products and users."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from argon2 import PasswordHasher
from biip.checksums import gs1_standard_check_digit
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.demo_bedside import load_first_dose, load_sepsis_dose
from app.demo_trials import load_trials
from custody.manufacturing import create_lot, decide, record_result, record_step
from lots.accounts import create_site, create_user, get_site, get_user
from lots.banks import create_bank, create_donor
from lots.batch import CellBank, Donor, Lot
from lots.models import Product, Site, User
from lots.products import create_product

ACTOR = "demo-loader"


def _gs1(body: str) -> str:
    return body + str(gs1_standard_check_digit(body))


# GS1 prefix 950 is the GS1 Global Office's, used for examples: these never clash with a
# real company's numbers.
SITES = [
    (
        "XSM-SZ",
        "XellSmart Biopharmaceutical, Suzhou (manufacturing)",
        "manufacturer",
        "950600010001",
    ),
    ("XSM-QC", "XellSmart QC laboratory, Suzhou", "qc_lab", "950600010002"),
    (
        "AMU-CTC",
        "Army Medical University Cell Therapy Centre, Chongqing",
        "manufacturer",
        "950600010003",
    ),
    ("CRYO-GZ", "CryoLink Couriers depot, Guangzhou", "courier_depot", "950600010004"),
    (
        "SYSU3-PH",
        "Third Affiliated Hospital of Sun Yat-sen University, pharmacy",
        "hospital_pharmacy",
        "950600010005",
    ),
    (
        "SYSU3-SPINE",
        "Third Affiliated Hospital of Sun Yat-sen University, spine surgery ward",
        "ward",
        "950600010006",
    ),
    (
        "DMU1-PH",
        "First Affiliated Hospital of Dalian Medical University, pharmacy",
        "hospital_pharmacy",
        "950600010007",
    ),
    (
        "AMU-SW-PH",
        "Southwest Hospital, Army Medical University, pharmacy",
        "hospital_pharmacy",
        "950600010008",
    ),
    (
        "AMU-SW-ICU",
        "Southwest Hospital, Army Medical University, intensive care unit",
        "ward",
        "950600010009",
    ),
]


@dataclass(frozen=True)
class DemoUser:
    """A demo login, printed by `make run`."""

    username: str
    full_name: str
    role: str
    site: str
    unblinded: bool = False

    @property
    def password(self) -> str:
        """Demo passwords are public by design; production users get their own."""
        return f"{self.username}-demo-2026"


USERS = [
    DemoUser("admin", "Ada Admin", "admin", "XSM-SZ"),
    DemoUser("manufacturing", "Meng Zhao", "manufacturing", "XSM-SZ"),
    DemoUser("qc", "Qiu Chen", "qc", "XSM-QC"),
    DemoUser("qa", "Li Wei", "qa", "XSM-SZ"),
    DemoUser("courier", "Kai Lin", "courier", "CRYO-GZ"),
    DemoUser("courier2", "Bo Yang", "courier", "CRYO-GZ"),
    DemoUser("pharmacist", "Fang Hu", "pharmacist", "SYSU3-PH"),
    DemoUser("clinician", "Dong Jianwen", "clinician", "SYSU3-SPINE"),
    DemoUser("auditor", "Ada Auditor", "auditor", "XSM-SZ"),
    DemoUser("amu-pharmacist", "Xu Ping", "pharmacist", "AMU-SW-PH", unblinded=True),
    DemoUser("amu-clinician", "Xiang Jun", "clinician", "AMU-SW-ICU"),
    # Packs the sepsis trial's blinded kits: packing means seeing the arm.
    DemoUser("kit-packer", "Pan Jie", "manufacturing", "XSM-SZ", unblinded=True),
]


def _line(
    test: str, method: str, criterion: str, unit: str | None = None, **limits: Any
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "test": test,
        "method": method,
        "criterion": criterion,
        "unit": unit,
        "lower": None,
        "upper": None,
        "lower_inclusive": True,
        "upper_inclusive": True,
        "expected": None,
    }
    for key, value in limits.items():
        line[key] = Decimal(str(value)) if key in ("lower", "upper") else value
    return line


STERILITY = _line(
    "Sterility", "Ph. Eur. 2.6.27 / USP <71> (BacT/ALERT)", "pass_fail", expected="No growth"
)
MYCOPLASMA = _line("Mycoplasma", "Ph. Eur. 2.6.7 (qPCR)", "pass_fail", expected="Not detected")
ISCT_PANEL = [
    *(
        _line(f"{marker} positive", "Flow cytometry", "range", "%", lower=95)
        for marker in ("CD73", "CD90", "CD105")
    ),
    *(
        _line(f"{marker} positive", "Flow cytometry", "range", "%", upper=2)
        for marker in ("CD34", "CD45", "CD14", "CD19", "HLA-DR")
    ),
]
MSC_COMMON = [
    STERILITY,
    MYCOPLASMA,
    # Intravenous endotoxin limit: 5 EU/kg body weight per hour.
    _line(
        "Bacterial endotoxin",
        "Ph. Eur. 2.6.14 (kinetic chromogenic LAL)",
        "range",
        "EU/kg",
        upper=5,
    ),
    _line("Viability", "7-AAD flow cytometry", "range", "%", lower=80),
    _line(
        "Viable cells per dose",
        "Automated cell count (NucleoCounter)",
        "range",
        "10^6 cells",
        lower=90,
        upper=110,
    ),
    *ISCT_PANEL,
    _line(
        "Potency: T-cell proliferation suppression", "MLR co-culture, CFSE", "range", "%", lower=30
    ),
]

PRODUCTS: list[dict[str, Any]] = [
    {
        "code": "XS228",
        "gtin": _gs1("0950600010010"),
        "version": {
            "name": "XS228 Cell Injection (iPSC-derived spinal neural progenitor cells)",
            "cell_type": "Subtype-specific spinal neural progenitor cells from iPSC",
            "origin": "allogeneic",
            "route": "intrathecal",
            "dose": "Intrathecal injection per cohort (days 1, 15, 29, 43 in some cohorts)",
            "cells_per_dose": 10_000_000,
            "storage_limit_c": Decimal("-150"),
            "storage_condition": "Vapour phase of liquid nitrogen, at or below -150 °C",
            "shelf_life_days": 365,
            "post_thaw_window_minutes": 120,
            "max_passage": 50,
        },
        "specification": [
            STERILITY,
            MYCOPLASMA,
            # Intrathecal endotoxin limit: 0.2 EU/kg body weight.
            _line(
                "Bacterial endotoxin",
                "Ph. Eur. 2.6.14 (kinetic chromogenic LAL)",
                "range",
                "EU/kg",
                upper=0.2,
            ),
            _line("Viability", "AO/PI fluorescence count", "range", "%", lower=70),
            _line(
                "Viable cells per vial",
                "AO/PI fluorescence count",
                "range",
                "10^6 cells",
                lower=9,
                upper=11,
            ),
            _line("Identity: SOX2 positive", "Flow cytometry", "range", "%", lower=80),
            _line("Identity: HOXB4 positive (spinal)", "Flow cytometry", "range", "%", lower=50),
            _line(
                "Residual undifferentiated cells (TRA-1-60 positive)",
                "Flow cytometry",
                "range",
                "%",
                upper=1,
                upper_inclusive=False,
            ),
            _line("Karyotype", "G-banding, 20 metaphases", "equals", expected="Normal"),
        ],
    },
    {
        "code": "UCMSC-REG",
        "gtin": _gs1("0950600010020"),
        "version": {
            "name": "Regulatory umbilical-cord MSC injection",
            "cell_type": "Umbilical cord mesenchymal stromal cells (regulatory)",
            "origin": "allogeneic",
            "route": "intravenous",
            "dose": "1×10⁸ cells per intravenous infusion",
            "cells_per_dose": 100_000_000,
            "storage_limit_c": Decimal("-150"),
            "storage_condition": "Vapour phase of liquid nitrogen, at or below -150 °C",
            "shelf_life_days": 730,
            "post_thaw_window_minutes": 180,
            "max_passage": None,
        },
        "specification": MSC_COMMON,
    },
    {
        "code": "CD83-MSC",
        "gtin": _gs1("0950600010030"),
        "version": {
            "name": "CD83-positive MSC injection",
            "cell_type": "CD83-positive umbilical cord MSC subpopulation",
            "origin": "allogeneic",
            "route": "intravenous",
            "dose": "1×10⁸ cells per intravenous infusion",
            "cells_per_dose": 100_000_000,
            "storage_limit_c": Decimal("-150"),
            "storage_condition": "Vapour phase of liquid nitrogen, at or below -150 °C",
            "shelf_life_days": 730,
            "post_thaw_window_minutes": 180,
            "max_passage": None,
        },
        "specification": [
            *MSC_COMMON,
            _line("CD83 positive fraction", "Flow cytometry", "range", "%", lower=80),
        ],
    },
    {
        "code": "CTRL-SOL",
        "gtin": _gs1("0950600010040"),
        "version": {
            "name": "Control solution (sham comparator)",
            "cell_type": "None (vehicle only)",
            "origin": "allogeneic",
            "route": "intravenous",
            "dose": "Equal volume to the active infusion",
            "cells_per_dose": None,
            "storage_limit_c": Decimal("-150"),
            # The same storage as the active arms: nothing on a label may tell them apart.
            "storage_condition": "Vapour phase of liquid nitrogen, at or below -150 °C",
            "shelf_life_days": 730,
            "post_thaw_window_minutes": 180,
            "max_passage": None,
        },
        "specification": [
            STERILITY,
            _line(
                "Bacterial endotoxin",
                "Ph. Eur. 2.6.14 (kinetic chromogenic LAL)",
                "range",
                "EU/kg",
                upper=5,
            ),
        ],
    },
]


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


def is_empty(session: Session) -> bool:
    """Whether the database holds no users yet (a first start)."""
    return session.scalar(select(User.id).limit(1)) is None


def load(session: Session, hasher: PasswordHasher, *, first_dose: bool = False) -> list[str]:
    """Create whatever of the demo data is missing; running it twice changes nothing.

    `first_dose` also doses the seeds' subjects (app.demo_bedside): SCI-001 from
    XS228-2610-01-V0001 and SEP-001 from its kit. Those vials then leave stock, which many
    tests still take as in stock, so `celltrail demo load` asks for it and the suite does not.
    """
    created: list[str] = []
    for code, name, kind, gln in SITES:
        if session.scalar(select(Site.id).where(Site.code == code)) is None:
            create_site(session, actor=ACTOR, code=code, name=name, kind=kind, gln=_gs1(gln))
            created.append(f"site {code}")
    for product in PRODUCTS:
        if session.scalar(select(Product.id).where(Product.code == product["code"])) is None:
            create_product(session, actor=ACTOR, **product)
            created.append(f"product {product['code']}")
    for user in USERS:
        if session.scalar(select(User.id).where(User.username == user.username)) is None:
            create_user(
                session,
                hasher,
                actor=ACTOR,
                username=user.username,
                full_name=user.full_name,
                role=user.role,
                site_code=user.site,
                password=user.password,
                unblinded=user.unblinded,
            )
            created.append(f"user {user.username}")
    created += _load_banks(session)
    created += _load_lots(session, hasher)
    created += _trials(session, hasher)
    if first_dose:
        passwords = {u.username: u.password for u in USERS}
        created += load_first_dose(session, hasher, passwords)
        created += load_sepsis_dose(session, hasher, passwords)
    return created


def _load_banks(session: Session) -> list[str]:
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


def _load_lots(session: Session, hasher: PasswordHasher) -> list[str]:
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


def _trials(session: Session, hasher: PasswordHasher) -> list[str]:
    """The two reference trials, their subjects, the sepsis kits and the first allocations."""
    return load_trials(session, hasher, {user.username: user.password for user in USERS})
