"""What goes on a label, as plain values: the service fills these from its records."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

# 21 CFR 312.6(a): the immediate package of an investigational new drug.
INVESTIGATIONAL_STATEMENT = (
    "Caution: New Drug — Limited by Federal (or United States) law to investigational use."
)
# Shorter forms for labels too small for the full sentence, longest first; the vial label
# prints the longest that fits on one line, the shipper label always the full sentence.
SHORT_STATEMENTS = (
    INVESTIGATIONAL_STATEMENT,
    "Caution: New Drug — limited by US law to investigational use",
    "Caution: New Drug — investigational use only",
    "Caution: investigational use only",
    "Investigational use only",
)


# Defined abbreviations of storage conditions, for the cryovial's one storage line.
STORAGE_ABBREVIATIONS = (
    ("vapour phase of liquid nitrogen", "vapour LN2"),
    ("vapor phase of liquid nitrogen", "vapour LN2"),
    ("liquid nitrogen", "LN2"),
    ("dry ice", "dry ice"),
)


def storage_line(limit_c: Decimal | None, condition: str) -> str:
    """The storage limit in °C with the condition's defined abbreviation ("≤ −150 °C vapour
    LN2"); without a limit, the condition as written."""
    if limit_c is None:
        return condition
    folded = condition.casefold()
    short = next((abbr for phrase, abbr in STORAGE_ABBREVIATIONS if phrase in folded), "")
    limit = format(limit_c.normalize(), "f").replace("-", "−")
    return f"≤ {limit} °C {short}".rstrip()


@dataclass(frozen=True)
class VialLabel:
    """One cryovial's label (38 × 13 mm)."""

    product_name: str
    lot: str
    serial: str
    expiry: dt.date
    storage_condition: str
    cells_per_vial: int | None  # None on a blinded kit: the arms' contents differ
    payload: str
    quarantined: bool = False
    statement: str = INVESTIGATIONAL_STATEMENT
    preview: bool = False  # marked PREVIEW, its code unsigned: never a label to use
    storage_limit_c: Decimal | None = None  # printed as "≤ −150 °C", the condition abbreviated


@dataclass(frozen=True)
class ShipperLabel:
    """A dry shipper's label (100 × 150 mm)."""

    shipper_id: str
    sscc: str
    payload: str
    from_site: str
    to_site: str
    storage_limit: str
    contents_count: int
    product_name: str = ""
    lot: str = ""
    quarantined: bool = False
    statement: str = INVESTIGATIONAL_STATEMENT


@dataclass(frozen=True)
class WristbandLabel:
    """A patient wristband's printable zone (80 × 25 mm): the subject's pseudonymous code,
    trial and ward, and the authenticated QR the bedside check reads. No name."""

    subject: str
    trial: str
    site: str
    payload: str
    statement: str = "Clinical trial participant · scan before every dose"


Label = VialLabel | ShipperLabel | WristbandLabel
