"""Custody numbers of issue 5, each beside the raw limit measured in the same run: one scan
handing over a 500-vial shipper, end to end over HTTP (target ≤ 1 s), and handoff capture
with 8 concurrent clients beside raw INSERT + COMMIT with 8 connections.

    .venv/bin/python bench/custody.py                       # 500 vials, 9 handoffs, 5 s runs
    .venv/bin/python bench/custody.py --handoffs 5 --seconds 3

Everything runs against a database of its own (default `celltrail_bench_custody`, dropped
and re-created at the start; never `test`) on PostgreSQL at 127.0.0.1, through gunicorn.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import json
import os
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Callable
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
from bench.ledger import (  # noqa: E402
    RAW_TABLE,
    Context,
    CpuProbe,
    Rate,
    gunicorn,
    http_call,
    plain_dsn,
    raw_client,
    recreate_database,
    run_clients,
    say,
    verdict,
)
from bench.lots import release  # noqa: E402
from custody.ledger import verify_ledger  # noqa: E402
from custody.manufacturing import create_lot  # noqa: E402
from custody.shipping import create_shipment, pack_vials, seal, ship  # noqa: E402
from lots.accounts import get_site, get_user, password_hasher  # noqa: E402
from lots.base import utcnow  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"
COURIERS = ("courier", "courier2")  # CryoLink couriers: a depot does not ask for signatures
TARGET_HANDOFF_SECONDS = 1.0
EVENT_COLUMNS = (
    "chain, seq, event_type, occurred_at, recorded_at, actor_user_id, site_id, prev_hash, "
    "hash, body"
)
RAW_INDEXED = (
    "CREATE TABLE raw_events_indexed (LIKE custody_events INCLUDING DEFAULTS INCLUDING INDEXES)"
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vials", type=int, default=500, help="vials in the big shipper")
    parser.add_argument("--handoffs", type=int, default=9, help="big-shipper handoffs timed")
    parser.add_argument("--clients", type=int, default=8, help="concurrent capture clients")
    parser.add_argument("--per-shipper", type=int, default=4, help="vials in each small shipper")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each rate run")
    parser.add_argument("--max-ops", type=int, default=50_000, help="cap per rate run")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn threads per worker")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--database", default="celltrail_bench_custody", help="bench database")
    args = parser.parse_args()
    reserved = ("test", "postgres", "template0", "template1", "celltrail_bench")
    if args.database in reserved or args.database.startswith("celltrail_bench_lots"):
        parser.error(f"refusing to use the database {args.database!r}")
    if make_url(args.server).host not in ("127.0.0.1", "localhost"):
        parser.error("the bench only talks to 127.0.0.1")
    if not 1 <= args.vials <= 9999 or not 1 <= args.clients * args.per_shipper <= 9999:
        parser.error("a lot holds 1 to 9,999 vials")
    if args.handoffs < 1 or args.clients < 1 or args.per_shipper < 1:
        parser.error("--handoffs, --clients and --per-shipper are positive")
    return args


# ------------------------------------------------------------------------- setup


def released_lot(sessions: sessionmaker[Session], number: str, vials: int) -> list[str]:
    """A lot made at XSM-SZ and released by the demo users; its serials."""
    end = utcnow().replace(microsecond=0) - dt.timedelta(days=2)
    with sessions() as session, session.begin():
        create_lot(
            session,
            get_user(session, "manufacturing"),
            number=number,
            product_code="XS228",
            bank_code="XS-WCB-01",
            manufacture_start=end - dt.timedelta(days=28),
            manufacture_end=end,
            vials_filled=vials,
            cells_per_vial=10_000_000,
            volume_ml=Decimal("1.0"),
            qc_site=get_site(session, "XSM-QC"),
        )
    release(sessions, number)
    return [f"{number}-V{position:04d}" for position in range(1, vials + 1)]


def shipped(sessions: sessionmaker[Session], serials: list[str]) -> str:
    """A shipper packed with these vials, sealed and handed to the first courier (services)."""
    with sessions() as session, session.begin():
        maker, now = get_user(session, "manufacturing"), utcnow()
        shipment = create_shipment(
            session, maker, to_site_code="SYSU3-PH", hold_time_hours=72, now=now
        )
        pack_vials(session, maker, shipment.sscc, serials, now=now)
        seal(session, maker, shipment.sscc, f"SEAL-{shipment.sscc[-8:]}", now=now)
        ship(session, maker, shipment.sscc, COURIERS[0], now=now)
        return shipment.sscc


def token(port: int, username: str) -> str:
    status, answer = http_call(
        port,
        "POST",
        "/api/v1/auth/tokens",
        {"username": username, "password": f"{username}-demo-2026", "label": "bench"},
    )
    if status != 201:
        raise RuntimeError(f"token for {username} answered {status}: {answer}")
    return str(answer["token"])


class Api:
    """One keep-alive connection to gunicorn, bearer-authenticated."""

    def __init__(self, port: int, bearer: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {bearer}"}

    def post(self, path: str, body: dict[str, Any], expect: int) -> Any:
        self.conn.request("POST", path, json.dumps(body), self.headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != expect:
            raise RuntimeError(f"POST {path} answered {response.status}: {data[:300]!r}")
        return json.loads(data)

    def close(self) -> None:
        self.conn.close()


# ----------------------------------------------------------------- the big shipper


def big_shipper_over_http(port: int, tokens: dict[str, str], serials: list[str]) -> str:
    """Create, pack, seal and ship the big shipper through the API; prints the pack time."""
    maker = Api(port, tokens["manufacturing"])
    try:
        sscc = maker.post("/api/v1/shipments", {"to_site": "SYSU3-PH", "hold_time_hours": 72}, 201)[
            "sscc"
        ]
        started = time.perf_counter()
        maker.post(f"/api/v1/shipments/{sscc}/vials", {"serials": serials}, 200)
        packed = time.perf_counter() - started
        maker.post(f"/api/v1/shipments/{sscc}/seal", {"seal_number": "SEAL-BENCH-500"}, 200)
        maker.post(f"/api/v1/shipments/{sscc}/ship", {"courier": COURIERS[0]}, 200)
    finally:
        maker.close()
    say(f"  shipper {sscc}: {len(serials)} vials packed over HTTP in {packed * 1000:.0f} ms")
    return sscc


def big_handoffs(port: int, tokens: dict[str, str], sscc: str, count: int) -> list[float]:
    """Seconds of each handoff of the big shipper, couriers taking it back and forth."""
    apis = {username: Api(port, tokens[username]) for username in COURIERS}
    seconds = []
    try:
        for n in range(count):
            giver, taker = COURIERS[n % 2], COURIERS[(n + 1) % 2]
            started = time.perf_counter()
            answer = apis[taker].post(f"/api/v1/shipments/{sscc}/handoffs", {"giver": giver}, 201)
            seconds.append(time.perf_counter() - started)
            if answer["taker"]["user"] != taker or answer["number"] != n + 1:
                raise RuntimeError(f"unexpected handoff answer: {answer}")
            say(f"  handoff {n + 1}: {giver} → {taker} in {seconds[-1] * 1000:.0f} ms")
    finally:
        for api in apis.values():
            api.close()
    return seconds


def vial_chains_show_the_last_handoff(dsn: str, serials: list[str], taker: str) -> str:
    """Every vial's newest event is the last HANDED_OFF, to the last taker."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT DISTINCT ON (chain) chain, event_type, convert_from(body, 'UTF8')::jsonb"
            " -> 'payload' -> 'to' ->> 'user' FROM custody_events WHERE chain = ANY(%s)"
            " ORDER BY chain, seq DESC",
            ([f"vial:{serial}" for serial in serials],),
        ).fetchall()
    good = sum(1 for _, kind, to in rows if kind == "HANDED_OFF" and to == taker)
    return f"{good} of {len(serials)} vial chains end with HANDED_OFF to {taker}"


