"""Pure rules of QC and release: conformance of a result, release blockers and expiry."""

import datetime as dt
from decimal import Decimal

import pytest

from lots.qc_rules import (
    Conformance,
    CurrentResult,
    Line,
    ReleaseFacts,
    ResultRefusedError,
    expiry_date,
    judge,
    release_blockers,
)

VIABILITY = Line("Viability", "%", "range", lower=Decimal(70))
TRA_1_60 = Line("TRA-1-60 positive", "%", "range", upper=Decimal(1), upper_inclusive=False)
CELLS = Line("Viable cells per vial", "10^6 cells", "range", lower=Decimal(9), upper=Decimal(11))
EXCLUSIVE = Line(
    "Osmolality",
    "mOsm/kg",
    "range",
    lower=Decimal(270),
    lower_inclusive=False,
    upper=Decimal(330),
    upper_inclusive=False,
)
KARYOTYPE = Line("Karyotype", None, "equals", expected="Normal")
STERILITY = Line("Sterility", None, "pass_fail", expected="No growth")
MYCOPLASMA = Line("Mycoplasma", None, "pass_fail")
DIAMETER = Line("Mean cell diameter", "µm", "report_only")
APPEARANCE = Line("Appearance", None, "report_only")


def _judged(line, value, unit=None):
    return judge(line, value, unit).conformance


# Numeric ranges


@pytest.mark.parametrize(
    ("value", "expected"),
    [("9", Conformance.CONFORMS), ("11", Conformance.CONFORMS), ("10.2", Conformance.CONFORMS)],
)
def test_an_inclusive_range_accepts_its_limits(value, expected):
    assert _judged(CELLS, value, "10^6 cells") == expected


@pytest.mark.parametrize("value", ["8.99", "11.01"])
def test_an_inclusive_range_refuses_what_lies_beyond_its_limits(value):
    assert _judged(CELLS, value, "10^6 cells") == Conformance.OUT_OF_SPECIFICATION


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("270", Conformance.OUT_OF_SPECIFICATION),
        ("270.001", Conformance.CONFORMS),
        ("329.999", Conformance.CONFORMS),
        ("330", Conformance.OUT_OF_SPECIFICATION),
    ],
)
def test_an_exclusive_range_refuses_its_limits_themselves(value, expected):
    assert _judged(EXCLUSIVE, value, "mOsm/kg") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("69.9", Conformance.OUT_OF_SPECIFICATION),
        ("70", Conformance.CONFORMS),
        ("70.0", Conformance.CONFORMS),
        ("1000", Conformance.CONFORMS),
    ],
)
def test_a_lower_limit_alone_has_no_ceiling(value, expected):
    assert _judged(VIABILITY, value, "%") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-5", Conformance.CONFORMS),
        ("0.02", Conformance.CONFORMS),
        ("0.999", Conformance.CONFORMS),
        ("1", Conformance.OUT_OF_SPECIFICATION),
        ("1.00", Conformance.OUT_OF_SPECIFICATION),
    ],
)
def test_an_exclusive_upper_limit_alone_refuses_one_percent_tra_1_60(value, expected):
    assert _judged(TRA_1_60, value, "%") == expected


def test_a_numeric_result_keeps_its_parsed_number():
    assert judge(VIABILITY, " 91.50 ", "%").numeric == Decimal("91.50")


def test_a_result_in_the_wrong_unit_is_refused():
    with pytest.raises(ResultRefusedError) as refused:
        judge(VIABILITY, "91.5", "fraction")
    assert refused.value.field == "unit"
    assert "specified in %" in str(refused.value)


def test_a_numeric_result_without_a_unit_is_refused():
    with pytest.raises(ResultRefusedError) as refused:
        judge(VIABILITY, "91.5", None)
    assert refused.value.field == "unit"


@pytest.mark.parametrize("value", ["ninety", "91,5", "", "NaN", "Infinity", "> 90"])
def test_a_range_refuses_what_is_not_a_finite_number(value):
    with pytest.raises(ResultRefusedError) as refused:
        judge(VIABILITY, value, "%")
    assert refused.value.field == "value"


