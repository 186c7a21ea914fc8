"""Temperature logger files read as UTC °C readings, and the excursions they show. Pure code.

Reading a file (`parse_readings`)
- CSV or TSV (`,` `;` tab `|`), found by its header: the first line that names a time column
  (one timestamp column, or a date and a time column) and one temperature column. The header
  decides the delimiter, because `csv.Sniffer` takes the decimal comma of `-185,2` for a
  delimiter. Lines above the header are the logger's metadata preamble; its `key: value` or
  `key,value` lines may give the logger's serial, the time zone and the unit.
- JSON: `{"logger_id": …, "readings": [{"t": …, "c": …}]}` or a list of such objects
  (`"f"` instead of `"c"` for °F).
- Times: ISO 8601 (`datetime.fromisoformat`) or one of a few explicit logger formats, one
  format for the whole file, so day-first and month-first dates are told apart by the file's
  days above 12; a file where every day is 12 or less needs the caller's `day_first`.
- A time without a UTC offset takes the zone of the row's time-zone column, else of the time
  column's header ("Time (UTC+02:00)", "time_utc"), else of the preamble, else the caller's
  `timezone`. A file that states none is refused, never guessed, and so is a local time that
  a daylight-saving change makes ambiguous or skips.
- Temperatures: decimal point or comma, ASCII or Unicode minus. A column that does not say
  °C or °F (nor does its preamble) is refused: −238 °F read as °C would hide an excursion.
  °F is converted and rounded up to 0.001 °C, so rounding can only warm a reading, never hide
  one; the logged value stays in `Reading.fahrenheit`.
- Blank lines (and rows of empty cells) are skipped; any other line that is not a reading is
  refused with its line number.
- Readings come back in time order (some loggers export newest first). One logger giving the
  same instant twice with the same value is one reading; with two values it is refused.

Judging readings (`find_excursions`): see its docstring.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import enum
import json
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from itertools import pairwise
from typing import Final, NoReturn

HEADER_SEARCH_LINES: Final = 200
DELIMITERS: Final = (",", ";", "\t", "|")
FAHRENHEIT_STEP: Final = Decimal("0.001")
NO_TIME: Final = dt.timedelta(0)
NO_TOLERANCE: Final = Decimal(0)
# Explicit formats beside ISO 8601, as logger software writes them. One per file.
TIME_FORMATS: Final = (
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
)
NUMBER: Final = re.compile(r"[+-]?\d+(?:[.,]\d+)?")
OFFSET: Final = re.compile(r"(?:UTC|GMT)?\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)
ZONE_IN_HEADER: Final = re.compile(r"\b(?:utc|gmt)\b(?:\s*[+-]\s*\d{1,2}(?::?\d{2})?)?")
ISO_TIME_PART: Final = re.compile(r"\d[T ]\d")
DEGREE_SIGNS: Final = str.maketrans({"º": "°", "℃": "°c", "℉": "°f", "_": " "})
LOGGER_KEYS: Final = frozenset(
    {"logger id", "logger serial", "logger serial number", "serial number", "serial no"}
    | {"serial", "device id", "device serial", "sensor id", "logger"}
)
ZONE_KEYS: Final = frozenset({"time zone", "timezone", "utc offset", "tz"})
UNIT_KEYS: Final = frozenset({"unit", "units", "temperature unit", "temp unit"})


@dataclass(frozen=True)
class Reading:
    """One logged temperature: an aware UTC time, °C, and the logger that took it."""

    at: dt.datetime
    celsius: Decimal
    logger_id: str | None = None
    # The value as logged when the logger recorded °F; None when it recorded °C.
    fahrenheit: Decimal | None = None


class ReadingsError(ValueError):
    """A logger file celltrail cannot read; the message names the line and the reason."""

    def __init__(self, reason: str, *, line: int | None = None, reading: int | None = None) -> None:
        if line is not None:
            message = f"Line {line}: {reason}"
        elif reading is not None:
            message = f"Reading {reading}: {reason}"
        else:
            message = reason[:1].upper() + reason[1:]
        super().__init__(message)
        self.reason = reason
        self.line = line
        self.reading = reading


class ExcursionKind(enum.StrEnum):
    """What went wrong: too warm, kept too long, or not recorded."""

    TEMPERATURE = "temperature"
    HOLD_TIME = "hold_time"
    GAP = "gap"


@dataclass(frozen=True)
class Excursion:
    """A stretch of a shipment QA must look at before the vials in it may be used."""

    kind: ExcursionKind
    start: dt.datetime
    end: dt.datetime
    count: int  # readings inside it (0 for a gap)
    peak: Decimal | None  # the warmest of those readings, °C
    logger_id: str | None = None
    ongoing: bool = False  # the record ends inside it: nothing shows it ended

    @property
    def duration(self) -> dt.timedelta:
        """From its first to its last moment on record."""
        return self.end - self.start


def parse_readings(
    content: bytes | str,
    *,
    filename: str | None = None,
    timezone: dt.tzinfo | None = None,
    day_first: bool | None = None,
) -> list[Reading]:
    """The readings of a logger export (CSV/TSV or JSON), in time order, in UTC and °C.

    `timezone` is the zone of times that carry no offset when the file states none;
    `day_first` settles dates such as 03/07/2025 when no day in the file is above 12.
    """
    text = _decode(content)
    if (filename or "").lower().endswith(".json") or text.lstrip()[:1] in ("{", "["):
        located, unit = _json_readings(text, timezone), "reading"
    else:
        located, unit = _table_readings(text.splitlines(), timezone, day_first), "line"
    if not located:
        raise ReadingsError("the file holds no readings.")
    return _in_time_order(located, unit)


def parse_zone(text: str) -> dt.tzinfo:
    """A time zone as files and callers write it: UTC, an offset (UTC+02:00, -0400) or an
    IANA name; ReadingsError otherwise."""
    return _zone(text, _Where())


def find_excursions(
    readings: Iterable[Reading],
    *,
    limit_celsius: Decimal,
    hold_time: dt.timedelta | None = None,
    started_at: dt.datetime | None = None,
    now: dt.datetime | None = None,
    max_interval: dt.timedelta | None = None,
    min_duration: dt.timedelta = NO_TIME,
    tolerance: Decimal = NO_TOLERANCE,
) -> list[Excursion]:
    """Temperature excursions, a hold-time overrun and gaps in the record, by start time.

    Every reading given is judged: the caller trims a logger's record to the shipment.

    - TEMPERATURE: a maximal run of one logger's consecutive readings above the storage
      limit (a "≤ −150 °C" product is out at −149.9 °C; exactly −150 °C is in). One reading
      is enough: a cell therapy's storage condition is a limit, not an average, so
      `min_duration` defaults to zero. Its duration runs from the first to the last reading
      out of range; the product may have been out up to one logging interval longer at each
      end. A run the record ends in is `ongoing` and counts whatever its duration.
      `tolerance` (°C, default 0) lets readings up to limit + tolerance pass, for a
      validated profile that states one.
    - HOLD_TIME: the validated hold time since the shipper was charged and sealed
      (`started_at`) is exceeded by the last reading or by `now`, whichever is later.
    - GAP: two consecutive readings of one logger, or `started_at` and the first reading, or
      the last reading and `now`, more than `max_interval` apart. A logger that stopped is no
      proof of cold.
    """
    _check_arguments(
        limit=limit_celsius,
        hold_time=hold_time,
        started_at=started_at,
        now=now,
        max_interval=max_interval,
        min_duration=min_duration,
    )
    ordered = sorted(readings, key=lambda reading: reading.at)
    found: list[Excursion] = []
    for logger_id, series in _by_logger(ordered).items():
        found += _too_warm(series, limit_celsius + tolerance, min_duration, logger_id)
        if max_interval is not None:
            found += _gaps([r.at for r in series], max_interval, started_at, now, logger_id)
    if not ordered and max_interval is not None:
        found += _gaps([], max_interval, started_at, now, None)
    if hold_time is not None and started_at is not None:
        found += _hold_time_overrun(ordered, started_at + hold_time, now)
    kinds = list(ExcursionKind)
    return sorted(found, key=lambda e: (e.start, kinds.index(e.kind), e.logger_id or ""))


# --- reading files ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    line: int | None = None
    reading: int | None = None

    def fail(self, reason: str) -> NoReturn:
        raise ReadingsError(reason, line=self.line, reading=self.reading)


@dataclass(frozen=True)
class _Header:
    line: int  # index into the file's lines
    delimiter: str
    width: int
    temperature: int
    unit: str | None  # "C", "F", or None when the header does not say
    timestamp: int | None  # one column holding date and time
    date: int | None
    clock: int | None
    zone_column: int | None
    logger_column: int | None
    zone: dt.tzinfo | None  # stated by the time column's header


@dataclass(frozen=True)
class _Preamble:
    logger_id: str | None
    zone: dt.tzinfo | None
    unit: str | None


@dataclass(frozen=True)
class _Row:
    line: int
    time: str
    zone: str
    temperature: str
    logger_id: str


def _decode(content: bytes | str) -> str:
    if isinstance(content, str):
        text = content.removeprefix("\ufeff")
    elif content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = content.decode("utf-16")
    else:
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            # Windows logger software writes ° as the single byte 0xB0.
            try:
                text = content.decode("cp1252")
            except UnicodeDecodeError as error:
                raise ReadingsError("the file is not UTF-8, UTF-16 or Windows text.") from error
    if "\x00" in text:
        raise ReadingsError("the file is not text.")
    return text


def _json_readings(text: str, timezone: dt.tzinfo | None) -> list[tuple[int, Reading]]:
    try:
        data = json.loads(text, parse_float=Decimal, parse_int=Decimal, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise ReadingsError(f"the JSON is malformed ({error.msg}).", line=error.lineno) from error
    logger_id = _text_or_none(data.get("logger_id")) if isinstance(data, dict) else None
    items = data.get("readings") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ReadingsError('the JSON is neither a list of readings nor an object with "readings".')
    return [
        (index, _json_reading(item, _Where(reading=index), logger_id, timezone))
        for index, item in enumerate(items, start=1)
    ]


def _json_reading(
    item: object, where: _Where, logger_id: str | None, timezone: dt.tzinfo | None
) -> Reading:
    if not isinstance(item, dict):
        where.fail("it is not an object.")
    stamp = item.get("t")
    if not isinstance(stamp, str):
        where.fail('it has no time "t" as text.')
    moment = _iso(stamp) or where.fail(f"the time {stamp!r} is not ISO 8601.")
    if ("c" in item) == ("f" in item):
        where.fail('it needs one temperature: "c" (°C) or "f" (°F).')
    unit, value = ("C", item["c"]) if "c" in item else ("F", item["f"])
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        number = _number(value, where)
    else:
        where.fail(f"the temperature {value!r} is not a number.")
    celsius, fahrenheit = _to_celsius(number, unit)
    own_logger = _text_or_none(item.get("logger_id")) or logger_id
    return Reading(_to_utc(moment, timezone, where), celsius, own_logger, fahrenheit)


def _table_readings(
    lines: Sequence[str], timezone: dt.tzinfo | None, day_first: bool | None
) -> list[tuple[int, Reading]]:
    header = _find_header(lines)
    preamble = _read_preamble(lines[: header.line])
    unit = header.unit or preamble.unit
    if header.unit and preamble.unit and header.unit != preamble.unit:
        _Where(line=header.line + 1).fail("the header and the preamble disagree on the unit.")
    if unit is None:
        _Where(line=header.line + 1).fail("the temperature column does not say °C or °F.")
    rows = _rows(lines, header)
    time_format = _time_format(rows, day_first)
    zone = header.zone or preamble.zone or timezone
    return [
        (row.line, _table_reading(row, time_format, zone, unit, preamble.logger_id)) for row in rows
    ]


def _find_header(lines: Sequence[str]) -> _Header:
    for index, line in enumerate(lines[:HEADER_SEARCH_LINES]):
        for delimiter in DELIMITERS:
            if delimiter in line:
                cells = _split(line, delimiter, _Where(line=index + 1))
                header = _header(index, delimiter, cells)
                if header is not None:
                    return header
    raise ReadingsError(
        f"no header naming a time and a temperature column in the first "
        f"{HEADER_SEARCH_LINES} lines."
    )


def _header(index: int, delimiter: str, cells: Sequence[str]) -> _Header | None:
    roles: dict[str, list[int]] = {}
    for column, name in enumerate(cells):
        role = _role(_words(name))
        if role is not None:
            roles.setdefault(role, []).append(column)
    temperatures = roles.get("temperature", [])
    timestamp, date, clock = (
        _first(roles, "timestamp"),
        _first(roles, "date"),
        _first(roles, "time"),
    )
    if timestamp is None and (date is None or clock is None):
        timestamp, date, clock = clock if clock is not None else date, None, None
    if not temperatures or (timestamp is None and date is None):
        return None
    if len(temperatures) > 1:
        names = ", ".join(cells[column] for column in temperatures)
        _Where(line=index + 1).fail(f"the header names several temperature columns ({names}).")
    time_name = cells[timestamp if timestamp is not None else clock or 0]
    zone_text = ZONE_IN_HEADER.search(time_name.lower().translate(DEGREE_SIGNS))
    where = _Where(line=index + 1)
    return _Header(
        line=index,
        delimiter=delimiter,
        width=len(cells),
        temperature=temperatures[0],
        unit=_unit(_words(cells[temperatures[0]])),
        timestamp=timestamp,
        date=date,
        clock=clock,
        zone_column=_first(roles, "zone"),
        logger_column=_first(roles, "logger"),
        zone=_zone(zone_text.group(), where) if zone_text else None,
    )


def _first(roles: dict[str, list[int]], role: str) -> int | None:
    columns = roles.get(role)
    return columns[0] if columns else None


def _role(words: Sequence[str]) -> str | None:  # noqa: PLR0911 - one answer per role
    named = set(words)
    if named & {"zone", "timezone", "tz"} or {"utc", "offset"} <= named:
        return "zone"
    if named & {"temp", "temperature", "celsius", "fahrenheit"}:
        return "temperature"
    if named & {"logger", "serial", "device", "sensor"}:
        return "logger"
    if named & {"timestamp", "datetime"} or {"date", "time"} <= named:
        return "timestamp"
    if "date" in named:
        return "date"
    if "time" in named:
        return "time"
    return None


def _words(name: str) -> list[str]:
    return re.findall(r"°?[a-z]+", name.lower().translate(DEGREE_SIGNS))


def _unit(words: Sequence[str]) -> str | None:
    named = set(words)
    if named & {"°f", "f", "fahrenheit", "degf"}:
        return "F"
    if named & {"°c", "c", "celsius", "degc"}:
        return "C"
    return None


def _read_preamble(lines: Sequence[str]) -> _Preamble:
    logger_id: str | None = None
    zone: dt.tzinfo | None = None
    unit: str | None = None
    for index, line in enumerate(lines):
        match = re.fullmatch(r'\s*"?([^:,;\t=]+?)"?\s*[:,;\t=]\s*"?(.*?)"?[\s,;\t]*', line)
        if not match or not match.group(2):
            continue
        key, value, where = " ".join(_words(match.group(1))), match.group(2), _Where(index + 1)
        if key in LOGGER_KEYS:
            logger_id = value
        elif key in ZONE_KEYS:
            zone = _zone(value, where)
        elif key in UNIT_KEYS:
            unit = _unit(_words(value)) or where.fail(f"the unit {value!r} is neither °C nor °F.")
    return _Preamble(logger_id, zone, unit)


def _rows(lines: Sequence[str], header: _Header) -> list[_Row]:
    rows = []
    for index in range(header.line + 1, len(lines)):
        where = _Where(line=index + 1)
        cells = _split(lines[index], header.delimiter, where) if lines[index].strip() else []
        while cells and not cells[-1]:
            cells.pop()  # blank rows, and the trailing delimiters some exports write
        if not cells:
            continue
        if len(cells) > header.width:
            where.fail(f"it has {len(cells)} fields; the header has {header.width}.")
        cells += [""] * (header.width - len(cells))
        rows.append(_row(cells, header, where))
    if not rows:
        raise ReadingsError("the file has a header but no readings.", line=header.line + 1)
    return rows


def _row(cells: Sequence[str], header: _Header, where: _Where) -> _Row:
    if header.timestamp is not None:
        time = cells[header.timestamp]
    elif cells[header.date or 0] and cells[header.clock or 0]:
        time = f"{cells[header.date or 0]} {cells[header.clock or 0]}"
    else:
        time = ""
    if not time:
        where.fail("it has no date and time.")
    if not cells[header.temperature]:
        where.fail("it has no temperature.")
    return _Row(
        line=where.line or 0,
        time=time,
        zone=cells[header.zone_column] if header.zone_column is not None else "",
        temperature=cells[header.temperature],
        logger_id=cells[header.logger_column] if header.logger_column is not None else "",
    )


def _time_format(rows: Sequence[_Row], day_first: bool | None) -> str | None:
    """None when the file's times are ISO 8601, else the one explicit format they are in."""
    first = rows[0]
    if _iso(first.time) is not None:
        return None
    candidates = [form for form in TIME_FORMATS if _parses(first.time, form)]
    if not candidates:
        _Where(line=first.line).fail(
            f"the time {first.time!r} is neither ISO 8601 nor DD.MM.YYYY, YYYY/MM/DD, "
            "DD/MM/YYYY or MM/DD/YYYY with hh:mm[:ss] (or h:mm[:ss] AM/PM)."
        )
    for row in rows[1:]:
        candidates = [form for form in candidates if _parses(row.time, form)] or _Where(
            line=row.line
        ).fail(f"the time {row.time!r} is not in the format of the lines above.")
    day = [form for form in candidates if form.startswith("%d/")]
    month = [form for form in candidates if form.startswith("%m/")]
    if day and month and day_first is None:
        raise ReadingsError(
            "every date could be day-first or month-first (no day is above 12); "
            "say which with day_first."
        )
    if day_first is not None and (day or month) and not (day if day_first else month):
        raise ReadingsError("the dates are not in the order day_first says.")
    return (day if day_first else month)[0] if day and month else candidates[0]