def raw_big_handoff(dsn: str, sscc: str, repeats: int) -> list[float]:
    """The rows of the last handoff (1 + N events) written again in one transaction."""
    with psycopg.connect(dsn) as conn:
        (recorded_at,) = conn.execute(  # type: ignore[misc]
            "SELECT max(recorded_at) FROM custody_events WHERE chain = %s", (f"shipment:{sscc}",)
        ).fetchone()
        rows = conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM custody_events WHERE recorded_at = %s"
            " AND event_type = 'HANDED_OFF' ORDER BY id",
            (recorded_at,),
        ).fetchall()
        conn.execute(RAW_INDEXED)
        conn.commit()
        marks = ", ".join(["%s"] * len(EVENT_COLUMNS.split(",")))
        seconds = []
        for _ in range(repeats):
            conn.execute("TRUNCATE raw_events_indexed")
            conn.commit()
            started = time.perf_counter()
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO raw_events_indexed ({EVENT_COLUMNS}) VALUES ({marks})", rows
                )
            seconds.append(time.perf_counter() - started)
    say(f"  raw: the handoff's {len(rows)} event rows re-inserted in one transaction")
    return seconds


# ------------------------------------------------------------------ capture rate


# Who holds each small shipper now: a later run on the same shipper (the 8-client run after
# the 1-client one) must start from the courier who holds it, whatever its count of handoffs.
HOLDERS: dict[str, str] = {}


