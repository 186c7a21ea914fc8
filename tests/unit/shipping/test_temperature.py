"""Logger files read as UTC °C readings and the excursions in them: real-shaped files."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.shipping import (
    Excursion,
    ExcursionKind,
    Reading,
    ReadingsError,
    find_excursions,
    parse_readings,
)

DATA = Path(__file__).resolve().parents[2] / "data"
LIMIT = Decimal("-150")
QUARTER = dt.timedelta(minutes=15)


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2025, 7, 14, hour, minute, tzinfo=dt.UTC)


SIX = at(6)
# The same dry-shipper journey in every sample file: two readings above −150 °C at 06:45–07:00.
JOURNEY = [
    (at(6, 0), Decimal("-185.2")),
    (at(6, 15), Decimal("-184.9")),
    (at(6, 30), Decimal("-171.5")),
    (at(6, 45), Decimal("-149.6")),
    (at(7, 0), Decimal("-148.1")),
    (at(7, 15), Decimal("-152.0")),
    (at(7, 30), Decimal("-183.4")),
    (at(7, 45), Decimal("-184.0")),
]
SHAPES = [
    "timestamp_celsius.csv",  # UTF-8 BOM, CRLF, ISO 8601 in UTC
    "dry_shipper_preamble.csv",  # metadata preamble, Windows-1252, Date,Time,Temp[C] local
    "semicolon_decimal_comma.csv",  # time_utc;temp_c, decimal commas, a blank line
    "iso_offsets_newest_first.csv",  # offsets from −04:00 to +09:00, newest first
    "fahrenheit_us.csv",  # °F, MM/DD/YYYY hh:mm:ss AM, "key: value" preamble
    "zone_column.tsv",  # tabs, a logger column, an IANA time-zone column
    "shipper_logger.json",  # {"logger_id", "readings": [{"t", "c"}]}
    "readings_list.json",  # [{"t", "c"}] with offsets
]


def read(name: str, **options: object) -> list[Reading]:
    return parse_readings((DATA / name).read_bytes(), filename=name, **options)  # type: ignore[arg-type]


def series(*celsius: str, start: dt.datetime = SIX, logger: str | None = None) -> list[Reading]:
    return [
        Reading(start + index * QUARTER, Decimal(value), logger)
        for index, value in enumerate(celsius)
    ]


def temperature_excursions(readings: list[Reading], **options: object) -> list[Excursion]:
    found = find_excursions(readings, limit_celsius=LIMIT, **options)  # type: ignore[arg-type]
    return [e for e in found if e.kind is ExcursionKind.TEMPERATURE]


# --- reading files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHAPES)
def test_every_logger_shape_reads_as_the_same_readings(name: str) -> None:
    readings = read(name)

    assert [(r.at, r.celsius) for r in readings] == JOURNEY
    assert all(r.at.utcoffset() == dt.timedelta(0) for r in readings)


def test_the_plain_sample_really_has_a_bom_and_crlf_line_ends() -> None:
    raw = (DATA / "timestamp_celsius.csv").read_bytes()

    assert raw.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in raw


def test_a_utf16_export_reads_like_its_utf8_original() -> None:
    text = (DATA / "timestamp_celsius.csv").read_text(encoding="utf-8-sig")

    readings = parse_readings(text.encode("utf-16"))

    assert [(r.at, r.celsius) for r in readings] == JOURNEY


def test_fahrenheit_is_converted_to_celsius_and_keeps_the_logged_value() -> None:
    first = read("fahrenheit_us.csv")[0]

    assert first.celsius == Decimal("-185.2")
    assert first.fahrenheit == Decimal("-301.36")
    assert read("timestamp_celsius.csv")[0].fahrenheit is None


def test_fahrenheit_rounding_never_hides_a_reading_above_the_limit() -> None:
    # −237.9999 °F is −149.99994 °C: rounding to nearest would say −150.000, within the limit.
    text = "Timestamp,Temperature (°F)\n2025-07-14T06:00:00Z,-237.9999\n"

    (reading,) = parse_readings(text)

    assert reading.celsius == Decimal("-149.999")
    assert reading.celsius > LIMIT


def test_decimal_commas_and_a_unicode_minus_are_numbers() -> None:
    text = "time_utc;temp_c\n2025-07-14 06:00:00;\u2212152,5\n"

    (reading,) = parse_readings(text)

    assert reading.celsius == Decimal("-152.5")


def test_the_preamble_names_the_logger_and_its_time_zone() -> None:
    readings = read("dry_shipper_preamble.csv")

    assert {r.logger_id for r in readings} == {"DL-0042-7"}
    assert readings[0].at == at(6)  # 08:00 at UTC+02:00


def test_a_naive_time_with_no_stated_zone_is_refused_not_guessed() -> None:
    text = "Timestamp,Temperature (°C)\n2025-07-14 06:00:00,-185.2\n"

    with pytest.raises(ReadingsError, match=r"Line 2: .*no UTC offset") as caught:
        parse_readings(text)

    assert caught.value.line == 2
    assert parse_readings(text, timezone=dt.UTC)[0].at == at(6)


def test_a_local_time_repeated_by_the_autumn_clock_change_is_refused() -> None:
    text = "Timestamp\tTime zone\tTemperature [°C]\n2025-10-26 02:30:00\tEurope/Berlin\t-180.0\n"

    with pytest.raises(ReadingsError, match=r"Line 2: .*ambiguous or skipped"):
        parse_readings(text)


def test_rows_out_of_order_come_back_in_time_order() -> None:
    text = (
        "Timestamp,Temperature (°C)\n"
        "2025-07-14T06:30:00Z,-170.0\n"
        "2025-07-14T06:00:00Z,-180.0\n"
        "2025-07-14T06:15:00Z,-175.0\n"
    )

    readings = parse_readings(text)

    assert [r.at for r in readings] == [at(6), at(6, 15), at(6, 30)]


def test_a_repeated_reading_counts_once_but_two_values_for_one_instant_are_refused() -> None:
    header = "Timestamp,Temperature (°C)\n"
    same = header + "2025-07-14T06:00:00Z,-180.0\n2025-07-14T06:00:00Z,-180.0\n"
    clash = header + "2025-07-14T06:00:00Z,-180.0\n2025-07-14T08:00:00+02:00,-140.0\n"

    assert len(parse_readings(same)) == 1
    with pytest.raises(ReadingsError, match="Line 3: it repeats the time of line 2"):
        parse_readings(clash)


def test_a_sensor_error_in_the_data_is_refused_with_its_line_number() -> None:
    with pytest.raises(ReadingsError, match="Line 6: the temperature 'Err' is not a number") as e:
        read("sensor_error.csv")

    assert e.value.line == 6


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("End of report,8 readings", "is not ISO 8601"),
        ("End of report", "has no temperature"),
        ("2025-07-14T06:15:00Z,-180.0,extra", "has 3 fields"),
        ("2025-07-14T06:15:00Z,", "has no temperature"),
        ("2025-07-14T06:15:00Z,NaN", "is not a number"),
        ('2025-07-14T06:15:00Z,"-180', "not a well-formed CSV line"),
    ],
)
def test_garbage_after_the_header_is_refused_with_its_line_number(line: str, reason: str) -> None:
    text = f"Timestamp,Temperature (°C)\n2025-07-14T06:00:00Z,-180.0\n{line}\n"

    with pytest.raises(ReadingsError, match=f"Line 3: .*{reason}"):
        parse_readings(text)


def test_a_temperature_column_without_a_unit_is_refused() -> None:
    with pytest.raises(ReadingsError, match=r"Line 1: .*does not say °C or °F"):
        parse_readings("Timestamp,Temperature\n2025-07-14T06:00:00Z,-180.0\n")


def test_a_file_without_a_recognisable_header_is_refused() -> None:
    with pytest.raises(ReadingsError, match="No header naming a time and a temperature"):
        parse_readings("Serial,DL-0042-7\n-180.0\n-179.5\n")


def test_dates_that_could_be_day_or_month_first_need_the_callers_word() -> None:
    text = (
        "Date/Time (UTC),Temperature (°C)\n03/07/2025 06:00:00,-185.2\n04/07/2025 06:00:00,-185.0\n"
    )

    with pytest.raises(ReadingsError, match="day-first or month-first"):
        parse_readings(text)
    assert parse_readings(text, day_first=True)[0].at.date() == dt.date(2025, 7, 3)
    assert parse_readings(text, day_first=False)[0].at.date() == dt.date(2025, 3, 7)


def test_a_time_in_another_format_than_the_lines_above_is_refused() -> None:
    text = (
        "Date/Time (UTC),Temperature (°C)\n14.07.2025 06:00:00,-185.2\n07/14/2025 06:15:00,-185.0\n"
    )

    with pytest.raises(ReadingsError, match=r"Line 3: .*not in the format of the lines above"):
        parse_readings(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"readings": [{"t": "2025-07-14T06:00:00Z", "c": -180.0},\n  {"t": ', "Line 2:"),
        ('[{"t": "2025-07-14T06:00:00Z", "c": NaN}]', "NaN, which is not a temperature"),
        ('[{"t": "2025-07-14T06:00:00Z", "c": -180}, {"t": "2025-07-14T06:15:00Z"}]', "Reading 2:"),
        ('[{"t": "2025-07-14 06:00", "c": -180}]', "Reading 1: .*no UTC offset"),
        ('{"logger_id": "DL-1", "data": []}', "neither a list of readings"),
    ],
)
def test_bad_json_is_refused_with_where_and_why(text: str, message: str) -> None:
    with pytest.raises(ReadingsError, match=message):
        parse_readings(text, filename="logger.json")


def test_a_file_with_a_header_and_no_readings_is_refused() -> None:
    with pytest.raises(ReadingsError, match="header but no readings"):
        parse_readings("Timestamp,Temperature (°C)\r\n\r\n")


# --- excursions ----------------------------------------------------------------------------


def test_the_sample_journey_has_one_excursion_of_two_readings() -> None:
    (excursion,) = find_excursions(read("timestamp_celsius.csv"), limit_celsius=LIMIT)

    assert excursion == Excursion(
        ExcursionKind.TEMPERATURE, at(6, 45), at(7), 2, Decimal("-148.1"), None, ongoing=False
    )
    assert excursion.duration == QUARTER


def test_an_excursion_at_the_start_of_the_record() -> None:
    (excursion,) = temperature_excursions(series("-140.0", "-160.0", "-180.0"))

    assert (excursion.start, excursion.count, excursion.peak) == (at(6), 1, Decimal("-140.0"))


def test_an_excursion_in_the_middle_of_the_record() -> None:
    (excursion,) = temperature_excursions(series("-180", "-149.0", "-148.5", "-170", "-180"))

    assert (excursion.start, excursion.end) == (at(6, 15), at(6, 30))
    assert (excursion.count, excursion.peak, excursion.ongoing) == (2, Decimal("-148.5"), False)


def test_an_excursion_the_record_ends_in_is_ongoing() -> None:
    (excursion,) = temperature_excursions(series("-180", "-170", "-145", "-120"))

    assert excursion.ongoing
    assert (excursion.start, excursion.end, excursion.peak) == (at(6, 30), at(6, 45), -120)


def test_a_reading_exactly_at_the_limit_is_within_it() -> None:
    assert temperature_excursions(series("-180", "-150.0", "-150", "-180")) == []


def test_a_single_spike_is_an_excursion() -> None:
    (spike,) = temperature_excursions(series("-180", "-120", "-180"))

    assert (spike.count, spike.duration) == (1, dt.timedelta(0))


def test_a_minimum_duration_drops_short_spikes_but_never_an_ongoing_one() -> None:
    readings = series("-180", "-120", "-180", "-180", "-140")

    (kept,) = temperature_excursions(readings, min_duration=dt.timedelta(minutes=30))

    assert kept.start == at(7)
    assert kept.ongoing


def test_a_stated_tolerance_lets_readings_just_above_the_limit_pass() -> None:
    readings = series("-180", "-149.5", "-180")

    assert temperature_excursions(readings, tolerance=Decimal("1")) == []
    assert len(temperature_excursions(readings)) == 1


def test_each_logger_is_judged_on_its_own_readings() -> None:
    warm = series("-180", "-140", "-180", logger="DL-A")
    cold = series("-185", "-185", "-185", start=at(6, 5), logger="DL-B")

    (excursion,) = temperature_excursions(warm + cold)

    assert (excursion.logger_id, excursion.count) == ("DL-A", 1)


def test_a_shipper_kept_past_its_hold_time_is_an_overrun() -> None:
    readings = series("-185", "-184", "-183", "-182", "-181", "-180", "-179", "-178")

    (overrun,) = find_excursions(
        readings, limit_celsius=LIMIT, started_at=at(6), hold_time=dt.timedelta(hours=1)
    )

    assert overrun.kind is ExcursionKind.HOLD_TIME
    assert (overrun.start, overrun.end, overrun.count) == (at(7), at(7, 45), 3)
    assert overrun.peak == Decimal("-178")


def test_the_hold_time_runs_on_to_now_when_the_record_stops_early() -> None:
    (overrun,) = find_excursions(
        series("-185", "-184"),
        limit_celsius=LIMIT,
        started_at=at(6),
        hold_time=dt.timedelta(hours=2),
        now=at(9),
    )

    assert (overrun.start, overrun.end, overrun.count) == (at(8), at(9), 0)


def test_a_shipper_within_its_hold_time_has_no_overrun() -> None:
    found = find_excursions(
        series("-185", "-184"),
        limit_celsius=LIMIT,
        started_at=at(6),
        hold_time=dt.timedelta(days=10),
        now=at(9),
    )

    assert found == []


def test_a_gap_longer_than_the_logging_interval_is_reported() -> None:
    readings = [*series("-185", "-184"), *series("-183", "-182", start=at(7, 15))]

    (gap,) = find_excursions(readings, limit_celsius=LIMIT, max_interval=dt.timedelta(minutes=30))

    assert gap.kind is ExcursionKind.GAP
    assert (gap.start, gap.end, gap.count, gap.peak) == (at(6, 15), at(7, 15), 0, None)


def test_readings_exactly_the_maximum_interval_apart_leave_no_gap() -> None:
    found = find_excursions(
        series("-185", "-184", "-183"), limit_celsius=LIMIT, max_interval=QUARTER
    )

    assert found == []


def test_a_logger_that_stopped_before_now_is_no_proof_of_cold() -> None:
    readings = series("-185", "-184")

    (gap,) = find_excursions(
        readings, limit_celsius=LIMIT, max_interval=dt.timedelta(minutes=30), now=at(9)
    )

    assert (gap.start, gap.end, gap.ongoing) == (at(6, 15), at(9), True)


def test_a_logger_started_late_leaves_a_gap_after_the_shipper_was_charged() -> None:
    (gap,) = find_excursions(
        series("-185", "-184", start=at(7)),
        limit_celsius=LIMIT,
        max_interval=dt.timedelta(minutes=30),
        started_at=at(6),
    )

    assert (gap.start, gap.end, gap.ongoing) == (at(6), at(7), False)


def test_a_hold_time_without_the_charging_time_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="started_at"):
        find_excursions([], limit_celsius=LIMIT, hold_time=dt.timedelta(days=10))


celsius_within = st.decimals(min_value=-200, max_value=LIMIT, places=1)
celsius_any = st.decimals(min_value=-200, max_value=-100, places=1)
minutes = st.lists(st.integers(0, 10_000), min_size=1, max_size=60, unique=True)


@given(minutes, st.data())
def test_readings_all_within_the_limit_have_no_temperature_excursion(
    offsets: list[int], data: st.DataObject
) -> None:
    readings = [
        Reading(at(0) + dt.timedelta(minutes=m), data.draw(celsius_within)) for m in offsets
    ]

    assert temperature_excursions(readings) == []


@given(minutes, st.data())
def test_every_reading_above_the_limit_lies_in_exactly_one_excursion(
    offsets: list[int], data: st.DataObject
) -> None:
    readings = [Reading(at(0) + dt.timedelta(minutes=m), data.draw(celsius_any)) for m in offsets]
    warm = [r for r in readings if r.celsius > LIMIT]

    excursions = temperature_excursions(readings)

    assert sum(e.count for e in excursions) == len(warm)
    for reading in warm:
        assert sum(e.start <= reading.at <= e.end for e in excursions) == 1
