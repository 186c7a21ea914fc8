"""A shipment's cold chain: logger readings attached, excursions found, QA's disposition.

Importing a logger file (`import_readings`) parses it (custody.temperature), attaches the
readings not yet recorded (re-importing a file adds nothing), and judges the shipment's
readings between sealing and receipt against its storage limit and validated hold time.
Each excursion not already on record gets one EXCURSION_DETECTED event on the shipment's
chain; from then on every vial that travelled in the shipper reads as quarantined
(custody.vials) until QA signs a disposition (`dispose_excursion`): "use" lifts the hold,
"destroy" also writes DESTROYED on each affected vial's chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.ledger import EventDraft, append_events, format_time
from custody.shipping.cold_chain_models import Disposition, ShipmentExcursion, TemperatureReading
from custody.shipping.models import Shipment, ShipmentVial
from custody.shipping.shipments import ShipmentStateError, get_shipment, packed
from custody.shipping.temperature import (
    Excursion,
    ExcursionKind,
    Reading,
    ReadingsError,
    find_excursions,
    parse_readings,
)
from custody.shipping.vials import FINAL_STATES, vial_status
from lots.access import Permission, require
from lots.batch import Lot, Vial
from lots.errors import DomainError, InvalidValueError, NotFoundError
from lots.models import ProductVersion, Site, User
from lots.signatures import sign
from lots.time_rules import is_in_the_future

# The name readings go under when neither the file nor the shipment names the logger.
UNNAMED_LOGGER: Final = "unnamed"
LOGGER_ID_LENGTH: Final = 40
# Stored to 0.001 °C: a finer value would be rounded, and rounding could hide an excursion.
DECIMALS: Final = 3
COLDEST: Final = Decimal("-273.15")
WARMEST: Final = Decimal(1000)
# A logger reads every few minutes: its first and last readings may miss sealing and
# receipt by this much and still cover the transit.
RECORD_SLACK: Final = dt.timedelta(minutes=30)
USE_MEANING: Final = "Excursion reviewed: the vials may be used"
DESTROY_MEANING: Final = "Excursion reviewed: the vials are to be destroyed"


class ReadingsRefusedError(InvalidValueError):
    """A logger file or reading celltrail will not attach; the message names the line."""

    title = "Readings refused"

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__("file", message)
        self.facts["line"] = line
        self.line = line


class ExcursionStateError(DomainError):
    """An excursion QA has already disposed of."""

    status = 409
    title = "Excursion already disposed"


@dataclass(frozen=True)
class ImportResult:
    """What one import attached and found."""

    shipment: Shipment
    added: int
    already_recorded: int
    excursions: list[ShipmentExcursion]  # the ones this import found new
    event_hash: str | None  # the TEMPERATURE_LOGGED event, when readings were added


def import_readings(
    session: Session,
    user: User,
    sscc: str,
    content: bytes | str,
    *,
    filename: str | None = None,
    now: dt.datetime,
    timezone: dt.tzinfo | None = None,
    day_first: bool | None = None,
) -> ImportResult:
    """Attach a logger file's readings to a sealed shipment and record new excursions."""
    require(user, Permission.TEMPERATURE_IMPORT)
    shipment = get_shipment(session, sscc, for_update=True)
    if shipment.sealed_at is None:
        raise ShipmentStateError(
            f"Shipper {sscc} is not sealed yet: its logger's record starts when it is sealed."
        )
    try:
        parsed = parse_readings(content, filename=filename, timezone=timezone, day_first=day_first)
    except ReadingsError as error:
        raise ReadingsRefusedError(str(error), line=error.line) from error
    readings = [_checked(reading, shipment, now) for reading in parsed]
    stored = {(row.logger_id, row.at): row for row in shipment_readings(session, shipment)}
    new = [reading for reading in readings if _is_new(reading, stored)]
    event_hash = None
    if new:
        event_hash = _attach(
            session, user, shipment, new, content=content, filename=filename, now=now
        )
    found = _judge(session, shipment, now)
    recorded = _record_excursions(session, user, shipment, found, now)
    return ImportResult(shipment, len(new), len(readings) - len(new), recorded, event_hash)


@dataclass(frozen=True)
class TemperatureRecord:
    """A shipper's logger record against its products' policy: whether readings must cover
    the transit from sealing to receipt, and whether those attached do."""

    sscc: str
    required: bool
    first_reading: dt.datetime | None
    last_reading: dt.datetime | None
    covered: bool
    received: bool

    @property
    def missing(self) -> bool:
        """Received without the record its products require: no complete receipt, no GO."""
        return self.required and self.received and not self.covered

    @property
    def problem(self) -> str | None:
        """The plain reason the record falls short, or None."""
        if not self.missing:
            return None
        if self.first_reading is None:
            return (
                f"No temperature record is attached to shipper {self.sscc}: its product "
                "requires logger readings covering the transit from sealing to receipt."
            )
        return (
            f"The temperature record of shipper {self.sscc} ({format_time(self.first_reading)}"
            f" to {format_time(self.last_reading or self.first_reading)}) does not cover the "
            "transit from sealing to receipt."
        )


