"""The demo's products and their versioned release specifications, from the seed trials."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.demo.people import gs1


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
        "gtin": gs1("0950600010010"),
        "version": {
            "name": "XS228 Cell Injection (iPSC-derived spinal neural progenitor cells)",
            "label_name": "XS228 Cell Injection",
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
        "gtin": gs1("0950600010020"),
        "version": {
            "name": "Regulatory umbilical-cord MSC injection",
            "label_name": "UC-MSC Injection",
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
        "gtin": gs1("0950600010030"),
        "version": {
            "name": "CD83-positive MSC injection",
            "label_name": "CD83+ MSC Injection",
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
        "gtin": gs1("0950600010040"),
        "version": {
            "name": "Control solution (sham comparator)",
            "label_name": "Control Solution",
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
