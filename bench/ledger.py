"""Ledger numbers of DESIGN.md §8, each beside the raw limit measured in the same run.

    .venv/bin/python bench/ledger.py                  # 1,000,000-event ledger
    .venv/bin/python bench/ledger.py --events 50000   # quick

Everything runs against a database of its own (default `celltrail_bench`, dropped and
re-created at the start; never `test`) on PostgreSQL at 127.0.0.1. See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import datetime as dt
import hashlib
import http.client
import io
import json
import math
import multiprocessing
import os
import pstats
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import demo  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from custody.ledger import (  # noqa: E402  # noqa: E402  # noqa: E402
    Actor,
    ChainHead,
    CustodyEvent,
    EventDraft,
    append_event,
    build_body,
    chain_events,
    create_checkpoint,
    key_id,
    link,
    load_private_key,
    verify_ledger,
)
from lots.accounts import password_hasher  # noqa: E402
from lots.models import Site, User  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"
SITE_CODES = [code for code, *_ in demo.SITES]
BENCH_USER = "qa"
BENCH_PASSWORD = "qa-demo-2026"  # noqa: S105 - a public demo password
CHAIN_BLOCK = 1000  # chains generated together; their events interleave in id order
VIAL_STEPS = [
    "COMMISSIONED",
    "INSPECTED",
    "PACKED",
    "SHIPPED",
    "RECEIVED",
    "STORED",
    "INSPECTED",
    "DISPENSED",
    "HANDED_OFF",
    "ADMINISTERED",
]
TARGET_HTTP_RATIO = 0.50
TARGET_VERIFY_RATIO = 0.50
TARGET_VERIFY_SECONDS = 10.0
TARGET_VERIFY_EVENTS = 1_000_000


# ---------------------------------------------------------------------------- setup


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="ledger size to verify")
    parser.add_argument("--chain-length", type=int, default=10, help="events per generated chain")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each append run")
    parser.add_argument("--max-ops", type=int, default=50_000, help="cap per append run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (≤ 9)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=2, help="gunicorn threads per worker")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="PostgreSQL server URL")
    parser.add_argument("--database", default="celltrail_bench", help="bench database name")
    parser.add_argument(
        "--profile", action="store_true", help="also cProfile one verification (untimed)"
    )
    args = parser.parse_args()
    if args.database in ("test", "postgres", "template0", "template1"):
        parser.error(f"refusing to use the database {args.database!r}")
    if make_url(args.server).host not in ("127.0.0.1", "localhost"):
        parser.error("the bench only talks to 127.0.0.1")
    if not 1 <= args.clients <= len(SITE_CODES):
        parser.error(f"--clients is 1 to {len(SITE_CODES)} (one site chain each)")
    if args.events < 1 or args.chain_length < 1:
        parser.error("--events and --chain-length are positive")
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


@dataclass
class Context:
    url: str
    dsn: str
    sessions: sessionmaker[Session]
    key_text: str
    results: dict[str, Any] = field(default_factory=dict)


def say(text: str) -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------- throughput


@dataclass
class Rate:
    ops: int
    seconds: float
    latencies: list[float]
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def describe(self) -> str:
        lat = sorted(self.latencies)
        if not lat:
            return "no operations"
        p50 = lat[len(lat) // 2] * 1000
        p99 = lat[min(len(lat) - 1, math.ceil(len(lat) * 0.99) - 1)] * 1000
        return (
            f"{self.per_second:8.0f}/s  ({self.ops} ops in {self.seconds:.2f} s, "
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms)"
        )

    def where(self) -> str:
        """CPU milliseconds per operation by process group, and how busy the machine was."""
        if not self.ops or not self.cpu:
            return ""
        parts = [
            f"{name} {ms / self.ops:.2f}"
            for name, ms in self.cpu.items()
            if name != "machine busy %"
        ]
        return (
            f"      CPU ms/op: {', '.join(parts)}; machine {self.cpu['machine busy %']:.0f} % busy"
        )


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PG_HELPERS = ("walwriter", "checkpointer", "background writer", "autovacuum worker")


def _proc_stat(pid: str) -> tuple[int, int] | None:
    """(parent pid, user + system clock ticks) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _all_processes() -> dict[int, tuple[int, int]]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(entry)
            if stat is not None:
                found[int(entry)] = stat
    return found


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class CpuProbe:
    """CPU time spent by this process, the app server's workers and our PostgreSQL backends.

    Backends are those connected to the bench database (plus the WAL writer, checkpointer
    and background writer, which work for whoever writes); others' load on the machine
    shows up only in "machine busy".
    """

    def __init__(self, dsn: str, server_pid: Callable[[], int | None] = lambda: None) -> None:
        self.dsn = dsn
        self.server_pid = server_pid
        self.before: dict[int, tuple[int, int]] = {}
        self.machine_before = (0, 0)

    def start(self) -> None:
        self.before = _all_processes()
        self.machine_before = _machine_ticks()

    def stop(self) -> dict[str, float]:
        after = _all_processes()
        machine = _machine_ticks()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                " AND (datname = current_database() OR backend_type = ANY(%s))",
                (list(PG_HELPERS),),
            ).fetchall()
        groups = {"bench process": {os.getpid()}, "postgres": {pid for (pid,) in rows}}
        master = self.server_pid()
        if master is not None:
            groups["gunicorn workers"] = {
                pid for pid, (parent, _) in after.items() if parent == master
            } | {master}

        def spent(pids: set[int]) -> float:
            ticks = sum(
                after[pid][1] - self.before.get(pid, (0, 0))[1] for pid in pids if pid in after
            )
            return ticks * 1000 / CLOCK_TICKS

        cpu = {name: spent(pids) for name, pids in groups.items()}
        busy = machine[0] - self.machine_before[0]
        total = machine[1] - self.machine_before[1]
        cpu["machine busy %"] = 100 * busy / total if total else 0.0
        return cpu