def _table_reading(
    row: _Row, time_format: str | None, zone: dt.tzinfo | None, unit: str, logger_id: str | None
) -> Reading:
    where = _Where(line=row.line)
    if time_format is None:
        moment = _iso(row.time) or where.fail(
            f"the time {row.time!r} is not ISO 8601 like the lines above."
        )
    else:
        moment = dt.datetime.strptime(row.time, time_format)  # noqa: DTZ007 - zoned below
    own_zone = _zone(row.zone, where) if row.zone else zone
    celsius, fahrenheit = _to_celsius(_number(row.temperature, where), unit)
    return Reading(
        _to_utc(moment, own_zone, where), celsius, row.logger_id or logger_id, fahrenheit
    )


def _in_time_order(located: Iterable[tuple[int, Reading]], unit: str) -> list[Reading]:
    kept: dict[tuple[str | None, dt.datetime], tuple[int, Reading]] = {}
    for place, reading in located:
        key = (reading.logger_id, reading.at)
        if key not in kept:
            kept[key] = (place, reading)
        elif kept[key][1].celsius != reading.celsius:
            first_place, first = kept[key]
            where = _Where(line=place) if unit == "line" else _Where(reading=place)
            where.fail(
                f"it repeats the time of {unit} {first_place} ({reading.at:%Y-%m-%d %H:%M:%S} "
                f"UTC) with another temperature ({first.celsius} °C, then {reading.celsius} °C)."
            )
    return sorted((reading for _, reading in kept.values()), key=_time_then_logger)


