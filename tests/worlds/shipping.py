"""Shipments made through the services for the cold-chain and EPCIS tests, on a test clock.

The custody commands take the time as `now`; the clock here hands it out (and the app's
views read it too, as `app.config["CLOCK"]`: the `clock` fixture), so a journey can run
through the morning the sample logger files in tests/data were recorded (2025-07-14,
readings 06:00-07:45 UTC).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.demo import USERS
from custody.shipping import (
    Shipment,
    create_shipment,
    pack_vials,
    receive,
    record_handoff,
    seal,
    ship,
    vial_states,
)
from lots.accounts import get_user, password_hasher
from lots.batch import Lot, Vial

SAMPLES = Path(__file__).resolve().parents[1] / "data"
LOT = "XS228-2610-01"  # the released demo lot
# Sealed half an hour before the sample files' first reading.
SEALED_AT = dt.datetime(2025, 7, 14, 5, 30, tzinfo=dt.UTC)
AFTER_READINGS = dt.datetime(2025, 7, 14, 8, 0, tzinfo=dt.UTC)
PASSWORDS = {user.username: user.password for user in USERS}


class Clock:
    """The time a test hands the custody commands (and the app's views); it moves only when
    told."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def at(self, moment: dt.datetime) -> dt.datetime:
        """Set the clock to a moment (never backwards)."""
        assert moment >= self.now
        self.now = moment
        return moment

    def advance(self, **delta: float) -> dt.datetime:
        """Move the clock on."""
        self.now += dt.timedelta(**delta)
        return self.now


def in_stock(session: Session, count: int, lot: str = LOT) -> list[str]:
    """Serials of `count` vials of the lot that are in stock now (others may be packed)."""
    vials = list(
        session.scalars(
            select(Vial).join(Lot, Lot.id == Vial.lot_id).where(Lot.number == lot).order_by(Vial.id)
        )
    )
    states = vial_states(session, vials)
    serials = [vial.serial for vial in vials if states[vial.serial] == "in_stock"]
    assert len(serials) >= count, f"only {len(serials)} vials of {lot} are in stock"
    return serials[:count]


def sealed_shipment(
    session: Session,
    clock: Clock,
    *,
    vials: int = 3,
    logger_id: str | None = None,
    hold_time_hours: int = 120,
) -> Shipment:
    """A shipper of released XS228 vials for the Sun Yat-sen pharmacy, sealed at the clock."""
    maker = get_user(session, "manufacturing")
    shipment = create_shipment(
        session,
        maker,
        to_site_code="SYSU3-PH",
        hold_time_hours=hold_time_hours,
        logger_id=logger_id,
        asset_id="DS-17",
        now=clock(),
    )
    pack_vials(session, maker, shipment.sscc, in_stock(session, vials), now=clock())
    seal(session, maker, shipment.sscc, f"SEAL-{shipment.sscc[-6:]}", now=clock())
    assert shipment.storage_limit_c == Decimal("-150.0")
    return shipment


def deliver(session: Session, clock: Clock, shipment: Shipment) -> None:
    """Ship to courier, hand to courier2 after 4 h, receive at the pharmacy after 8 h."""
    maker = get_user(session, "manufacturing")
    hasher = password_hasher("cheapest")
    ship(session, maker, shipment.sscc, "courier", now=clock.advance(minutes=5))
    moment = clock.advance(hours=4)
    record_handoff(
        session,
        hasher,
        get_user(session, "courier2"),
        shipment.sscc,
        giver_username="courier",
        occurred_at=moment,
        now=moment,
    )
    moment = clock.advance(hours=4)
    receive(
        session,
        hasher,
        get_user(session, "pharmacist"),
        shipment.sscc,
        seal_number=shipment.seal_number or "",
        giver_username="courier2",
        password=PASSWORDS["pharmacist"],
        now=moment,
    )


def sample(name: str) -> bytes:
    """A sample logger file, byte for byte."""
    return (SAMPLES / name).read_bytes()


def readings_csv(start: dt.datetime, celsius: list[str], *, minutes: int = 15) -> str:
    """A Timestamp,Temperature (°C) logger file, one reading every `minutes` from `start`."""
    lines = ["Timestamp,Temperature (°C)"]
    for index, value in enumerate(celsius):
        moment = start + dt.timedelta(minutes=minutes * index)
        lines.append(f"{moment:%Y-%m-%dT%H:%M:%SZ},{value}")
    return "\n".join(lines) + "\n"
