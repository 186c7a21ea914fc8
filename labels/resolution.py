"""What a scan turned out to be: the kinds, verdicts and plain-language problems of a scan."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum


class Kind(StrEnum):
    """What the scanned text identifies."""

    VIAL = "vial"
    SHIPPER = "shipper"
    SUBJECT = "subject"
    SERIAL_ONLY = "serial_only"
    UNREADABLE = "unreadable"


class Authentication(StrEnum):
    """Whether the code carried celltrail's authentication code, and whether it held."""

    VALID = "valid"
    MISSING = "missing"
    WRONG = "wrong"
    UNKNOWN_KEY = "unknown_key"
    SUPERSEDED = "superseded"  # authentic, but a reprint replaced this label
    NOT_CHECKED = "not_checked"  # the code could not be read far enough to check it


class Source(StrEnum):
    """The form the text arrived in."""

    DIGITAL_LINK = "digital_link"
    ELEMENT_STRING = "element_string"
    HUMAN_READABLE = "human_readable"
    TYPED = "typed"


class Problem(StrEnum):
    """Why a scan is refused. The last four are found by the service, which has the records."""

    NOTHING_SCANNED = "nothing_scanned"
    UNREADABLE = "unreadable"
    NOT_A_CELLTRAIL_CODE = "not_a_celltrail_code"
    GTIN_CHECK_DIGIT = "gtin_check_digit"
    SSCC_CHECK_DIGIT = "sscc_check_digit"
    GSRN_CHECK_DIGIT = "gsrn_check_digit"
    AUTHENTICATION_WRONG = "authentication_wrong"
    AUTHENTICATION_UNKNOWN_KEY = "authentication_unknown_key"
    AUTHENTICATION_MISSING = "authentication_missing"
    LABEL_SUPERSEDED = "label_superseded"
    UNKNOWN_IDENTIFIER = "unknown_identifier"
    GTIN_NOT_THE_VIALS_PRODUCT = "gtin_not_the_vials_product"
    SERIAL_NOT_IN_LOT = "serial_not_in_lot"
    EXPIRY_NOT_THE_LOTS = "expiry_not_the_lots"


_SENTENCES = {
    Problem.NOTHING_SCANNED: "Nothing was scanned.",
    Problem.UNREADABLE: "This is not a code celltrail can read: {detail}",
    Problem.NOT_A_CELLTRAIL_CODE: "This GS1 code is not a vial, shipper or subject: {detail}",
    Problem.GTIN_CHECK_DIGIT: "The GTIN {gtin} has a wrong check digit: the code is damaged "
    "or was altered.",
    Problem.SSCC_CHECK_DIGIT: "The SSCC {sscc} has a wrong check digit: the code is damaged "
    "or was altered.",
    Problem.GSRN_CHECK_DIGIT: "The GSRN {gsrn} has a wrong check digit: the code is damaged "
    "or was altered.",
    Problem.AUTHENTICATION_WRONG: "The authentication code does not match what is printed: "
    "this label was altered or forged. Quarantine the item and tell QA.",
    Problem.AUTHENTICATION_UNKNOWN_KEY: "The label was signed with key {key_id!r}, which "
    "celltrail does not trust (retired or never issued). Quarantine the item and tell QA.",
    Problem.AUTHENTICATION_MISSING: "This link is on celltrail's address but has no "
    "authentication code, which every celltrail label carries: treat it as forged.",
    Problem.LABEL_SUPERSEDED: "Superseded label — use the reprint: this is print {generation} "
    "of the label of {identifier}, which a reprint replaced. Do not use this label; destroy it "
    "and scan the vial's current label.",
    Problem.UNKNOWN_IDENTIFIER: "celltrail has no record of {identifier}.",
    Problem.GTIN_NOT_THE_VIALS_PRODUCT: "The GTIN {gtin} is not the product of vial {serial}.",
    Problem.SERIAL_NOT_IN_LOT: "Vial {serial} does not belong to lot {lot}.",
    Problem.EXPIRY_NOT_THE_LOTS: "The code gives expiry {expiry}, but lot {lot} expires on "
    "{expires_on}: the code is not this vial's, or was altered.",
}


@dataclass(frozen=True)
class Resolution:
    """A scan resolved: kind, identifiers, authentication verdict and, if refused, why."""

    text: str
    kind: Kind
    authentication: Authentication
    reason: str
    problem: Problem | None = None
    source: Source | None = None
    on_our_base: bool | None = None  # None unless the text was a URI
    gtin: str | None = None
    lot: str | None = None
    serial: str | None = None
    expiry: dt.date | None = None
    sscc: str | None = None
    gsrn: str | None = None
    subject_code: str | None = None
    trial: str | None = None
    key_id: str | None = None
    generation: int | None = None  # which print of the item's label the code was signed for

    @property
    def refused(self) -> bool:
        """Whether the scan must not be acted on."""
        return self.problem is not None

    def refuse(self, problem: Problem, **facts: object) -> Resolution:
        """The same scan refused for `problem`: the hook for checks that need the records.

        `facts` fill the sentence, e.g. `identifier="vial XS228-2610-01-V0001"`.
        """
        return replace(self, problem=problem, reason=describe(problem, self, **facts))


def describe(problem: Problem, resolution: Resolution | None = None, **facts: object) -> str:
    """The plain-language sentence for a problem, filled from the scan and extra facts."""
    known: dict[str, object] = {}
    if resolution is not None:
        known = {
            "gtin": resolution.gtin,
            "lot": resolution.lot,
            "serial": resolution.serial,
            "sscc": resolution.sscc,
            "gsrn": resolution.gsrn,
            "key_id": resolution.key_id,
            "generation": resolution.generation,
            "identifier": resolution.serial or resolution.sscc or resolution.gsrn,
            "detail": "",
        }
    return _SENTENCES[problem].format_map({**known, **facts}).removesuffix(": ")