# Equals, pass/fail, report only


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Normal", Conformance.CONFORMS),
        (" normal ", Conformance.CONFORMS),
        ("46,XY,t(1;2)", Conformance.OUT_OF_SPECIFICATION),
        ("Abnormal", Conformance.OUT_OF_SPECIFICATION),
    ],
)
def test_equals_conforms_only_to_the_expected_value_in_any_case(value, expected):
    assert _judged(KARYOTYPE, value) == expected


def test_equals_takes_no_unit():
    with pytest.raises(ResultRefusedError) as refused:
        judge(KARYOTYPE, "Normal", "%")
    assert refused.value.field == "unit"


@pytest.mark.parametrize("value", ["Pass", "passed", "Conforms", "complies", "No growth"])
def test_pass_words_and_the_expected_wording_conform(value):
    assert _judged(STERILITY, value) == Conformance.CONFORMS


@pytest.mark.parametrize("value", ["Fail", "failed", "does not conform", "Does not comply"])
def test_fail_words_are_out_of_specification(value):
    assert _judged(MYCOPLASMA, value) == Conformance.OUT_OF_SPECIFICATION


def test_a_pass_fail_result_that_is_neither_is_refused():
    with pytest.raises(ResultRefusedError) as refused:
        judge(STERILITY, "maybe", None)
    assert refused.value.field == "value"
    assert "'No growth'" in str(refused.value)


def test_a_pass_fail_result_takes_no_unit():
    with pytest.raises(ResultRefusedError) as refused:
        judge(STERILITY, "Pass", "CFU")
    assert refused.value.field == "unit"


def test_a_report_only_line_records_without_judging():
    judgement = judge(DIAMETER, "14.2", "µm")
    assert (judgement.conformance, judgement.numeric) == (Conformance.REPORTED, Decimal("14.2"))


def test_a_report_only_text_result_needs_no_unit():
    judgement = judge(APPEARANCE, "Opalescent suspension", None)
    assert (judgement.conformance, judgement.numeric) == (Conformance.REPORTED, None)


def test_a_report_only_number_in_the_wrong_unit_is_refused():
    with pytest.raises(ResultRefusedError):
        judge(DIAMETER, "14.2", "mm")


# Release blockers

TODAY = dt.date(2026, 11, 20)
SPEC = [STERILITY, VIABILITY]


def _result(line, value, conformance=Conformance.CONFORMS, analyst="qc"):
    return CurrentResult(line.test, value, line.unit, conformance, analyst)


GOOD_RESULTS = {
    "Sterility": _result(STERILITY, "No growth"),
    "Viability": _result(VIABILITY, "91.5"),
}
OOS_RESULTS = {
    **GOOD_RESULTS,
    "Viability": _result(VIABILITY, "61", Conformance.OUT_OF_SPECIFICATION),
}


def _facts(**changes):
    facts = {
        "lot": "XS228-2611-01",
        "status": "quarantine",
        "expires_on": dt.date(2027, 11, 9),
        "specification": SPEC,
        "results": GOOD_RESULTS,
        "open_deviations": [],
        "manufactured_by": {"manufacturing"},
    }
    return ReleaseFacts(**{**facts, **changes})


def test_a_complete_conforming_lot_in_quarantine_may_be_released():
    assert release_blockers(_facts(), "qa", TODAY) == []


@pytest.mark.parametrize("status", ["in_process", "released", "rejected", "recalled"])
def test_only_a_lot_in_quarantine_can_be_released(status):
    assert release_blockers(_facts(status=status), "qa", TODAY) == [
        f"Lot XS228-2611-01 is {status.replace('_', ' ')}; only a lot in quarantine can be "
        "released."
    ]


def test_a_specification_line_without_a_result_blocks_release():
    results = {"Viability": GOOD_RESULTS["Viability"]}
    assert release_blockers(_facts(results=results), "qa", TODAY) == ["No result for: Sterility."]


def test_an_out_of_specification_result_blocks_release_and_names_the_criterion():
    assert release_blockers(_facts(results=OOS_RESULTS), "qa", TODAY) == [
        "Out of specification: Viability 61 % (≥ 70 %)."
    ]


def test_the_analyst_who_entered_a_result_cannot_release():
    results = {**GOOD_RESULTS, "Sterility": _result(STERILITY, "No growth", analyst="qa")}
    [blocker] = release_blockers(_facts(results=results), "qa", TODAY)
    assert blocker.startswith("You entered the result for Sterility;")


