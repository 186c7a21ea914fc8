"""The bedside check's server time with 1,000,000 ledger events and 100,000 vials in the
database (DESIGN.md §8: p99 ≤ 25 ms), beside a raw indexed SELECT of one vial's events
measured in the same run.

    .venv/bin/python bench/bedside.py            # 100,000 vials, 1,000,000 events, 600 checks
    .venv/bin/python bench/bedside.py --quick    # 2,000 vials, 20,000 events, 100 checks

Everything runs against a database of its own (default `celltrail_bench_bedside`, dropped and
re-created at the start; never `test`) on PostgreSQL at 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import multiprocessing
import os
import secrets
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import demo  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.demo.trials import XS228_TRIAL  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from bench.ledger import _drop_secondary_indexes, plain_dsn, recreate_database, say  # noqa: E402
from bench.lots import release  # noqa: E402
from custody.bedside import check_at_bedside  # noqa: E402
from custody.ledger import Actor, build_body, link  # noqa: E402
from custody.manufacturing import create_lot  # noqa: E402
from custody.trials import Trial  # noqa: E402
from labels.keys import LabelKey  # noqa: E402
from labels.payload import sscc_from, subject_uri, vial_uri  # noqa: E402
from lots.accounts import get_site, get_user, password_hasher  # noqa: E402
from lots.base import utcnow  # noqa: E402
from lots.batch import Lot  # noqa: E402
from lots.local_time import local_date  # noqa: E402
from lots.models import Site, User  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"
TARGET_P99_MS = 25.0
LOT = "BENCH-2611-01"
BASE = "https://bench.celltrail.invalid"
PER_SHIPPER = 100
BLOCK = 1000  # vial chains generated together
# A vial's path to the bedside (DESIGN.md §1), with observations between the steps; the
# last is the thaw, minutes before the checks: (type, site, who records it).
STEPS: list[tuple[str, str, str]] = [
    ("COMMISSIONED", "XSM-SZ", "manufacturing"),
    ("PACKED", "XSM-SZ", "manufacturing"),
    ("SHIPPED", "XSM-SZ", "manufacturing"),
    ("HANDED_OFF", "CRYO-GZ", "courier2"),
    ("HANDED_OFF", "SYSU3-PH", "pharmacist"),
    ("RECEIVED", "SYSU3-PH", "pharmacist"),
    ("STORED", "SYSU3-PH", "pharmacist"),
    ("INSPECTED", "SYSU3-PH", "pharmacist"),
    ("DISPENSED", "SYSU3-PH", "pharmacist"),
    ("THAWED", "SYSU3-SPINE", "clinician"),
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vials", type=int, default=100_000, help="vials in the database")
    parser.add_argument("--events", type=int, default=1_000_000, help="ledger events (about)")
    parser.add_argument("--checks", type=int, default=600, help="bedside checks timed (≥ 500)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2,000 vials, 100 checks")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--database", default="celltrail_bench_bedside", help="bench database")
    args = parser.parse_args()
    if args.quick:
        args.vials, args.events, args.checks = 2_000, 20_000, 100
    reserved = ("test", "postgres", "template0", "template1", "celltrail_bench")
    if args.database in reserved or args.database.startswith(
        ("celltrail_bench_lots", "celltrail_bench_custody")
    ):
        parser.error(f"refusing to use the database {args.database!r}")
    if make_url(args.server).host not in ("127.0.0.1", "localhost"):
        parser.error("the bench only talks to 127.0.0.1")
    if not 1 <= args.checks <= args.vials <= 999_999:
        parser.error("1 ≤ --checks ≤ --vials ≤ 999,999")
    if args.events < args.vials * len(STEPS):
        parser.error(f"--events must be at least {len(STEPS)} per vial")
    return args


# ------------------------------------------------------------------------- setup


def bench_lot(sessions: sessionmaker[Session]) -> int:
    """A released XS228 lot made by the services (one vial); the bulk vials join it."""
    end = utcnow().replace(microsecond=0) - dt.timedelta(days=20)
    with sessions() as session, session.begin():
        create_lot(
            session,
            get_user(session, "manufacturing"),
            number=LOT,
            product_code="XS228",
            bank_code="XS-WCB-01",
            manufacture_start=end - dt.timedelta(days=28),
            manufacture_end=end,
            vials_filled=1,
            cells_per_vial=10_000_000,
            volume_ml=Decimal("1.0"),
            qc_site=get_site(session, "XSM-QC"),
            now=end,
        )
    release(sessions, LOT)
    with sessions() as session:
        return session.scalars(select(Lot.id).where(Lot.number == LOT)).one()


def serial(number: int) -> str:
    return f"{LOT}-{number:06d}"


def _chain_block(task: tuple[Any, ...]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The event rows and chain heads of one block of bench vials, each on its full path."""
    first, count, extra, sites, users, thawed_at = task
    rows: list[tuple[Any, ...]] = []
    heads: list[tuple[Any, ...]] = []
    for number in range(first, first + count):
        chain, prev = f"vial:{serial(number)}", None
        sscc = sscc_from("0950600", 500_000_000 + number // PER_SHIPPER)
        steps = list(STEPS[:-1]) + [("INSPECTED", "SYSU3-PH", "pharmacist")] * extra
        steps.append(STEPS[-1])
        for seq, (kind, site, username) in enumerate(steps, start=1):
            occurred = (
                thawed_at
                if kind == "THAWED"
                else thawed_at - dt.timedelta(days=3) + dt.timedelta(minutes=seq)
            )
            payload = _payload(kind, serial(number), sscc, site)
            user_id, actor = users[username]
            canonical, event_hash = link(
                build_body(
                    chain=chain, seq=seq, prev=prev, event_type=kind, occurred_at=occurred,
                    recorded_at=occurred, actor=actor, site=site, payload=payload,
                )
            )  # fmt: skip
            rows.append(
                (chain, seq, kind, occurred, occurred, user_id, sites[site], prev, event_hash,
                 canonical)
            )  # fmt: skip
            prev = event_hash
        heads.append((chain, len(steps), prev, thawed_at))
    return rows, heads


def _payload(kind: str, vial: str, sscc: str, site: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"serial": vial}
    if kind in ("PACKED", "SHIPPED", "HANDED_OFF", "RECEIVED"):
        payload["sscc"] = sscc
    if kind == "SHIPPED":
        payload["courier"] = "courier"
    if kind == "HANDED_OFF":
        # At the depot courier2 takes it from courier; at the pharmacy, from courier2.
        giver, taker = ("courier", "courier2") if site == "CRYO-GZ" else ("courier2", "pharmacist")
        payload["from"], payload["to"] = {"user": giver}, {"user": taker}
    if kind == "DISPENSED":
        payload["ward"] = "SYSU3-SPINE"
    if kind == "INSPECTED":
        payload["note"] = "Dewar level and position checked"
    return payload


def load(dsn: str, sessions: sessionmaker[Session], args: argparse.Namespace) -> dict[str, Any]:
    """COPY the vials, their shipments, the subjects and allocations, and the ledger."""
    lot_id = bench_lot(sessions)
    with sessions() as session:
        sites = {site.code: site.id for site in session.scalars(select(Site))}
        spine_zone = get_site(session, "SYSU3-SPINE").time_zone
        users = {
            user.username: (user.id, Actor(user=user.username, name=user.full_name, role=user.role))
            for user in session.scalars(select(User))
        }
        trial = session.scalars(select(Trial).where(Trial.protocol_id == XS228_TRIAL)).one()
        trial_id, arm_id, visit_id = trial.id, trial.arms[0].id, trial.visits[0].id
    now = utcnow()
    thawed_at = now - dt.timedelta(minutes=5)  # the checks run within the 120-minute window
    per_vial = args.events // args.vials
    extra = per_vial - len(STEPS)
    started = time.perf_counter()
    with psycopg.connect(dsn) as conn, conn.cursor() as cursor:
        with cursor.copy("COPY vials (serial, lot_id, position) FROM STDIN") as copy:
            for number in range(1, args.vials + 1):
                copy.write_row((serial(number), lot_id, number + 1))
        vial_ids = dict(
            cursor.execute(
                "SELECT serial, id FROM vials WHERE lot_id = %s AND position > 1", (lot_id,)
            ).fetchall()
        )
        shippers = args.vials // PER_SHIPPER + 1  # vial n travels in shipper n // 100
        with cursor.copy(
            "COPY shipments (sscc, from_site_id, to_site_id, hold_time_hours, status, seal_number,"
            " sealed_at, shipped_at, received_at, created_by_id, created_at) FROM STDIN"
        ) as copy:
            for index in range(shippers):
                moment = thawed_at - dt.timedelta(days=3)
                copy.write_row(
                    (sscc_from("0950600", 500_000_000 + index), sites["XSM-SZ"],
                     sites["SYSU3-PH"], 72, "received", f"SEAL-{index}", moment, moment,
                     moment + dt.timedelta(hours=8), users["manufacturing"][0], moment)
                )  # fmt: skip
        shipment_ids = dict(cursor.execute("SELECT sscc, id FROM shipments").fetchall())
        with cursor.copy(
            "COPY shipment_vials (shipment_id, vial_id, packed_at, received_at) FROM STDIN"
        ) as copy:
            for number in range(1, args.vials + 1):
                sscc = sscc_from("0950600", 500_000_000 + number // PER_SHIPPER)
                moment = thawed_at - dt.timedelta(days=3)
                copy.write_row((shipment_ids[sscc], vial_ids[serial(number)], moment, moment))
        with cursor.copy(
            "COPY subjects (trial_id, site_id, code, wristband, contraindications, weight_kg,"
            " day_one, arm_id, enrolled_by, enrolled_at) FROM STDIN"
        ) as copy:
            for number in range(1, args.checks + 1):
                code = f"BENCH-{number:06d}"
                copy.write_row(
                    (trial_id, sites["SYSU3-SPINE"], code, code, "[]", Decimal("70.0"),
                     local_date(now, spine_zone), arm_id, "bench", now)
                )  # fmt: skip
        subject_ids = dict(
            cursor.execute("SELECT code, id FROM subjects WHERE code LIKE 'BENCH-%%'").fetchall()
        )
        with cursor.copy(
            "COPY allocations (subject_id, visit_id, vial_id, lot_id, allocated_by_id,"
            " allocated_at, event_hash) FROM STDIN"
        ) as copy:
            for number in range(1, args.checks + 1):
                copy.write_row(
                    (subject_ids[f"BENCH-{number:06d}"], visit_id, vial_ids[serial(number)],
                     lot_id, users["pharmacist"][0], now, "bench")
                )  # fmt: skip
        restore = _drop_secondary_indexes(cursor, "custody_events")
        written = _copy_events(cursor, args, extra, sites, users, thawed_at)
        loaded = time.perf_counter()
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for statement in restore:
            cursor.execute(statement)
        conn.commit()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        events = conn.execute("SELECT count(*) FROM custody_events").fetchone()[0]
        vials = conn.execute("SELECT count(*) FROM vials").fetchone()[0]
    say(
        f"  COPY-loaded {args.vials} vials, {shippers} shipments, {args.checks} subjects and "
        f"allocations, {written} events in {loaded - started:.1f} s; indexes rebuilt and "
        f"analysed in {time.perf_counter() - loaded:.1f} s"
    )
    say(f"  database: {events} events, {vials} vials")
    return {"events": events, "vials": vials}


def _copy_events(  # noqa: PLR0917 - a private step of `load`
    cursor: psycopg.Cursor[Any],
    args: argparse.Namespace,
    extra: int,
    sites: dict[str, int],
    users: dict[str, Any],
    thawed_at: dt.datetime,
) -> int:
    tasks = [
        (first, min(BLOCK, args.vials - first + 1), extra, sites, users, thawed_at)
        for first in range(1, args.vials + 1, BLOCK)
    ]
    types = ["varchar", "int4", "varchar", "timestamptz", "timestamptz", "int4", "int4",
             "varchar", "varchar", "bytea"]  # fmt: skip
    written = 0
    heads: list[tuple[Any, ...]] = []
    pool = multiprocessing.get_context("fork").Pool(max(1, min(os.cpu_count() or 1, 4)))
    try:
        with cursor.copy(
            "COPY custody_events (chain, seq, event_type, occurred_at, recorded_at,"
            " actor_user_id, site_id, prev_hash, hash, body) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(types)
            for rows, block_heads in pool.imap(_chain_block, tasks):
                for row in rows:
                    copy.write_row(row)
                written += len(rows)
                heads += block_heads
        with cursor.copy(
            "COPY chain_heads (chain, seq, hash, updated_at) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["varchar", "int4", "varchar", "timestamptz"])
            for head in heads:
                copy.write_row(head)
        pool.close()
        pool.join()
    finally:
        pool.terminate()
    return written


# ------------------------------------------------------------------------- timing


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(len(ordered) * share) - 1)]


def time_checks(sessions: sessionmaker[Session], checks: int) -> tuple[list[float], int]:
    """Each check as a request runs it: the signed-in user loaded, the service, the commit."""
    key = LabelKey("bench", secrets.token_bytes(32))
    expiry = None
    seconds, go = [], 0
    with sessions() as session:
        expiry = session.scalars(select(Lot.expires_on).where(Lot.number == LOT)).one()
        gtin = session.scalars(select(Lot).where(Lot.number == LOT)).one().product.gtin
        clinician_id = get_user(session, "clinician").id
    for number in range(1, checks + 1):
        vial = vial_uri(
            base=BASE, gtin=gtin, lot=LOT, serial=serial(number), expiry=expiry, key=key
        )
        band = subject_uri(base=BASE, key=key, subject=f"BENCH-{number:06d}", trial=XS228_TRIAL)
        with sessions() as session:
            started = time.perf_counter()
            with session.begin():
                user = session.get(User, clinician_id)
                assert user is not None  # noqa: S101 - the demo's clinician
                check = check_at_bedside(
                    session, user, vial_code=vial, wristband_code=band, visit_number=1,
                    base=BASE, keys=[key],
                )  # fmt: skip
                outcome = check.outcome
            seconds.append(time.perf_counter() - started)
        go += outcome == "GO"
        if number == 1 and outcome != "GO":
            failed = [c["sentence"] for c in check.checks if not c["passed"]]
            say(f"  the first check is NO-GO: {failed}")
    return seconds, go


def time_raw(dsn: str, checks: int) -> list[float]:
    """One vial's events by the (chain, seq) index, plain psycopg, one transaction each."""
    seconds = []
    with psycopg.connect(dsn) as conn:
        for number in range(1, checks + 1):
            started = time.perf_counter()
            with conn.transaction():
                conn.execute(
                    "SELECT event_type, occurred_at, site_id, body FROM custody_events"
                    " WHERE chain = %s ORDER BY seq",
                    (f"vial:{serial(number)}",),
                ).fetchall()
            seconds.append(time.perf_counter() - started)
    return seconds


def describe(seconds: list[float]) -> str:
    p50, p99 = (percentile(seconds, share) * 1000 for share in (0.5, 0.99))
    return (
        f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {max(seconds) * 1000:6.2f} ms ({len(seconds)})"
    )


def main() -> int:
    args = parse_args()
    say(f"bench/bedside.py: {args.vials} vials, ~{args.events} events, {args.checks} checks")
    url = recreate_database(args.server, args.database)
    upgrade(url)
    engine = make_engine(url)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as session, session.begin():
        demo.load(session, password_hasher("cheapest"))
    dsn = plain_dsn(url)
    sizes = load(dsn, sessions, args)
    time_checks(sessions, min(20, args.checks))  # warm-up: caches, plans, pool
    raw = time_raw(dsn, args.checks)
    service, go = time_checks(sessions, args.checks)
    raw_again = time_raw(dsn, args.checks)
    raw = [min(a, b) for a, b in zip(raw, raw_again, strict=True)]
    p99 = percentile(service, 0.99) * 1000
    say("")
    say(f"Bedside check with {sizes['events']:,} events and {sizes['vials']:,} vials")
    say(f"  check_at_bedside + commit   {describe(service)}   GO {go}/{len(service)}")
    say(f"  raw indexed SELECT of one vial's events  {describe(raw)}")
    say(f"  ratio of p50s: {percentile(service, 0.5) / percentile(raw, 0.5):.1f}×")
    ok = p99 <= TARGET_P99_MS and go == len(service)
    say(f"  {'PASS' if ok else 'MISS'}: p99 {p99:.2f} ms against ≤ {TARGET_P99_MS:.0f} ms")
    engine.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
