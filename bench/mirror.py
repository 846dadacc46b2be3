"""Mirror benchmark: drain rate to the local platform simulator, and mirror lag.

* Baseline: the same aiohttp client POSTing ready-made 3505 envelopes to the
  simulator at the same concurrency, no store (what HTTP alone allows here).
* SQLite drain: N committed dispenses across 16 hospitals, drained by one mirror.
* PostgreSQL drain: the same on the local server, drained by two ``jicai-gateway
  serve`` processes sharing one schema (rate over the span of delivery times).
* Lag: 500 events/s offered for a stretch while the mirror runs (SQLite); lag is
  commit to recorded delivery (``delivered_at - created_at``), p50 / p99.

The simulator runs as its own process (``jicai-gateway simulate-platform``).

    python bench/mirror.py [--events 6000] [--lag-seconds 10] [--skip-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from canonical.model import CHINA_TZ, Event, EventKind, Line, Party  # noqa: E402
from gateway.config import parse_config  # noqa: E402
from gateway.metrics import Metrics  # noqa: E402
from gateway.mirror.worker import Destination, Mirror  # noqa: E402
from gateway.platforms import profile_for  # noqa: E402
from gateway.store.base import Incoming, PlannedDelivery  # noqa: E402
from gateway.store.msgid import MsgIdClock  # noqa: E402
from gateway.store.sqlite import SqliteStore  # noqa: E402

HOSPITALS = tuple(f"H3301{n:07d}" for n in range(16))
PG_DSN = os.environ.get("JCGW_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 11, 23, 9, 30, tzinfo=CHINA_TZ)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _event(n: int) -> Event:
    hospital = HOSPITALS[n % len(HOSPITALS)]
    return Event(
        event_id=f"bench-{uuid.uuid4().hex}", kind=EventKind.DISPENSE, hospital_id=hospital,
        source="bench", occurred_at=T0 + timedelta(seconds=n),
        lines=(Line(seq=1, item_code="Y0012345", item_name="阿那曲唑片",
                    specification="1mg*14片", manufacturer="杭州中美华东制药有限公司",
                    quantity=Decimal(2), unit="盒", price=Decimal("32.90"),
                    national_code="XL02BGA045A001010104520", national_quantity=Decimal(28),
                    national_unit="片", national_price=Decimal("2.35"),
                    trace_codes=("81234567890123456789",)),),
        control_id=f"B{n:012d}", document_no=f"CFB{uuid.uuid4().hex[:16]}",
        prescriber=Party("D0107", "李明"), pharmacist=Party("Y0031", "孙丽"))


def _incoming(n: int) -> Incoming:
    ev = _event(n)
    return Incoming(adapter="bench", sender="BENCH", control_id=ev.event_id,
                    message_type="RDS^O13", raw=b"MSH|bench", received_at=datetime.now(CHINA_TZ),
                    events=(ev,), held=(False,), deliveries=(PlannedDelivery(0, "nhsa", 0),))


def _config(url: str) -> Any:
    return parse_config({
        "hospitals": [{"code": h, "name": f"医院{i}"} for i, h in enumerate(HOSPITALS)],
        "destinations": [{"name": "nhsa", "url": url, "batch_size": 1600, "concurrency": 64,
                          "idle_poll_s": 0.05, "timeout_s": 5}],
    }, "bench.yaml")


async def _wait_port(port: int) -> None:
    for _ in range(400):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.025)
    raise RuntimeError(f"nothing listening on {port}")


async def baseline(url: str, n: int, concurrency: int = 16) -> float:
    """Plain POSTs of ready 3505 envelopes at the mirror's per-group concurrency."""
    cfg = _config(url)
    dest = cfg.destinations[0]
    profile = profile_for(dest.profile)(dest, cfg)
    clock = MsgIdClock()
    bodies = []
    for i in range(n):
        ev = _event(i)
        bodies.append(profile.build(ev, 0, clock.next(ev.hospital_id, time.time()),
                                    time.time()).body)
    queue = list(reversed(bodies))
    async with aiohttp.ClientSession() as s:
        async def worker() -> None:
            while queue:
                body = queue.pop()
                async with s.post(url, data=body,
                                  headers={"Content-Type": "application/json"}) as r:
                    await r.read()
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - t)


