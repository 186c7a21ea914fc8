"""The bedside check and the administration: the facts about a vial or kit and a wristband,
the pure rules that judge them GO or NO-GO, and the two-person record of the dose."""

from __future__ import annotations

from custody.bedside.administration import (
    AdministrationRefusedError,
    AlreadyAdministeredError,
    VisitAlreadyGivenError,
    administration_of,
    get_administration,
    record_administration,
)
from custody.bedside.check import DEFAULT_VALIDITY, check_at_bedside, get_check
from custody.bedside.rules import (
    BedsideFacts,
    Dose,
    Outcome,
    VialEvent,
    custody_breaks,
    excipients_of,
    judge,
)

__all__ = [
    "DEFAULT_VALIDITY",
    "AdministrationRefusedError",
    "AlreadyAdministeredError",
    "BedsideFacts",
    "Dose",
    "Outcome",
    "VialEvent",
    "VisitAlreadyGivenError",
    "administration_of",
    "check_at_bedside",
    "custody_breaks",
    "excipients_of",
    "get_administration",
    "get_check",
    "judge",
    "record_administration",
]
