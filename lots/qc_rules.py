"""Pure rules of QC and release: conformance of a result, and what blocks a release."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from lots.local_time import local_date
from lots.models import Criterion
from lots.rules import describe_criterion, plain_decimal

PASS_WORDS = frozenset({"pass", "passed", "conforms", "complies"})
FAIL_WORDS = frozenset({"fail", "failed", "does not conform", "does not comply"})


class Conformance(enum.StrEnum):
    """How a result stands against its specification line."""

    CONFORMS = "conforms"
    OUT_OF_SPECIFICATION = "oos"
    REPORTED = "reported"  # report-only lines are recorded, never judged


class ResultRefusedError(ValueError):
    """A result that cannot be judged against its line: wrong unit, not a number, not pass/fail."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Line:
    """The parts of a specification line that judge a result."""

    test: str
    unit: str | None
    criterion: str
    lower: Decimal | None = None
    lower_inclusive: bool = True
    upper: Decimal | None = None
    upper_inclusive: bool = True
    expected: str | None = None

    def describe(self) -> str:
        """The acceptance criterion in a QA person's notation."""
        return describe_criterion(self.__dict__)


@dataclass(frozen=True)
class Judgement:
    """A result's conformance and the parsed number, if the line is numeric."""

    conformance: Conformance
    numeric: Decimal | None


def judge(line: Line, value: str, unit: str | None) -> Judgement:
    """Judge a result against its line; refuse one in the wrong unit or form."""
    value = value.strip()
    if line.criterion == Criterion.REPORT_ONLY:
        _check_unit(line, unit, required=line.unit is not None and _is_number(value))
        return Judgement(Conformance.REPORTED, _number(value) if _is_number(value) else None)
    if line.criterion == Criterion.RANGE:
        _check_unit(line, unit, required=True)
        number = _number(value)
        if number is None:
            raise ResultRefusedError("value", f"{line.test} needs a number; got {value!r}.")
        return Judgement(_conformance(_within(line, number)), number)
    if unit:
        raise ResultRefusedError("unit", f"{line.test} takes no unit; got {unit!r}.")
    if line.criterion == Criterion.PASS_FAIL:
        word = value.casefold()
        expected = (line.expected or "").casefold()
        if word in PASS_WORDS or (expected and word == expected):
            return Judgement(Conformance.CONFORMS, None)
        if word in FAIL_WORDS or word == _negation(expected):
            return Judgement(Conformance.OUT_OF_SPECIFICATION, None)
        negation = _negation(expected)
        choices = f"{line.expected!r} or {negation!r}" if negation else "pass or fail"
        raise ResultRefusedError("value", f"{line.test} is {choices}; got {value!r}.")
    return Judgement(
        _conformance(value.casefold() == (line.expected or "").strip().casefold()), None
    )


def _negation(expected: str) -> str | None:
    # "No growth" fails as "growth", "Not detected" as "detected": what a microbiologist types.
    for prefix in ("no ", "not "):
        if expected.startswith(prefix):
            return expected.removeprefix(prefix).strip()
    return None


def _within(line: Line, number: Decimal) -> bool:
    if line.lower is not None and (
        number < line.lower or (number == line.lower and not line.lower_inclusive)
    ):
        return False
    return not (
        line.upper is not None
        and (number > line.upper or (number == line.upper and not line.upper_inclusive))
    )


def _conformance(ok: bool) -> Conformance:
    return Conformance.CONFORMS if ok else Conformance.OUT_OF_SPECIFICATION


def _check_unit(line: Line, unit: str | None, *, required: bool) -> None:
    if not required:
        return
    if (unit or "").strip() != (line.unit or ""):
        raise ResultRefusedError(
            "unit", f"{line.test} is specified in {line.unit}; a result in {unit!r} is refused."
        )


def _is_number(value: str) -> bool:
    return _number(value) is not None


def _number(value: str) -> Decimal | None:
    try:
        number = Decimal(value)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


@dataclass(frozen=True)
class CurrentResult:
    """The result in force for one line (the newest, not superseded)."""

    test: str
    value: str
    unit: str | None
    conformance: str
    analyst: str


@dataclass(frozen=True)
class ReleaseFacts:
    """What a release decision looks at, gathered by the service."""

    lot: str
    status: str
    expires_on: dt.date
    specification: Sequence[Line]
    results: dict[str, CurrentResult]
    open_deviations: Sequence[str]
    manufactured_by: Iterable[str]
    open_investigations: Sequence[str] = ()  # "OOS-<lot>-01 (sterility)"
    invalidated_by: Iterable[str] = ()  # QA who signed an invalidation of one of its results


def release_blockers(
    facts: ReleaseFacts, releaser: str, today: dt.date, *, exceptional: bool = False
) -> list[str]:
    """Every reason this user may not release this lot today, as sentences (empty: may).

    An exceptional release accepts out-of-specification results (for one named subject) but
    nothing else on this list.
    """
    blockers = []
    if facts.status != "quarantine":
        blockers.append(
            f"Lot {facts.lot} is {facts.status.replace('_', ' ')}; only a lot in quarantine "
            "can be released."
        )
    missing = [line.test for line in facts.specification if line.test not in facts.results]
    if missing:
        blockers.append(f"No result for: {', '.join(missing)}.")
    oos = [
        f"{line.test} {_shown(facts.results[line.test])} ({line.describe()})"
        for line in facts.specification
        if line.test in facts.results
        and facts.results[line.test].conformance == Conformance.OUT_OF_SPECIFICATION
    ]
    if oos and not exceptional:
        blockers.append(f"Out of specification: {'; '.join(oos)}.")
    if exceptional and not oos:
        blockers.append(
            "Every result conforms: an exceptional release is only for an out-of-specification lot."
        )
    entered = sorted(result.test for result in facts.results.values() if result.analyst == releaser)
    if entered:
        blockers.append(
            f"You entered the result for {', '.join(entered)}; someone who entered no result "
            "must release (segregation of duties)."
        )
    if releaser in set(facts.manufactured_by):
        blockers.append(
            "You took part in manufacturing this lot; someone independent of it must release."
        )
    for deviation in facts.open_deviations:
        blockers.append(f"Deviation {deviation} is still open.")
    for investigation in facts.open_investigations:
        blockers.append(f"Out-of-specification investigation {investigation} is still open.")
    if releaser in set(facts.invalidated_by):
        blockers.append(
            "You signed the invalidation of an out-of-specification result of this lot; "
            "someone else must release (segregation of duties)."
        )
    if facts.expires_on < today:
        blockers.append(f"Lot {facts.lot} expired on {facts.expires_on.isoformat()}.")
    return blockers


def _shown(result: CurrentResult) -> str:
    unit = f" {result.unit}" if result.unit else ""
    try:
        value = plain_decimal(Decimal(result.value))
    except InvalidOperation:
        value = result.value
    return f"{value}{unit}"


def expiry_date(manufacture_end: dt.datetime, shelf_life_days: int, time_zone: str) -> dt.date:
    """The last day of use: the manufacture date at the manufacturing site (in its time
    zone) plus the shelf life."""
    return local_date(manufacture_end, time_zone) + dt.timedelta(days=shelf_life_days)