def _time_then_logger(reading: Reading) -> tuple[dt.datetime, str]:
    return reading.at, reading.logger_id or ""


def _split(line: str, delimiter: str, where: _Where) -> list[str]:
    try:
        cells = next(csv.reader([line], delimiter=delimiter, strict=True), [])
    except csv.Error as error:
        where.fail(f"it is not a well-formed CSV line ({error}).")
    return [cell.strip() for cell in cells]


def _iso(text: str) -> dt.datetime | None:
    if not ISO_TIME_PART.search(text):
        return None  # a bare date is no reading time
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _parses(text: str, time_format: str) -> bool:
    try:
        dt.datetime.strptime(text, time_format)  # noqa: DTZ007 - only checks the shape
    except ValueError:
        return False
    return True


def _zone(text: str, where: _Where) -> dt.tzinfo:
    cleaned = text.strip()
    if cleaned.upper() in {"UTC", "GMT", "Z"}:
        return dt.UTC
    match = OFFSET.fullmatch(cleaned)
    if match:
        sign, hours, minutes = match.groups()
        offset = dt.timedelta(hours=int(hours), minutes=int(minutes or 0))
        if offset > dt.timedelta(hours=14):
            where.fail(f"the UTC offset {text!r} is beyond ±14:00.")
        return dt.timezone(-offset if sign == "-" else offset)
    try:
        return zoneinfo.ZoneInfo(cleaned)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        where.fail(f"the time zone {text!r} is neither a UTC offset nor a known zone name.")


