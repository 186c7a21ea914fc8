"""Lot numbers of issue 3, each beside the raw limit measured in the same run: creating a
1,000-vial lot (its vials and 1,000 COMMISSIONED events) and generating its CoA.

    .venv/bin/python bench/lots.py                 # 1,000 vials, 5 repeats
    .venv/bin/python bench/lots.py --vials 9999 --repeats 3

Everything runs against a database of its own (default `celltrail_bench_lots`, dropped and
re-created at the start; never `test`) on PostgreSQL at 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import demo  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from custody.manufacturing import (  # noqa: E402  # noqa: E402
    create_lot,
    decide,
    get_lot,
    record_result,
    record_step,
    render_coa,
)
from lots.accounts import get_site, get_user, password_hasher  # noqa: E402
from lots.base import utcnow  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"
HASHER = password_hasher("cheapest")
EVENT_COLUMNS = (
    "chain, seq, event_type, occurred_at, recorded_at, actor_user_id, site_id, prev_hash, "
    "hash, body"
)
RAW_TABLES = """
CREATE TABLE raw_vials (
    id serial PRIMARY KEY,
    serial varchar(20) NOT NULL,
    lot_id integer NOT NULL,
    position integer NOT NULL
);
CREATE TABLE raw_events (
    id bigserial PRIMARY KEY,
    chain varchar(160) NOT NULL,
    seq integer NOT NULL,
    event_type varchar(48) NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL,
    actor_user_id integer,
    site_id integer,
    prev_hash varchar(64),
    hash varchar(64) NOT NULL,
    body bytea NOT NULL
);
-- The same rows into tables carrying the real tables' indexes (no triggers, no foreign keys).
CREATE TABLE raw_vials_indexed (LIKE vials INCLUDING DEFAULTS INCLUDING INDEXES);
CREATE TABLE raw_events_indexed (LIKE custody_events INCLUDING DEFAULTS INCLUDING INDEXES);
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vials", type=int, default=1000, help="vials per lot")
    parser.add_argument("--repeats", type=int, default=5, help="lots created (median reported)")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--database", default="celltrail_bench_lots", help="bench database")
    args = parser.parse_args()
    if args.database in ("test", "postgres", "template0", "template1", "celltrail_bench"):
        parser.error(f"refusing to use the database {args.database!r}")
    if make_url(args.server).host not in ("127.0.0.1", "localhost"):
        parser.error("the bench only talks to 127.0.0.1")
    if not 1 <= args.vials <= 9999 or args.repeats < 1:
        parser.error("--vials is 1 to 9999 and --repeats positive")
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


# ------------------------------------------------------------------- the service


def create_timed(sessions: sessionmaker[Session], number: str, vials: int) -> float:
    """create_lot with its COMMISSIONED events, committed; seconds (the user is loaded first)."""
    end = utcnow().replace(microsecond=0) - dt.timedelta(days=2)
    with sessions() as session:
        maker = get_user(session, "manufacturing")
        qc_site = get_site(session, "XSM-QC")
        started = time.perf_counter()
        create_lot(
            session,
            maker,
            number=number,
            product_code="XS228",
            bank_code="XS-WCB-01",
            manufacture_start=end - dt.timedelta(days=28),
            manufacture_end=end,
            vials_filled=vials,
            cells_per_vial=10_000_000,
            volume_ml=Decimal("1.0"),
            qc_site=qc_site,
        )
        session.commit()
        return time.perf_counter() - started


def release(sessions: sessionmaker[Session], number: str) -> None:
    """Complete the record, enter the demo's conforming results and release (untimed)."""
    with sessions() as session, session.begin():
        maker = get_user(session, "manufacturing")
        record_step(
            session,
            HASHER,
            maker,
            number,
            step="batch_record_completed",
            occurred_at=utcnow(),
            password="manufacturing-demo-2026",  # noqa: S106 - a public demo password
        )
        analyst = get_user(session, "qc")
        for test, value, unit in demo.XS228_RESULTS:
            record_result(
                session,
                analyst,
                number,
                test=test,
                value=value,
                unit=unit,
                method=None,
                tested_at=utcnow(),
            )
        decide(
            session,
            HASHER,
            get_user(session, "qa"),
            number,
            decision="release",
            password="qa-demo-2026",  # noqa: S106 - a public demo password
            meaning="Released for clinical use (QA)",
        )


def coa_timed(sessions: sessionmaker[Session], number: str) -> tuple[float, int]:
    """Seconds to load the lot and render its CoA, and the PDF's size."""
    with sessions() as session:
        started = time.perf_counter()
        pdf = render_coa(session, get_lot(session, number))
        return time.perf_counter() - started, len(pdf)


# -------------------------------------------------------------------- the raw limit


@dataclass
class Rows:
    """The lot's vial rows and its 1 + N event rows, exactly as the service stored them."""

    vials: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    body_bytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.body_bytes = sum(len(row[-1]) for row in self.events)


def stored_rows(dsn: str, number: str) -> Rows:
    """The rows create_lot stored for this lot, read back."""
    with psycopg.connect(dsn) as conn:
        vials = conn.execute(
            "SELECT serial, lot_id, position FROM vials "
            "WHERE lot_id = (SELECT id FROM lots WHERE number = %s) ORDER BY position",
            (number,),
        ).fetchall()
        events = conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM custody_events WHERE chain = %s OR chain LIKE %s "
            "ORDER BY id",
            (f"lot:{number}", f"vial:{number}-V%"),
        ).fetchall()
    return Rows(vials=[tuple(row) for row in vials], events=[tuple(row) for row in events])


