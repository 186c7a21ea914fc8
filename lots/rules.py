"""Pure rules about products and specifications: no database, no web."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from biip.checksums import gs1_standard_check_digit

from lots.models import Criterion

GTIN_LENGTHS = (8, 12, 13, 14)


def is_valid_gtin(value: str) -> bool:
    """Whether `value` is a GTIN-8/12/13/14 with a correct GS1 check digit."""
    return (
        value.isascii()
        and value.isdigit()
        and len(value) in GTIN_LENGTHS
        and gs1_standard_check_digit(value[:-1]) == int(value[-1])
    )


def as_gtin14(value: str) -> str:
    """The 14-digit form GS1 Digital Link and AI (01) use."""
    return value.rjust(14, "0")


def specification_problems(line: Mapping[str, Any]) -> list[str]:
    """What is wrong with one specification line, as sentences (empty when it is sound)."""
    criterion = line["criterion"]
    lower: Decimal | None = line.get("lower")
    upper: Decimal | None = line.get("upper")
    test = line["test"]
    problems: list[str] = []
    if criterion == Criterion.RANGE:
        if lower is None and upper is None:
            problems.append(f"{test}: a range needs a lower or an upper limit.")
        if lower is not None and upper is not None and lower > upper:
            problems.append(f"{test}: the lower limit {lower} is above the upper limit {upper}.")
        if not line.get("unit"):
            problems.append(f"{test}: a numeric range needs a unit.")
    elif lower is not None or upper is not None:
        problems.append(f"{test}: only a range criterion takes numeric limits.")
    if criterion == Criterion.EQUALS and not line.get("expected"):
        problems.append(f"{test}: an 'equals' criterion needs the expected value.")
    return problems


def describe_criterion(line: Mapping[str, Any]) -> str:  # noqa: PLR0911 - one per notation
    """The acceptance criterion as a QA person writes it: '≥ 95 %', '< 0.5 EU/mL', 'Pass'."""
    criterion = line["criterion"]
    unit = line.get("unit") or ""
    if criterion == Criterion.REPORT_ONLY:
        return "Report result"
    if criterion == Criterion.PASS_FAIL:
        return line.get("expected") or "Pass"
    if criterion == Criterion.EQUALS:
        return f"= {line['expected']}"
    lower, upper = line.get("lower"), line.get("upper")
    low = ">=" if line.get("lower_inclusive", True) else ">"
    high = "<=" if line.get("upper_inclusive", True) else "<"
    symbols = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}
    if lower is not None and upper is not None:
        if line.get("lower_inclusive", True) and line.get("upper_inclusive", True):
            return f"{_num(lower)} – {_num(upper)} {unit}".rstrip()
        return f"{symbols[low]} {_num(lower)} and {symbols[high]} {_num(upper)} {unit}".rstrip()
    if lower is not None:
        return f"{symbols[low]} {_num(lower)} {unit}".rstrip()
    return f"{symbols[high]} {_num(upper)} {unit}".rstrip()


CRITERION_FIELDS = (
    "test",
    "unit",
    "criterion",
    "lower",
    "lower_inclusive",
    "upper",
    "upper_inclusive",
    "expected",
)


def describe_line(line: object) -> str:
    """`describe_criterion` of a stored specification line."""
    return describe_criterion({name: getattr(line, name) for name in CRITERION_FIELDS})


def plain_decimal(value: Decimal | int) -> str:
    """A decimal without trailing zeros or exponent: Decimal('95.000000') -> '95'."""
    return format(Decimal(value).normalize(), "f")


def _num(value: Decimal | None) -> str:
    if value is None:
        return ""
    return plain_decimal(value)