def covers(
    first: dt.datetime | None,
    last: dt.datetime | None,
    sealed: dt.datetime | None,
    received: dt.datetime | None,
) -> bool:
    """Whether readings from `first` to `last` cover a transit from sealing to receipt."""
    if first is None or last is None or received is None:
        return False
    starts_in_time = sealed is None or first <= sealed + RECORD_SLACK
    return starts_in_time and last >= received - RECORD_SLACK


def temperature_record(session: Session, shipment: Shipment) -> TemperatureRecord:
    """The shipper's record: required when any product version of a vial still packed in it
    requires one (blinded trials' arms agree on the policy, custody.trials.protocols)."""
    required = session.scalar(
        select(ShipmentVial.id)
        .join(Vial, Vial.id == ShipmentVial.vial_id)
        .join(Lot, Lot.id == Vial.lot_id)
        .join(ProductVersion, ProductVersion.id == Lot.product_version_id)
        .where(
            ShipmentVial.shipment_id == shipment.id,
            ShipmentVial.unpacked_at.is_(None),
            ProductVersion.temperature_record_required.is_(True),
        )
        .limit(1)
    )
    first, last = session.execute(
        select(func.min(TemperatureReading.at), func.max(TemperatureReading.at)).where(
            TemperatureReading.shipment_id == shipment.id
        )
    ).one()
    return TemperatureRecord(
        sscc=shipment.sscc,
        required=required is not None,
        first_reading=first,
        last_reading=last,
        covered=covers(first, last, shipment.sealed_at, shipment.received_at),
        received=shipment.received_at is not None,
    )


def judge_shipment(
    session: Session, user: User, shipment: Shipment, *, now: dt.datetime
) -> list[ShipmentExcursion]:
    """Record what the readings on file and the clock show now: at receipt, a shipper that
    took longer than its validated hold time is an excursion even if no logger file came."""
    return _record_excursions(session, user, shipment, _judge(session, shipment, now), now)


def dispose_excursion(
    session: Session,
    hasher: PasswordHasher,
    user: User,
    sscc: str,
    excursion_id: int,
    *,
    decision: str,
    reason: str,
    password: str,
    meaning: str | None = None,
    remote_addr: str = "unknown",
    now: dt.datetime,
) -> ShipmentExcursion:
    """QA's signed decision on an excursion: use the shipper's vials, or destroy them."""
    require(user, Permission.EXCURSIONS_DISPOSE)
    if decision not in set(Disposition):
        raise InvalidValueError("decision", f"{decision!r} is neither 'use' nor 'destroy'.")
    if not reason.strip():
        raise InvalidValueError("reason", "A disposition states its reason.")
    shipment = get_shipment(session, sscc, for_update=True)
    excursion = session.scalar(
        select(ShipmentExcursion).where(
            ShipmentExcursion.id == excursion_id, ShipmentExcursion.shipment_id == shipment.id
        )
    )
    if excursion is None:
        raise NotFoundError("excursion", f"{excursion_id} of shipper {sscc}")
    if excursion.disposition is not None:
        raise ExcursionStateError(
            f"Excursion {excursion.id} of shipper {sscc} was already disposed of "
            f"({excursion.disposition}).",
            excursion=excursion.id,
        )
    default = USE_MEANING if decision == Disposition.USE else DESTROY_MEANING
    signature = sign(
        session,
        hasher,
        user,
        password=password,
        meaning=meaning or default,
        remote_addr=remote_addr,
        now=now,
    )
    vials = [row.vial for row in packed(session, shipment)]
    facts = {
        **_excursion_facts(shipment, excursion),
        "decision": decision,
        "reason": reason,
        "signature": signature,
    }
    (event,) = append_events(
        session,
        [
            EventDraft(
                shipment.chain,
                "EXCURSION_DISPOSITIONED",
                now,
                {**facts, "vials": [vial.serial for vial in vials]},
                user,
                user.site,
            )
        ],
    )
    if decision == Disposition.DESTROY:
        _destroy(
            session,
            user,
            shipment,
            excursion,
            vials=vials,
            disposition_hash=event.hash,
            facts=facts,
            now=now,
        )
    excursion.disposition, excursion.disposition_reason = decision, reason
    excursion.disposed_by, excursion.disposed_at = user, now
    excursion.disposition_event_hash = event.hash
    session.flush()
    return excursion