def handoff_client(
    port: int, tokens: dict[str, str], sscc: str
) -> Callable[[], Callable[[], None]]:
    """A client owning one small shipper, handing it between the two couriers."""

    def open_client() -> Callable[[], None]:
        apis = {username: Api(port, tokens[username]) for username in COURIERS}
        HOLDERS.setdefault(sscc, COURIERS[0])

        def hand_over() -> None:
            giver = HOLDERS[sscc]
            taker = COURIERS[1] if giver == COURIERS[0] else COURIERS[0]
            apis[taker].post(f"/api/v1/shipments/{sscc}/handoffs", {"giver": giver}, 201)
            HOLDERS[sscc] = taker

        return hand_over

    return open_client


def raw_batch_client(dsn: str, client: int, rows: int) -> Callable[[], Callable[[], None]]:
    """Raw INSERT of `rows` event-sized rows and one COMMIT per operation."""
    body = b"x" * 700

    def open_client() -> Callable[[], None]:
        conn = psycopg.connect(dsn)
        seq = iter(range(1, 10**9))

        def insert() -> None:
            now = dt.datetime.now(dt.UTC)
            batch = [
                (
                    f"raw:{client}:{r}",
                    next(seq),
                    "HANDED_OFF",
                    now,
                    now,
                    1,
                    1,
                    "0" * 64,
                    "f" * 64,
                    body,
                )
                for r in range(rows)
            ]
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO bench_raw (chain, seq, event_type, occurred_at, recorded_at,"
                    " actor_user_id, site_id, prev_hash, hash, body)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    batch,
                )
            conn.commit()

        return insert

    return open_client


# ------------------------------------------------------------------------ report