def run_clients(
    clients: list[Callable[[], Callable[[], None]]],
    seconds: float,
    max_ops: int,
    probe: CpuProbe | None = None,
    warmup: int = 3,
) -> Rate:
    """Each client factory opens its resources and returns one-operation callables.

    Every client runs `warmup` untimed operations, then all start together and run until
    `seconds` have passed or `max_ops` operations were done in total.
    """
    count = len(clients)
    barrier = threading.Barrier(count + 1)
    lock = threading.Lock()
    latencies: list[list[float]] = [[] for _ in range(count)]
    failures: list[BaseException] = []
    state = {"ops": 0, "deadline": 0.0}
    keep: list[Callable[[], None]] = []  # connections stay open until the probe has read

    def run(index: int) -> None:
        try:
            operation = clients[index]()
            keep.append(operation)
            for _ in range(warmup):
                operation()
        except BaseException as error:
            failures.append(error)
            barrier.abort()
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        mine = latencies[index]
        while time.perf_counter() < state["deadline"]:
            with lock:
                if state["ops"] >= max_ops:
                    break
                state["ops"] += 1
            started = time.perf_counter()
            try:
                operation()
            except BaseException as error:
                failures.append(error)
                return
            mine.append(time.perf_counter() - started)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    state["deadline"] = time.perf_counter() + 3600  # set properly once everyone is ready
    with suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=120)
    if probe is not None:
        probe.start()
    started = time.perf_counter()
    state["deadline"] = started + seconds
    for thread in threads:
        thread.join(timeout=seconds + 120)
    elapsed = time.perf_counter() - started
    cpu = probe.stop() if probe is not None else {}
    keep.clear()
    if failures:
        raise RuntimeError(f"a client failed: {failures[0]!r}") from failures[0]
    done = [x for client in latencies for x in client]
    return Rate(ops=len(done), seconds=elapsed, latencies=done, cpu=cpu)