def raw_timed(dsn: str, rows: Rows, *, copy: bool, indexed: bool) -> float:
    """One transaction writing the same rows with executemany or COPY; seconds."""
    suffix = "_indexed" if indexed else ""
    with psycopg.connect(dsn) as conn:
        # Emptied first (untimed): the indexed tables keep the real unique constraints.
        conn.execute(f"TRUNCATE raw_vials{suffix}, raw_events{suffix}")
        conn.commit()
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor:
            write = _copy if copy else _executemany
            write(cursor, f"raw_vials{suffix}", "serial, lot_id, position", rows.vials)
            write(cursor, f"raw_events{suffix}", EVENT_COLUMNS, rows.events)
        return time.perf_counter() - started


def _executemany(
    cursor: psycopg.Cursor[Any], table: str, columns: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    marks = ", ".join(["%s"] * len(columns.split(",")))
    cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)


def _copy(
    cursor: psycopg.Cursor[Any], table: str, columns: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# ------------------------------------------------------------------------ report


@dataclass
class Figures:
    runs: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.runs.setdefault(name, []).append(seconds)

    def median(self, name: str) -> float:
        return statistics.median(self.runs[name])


def run(args: argparse.Namespace, url: str) -> tuple[Figures, Rows, int]:
    engine = make_engine(url)
    sessions = sessionmaker(engine, expire_on_commit=False)
    dsn = plain_dsn(url)
    figures, rows, pdf_size = Figures(), None, 0
    raw: list[tuple[str, bool, bool]] = [
        ("raw executemany, plain tables", False, False),
        ("raw COPY, plain tables", True, False),
        ("raw executemany, indexed tables", False, True),
        ("raw COPY, indexed tables", True, True),
    ]
    say("  ms per run: create_lot, raw executemany, raw COPY, the same two indexed, render_coa")
    for repeat in range(1, args.repeats + 1):
        number = f"BENCH-{repeat:03d}"
        figures.add("create_lot + commit", create_timed(sessions, number, args.vials))
        rows = stored_rows(dsn, number)
        for name, copy, indexed in raw:
            figures.add(name, raw_timed(dsn, rows, copy=copy, indexed=indexed))
        release(sessions, number)
        seconds, pdf_size = coa_timed(sessions, number)
        figures.add("render_coa (load + PDF)", seconds)
        say(f"  run {repeat}: " + ", ".join(f"{v[-1] * 1000:.0f}" for v in figures.runs.values()))
    engine.dispose()
    if rows is None:
        raise RuntimeError("no run")
    return figures, rows, pdf_size


def report(figures: Figures, rows: Rows, pdf_size: int, vials: int) -> None:
    service = figures.median("create_lot + commit")
    say(f"\nmedians over {len(figures.runs['create_lot + commit'])} runs")
    say(f"  {'figure':<36}{'median':>10}{'min':>10}{'max':>10}{'service ÷ this':>16}")
    for name, values in figures.runs.items():
        median = statistics.median(values)
        ratio = f"{service / median:>15.1f}×" if not name.startswith("render") else ""
        say(
            f"  {name:<36}{median * 1000:>8.1f}ms{min(values) * 1000:>8.1f}ms"
            f"{max(values) * 1000:>8.1f}ms{ratio}"
        )
    say(
        f"\n  create_lot: {vials:,} vials and {len(rows.events):,} events "
        f"({rows.body_bytes / 1e3:.0f} kB of canonical bodies) in {service * 1000:.0f} ms = "
        f"{len(rows.events) / service:,.0f} events/s; the raw COPY limit is "
        f"{len(rows.events) / figures.median('raw COPY, plain tables'):,.0f} events/s"
    )
    say(
        f"  the service reaches {figures.median('raw executemany, indexed tables') / service:.0%}"
        " of raw executemany into indexed tables and "
        f"{figures.median('raw COPY, plain tables') / service:.0%} of raw COPY into plain tables"
    )
    say(
        f"  render_coa: {figures.median('render_coa (load + PDF)') * 1000:.0f} ms for a "
        f"{pdf_size / 1e3:.0f} kB PDF"
    )
    say(
        "  (raw rows are the service's own stored rows, written in one transaction by psycopg; "
        "the service also builds and hashes every canonical body, and upserts and locks "
        "1,001 chain_heads rows)"
    )


def main() -> int:
    args = parse_args()
    say(
        f"celltrail lots bench — PostgreSQL {args.server} database {args.database}, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    url = recreate_database(args.server, args.database)
    upgrade(url)
    engine = make_engine(url)
    with Session(engine) as session, session.begin():
        demo.load(session, password_hasher("cheapest"))
    engine.dispose()
    with psycopg.connect(plain_dsn(url), autocommit=True) as conn:
        conn.execute(RAW_TABLES)
        version = conn.execute("SHOW server_version").fetchone()
    say(f"  PostgreSQL {version and version[0]}; {args.vials:,}-vial lots, {args.repeats} runs\n")
    figures, rows, pdf_size = run(args, url)
    report(figures, rows, pdf_size, args.vials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