async def sqlite_drain(url: str, n: int, tmp: Path) -> float:
    store = SqliteStore(tmp / "drain.db")
    await store.start()
    await asyncio.gather(*(store.commit(_incoming(i)) for i in range(n)))
    cfg = _config(url)
    async with aiohttp.ClientSession() as session:
        d = cfg.destinations[0]
        mirror = Mirror(store, [Destination(d, profile_for(d.profile)(d, cfg))], Metrics(),
                        session)
        t = time.perf_counter()
        mirror.start()
        while (await store.balance()).queued:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - t
        await mirror.stop()
    await store.close()
    return n / elapsed


async def pg_drain(url: str, n: int, tmp: Path, processes: int = 2) -> float:
    import asyncpg

    from gateway.store.postgres import PostgresStore

    schema = f"jcgw_bench_{uuid.uuid4().hex[:10]}"
    store = PostgresStore(PG_DSN, schema=schema)
    await store.start()
    await asyncio.gather(*(store.commit(_incoming(i)) for i in range(n)))
    await store.close()
    procs = []
    for p in range(processes):
        cfg = {"log_level": "WARNING",
               "hospitals": [{"code": h, "name": f"医院{i}"} for i, h in enumerate(HOSPITALS)],
               "store": {"backend": "postgres", "postgres_dsn": PG_DSN,
                         "postgres_schema": schema},
               "http": {"host": "127.0.0.1", "port": _free_port()},
               "destinations": [{"name": "nhsa", "url": url, "batch_size": 1600,
                                 "concurrency": 64, "idle_poll_s": 0.05}]}
        path = tmp / f"pg{p}.yaml"
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
        procs.append(subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "-c",
                                       str(path)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=(tmp / f"pg{p}.log").open("wb")))
    con = await asyncpg.connect(PG_DSN)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            left = await con.fetchval(f'SELECT count(*) FROM "{schema}".outbox WHERE state = 0')
            if left == 0:
                break
            await asyncio.sleep(0.1)
        first, last, done = await con.fetchrow(
            f'SELECT min(delivered_at), max(delivered_at), count(*) FROM "{schema}".outbox'
            " WHERE state = 1")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await con.close()
    # rate over the span of recorded delivery times (process start-up excluded)
    return float(done - 1) / max(1e-6, float(last - first))


async def lag(url: str, rate: float, seconds: float, tmp: Path) -> tuple[float, float, int]:
    store = SqliteStore(tmp / "lag.db")
    await store.start()
    cfg = _config(url)
    async with aiohttp.ClientSession() as session:
        d = cfg.destinations[0]
        mirror = Mirror(store, [Destination(d, profile_for(d.profile)(d, cfg))], Metrics(),
                        session)
        mirror.start()
        total = int(rate * seconds)
        start = time.perf_counter()
        pending: list[asyncio.Task[Any]] = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(asyncio.create_task(store.commit(_incoming(i))))
            if i % 10 == 0:
                mirror.notify()
        await asyncio.gather(*pending)
        mirror.notify()
        while (await store.balance()).queued:
            await asyncio.sleep(0.05)
        await mirror.stop()
    rows = await store.query("SELECT delivered_at - created_at FROM outbox WHERE state = 1")
    await store.close()
    lags = sorted(r[0] * 1000 for r in rows)
    q = statistics.quantiles(lags, n=100)
    return q[49], q[98], len(lags)


async def run(args: argparse.Namespace) -> None:
    port = _free_port()
    sim = subprocess.Popen([sys.executable, "-m", "gateway.cli", "simulate-platform", "--port",
                            str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/fsi/api/inventory"
    try:
        await _wait_port(port)
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            base = await baseline(url, min(args.events, 4000))
            print(f"baseline: aiohttp POST to the simulator, 16 connections: {base:,.0f}/s")
            drain = await sqlite_drain(url, args.events, tmp)
            print(f"SQLite drain, one mirror: {drain:,.0f} events/s ({args.events} events, "
                  "16 hospitals)")
            pg = float("nan")
            if not args.skip_pg:
                pg = await pg_drain(url, args.events, tmp)
                print(f"PostgreSQL drain, 2 gateway processes: {pg:,.0f} events/s")
            p50, p99, n = await lag(url, 500.0, args.lag_seconds, tmp)
            print(f"lag at 500 events/s offered for {args.lag_seconds:.0f}s ({n} events): "
                  f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    finally:
        sim.kill()
        sim.wait()
    print(f"RESULT drain_per_s={drain:.0f} pg_drain_per_s={pg:.0f} lag_p50_ms={p50:.1f} "
          f"lag_p99_ms={p99:.1f}")


def main() -> None:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=6000)
    p.add_argument("--lag-seconds", type=float, default=10.0)
    p.add_argument("--skip-pg", action="store_true")
    args = p.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