RAW_TABLE = """
CREATE TABLE bench_raw (
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
)
"""
RAW_INSERT = (
    "INSERT INTO bench_raw (chain, seq, event_type, occurred_at, recorded_at, actor_user_id,"
    " site_id, prev_hash, hash, body) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def sample_body() -> bytes:
    """Bytes of the size of an INSPECTED event posted over HTTP."""
    now = dt.datetime.now(dt.UTC)
    canonical, _ = link(
        build_body(
            chain="site:SYSU3-SPINE",
            seq=12,
            prev="0" * 64,
            event_type="INSPECTED",
            occurred_at=now,
            recorded_at=now,
            actor=Actor(user="qa", name="Li Wei", role="qa"),
            site="XSM-SZ",
            payload={"note": "bench observation 000123", "observations": {}},
        )
    )
    return canonical


def raw_client(dsn: str, client: int) -> Callable[[], Callable[[], None]]:
    body = sample_body()

    def open_client() -> Callable[[], None]:
        conn = psycopg.connect(dsn)
        seq = iter(range(1, 10**9))

        def insert() -> None:
            n = next(seq)
            now = dt.datetime.now(dt.UTC)
            conn.execute(
                RAW_INSERT,
                (
                    f"raw:{client}",
                    n,
                    "INSPECTED",
                    now,
                    now,
                    1,
                    1,
                    "0" * 64,
                    hashlib.sha256(b"%d:%d" % (client, n)).hexdigest(),
                    body,
                ),
                prepare=True,
            )
            conn.commit()

        return insert

    return open_client


def service_client(ctx: Context, chain: str) -> Callable[[], Callable[[], None]]:
    def open_client() -> Callable[[], None]:
        session = ctx.sessions()
        user = session.scalars(select(User).where(User.username == BENCH_USER)).one()
        site = user.site
        counter = iter(range(10**9))

        def append() -> None:
            append_event(
                session,
                EventDraft(
                    chain=chain,
                    event_type="INSPECTED",
                    occurred_at=dt.datetime.now(dt.UTC),
                    payload={"note": f"bench observation {next(counter):06d}", "observations": {}},
                    actor=user,
                    site=site,
                ),
            )
            session.commit()

        return append

    return open_client


# ---------------------------------------------------------------------------- HTTP


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(ctx: Context, workers: int, threads: int) -> Iterator[tuple[int, int]]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": ctx.url,
        "CELLTRAIL_CHECKPOINT_KEY": ctx.key_text,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "CELLTRAIL_ENV": "development",
    }
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept until the server stops
        prefix="celltrail-bench-gunicorn-", suffix=".log", delete=False
    )
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "app:create_app()",
    ]
    server = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {server.returncode}; see {log.name}")
            try:
                status, _ = http_call(port, "GET", "/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 60 s; see {log.name}")
            time.sleep(0.2)
        yield port, server.pid
        failed = False
    except BaseException:
        failed = True
        raise
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)  # the master stops its workers
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
        log.close()
        if not failed:
            Path(log.name).unlink()