def shipment_readings(session: Session, shipment: Shipment) -> list[TemperatureReading]:
    """The shipment's readings in time order."""
    return list(
        session.scalars(
            select(TemperatureReading)
            .where(TemperatureReading.shipment_id == shipment.id)
            .order_by(TemperatureReading.at, TemperatureReading.logger_id)
        )
    )


def shipment_excursions(session: Session, shipment: Shipment) -> list[ShipmentExcursion]:
    """The shipment's excursions in the order they were found."""
    return list(
        session.scalars(
            select(ShipmentExcursion)
            .where(ShipmentExcursion.shipment_id == shipment.id)
            .order_by(ShipmentExcursion.id)
        )
    )


def plain(value: Decimal) -> str:
    """A temperature as people write it: -148.1, not -148.100 (as stored) or -1.481E+2."""
    return f"{value.normalize():f}"


def as_reading(row: TemperatureReading) -> Reading:
    """A stored reading as custody.temperature judges it."""
    return Reading(row.at, row.celsius, row.logger_id, row.fahrenheit)


def judged_window(shipment: Shipment) -> tuple[dt.datetime | None, dt.datetime | None]:
    """From sealing to receipt: the readings that count for the vials inside."""
    return shipment.sealed_at, shipment.received_at


def _checked(reading: Reading, shipment: Shipment, now: dt.datetime) -> Reading:
    logger_id = reading.logger_id or shipment.logger_id or UNNAMED_LOGGER
    moment = f"{reading.at:%Y-%m-%d %H:%M:%S} UTC"
    if shipment.logger_id and logger_id != shipment.logger_id:
        raise ReadingsRefusedError(
            f"The file holds readings of logger {logger_id}; shipper {shipment.sscc} carries "
            f"logger {shipment.logger_id}."
        )
    if len(logger_id) > LOGGER_ID_LENGTH:
        raise ReadingsRefusedError(f"The logger id {logger_id[:50]!r} is over 40 characters.")
    if is_in_the_future(reading.at, now):
        raise ReadingsRefusedError(
            f"The reading at {moment} is in the future: check the logger's clock or time zone."
        )
    exponent = reading.celsius.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -DECIMALS:
        raise ReadingsRefusedError(
            f"The reading at {moment} ({reading.celsius} °C) has more than {DECIMALS} decimals."
        )
    if not COLDEST <= reading.celsius <= WARMEST:
        raise ReadingsRefusedError(
            f"The reading at {moment} ({reading.celsius} °C) is not a possible temperature."
        )
    return Reading(reading.at, reading.celsius, logger_id, reading.fahrenheit)


def _is_new(reading: Reading, stored: dict[tuple[str, dt.datetime], TemperatureReading]) -> bool:
    """Whether the reading is not on record yet; the same instant with another value is
    refused, since a recorded reading is never replaced."""
    row = stored.get((reading.logger_id or UNNAMED_LOGGER, reading.at))
    if row is None:
        return True
    if row.celsius != reading.celsius:
        raise ReadingsRefusedError(
            f"Logger {row.logger_id} at {reading.at:%Y-%m-%d %H:%M:%S} UTC was recorded as "
            f"{plain(row.celsius)} °C; this file says {reading.celsius} °C."
        )
    return False


def _attach(
    session: Session,
    user: User,
    shipment: Shipment,
    readings: Sequence[Reading],
    *,
    content: bytes | str,
    filename: str | None,
    now: dt.datetime,
) -> str:
    raw = content.encode() if isinstance(content, str) else content
    lines = "".join(f"{format_time(r.at)},{r.logger_id},{r.celsius}\n" for r in readings)
    (event,) = append_events(
        session,
        [
            EventDraft(
                shipment.chain,
                "TEMPERATURE_LOGGED",
                now,
                {
                    "sscc": shipment.sscc,
                    "file": filename,
                    "file_sha256": hashlib.sha256(raw).hexdigest(),
                    "loggers": sorted({r.logger_id or UNNAMED_LOGGER for r in readings}),
                    "added": len(readings),
                    "first": format_time(readings[0].at),
                    "last": format_time(readings[-1].at),
                    # "time,logger,°C" lines of the readings added: the table can be checked.
                    "readings_sha256": hashlib.sha256(lines.encode()).hexdigest(),
                },
                user,
                user.site,
            )
        ],
    )
    session.add_all(
        TemperatureReading(
            shipment_id=shipment.id,
            at=reading.at,
            celsius=reading.celsius,
            fahrenheit=reading.fahrenheit,
            logger_id=reading.logger_id or UNNAMED_LOGGER,
            event_hash=event.hash,
        )
        for reading in readings
    )
    session.flush()
    return event.hash