def _to_utc(moment: dt.datetime, zone: dt.tzinfo | None, where: _Where) -> dt.datetime:
    if moment.tzinfo is None:
        if zone is None:
            where.fail(
                f"the time {moment:%Y-%m-%d %H:%M:%S} has no UTC offset and the file states "
                "no time zone; export in UTC or give the logger's time zone."
            )
        moment = moment.replace(tzinfo=zone)
        if moment.utcoffset() != moment.replace(fold=1).utcoffset():
            where.fail(
                f"the local time {moment:%Y-%m-%d %H:%M:%S} is ambiguous or skipped in {zone} "
                "(a daylight-saving change); export in UTC."
            )
    return moment.astimezone(dt.UTC)


def _number(text: str, where: _Where) -> Decimal:
    cleaned = text.strip().replace("\u2212", "-")
    if not NUMBER.fullmatch(cleaned):
        where.fail(f"the temperature {text!r} is not a number.")
    return Decimal(cleaned.replace(",", "."))


def _to_celsius(value: Decimal, unit: str) -> tuple[Decimal, Decimal | None]:
    if unit == "C":
        return value, None
    return ((value - 32) * 5 / 9).quantize(FAHRENHEIT_STEP, rounding=ROUND_CEILING), value


def _text_or_none(value: object) -> str | None:
    return str(value) if isinstance(value, str | Decimal) and str(value) else None