def http_call(
    port: int, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None
    finally:
        conn.close()


def http_client(port: int, token: str, chain: str) -> Callable[[], Callable[[], None]]:
    def open_client() -> Callable[[], None]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        counter = iter(range(10**9))

        def post() -> None:
            now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            body = json.dumps(
                {"chain": chain, "occurred_at": now, "note": f"bench {next(counter):06d}"}
            )
            conn.request("POST", "/api/v1/ledger/events", body, headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 201:
                raise RuntimeError(f"POST answered {response.status}: {data[:300]!r}")

        return post

    return open_client


# ------------------------------------------------------------------- ledger loading


def _generate_block(task: tuple[Any, ...]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Rows and heads of one block of vial chains, events interleaved across the block."""
    first, lengths, sites, actor_id, actor, base, recorded_from = task
    rows: list[tuple[Any, ...]] = []
    heads: list[tuple[Any, ...]] = []
    chains = [f"vial:BENCH-{first + i:07d}" for i in range(len(lengths))]
    prevs: list[str | None] = [None] * len(lengths)
    for seq in range(1, max(lengths) + 1):
        for i, chain in enumerate(chains):
            if seq > lengths[i]:
                continue
            number = first + i
            site_id, site_code = sites[(number + seq) % len(sites)]
            event_type = VIAL_STEPS[(seq - 1) % len(VIAL_STEPS)]
            occurred = base + dt.timedelta(
                seconds=number * 7 + seq * 3600, microseconds=(number * 7919 + seq) % 1_000_000
            )
            # Recorded in the order the rows are inserted (block by block, a millisecond per
            # chain, each row a microsecond later), from the bench's start, as the ledger's own
            # clock would: verify refuses a recording time that goes back.
            recorded = recorded_from + dt.timedelta(microseconds=first * 1000 + len(rows))
            canonical, event_hash = link(
                build_body(
                    chain=chain,
                    seq=seq,
                    prev=prevs[i],
                    event_type=event_type,
                    occurred_at=occurred,
                    recorded_at=recorded,
                    actor=actor,
                    site=site_code,
                    payload={
                        "lot": f"BENCH-{number // 40:05d}",
                        "note": f"{event_type.lower()} step of the bench vial",
                        "location": f"Dewar {number % 7} / rack {seq} / box {number % 13}",
                        "temperature_c": -150 - (number + seq) % 40,
                    },
                )
            )
            rows.append(
                (
                    chain,
                    seq,
                    event_type,
                    occurred,
                    recorded,
                    actor_id,
                    site_id,
                    prevs[i],
                    event_hash,
                    canonical,
                )
            )
            prevs[i] = event_hash
            if seq == lengths[i]:
                heads.append((chain, seq, event_hash, recorded))
    return rows, heads


def _worker_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # Pool.terminate must be able to stop us
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def _drop_secondary_indexes(cursor: psycopg.Cursor[Any], table: str) -> list[str]:
    """Drop a table's unique constraints and plain indexes (not its primary key).

    Returns the statements that recreate them exactly as they were.
    """
    constraints = cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = %s::regclass AND contype = 'u' ORDER BY conname",
        (table,),
    ).fetchall()
    indexes = cursor.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid"
        " WHERE x.indrelid = %s::regclass AND NOT x.indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"
        " ORDER BY i.relname",
        (table,),
    ).fetchall()
    restore = []
    for name, definition in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        restore.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for name, definition in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
        restore.append(definition)
    return restore


def load_ledger(ctx: Context, total: int, chain_length: int) -> None:
    with ctx.sessions() as session:
        existing = session.query(CustodyEvent).count()
        user = session.scalars(select(User).where(User.username == BENCH_USER)).one()
        actor = Actor(user=user.username, name=user.full_name, role=user.role)
        sites = [(site.id, site.code) for site in session.scalars(select(Site).order_by(Site.id))]
        actor_id = user.id
    wanted = max(0, total - existing)
    say(f"  demo events: {existing}; generating {wanted} more in chains of {chain_length}")
    if not wanted:
        return
    chains = math.ceil(wanted / chain_length)
    lengths = [chain_length] * chains
    lengths[-1] = wanted - chain_length * (chains - 1)
    base = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)
    recorded_from = dt.datetime.now(dt.UTC)  # after the demo's events
    tasks = [
        (start, lengths[start : start + CHAIN_BLOCK], sites, actor_id, actor, base, recorded_from)
        for start in range(0, chains, CHAIN_BLOCK)
    ]
    columns = (
        "chain, seq, event_type, occurred_at, recorded_at, actor_user_id, site_id,"
        " prev_hash, hash, body"
    )
    types = [
        "varchar",
        "int4",
        "varchar",
        "timestamptz",
        "timestamptz",
        "int4",
        "int4",
        "varchar",
        "varchar",
        "bytea",
    ]
    started = time.perf_counter()
    written = 0
    heads: list[tuple[Any, ...]] = []
    processes = max(1, min(os.cpu_count() or 1, 4))
    pool = multiprocessing.get_context("fork").Pool(processes, initializer=_worker_signals)
    try:
        with psycopg.connect(ctx.dsn) as conn, conn.cursor() as cursor:
            # Random-key index inserts one row at a time make a COPY of a million rows
            # I/O-bound (full-page writes at every forced checkpoint); rebuilding is minutes
            # faster. The definitions are read back from the catalog and restored verbatim.
            restore = _drop_secondary_indexes(cursor, "custody_events")
            copy_sql = f"COPY custody_events ({columns}) FROM STDIN (FORMAT BINARY)"
            with cursor.copy(copy_sql) as copy:
                copy.set_types(types)
                for rows, block_heads in pool.imap(_generate_block, tasks):
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
            loaded = time.perf_counter()
            cursor.execute("SET maintenance_work_mem = '256MB'")
            for statement in restore:
                cursor.execute(statement)
            conn.commit()
        pool.close()
        pool.join()
    finally:
        pool.terminate()
    say(
        f"  generated and COPY-loaded {written} events, {len(heads)} chain heads in "
        f"{loaded - started:.1f} s ({processes} generator processes); "
        f"{len(restore)} indexes rebuilt in {time.perf_counter() - loaded:.1f} s"
    )
    started = time.perf_counter()
    with psycopg.connect(ctx.dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) custody_events")
        conn.execute("VACUUM (ANALYZE) chain_heads")
    say(f"  VACUUM ANALYZE in {time.perf_counter() - started:.1f} s")


# ----------------------------------------------------------------------- verifying


def sha_pass(dsn: str) -> tuple[int, int, float]:
    """Plain SHA-256 of every stored body, streamed with a server-side cursor."""
    started = time.perf_counter()
    count = size = 0
    sha256 = hashlib.sha256
    with psycopg.connect(dsn) as conn, conn.cursor(name="bench_sha") as cursor:
        cursor.itersize = 5000
        cursor.execute("SELECT body FROM custody_events")
        for (body,) in cursor:
            sha256(body).hexdigest()
            count += 1
            size += len(body)
    return count, size, time.perf_counter() - started


def verify_pass(ctx: Context) -> tuple[Any, float]:
    keys = trusted(ctx)
    with ctx.sessions() as session:
        started = time.perf_counter()
        report = verify_ledger(session, keys)
        return report, time.perf_counter() - started


def trusted(ctx: Context) -> dict[str, Any]:
    public = load_private_key(ctx.key_text).public_key()
    return {key_id(public): public}


def verify_touched_chains(ctx: Context, chains: list[str]) -> str:
    """An auditor's check of the chains the append runs wrote (a full pass would be a
    second verify_ledger): each body hashes to its hash, names its chain, seq and
    predecessor, seqs run 1..n without gaps, and the chain head points at the last one."""
    events = 0
    with ctx.sessions() as session:
        for chain in chains:
            previous: str | None = None
            for number, event in enumerate(chain_events(session, chain), start=1):
                body = orjson.loads(event.body)
                if (
                    hashlib.sha256(event.body).hexdigest() != event.hash
                    or (body["chain"], body["seq"], body["prev"]) != (chain, number, previous)
                    or (event.seq, event.prev_hash) != (number, previous)
                ):
                    return f"BROKEN at {chain} seq {number} (event {event.id})"
                previous = event.hash
                events += 1
            head = session.get(ChainHead, chain)
            if head is None or head.hash != previous:
                return f"BROKEN: the head of {chain} does not point at its last event"
    return f"intact ({events} events on {len(chains)} chains)"


# --------------------------------------------------------------------------- report


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C, so gunicorn is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    say(
        f"celltrail ledger bench — PostgreSQL {args.server} database {args.database}, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    url = recreate_database(args.server, args.database)
    upgrade(url)
    engine = make_engine(url, pool_size=args.clients + 2, max_overflow=4)
    ctx = Context(
        url=url,
        dsn=plain_dsn(url),
        sessions=sessionmaker(engine, expire_on_commit=False),
        key_text=base64.b64encode(secrets.token_bytes(32)).decode(),
    )
    with ctx.sessions() as session:
        demo.load(session, password_hasher("cheapest"))
        session.commit()
    with psycopg.connect(ctx.dsn) as conn:
        server_version = conn.execute("SHOW server_version").fetchone()
        settings = conn.execute(
            "SELECT string_agg(name || '=' || setting, ', ' ORDER BY name) FROM pg_settings "
            "WHERE name IN ('synchronous_commit', 'fsync', 'shared_buffers', 'wal_sync_method')"
        ).fetchone()
    say(f"  PostgreSQL {server_version and server_version[0]}: {settings and settings[0]}")

    # -- ledger of the requested size, a checkpoint over it, and verification
    say(f"\n[1/4] loading a ledger of {args.events:,} events")
    engine.dispose()  # no pooled connections across the generator fork
    load_ledger(ctx, args.events, args.chain_length)
    started = time.perf_counter()
    with ctx.sessions() as session:
        checkpoint = create_checkpoint(session, load_private_key(ctx.key_text))
        session.commit()
        say(
            f"  signed checkpoint over {checkpoint.event_count} events in "
            f"{time.perf_counter() - started:.1f} s"
        )

    say("\n[2/4] verification vs plain SHA-256 over the same bodies")
    count, size, sha_first = sha_pass(ctx.dsn)
    say(f"  plain SHA-256 pass 1: {count} bodies, {size / 1e6:.0f} MB, {sha_first:.2f} s")
    report, verify_seconds = verify_pass(ctx)
    say(
        f"  verify_ledger: intact={report.intact} events={report.events} chains={report.chains}"
        f" checkpoints={report.checkpoints} first_break={report.first_break}"
        f" in {verify_seconds:.2f} s"
    )
    _, _, sha_second = sha_pass(ctx.dsn)
    say(f"  plain SHA-256 pass 2: {sha_second:.2f} s")
    sha_seconds = min(sha_first, sha_second)
    if not report.intact or report.events != count:
        say("  !! the generated ledger does not verify: the figures below are meaningless")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        verify_pass(ctx)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
        say("  cProfile of verify_ledger (untimed run; tottime order):")
        for line in out.getvalue().splitlines():
            if line.strip():
                say("    " + line.rstrip())

    # -- raw INSERT + COMMIT
    clients = args.clients
    say(f"\n[3/4] raw INSERT + COMMIT and service-layer appends ({args.seconds:g} s each)")
    with psycopg.connect(ctx.dsn, autocommit=True) as conn:
        conn.execute(RAW_TABLE)
    probe = CpuProbe(ctx.dsn)
    raw1 = run_clients([raw_client(ctx.dsn, 0)], args.seconds, args.max_ops, probe)
    say(f"  raw, 1 connection:            {raw1.describe()}\n{raw1.where()}")
    rawn = run_clients(
        [raw_client(ctx.dsn, i) for i in range(clients)], args.seconds, args.max_ops, probe
    )
    say(f"  raw, {clients} connections:           {rawn.describe()}\n{rawn.where()}")

    svc1 = run_clients(
        [service_client(ctx, f"site:{SITE_CODES[0]}")], args.seconds, args.max_ops, probe
    )
    say(f"  append_event, 1 session:      {svc1.describe()}\n{svc1.where()}")
    svcn = run_clients(
        [service_client(ctx, f"site:{code}") for code in SITE_CODES[:clients]],
        args.seconds,
        args.max_ops,
        probe,
    )
    say(f"  append_event, {clients} threads:      {svcn.describe()}\n{svcn.where()}")

    # -- HTTP
    say(
        f"\n[4/4] POST /api/v1/ledger/events through gunicorn "
        f"(--workers {args.workers} --threads {args.threads}, {args.seconds:g} s each)"
    )
    with gunicorn(ctx, args.workers, args.threads) as (port, master):
        probe = CpuProbe(ctx.dsn, lambda: master)
        status, answer = http_call(
            port,
            "POST",
            "/api/v1/auth/tokens",
            {"username": BENCH_USER, "password": BENCH_PASSWORD, "label": "bench"},
        )
        if status != 201:
            raise RuntimeError(f"token request answered {status}: {answer}")
        token = answer["token"]
        http1 = run_clients(
            [http_client(port, token, f"site:{SITE_CODES[0]}")], args.seconds, args.max_ops, probe
        )
        say(f"  HTTP, 1 client:               {http1.describe()}\n{http1.where()}")
        httpn = run_clients(
            [http_client(port, token, f"site:{code}") for code in SITE_CODES[:clients]],
            args.seconds,
            args.max_ops,
            probe,
        )
        say(f"  HTTP, {clients} clients:              {httpn.describe()}\n{httpn.where()}")
    touched = verify_touched_chains(ctx, [f"site:{code}" for code in SITE_CODES[:clients]])
    say(f"  chains written by the append runs: {touched}")

    # -- summary
    verify_rate = report.events / verify_seconds
    sha_rate = count / sha_seconds
    million = TARGET_VERIFY_EVENTS / verify_rate
    extrapolated = "" if report.events == TARGET_VERIFY_EVENTS else " (extrapolated)"
    http_ratio = httpn.per_second / rawn.per_second
    verify_ratio = verify_rate / sha_rate
    say("\nSummary (PostgreSQL, same run)")
    say(f"  {'figure':<36}{'value':>14}{'raw limit':>14}{'ratio':>8}  target")
    lines = [
        ("append_event, 1 session", svc1.per_second, raw1.per_second, ""),
        (f"append_event, {clients} threads", svcn.per_second, rawn.per_second, ""),
        ("HTTP POST event, 1 client", http1.per_second, raw1.per_second, ""),
        (
            f"HTTP POST event, {clients} clients",
            httpn.per_second,
            rawn.per_second,
            f"≥ 50 % of raw INSERT+COMMIT ×{clients}: {verdict(http_ratio >= TARGET_HTTP_RATIO)}",
        ),
        (
            f"verify_ledger ({report.events:,} events)",
            verify_rate,
            sha_rate,
            f"≥ 50 % of plain SHA-256: {verdict(verify_ratio >= TARGET_VERIFY_RATIO)}",
        ),
    ]
    for name, value, raw, target in lines:
        say(f"  {name:<36}{value:>12.0f}/s{raw:>12.0f}/s{value / raw:>7.0%}  {target}")
    say(
        f"  {'1,000,000 events verified in':<36}{million:>12.1f} s{'':>14}{'':>8}  "
        f"≤ 10 s{extrapolated}: {verdict(million <= TARGET_VERIFY_SECONDS)}"
    )
    say(
        f"  (raw limits: INSERT+COMMIT of a {len(sample_body())}-byte-body row, 1 and "
        f"{clients} psycopg connections; SHA-256 of the stored bodies streamed by psycopg, "
        f"best of 2; verify_ledger intact={report.intact}; "
        f"load average {os.getloadavg()[0]:.1f} at the end)"
    )
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