def _judge(session: Session, shipment: Shipment, now: dt.datetime) -> list[Excursion]:
    start, end = judged_window(shipment)
    readings = [
        as_reading(row)
        for row in shipment_readings(session, shipment)
        if (start is None or row.at >= start) and (end is None or row.at <= end)
    ]
    if shipment.storage_limit_c is None:
        return []
    return find_excursions(
        readings,
        limit_celsius=shipment.storage_limit_c,
        hold_time=dt.timedelta(hours=shipment.hold_time_hours),
        started_at=start,
        now=end or now,
    )


def _record_excursions(
    session: Session,
    user: User,
    shipment: Shipment,
    found: Sequence[Excursion],
    now: dt.datetime,
) -> list[ShipmentExcursion]:
    known = shipment_excursions(session, shipment)
    new = [excursion for excursion in found if not _on_record(excursion, known)]
    if not new:
        return []
    rows = [
        ShipmentExcursion(
            shipment_id=shipment.id,
            kind=excursion.kind.value,
            logger_id=excursion.logger_id,
            started_at=excursion.start,
            ended_at=excursion.end,
            peak_c=excursion.peak,
            reading_count=excursion.count,
            ongoing=excursion.ongoing,
            detected_at=now,
            event_hash="",
        )
        for excursion in new
    ]
    session.add_all(rows)
    session.flush()
    serials = [row.vial.serial for row in packed(session, shipment)]
    events = append_events(
        session,
        [
            EventDraft(
                shipment.chain,
                "EXCURSION_DETECTED",
                now,
                {**_excursion_facts(shipment, row), "vials": serials},
                user,
                user.site,
            )
            for row in rows
        ],
    )
    for row, event in zip(rows, events, strict=True):
        row.event_hash = event.hash
    session.flush()
    return rows


def _on_record(excursion: Excursion, known: Sequence[ShipmentExcursion]) -> bool:
    """Whether an excursion on record already covers this one (QA saw all of it).

    A hold-time overrun happens once per shipment. A temperature excursion is covered by a
    recorded one of the same logger that spans it with a peak at least as warm; one that
    grew (more readings came) is recorded anew, for QA to see the rest.
    """
    for row in known:
        if row.kind != excursion.kind:
            continue
        if excursion.kind == ExcursionKind.HOLD_TIME:
            return True
        if (
            row.logger_id == excursion.logger_id
            and row.started_at <= excursion.start
            and excursion.end <= row.ended_at
            and (
                excursion.peak is None or (row.peak_c is not None and excursion.peak <= row.peak_c)
            )
        ):
            return True
    return False


def _no_warmer(peak: Decimal | None, recorded: Decimal | None) -> bool:
    return peak is None or (recorded is not None and peak <= recorded)


def _excursion_facts(shipment: Shipment, excursion: ShipmentExcursion) -> dict[str, object]:
    return {
        "sscc": shipment.sscc,
        "excursion": excursion.id,
        "kind": excursion.kind,
        "logger_id": excursion.logger_id,
        "start": format_time(excursion.started_at),
        "end": format_time(excursion.ended_at),
        "peak_c": None if excursion.peak_c is None else plain(excursion.peak_c),
        "readings": excursion.reading_count,
        "ongoing": excursion.ongoing,
        "storage_limit_c": (
            None if shipment.storage_limit_c is None else str(shipment.storage_limit_c)
        ),
        "hold_time_hours": shipment.hold_time_hours,
        "sealed_at": format_time(shipment.sealed_at) if shipment.sealed_at else None,
    }


def _destroy(
    session: Session,
    user: User,
    shipment: Shipment,
    excursion: ShipmentExcursion,
    *,
    vials: Sequence[Vial],
    disposition_hash: str,
    facts: dict[str, object],
    now: dt.datetime,
) -> None:
    """DESTROYED on the chain of each vial not already administered or destroyed, at the
    site where the vial is, pointing to QA's signed disposition."""
    status = vial_status(session, vials)
    live = [vial for vial in vials if status[vial.serial][0] not in FINAL_STATES]
    codes = {status[vial.serial][1] for vial in live} - {None}
    sites = {site.code: site for site in session.scalars(select(Site).where(Site.code.in_(codes)))}
    append_events(
        session,
        [
            EventDraft(
                vial.chain,
                "DESTROYED",
                now,
                {
                    "sscc": shipment.sscc,
                    "serial": vial.serial,
                    "excursion": excursion.id,
                    "disposition_event": disposition_hash,
                    "reason": facts["reason"],
                    "signature": facts["signature"],
                },
                user,
                sites.get(status[vial.serial][1] or "", user.site),
            )
            for vial in live
        ],
    )