def test_someone_who_manufactured_the_lot_cannot_release():
    [blocker] = release_blockers(_facts(manufactured_by={"manufacturing", "qa"}), "qa", TODAY)
    assert "took part in manufacturing" in blocker


def test_an_open_deviation_blocks_release():
    facts = _facts(open_deviations=["DEV-XS228-2611-01-01 (major)"])
    assert release_blockers(facts, "qa", TODAY) == [
        "Deviation DEV-XS228-2611-01-01 (major) is still open."
    ]


def test_a_lot_expired_yesterday_cannot_be_released():
    facts = _facts(expires_on=TODAY - dt.timedelta(days=1))
    assert release_blockers(facts, "qa", TODAY) == ["Lot XS228-2611-01 expired on 2026-11-19."]


def test_a_lot_may_still_be_released_on_its_expiry_day():
    assert release_blockers(_facts(expires_on=TODAY), "qa", TODAY) == []


def test_every_blocker_is_listed_at_once():
    facts = _facts(
        status="in_process",
        specification=[*SPEC, KARYOTYPE],
        results={**OOS_RESULTS, "Sterility": _result(STERILITY, "No growth", analyst="qa")},
        open_deviations=["DEV-XS228-2611-01-01 (minor)"],
        manufactured_by={"qa"},
        expires_on=dt.date(2026, 1, 1),
    )
    blockers = release_blockers(facts, "qa", TODAY)
    assert [blocker.split()[0] for blocker in blockers] == [
        "Lot",  # in process
        "No",  # no result for Karyotype
        "Out",  # out of specification
        "You",  # entered a result
        "You",  # manufactured
        "Deviation",
        "Lot",  # expired
    ]


def test_an_exceptional_release_accepts_out_of_specification_results():
    assert release_blockers(_facts(results=OOS_RESULTS), "qa", TODAY, exceptional=True) == []


def test_an_exceptional_release_is_refused_when_every_result_conforms():
    assert release_blockers(_facts(), "qa", TODAY, exceptional=True) == [
        "Every result conforms: an exceptional release is only for an out-of-specification lot."
    ]


def test_an_exceptional_release_accepts_nothing_else_on_the_list():
    facts = _facts(
        results=OOS_RESULTS,
        open_deviations=["DEV-XS228-2611-01-01 (major)"],
        expires_on=dt.date(2026, 1, 1),
    )
    assert release_blockers(facts, "qa", TODAY, exceptional=True) == [
        "Deviation DEV-XS228-2611-01-01 (major) is still open.",
        "Lot XS228-2611-01 expired on 2026-01-01.",
    ]


def test_an_exceptional_release_still_needs_every_result():
    facts = _facts(specification=[*SPEC, KARYOTYPE], results=OOS_RESULTS)
    assert release_blockers(facts, "qa", TODAY, exceptional=True) == ["No result for: Karyotype."]


# Expiry


def test_expiry_is_the_manufacture_date_plus_the_shelf_life():
    end = dt.datetime(2026, 11, 9, 9, 0, tzinfo=dt.UTC)
    assert expiry_date(end, 365, "UTC") == dt.date(2027, 11, 9)


def test_expiry_counts_from_the_date_of_manufacture_at_the_manufacturing_site():
    end = dt.datetime(2026, 11, 9, 18, 0, tzinfo=dt.UTC)  # 10 November, 02:00 in Suzhou
    assert expiry_date(end, 30, "Asia/Shanghai") == dt.date(2026, 12, 10)
    assert expiry_date(end, 30, "Europe/London") == dt.date(2026, 12, 9)


def test_expiry_crosses_a_leap_day():
    end = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)
    assert expiry_date(end, 730, "Asia/Shanghai") == dt.date(2029, 2, 28)


def test_growth_in_a_sterility_test_is_out_of_specification():
    line = Line(test="Sterility", unit=None, criterion="pass_fail", expected="No growth")
    assert judge(line, "Growth", None).conformance == Conformance.OUT_OF_SPECIFICATION


def test_mycoplasma_detected_is_out_of_specification():
    line = Line(test="Mycoplasma", unit=None, criterion="pass_fail", expected="Not detected")
    assert judge(line, "detected", None).conformance == Conformance.OUT_OF_SPECIFICATION