def describe(seconds: list[float]) -> str:
    return (
        f"median {statistics.median(seconds) * 1000:.0f} ms "
        f"(min {min(seconds) * 1000:.0f}, max {max(seconds) * 1000:.0f}, n={len(seconds)})"
    )


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # gunicorn is stopped on the way
    say(
        f"celltrail custody bench — PostgreSQL {args.server} database {args.database}, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    url = recreate_database(args.server, args.database)
    upgrade(url)
    engine = make_engine(url, pool_size=4)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with sessions() as session, session.begin():
        demo.load(session, password_hasher("cheapest"))
    dsn = plain_dsn(url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
        version = conn.execute("SHOW server_version").fetchone()
        settings = conn.execute(
            "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings "
            "WHERE name IN ('synchronous_commit', 'fsync', 'shared_buffers')"
        ).fetchone()
    say(f"  PostgreSQL {version and version[0]}: {settings and settings[0]}")

    say(
        f"\n[1/3] lots: {args.vials} vials for the big shipper, "
        f"{args.clients} × {args.per_shipper} for the small ones (services, untimed)"
    )
    big = released_lot(sessions, "BENCH-BIG", args.vials)
    small = released_lot(sessions, "BENCH-SMALL", args.clients * args.per_shipper)
    small_ssccs = [
        shipped(sessions, small[i * args.per_shipper : (i + 1) * args.per_shipper])
        for i in range(args.clients)
    ]
    ctx = Context(
        url=url,
        dsn=dsn,
        sessions=sessions,
        key_text=base64.b64encode(secrets.token_bytes(32)).decode(),
    )
    with gunicorn(ctx, args.workers, args.threads) as (port, master):
        tokens = {name: token(port, name) for name in ("manufacturing", *COURIERS)}
        say(
            f"\n[2/3] the {args.vials}-vial shipper over HTTP (gunicorn --workers {args.workers}"
            f" --threads {args.threads}): one POST …/handoffs per change of hands"
        )
        sscc = big_shipper_over_http(port, tokens, big)
        handoffs = big_handoffs(port, tokens, sscc, args.handoffs)
        last_taker = COURIERS[args.handoffs % 2]
        say(f"  {vial_chains_show_the_last_handoff(dsn, big, last_taker)}")
        raw_big = raw_big_handoff(dsn, sscc, args.handoffs)

        say(
            f"\n[3/3] handoff capture, {args.clients} clients on {args.clients} shippers of "
            f"{args.per_shipper} vials ({args.seconds:g} s each)"
        )
        probe = CpuProbe(dsn, lambda: master)
        raw1 = run_clients(
            [raw_client(dsn, i) for i in range(args.clients)], args.seconds, args.max_ops, probe
        )
        say(f"  raw INSERT+COMMIT, 1 row, {args.clients} connections:   {raw1.describe()}")
        rows = 1 + args.per_shipper
        rawn = run_clients(
            [raw_batch_client(dsn, i, rows) for i in range(args.clients)],
            args.seconds,
            args.max_ops,
            probe,
        )
        say(f"  raw INSERT+COMMIT, {rows} rows, {args.clients} connections:  {rawn.describe()}")
        http1 = run_clients(
            [handoff_client(port, tokens, small_ssccs[0])], args.seconds, args.max_ops, probe
        )
        say(f"  HTTP handoffs, 1 client:                 {http1.describe()}\n{http1.where()}")
        httpn = run_clients(
            [handoff_client(port, tokens, s) for s in small_ssccs],
            args.seconds,
            args.max_ops,
            probe,
        )
        say(
            f"  HTTP handoffs, {args.clients} clients:                {httpn.describe()}\n"
            f"{httpn.where()}"
        )

    with sessions() as session:
        report = verify_ledger(session, {})
    say(f"  verify_ledger after the runs: intact={report.intact} ({report.events} events)")

    median = statistics.median(handoffs)
    say("\nSummary (PostgreSQL, same run)")
    say(f"  {args.vials}-vial shipper handoff over HTTP: {describe(handoffs)}")
    say(f"    raw re-insert of its {args.vials + 1} event rows + COMMIT: {describe(raw_big)}")
    say(
        f"    {median / statistics.median(raw_big):.1f}× the raw write; target ≤ "
        f"{TARGET_HANDOFF_SECONDS:g} s: {verdict(median <= TARGET_HANDOFF_SECONDS)}"
    )
    summarise_rate(httpn, raw1, rawn, clients=args.clients, rows=rows)
    engine.dispose()
    return 0


def summarise_rate(http: Rate, raw1: Rate, rawn: Rate, *, clients: int, rows: int) -> None:
    say(
        f"  HTTP handoffs, {clients} clients: {http.per_second:.0f}/s "
        f"({http.per_second * rows:.0f} events/s); raw INSERT+COMMIT ×{clients}: "
        f"{raw1.per_second:.0f} commits/s of 1 row "
        f"({http.per_second / raw1.per_second:.0%}), {rawn.per_second:.0f} commits/s of {rows} "
        f"rows ({http.per_second / rawn.per_second:.0%})"
    )


if __name__ == "__main__":
    sys.exit(main())