def _no_constant(name: str) -> NoReturn:
    raise ReadingsError(f"the JSON holds {name}, which is not a temperature.")


# --- judging readings --------------------------------------------------------------------


def _check_arguments(
    *,
    limit: Decimal,
    hold_time: dt.timedelta | None,
    started_at: dt.datetime | None,
    now: dt.datetime | None,
    max_interval: dt.timedelta | None,
    min_duration: dt.timedelta,
) -> None:
    if not limit.is_finite():
        raise ValueError("the storage limit must be a finite temperature")
    if any(moment is not None and moment.tzinfo is None for moment in (started_at, now)):
        raise ValueError("started_at and now must be timezone-aware")
    if hold_time is not None and started_at is None:
        raise ValueError("a hold time needs the time the shipper was charged (started_at)")
    if max_interval is not None and max_interval <= NO_TIME:
        raise ValueError("the maximum interval between readings must be positive")
    if min_duration < NO_TIME:
        raise ValueError("the minimum duration cannot be negative")


def _by_logger(readings: Iterable[Reading]) -> dict[str | None, list[Reading]]:
    series: dict[str | None, list[Reading]] = {}
    for reading in readings:
        series.setdefault(reading.logger_id, []).append(reading)
    return series


def _too_warm(
    series: Sequence[Reading], threshold: Decimal, min_duration: dt.timedelta, logger: str | None
) -> list[Excursion]:
    runs: list[list[Reading]] = []
    for previous, reading in pairwise([None, *series]):
        if reading is not None and reading.celsius > threshold:
            if previous is None or previous.celsius <= threshold:
                runs.append([])
            runs[-1].append(reading)
    found = []
    for run in runs:
        ongoing = run[-1] is series[-1]
        excursion = Excursion(
            ExcursionKind.TEMPERATURE,
            start=run[0].at,
            end=run[-1].at,
            count=len(run),
            peak=max(reading.celsius for reading in run),
            logger_id=logger,
            ongoing=ongoing,
        )
        if ongoing or excursion.duration >= min_duration:
            found.append(excursion)
    return found


def _gaps(
    times: Sequence[dt.datetime],
    max_interval: dt.timedelta,
    started_at: dt.datetime | None,
    now: dt.datetime | None,
    logger: str | None,
) -> list[Excursion]:
    points = list(times)
    if started_at is not None and (not points or started_at < points[0]):
        points.insert(0, started_at)
    open_end = now is not None and (not points or now > points[-1])
    if open_end and now is not None:
        points.append(now)
    found = []
    for index, (before, after) in enumerate(pairwise(points), start=2):
        if after - before > max_interval:
            ongoing = open_end and index == len(points)
            found.append(Excursion(ExcursionKind.GAP, before, after, 0, None, logger, ongoing))
    return found


def _hold_time_overrun(
    readings: Sequence[Reading], expires_at: dt.datetime, now: dt.datetime | None
) -> list[Excursion]:
    ends = [moment for moment in (now, readings[-1].at if readings else None) if moment]
    if not ends or max(ends) <= expires_at:
        return []
    late = [reading for reading in readings if reading.at > expires_at]
    peak = max((reading.celsius for reading in late), default=None)
    return [
        Excursion(ExcursionKind.HOLD_TIME, expires_at, max(ends), len(late), peak, ongoing=True)
    ]
