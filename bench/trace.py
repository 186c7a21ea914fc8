"""The recall-trace figure of DESIGN.md §8 beside the raw limit measured in the same run: a
cell bank whose lots hold 10,000 vials, shipped, stored and partly administered, traced
forward with `custody.trace.trace_forward("bank", …)` (target ≤ 200 ms).

    .venv/bin/python bench/trace.py                  # 10,000 vials, 30 timed traces
    .venv/bin/python bench/trace.py --vials 2000 --runs 10

Everything runs against a database of its own (default `celltrail_bench_trace`, dropped
and re-created at the start; never `test`) on PostgreSQL at 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import demo  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from custody.ledger import (  # noqa: E402
    Actor,
    ChainHead,
    CustodyEvent,
    EventDraft,
    append_events,
    build_body,
    link,
)
from custody.shipping import Shipment, ShipmentVial  # noqa: E402
from custody.trace import trace_forward  # noqa: E402
from custody.trials import Administration, Arm, BedsideCheck, Subject, Trial, Visit  # noqa: E402
from lots.accounts import get_site, get_user, password_hasher  # noqa: E402
from lots.banks import create_bank, get_bank  # noqa: E402
from lots.batch import Lot, Vial  # noqa: E402
from lots.products import get_product  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"
TARGET_MS = 200.0
ROOT_BANK = "XS-MCB-01"
LOTS = 10
PER_SHIPPER = 500
ADMINISTERED_EVERY = 10  # one vial in ten has been given to a subject
START = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)
# Each vial's journey; the last tenth go on to be dispensed, thawed and administered.
JOURNEY = ("COMMISSIONED", "PACKED", "SHIPPED", "HANDED_OFF", "RECEIVED", "STORED")
DOSED = ("DISPENSED", "THAWED", "ADMINISTERED")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vials", type=int, default=10_000, help="vials under the bank")
    parser.add_argument("--runs", type=int, default=30, help="timed traces")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--database", default="celltrail_bench_trace", help="bench database")
    args = parser.parse_args()
    if args.database in ("test", "postgres", "template0", "template1", "celltrail_bench"):
        parser.error(f"refusing to use the database {args.database!r}")
    if make_url(args.server).host not in ("127.0.0.1", "localhost"):
        parser.error("the bench only talks to 127.0.0.1")
    if args.vials < LOTS * 10 or args.runs < 3:
        parser.error(f"--vials is at least {LOTS * 10} and --runs at least 3")
    return args


def plain_dsn(url: str) -> str:
    """A libpq URI from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def recreate_database(server: str, name: str) -> str:
    admin = make_url(server).set(database="postgres")
    with psycopg.connect(plain_dsn(admin.render_as_string(False)), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def say(text: str) -> None:
    print(text, flush=True)


# ------------------------------------------------------------------- bulk load


def load(session: Session, vials: int) -> int:
    """A working bank under XS-MCB-01 with `LOTS` lots of `vials` in all, their journeys
    on the ledger, shippers of 500 and one vial in ten administered. Returns vials loaded."""
    maker, pharmacist = get_user(session, "manufacturing"), get_user(session, "pharmacist")
    clinician = get_user(session, "clinician")
    maker_site, pharmacy = get_site(session, "XSM-SZ"), get_site(session, "SYSU3-PH")
    ward = get_site(session, "SYSU3-SPINE")
    bank = create_bank(
        session,
        actor="bench",
        code="XS-WCB-BENCH",
        kind="working",
        site=maker_site,
        parent_code=ROOT_BANK,
        passage=21,
    )
    product = get_product(session, "XS228")
    per_lot = vials // LOTS
    lot_ids = []
    for index in range(LOTS):
        lot = Lot(
            number=f"XSB-{index:04d}",
            product=product,
            product_version=product.current,
            bank=bank,
            site=maker_site,
            manufacture_start=START - dt.timedelta(days=30),
            manufacture_end=START - dt.timedelta(days=2),
            expires_on=dt.date(2027, 1, 1),
            vials_filled=per_lot,
            cells_per_vial=10_000_000,
            volume_ml=Decimal("1.0"),
            status="released",
            created_by=maker,
        )
        session.add(lot)
        session.flush()
        lot_ids.append((lot.id, lot.number))
    # Released on the ledger too: a status without its event is disputed, as in production.
    append_events(
        session,
        [
            EventDraft(f"lot:{number}", "RELEASED", START, {"lot": number}, maker, maker_site)
            for _, number in lot_ids
        ],
    )
    session.execute(
        insert(Vial),
        [
            {"serial": f"{number}-V{position:04d}", "lot_id": lot_id, "position": position}
            for lot_id, number in lot_ids
            for position in range(1, per_lot + 1)
        ],
    )
    rows = session.execute(
        select(Vial.id, Vial.serial).where(Vial.lot_id.in_([i for i, _ in lot_ids]))
    ).all()
    rows.sort(key=lambda row: row[1])
    shipments = _shipments(session, rows, maker, maker_site, pharmacy)
    _subjects_and_administrations(session, rows, clinician, pharmacist, ward)
    _events(session, rows, shipments, {"maker": maker, "pharmacist": pharmacist}, ward)
    return len(rows)


def _shipments(session, rows, maker, maker_site, pharmacy) -> dict[int, str]:
    sscc_of: dict[int, str] = {}
    for start in range(0, len(rows), PER_SHIPPER):
        number = start // PER_SHIPPER
        shipment = Shipment(
            sscc=f"39506000{number:09d}0",
            from_site=maker_site,
            to_site=pharmacy,
            hold_time_hours=120,
            status="received",
            created_by=maker,
            storage_limit_c=Decimal("-150"),
        )
        session.add(shipment)
        session.flush()
        chunk = rows[start : start + PER_SHIPPER]
        session.execute(
            insert(ShipmentVial),
            [
                {"shipment_id": shipment.id, "vial_id": vial_id, "packed_at": START}
                for vial_id, _ in chunk
            ],
        )
        for vial_id, _ in chunk:
            sscc_of[vial_id] = shipment.sscc
    return sscc_of


def _subjects_and_administrations(session, rows, clinician, pharmacist, ward) -> None:
    trial = Trial(
        protocol_id="BENCH-OPEN-01",
        title="Bench trial",
        phase="I",
        sponsor="bench",
        blinded=False,
        created_by="bench",
    )
    session.add(trial)
    session.flush()
    arm = Arm(trial_id=trial.id, code="A", name="XS228", route="intrathecal", ratio=1)
    visit = Visit(trial_id=trial.id, number=1, name="Day 1", day=1)
    session.add_all([arm, visit])
    session.flush()
    dosed = rows[::ADMINISTERED_EVERY]
    session.execute(
        insert(Subject),
        [
            {
                "trial_id": trial.id,
                "site_id": ward.id,
                "code": f"B-{index:05d}",
                "wristband": f"BENCH-{index:05d}",
                "arm_id": arm.id,
                "enrolled_by": "clinician",
                "contraindications": [],
            }
            for index in range(len(dosed))
        ],
    )
    subjects = session.scalars(
        select(Subject.id).where(Subject.trial_id == trial.id).order_by(Subject.code)
    ).all()
    at = START + dt.timedelta(days=3)
    session.execute(
        insert(BedsideCheck),
        [
            {
                "reference": f"BC-B-{index:05d}",
                "outcome": "GO",
                "subject_id": subject_id,
                "vial_id": vial_id,
                "visit_id": visit.id,
                "checks": [],
                "fingerprint": "f" * 64,
                "checked_by_id": clinician.id,
                "site_id": ward.id,
                "checked_at": at,
                "expires_at": at + dt.timedelta(minutes=30),
                "event_hash": "c" * 64,
            }
            for index, (subject_id, (vial_id, _)) in enumerate(zip(subjects, dosed, strict=True))
        ],
    )
    checks = dict(
        session.execute(
            select(BedsideCheck.vial_id, BedsideCheck.id).where(
                BedsideCheck.reference.like("BC-B-%")
            )
        ).all()
    )
    session.execute(
        insert(Administration),
        [
            {
                "check_id": checks[vial_id],
                "vial_id": vial_id,
                "subject_id": subject_id,
                "visit_id": visit.id,
                "administered_at": at,
                "route": "intrathecal",
                "dose_cells": 10_000_000,
                "volume_ml": Decimal("1.0"),
                "site_id": ward.id,
                "administered_by_id": clinician.id,
                "witness_id": pharmacist.id,
                "event_hash": "a" * 64,
            }
            for subject_id, (vial_id, _) in zip(subjects, dosed, strict=True)
        ],
    )


def _events(session, rows, sscc_of, people, ward) -> None:
    """Each vial's chain, hashed for real, inserted in batches; heads moved to the ends."""
    maker, pharmacist = people["maker"], people["pharmacist"]
    actors = {
        name: (user, Actor(user.username, user.full_name, user.role), user.site)
        for name, user in (("maker", maker), ("pharmacist", pharmacist))
    }
    dosed = {vial_id for vial_id, _ in rows[::ADMINISTERED_EVERY]}
    events: list[dict[str, Any]] = []
    heads: list[dict[str, Any]] = []
    for vial_id, serial in rows:
        chain, prev = f"vial:{serial}", None
        steps = JOURNEY + (DOSED if vial_id in dosed else ())
        for seq, event_type in enumerate(steps, start=1):
            user, actor, site = actors["maker" if seq <= 3 else "pharmacist"]
            payload: dict[str, Any] = {"serial": serial, "sscc": sscc_of[vial_id]}
            if event_type == "DISPENSED":
                payload["ward"] = ward.code
            moment = START + dt.timedelta(hours=seq)
            body = build_body(
                chain=chain,
                seq=seq,
                prev=prev,
                event_type=event_type,
                occurred_at=moment,
                recorded_at=moment,
                actor=actor,
                site=site.code,
                payload=payload,
            )
            canonical, event_hash = link(body)
            events.append(
                {
                    "chain": chain,
                    "seq": seq,
                    "event_type": event_type,
                    "occurred_at": moment,
                    "recorded_at": moment,
                    "actor_user_id": user.id,
                    "site_id": site.id,
                    "prev_hash": prev,
                    "hash": event_hash,
                    "body": canonical,
                }
            )
            prev = event_hash
        heads.append({"chain": chain, "seq": len(steps), "hash": prev, "updated_at": START})
    for start in range(0, len(events), 5000):
        session.execute(insert(CustodyEvent), events[start : start + 5000])
    session.execute(insert(ChainHead), heads)


# ------------------------------------------------------------------- timing


def time_traces(engine, runs: int) -> tuple[list[float], Any]:
    times, trace = [], None
    for _ in range(runs + 2):
        with Session(engine) as session:
            started = time.perf_counter()
            trace = trace_forward(session, "bank", ROOT_BANK)
            times.append((time.perf_counter() - started) * 1000)
    return times[2:], trace  # two untimed warm-up runs


def time_raw(dsn: str, bank_ids: list[int], runs: int) -> list[float]:
    """The floor: the bank's vial ids in one plain SELECT, fetched by psycopg."""
    query = "SELECT v.id FROM vials v JOIN lots l ON l.id = v.lot_id WHERE l.bank_id = ANY(%s)"
    times = []
    with psycopg.connect(dsn) as conn:
        for index in range(runs + 2):
            started = time.perf_counter()
            conn.execute(query, (bank_ids,)).fetchall()
            if index >= 2:
                times.append((time.perf_counter() - started) * 1000)
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> None:
    args = parse_args()
    url = recreate_database(args.server, args.database)
    say(f"database {args.database}: migrating, loading the demo")
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        demo.load(session, password_hasher("cheapest"))
    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        loaded = load(session, args.vials)
    with psycopg.connect(plain_dsn(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        events = conn.execute("SELECT count(*) FROM custody_events").fetchone()[0]
    say(
        f"loaded {loaded:,} vials under {ROOT_BANK} (plus the demo's), {events:,} events "
        f"in {time.perf_counter() - started:.1f} s"
    )
    with Session(engine) as session:
        root = get_bank(session, ROOT_BANK)
        bank_ids = [root.id, *session.scalars(select(Lot.bank_id).distinct())]
    times, trace = time_traces(engine, args.runs)
    raw = time_raw(plain_dsn(url), sorted(set(bank_ids)), args.runs)
    administered = sum(1 for subject in trace.subjects if subject.relation == "administered")
    say(
        f"trace_forward(bank {ROOT_BANK}): {len(trace.lots)} lots, {len(trace.vials):,} vials, "
        f"{len(trace.shipments)} shipments, {len(trace.sites)} sites, "
        f"{administered:,} subjects dosed, {len(trace.subjects):,} subjects in all"
    )
    p50, p95_ms = statistics.median(times), p95(times)
    raw_p50 = statistics.median(raw)
    say(f"  trace    p50 {p50:7.1f} ms   p95 {p95_ms:7.1f} ms   ({args.runs} runs)")
    say(f"  raw      p50 {raw_p50:7.1f} ms   (SELECT of the bank's vial ids)")
    say(f"  ratio    {p50 / raw_p50:.1f}× the raw SELECT")
    verdict = "PASS" if p95_ms <= TARGET_MS else "MISS"
    say(f"{verdict}: p95 {p95_ms:.1f} ms against ≤ {TARGET_MS:.0f} ms")
    engine.dispose()


if __name__ == "__main__":
    main()
