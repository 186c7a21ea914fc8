"""A shipper's logger readings, the excursions they show, and QA's signed disposition."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.keys import trusted_keys
from custody.ledger import chain_events, verify_ledger
from custody.shipping import (
    ExcursionStateError,
    ReadingsRefusedError,
    ShipmentStateError,
    VialHandlingError,
    create_shipment,
    dispose_excursion,
    import_readings,
    packed,
    shipment_excursions,
    shipment_readings,
    store,
    vial_states,
)
from lots.accounts import get_user, password_hasher
from lots.errors import ForbiddenError, InvalidValueError
from lots.signatures import SignatureRefusedError
from tests.worlds.shipping import (
    AFTER_READINGS,
    PASSWORDS,
    deliver,
    readings_csv,
    sample,
    sealed_shipment,
)

HASHER = password_hasher("cheapest")
SAMPLE_FILES = [
    "timestamp_celsius.csv",
    "dry_shipper_preamble.csv",
    "fahrenheit_us.csv",
    "iso_offsets_newest_first.csv",
    "semicolon_decimal_comma.csv",
    "zone_column.tsv",
    "shipper_logger.json",
    "readings_list.json",
]
COLD = ["-185.2", "-184.9", "-184.7", "-185.0"]


@pytest.fixture
def shipment(session, clock):
    return sealed_shipment(session, clock)


def states(session, shipment) -> set[str]:
    vials = [row.vial for row in packed(session, shipment)]
    return set(vial_states(session, vials).values())


def upload(session, shipment, name, *, who="courier", now=AFTER_READINGS):
    return import_readings(
        session, get_user(session, who), shipment.sscc, sample(name), filename=name, now=now
    )


def dispose(session, shipment, excursion, decision, *, who="qa", password=None, now=None):
    return dispose_excursion(
        session,
        HASHER,
        get_user(session, who),
        shipment.sscc,
        excursion.id,
        decision=decision,
        reason="Logger shows 30 min above −150 °C; stability data covers −140 °C for 2 h.",
        password=password or PASSWORDS[who],
        now=now or AFTER_READINGS,
    )


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_each_logger_export_shape_attaches_its_eight_readings(session, shipment, name):
    result = upload(session, shipment, name)

    readings = shipment_readings(session, shipment)
    assert result.added == 8
    assert [reading.at.strftime("%H:%M") for reading in readings][:2] == ["06:00", "06:15"]
    assert readings[3].celsius == Decimal("-149.6")


@pytest.mark.parametrize("name", SAMPLE_FILES)
def test_the_warm_half_hour_in_each_sample_is_one_temperature_excursion(session, shipment, name):
    (excursion,) = upload(session, shipment, name).excursions

    assert excursion.kind == "temperature"
    assert excursion.started_at == dt.datetime(2025, 7, 14, 6, 45, tzinfo=dt.UTC)
    assert excursion.ended_at == dt.datetime(2025, 7, 14, 7, 0, tzinfo=dt.UTC)
    assert excursion.reading_count == 2
    assert excursion.peak_c == Decimal("-148.1")


def test_an_excursion_is_recorded_on_the_shipment_chain_listing_the_vials(session, shipment):
    result = upload(session, shipment, "timestamp_celsius.csv")

    events = chain_events(session, shipment.chain)
    detected = [event for event in events if event.event_type == "EXCURSION_DETECTED"]
    assert [event.event_type for event in events][-2:] == [
        "TEMPERATURE_LOGGED",
        "EXCURSION_DETECTED",
    ]
    assert detected[0].hash == result.excursions[0].event_hash
    assert b'"peak_c":"-148.1"' in detected[0].body
    assert all(row.vial.serial.encode() in detected[0].body for row in packed(session, shipment))


def test_a_planted_excursion_quarantines_every_vial_in_the_shipper(session, shipment):
    assert states(session, shipment) == {"packed"}

    upload(session, shipment, "timestamp_celsius.csv")

    assert states(session, shipment) == {"quarantined"}


def test_qa_using_the_vials_puts_them_back_in_their_state(session, clock, shipment):
    deliver(session, clock, shipment)
    (excursion,) = upload(
        session, shipment, "timestamp_celsius.csv", who="pharmacist", now=clock()
    ).excursions
    assert states(session, shipment) == {"quarantined"}

    disposed = dispose(session, shipment, excursion, "use", now=clock())

    assert states(session, shipment) == {"received"}
    assert disposed.disposition == "use"
    assert disposed.disposed_by.username == "qa"
    last = chain_events(session, shipment.chain)[-1]
    assert last.event_type == "EXCURSION_DISPOSITIONED"
    assert b'"meaning":"Excursion reviewed: the vials may be used"' in last.body


def test_qa_destroying_the_vials_writes_destroyed_on_each_vials_chain(session, clock, shipment):
    deliver(session, clock, shipment)
    (excursion,) = upload(
        session, shipment, "timestamp_celsius.csv", who="pharmacist", now=clock()
    ).excursions

    disposed = dispose(session, shipment, excursion, "destroy", now=clock())

    assert states(session, shipment) == {"destroyed"}
    for row in packed(session, shipment):
        destroyed = chain_events(session, row.vial.chain)[-1]
        assert destroyed.event_type == "DESTROYED"
        assert disposed.disposition_event_hash.encode() in destroyed.body
        assert destroyed.site_id == get_user(session, "pharmacist").site_id  # where the vial is


def test_vials_stay_quarantined_while_another_excursion_awaits_qa(session, clock, shipment):
    upload(session, shipment, "timestamp_celsius.csv")
    later = readings_csv(dt.datetime(2025, 7, 14, 9, 0, tzinfo=dt.UTC), ["-185.0", "-140.2"])
    (first,) = shipment_excursions(session, shipment)
    courier = get_user(session, "courier")
    (second,) = import_readings(
        session, courier, shipment.sscc, later, now=AFTER_READINGS + dt.timedelta(hours=2)
    ).excursions

    dispose(session, shipment, first, "use")

    assert second.open
    assert states(session, shipment) == {"quarantined"}


def test_quarantined_vials_cannot_be_stored_at_the_pharmacy_until_qa_decides(
    session, clock, shipment
):
    deliver(session, clock, shipment)
    (excursion,) = upload(
        session, shipment, "timestamp_celsius.csv", who="pharmacist", now=clock()
    ).excursions
    pharmacist = get_user(session, "pharmacist")
    serials = [row.vial.serial for row in packed(session, shipment)]

    with pytest.raises(VialHandlingError, match="quarantined"):
        store(session, pharmacist, serials, location="LN2-1 / rack B", now=clock())
    dispose(session, shipment, excursion, "use", now=clock())
    store(session, pharmacist, serials, location="LN2-1 / rack B", now=clock())

    assert states(session, shipment) == {"stored"}


def test_a_shipper_kept_beyond_its_hold_time_is_an_excursion(session, clock):
    shipment = sealed_shipment(session, clock, hold_time_hours=1)
    cold = readings_csv(dt.datetime(2025, 7, 14, 6, 0, tzinfo=dt.UTC), COLD, minutes=30)

    result = import_readings(
        session, get_user(session, "courier"), shipment.sscc, cold, now=AFTER_READINGS
    )

    (overrun,) = result.excursions
    assert overrun.kind == "hold_time"
    assert overrun.started_at == dt.datetime(2025, 7, 14, 6, 30, tzinfo=dt.UTC)  # sealed + 1 h
    assert overrun.ended_at == AFTER_READINGS
    assert states(session, shipment) == {"quarantined"}


def test_a_shipper_received_after_its_hold_time_is_quarantined_without_a_logger_file(
    session, clock
):
    shipment = sealed_shipment(session, clock, hold_time_hours=6)

    deliver(session, clock, shipment)  # received 8 h 5 min after sealing

    (overrun,) = shipment_excursions(session, shipment)
    assert (overrun.kind, overrun.started_at) == (
        "hold_time",
        shipment.sealed_at + dt.timedelta(hours=6),
    )
    assert states(session, shipment) == {"quarantined"}


def test_a_shipper_received_within_its_hold_time_has_no_excursion(session, clock, shipment):
    deliver(session, clock, shipment)

    assert shipment_excursions(session, shipment) == []


def test_readings_before_sealing_and_after_receipt_are_kept_but_not_judged(
    session, clock, shipment
):
    deliver(session, clock, shipment)
    warm_before = readings_csv(dt.datetime(2025, 7, 14, 5, 0, tzinfo=dt.UTC), ["21.5"])
    warm_after = readings_csv(clock() + dt.timedelta(minutes=10), ["-20.0"])
    pharmacist = get_user(session, "pharmacist")
    now = clock() + dt.timedelta(hours=1)

    first = import_readings(session, pharmacist, shipment.sscc, warm_before, now=now)
    second = import_readings(session, pharmacist, shipment.sscc, warm_after, now=now)

    assert (first.added, second.added) == (1, 1)
    assert first.excursions == second.excursions == []


def test_importing_the_same_file_again_adds_nothing(session, shipment):
    upload(session, shipment, "dry_shipper_preamble.csv")
    events = len(chain_events(session, shipment.chain))

    again = upload(session, shipment, "dry_shipper_preamble.csv")

    assert (again.added, again.already_recorded, again.excursions) == (0, 8, [])
    assert len(chain_events(session, shipment.chain)) == events
    assert len(shipment_readings(session, shipment)) == 8


def test_an_overlapping_file_adds_only_the_new_readings(session, shipment):
    upload(session, shipment, "timestamp_celsius.csv")
    more = readings_csv(
        dt.datetime(2025, 7, 14, 7, 30, tzinfo=dt.UTC), ["-183.4", "-184.0", "-184.3"]
    )

    result = import_readings(
        session, get_user(session, "courier"), shipment.sscc, more, now=AFTER_READINGS
    )

    assert (result.added, result.already_recorded, result.excursions) == (1, 2, [])


def test_a_recorded_reading_is_never_replaced_by_another_value(session, shipment):
    upload(session, shipment, "timestamp_celsius.csv")
    changed = readings_csv(dt.datetime(2025, 7, 14, 6, 45, tzinfo=dt.UTC), ["-185.0"])

    with pytest.raises(
        ReadingsRefusedError, match=r"recorded as -149\.6 °C; this file says -185\.0"
    ):
        import_readings(
            session, get_user(session, "courier"), shipment.sscc, changed, now=AFTER_READINGS
        )


def test_a_file_that_is_not_a_logger_export_is_refused_naming_the_line(session, shipment):
    with pytest.raises(
        ReadingsRefusedError, match="Line 6: the temperature 'Err' is not a number"
    ) as refused:
        upload(session, shipment, "sensor_error.csv")

    assert refused.value.line == 6
    assert shipment_readings(session, shipment) == []


def test_a_file_from_another_logger_is_refused(session, clock):
    shipment = sealed_shipment(session, clock, logger_id="DL-0042-7")

    with pytest.raises(ReadingsRefusedError, match="readings of logger TT-88210; shipper"):
        upload(session, shipment, "fahrenheit_us.csv")
    assert upload(session, shipment, "dry_shipper_preamble.csv").added == 8


def test_readings_from_the_future_are_refused(session, shipment):
    with pytest.raises(ReadingsRefusedError, match="is in the future"):
        upload(
            session,
            shipment,
            "timestamp_celsius.csv",
            now=dt.datetime(2025, 7, 14, 7, tzinfo=dt.UTC),
        )


def test_an_open_shipper_has_no_logger_record_yet(session, clock):
    shipment = create_shipment(
        session,
        get_user(session, "manufacturing"),
        to_site_code="SYSU3-PH",
        hold_time_hours=72,
        now=clock(),
    )

    with pytest.raises(ShipmentStateError, match="not sealed yet"):
        upload(session, shipment, "timestamp_celsius.csv", who="manufacturing")


@pytest.mark.parametrize("who", ["qc", "clinician", "auditor", "qa"])
def test_only_manufacturing_couriers_and_pharmacists_import_readings(session, shipment, who):
    with pytest.raises(ForbiddenError):
        upload(session, shipment, "timestamp_celsius.csv", who=who)


@pytest.mark.parametrize("who", ["manufacturing", "courier", "pharmacist", "admin"])
def test_only_qa_disposes_of_an_excursion(session, shipment, who):
    (excursion,) = upload(session, shipment, "timestamp_celsius.csv").excursions

    with pytest.raises(ForbiddenError):
        dispose(session, shipment, excursion, "use", who=who)


def test_a_disposition_needs_the_signers_password(session, shipment):
    (excursion,) = upload(session, shipment, "timestamp_celsius.csv").excursions

    with pytest.raises(SignatureRefusedError):
        dispose(session, shipment, excursion, "use", password="guess")
    assert excursion.open


def test_a_disposition_states_its_reason_and_a_known_decision(session, shipment):
    (excursion,) = upload(session, shipment, "timestamp_celsius.csv").excursions
    qa = get_user(session, "qa")
    arguments = {"password": PASSWORDS["qa"], "now": AFTER_READINGS}

    with pytest.raises(InvalidValueError, match="states its reason"):
        dispose_excursion(
            session,
            HASHER,
            qa,
            shipment.sscc,
            excursion.id,
            decision="use",
            reason=" ",
            **arguments,
        )
    with pytest.raises(InvalidValueError, match="neither 'use' nor 'destroy'"):
        dispose_excursion(
            session,
            HASHER,
            qa,
            shipment.sscc,
            excursion.id,
            decision="keep",
            reason="ok",
            **arguments,
        )


def test_an_excursion_is_disposed_of_once(session, shipment):
    (excursion,) = upload(session, shipment, "timestamp_celsius.csv").excursions
    dispose(session, shipment, excursion, "use")

    with pytest.raises(ExcursionStateError, match="already disposed of"):
        dispose(session, shipment, excursion, "destroy")


def test_readings_cannot_be_changed_or_removed(session, shipment):
    upload(session, shipment, "timestamp_celsius.csv")

    for statement in (
        "UPDATE temperature_readings SET celsius = -190",
        "DELETE FROM temperature_readings",
    ):
        with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
            session.execute(text(statement))


def test_the_ledger_stays_intact_through_detection_and_disposition(session, clock, shipment, app):
    deliver(session, clock, shipment)
    (excursion,) = upload(
        session, shipment, "timestamp_celsius.csv", who="pharmacist", now=clock()
    ).excursions
    dispose(session, shipment, excursion, "destroy", now=clock())

    with app.app_context():
        report = verify_ledger(session, trusted_keys())

    assert report.intact, report.first_break
