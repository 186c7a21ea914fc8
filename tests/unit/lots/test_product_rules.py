"""Pure rules about products and specifications."""

from decimal import Decimal

import pytest

from lots.rules import as_gtin14, describe_criterion, is_valid_gtin, specification_problems


@pytest.mark.parametrize("gtin", ["09506000134352", "9506000134352", "96385074", "036000291452"])
def test_gtins_with_a_correct_check_digit_are_valid(gtin):
    assert is_valid_gtin(gtin)


@pytest.mark.parametrize(
    "gtin", ["09506000134353", "0950600013435", "ABCDEFGHIJKLM", "", "١٢٣٤٥٦٧٨"]
)
def test_gtins_with_a_wrong_check_digit_length_or_characters_are_invalid(gtin):
    assert not is_valid_gtin(gtin)


def test_a_gtin_13_is_padded_to_the_14_digits_of_ai_01():
    assert as_gtin14("9506000134352") == "09506000134352"


def _line(**fields):
    return {"test": "Viability", "criterion": "range", "unit": "%", **fields}


def test_a_range_without_limits_is_refused():
    assert specification_problems(_line()) == [
        "Viability: a range needs a lower or an upper limit."
    ]


def test_a_range_with_its_limits_upside_down_is_refused():
    problems = specification_problems(_line(lower=Decimal(90), upper=Decimal(80)))
    assert problems == ["Viability: the lower limit 90 is above the upper limit 80."]


def test_a_numeric_range_needs_a_unit():
    assert (
        "a numeric range needs a unit"
        in specification_problems(_line(unit=None, lower=Decimal(70)))[0]
    )


def test_an_equals_criterion_needs_the_expected_value():
    line = {"test": "Karyotype", "criterion": "equals", "unit": None}
    assert specification_problems(line) == [
        "Karyotype: an 'equals' criterion needs the expected value."
    ]


def test_a_pass_fail_criterion_takes_no_numeric_limits():
    line = {"test": "Sterility", "criterion": "pass_fail", "upper": Decimal(1)}
    assert specification_problems(line) == [
        "Sterility: only a range criterion takes numeric limits."
    ]


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"lower": Decimal("95.000000")}, "≥ 95 %"),
        ({"upper": Decimal(1), "upper_inclusive": False}, "< 1 %"),
        ({"upper": Decimal("0.2"), "unit": "EU/kg"}, "≤ 0.2 EU/kg"),
        ({"lower": Decimal(9), "upper": Decimal(11), "unit": "10^6 cells"}, "9 – 11 10^6 cells"),
        (
            {"lower": Decimal(9), "lower_inclusive": False, "upper": Decimal(11)},
            "> 9 and ≤ 11 %",
        ),
    ],
)
def test_ranges_read_as_a_qa_person_writes_them(fields, text):
    assert describe_criterion(_line(**fields)) == text


def test_pass_fail_equals_and_report_only_read_plainly():
    assert describe_criterion({"criterion": "pass_fail", "expected": "No growth"}) == "No growth"
    assert describe_criterion({"criterion": "equals", "expected": "Normal"}) == "= Normal"
    assert describe_criterion({"criterion": "report_only"}) == "Report result"
