"""Mirror benchmark: drain rate to the local platform simulator, and mirror lag.

* Baseline: the same aiohttp client POSTing ready-made 3505 envelopes to the
  simulator at the same concurrency, no store (what HTTP alone allows here).
* SQLite drain: N committed dispenses across 16 hospitals, drained by one mirror.
* PostgreSQL drain: the same on the local server, drained by two ``jicai-gateway
  serve`` processes sharing one schema (rate over the span of delivery times).
* Lag: 500 events/s offered for a stretch while the mirror runs (SQLite); lag is
  commit to recorded delivery (``delivered_at - created_at``), p50 / p99.
* Slow platform: one hospital offers 50 dispense lines a second for ``--slow-seconds``
  (``tests/mirror/dispense_mix.py``: prescriptions of 1-5 lines over 200 drugs, 5 % of
  lines returned later, 2 % corrected) to a platform answering in 150 ms +- 50 ms, while
  one mirror (concurrency 16) drains them (SQLite); lag per delivered unit from its
  commit to the platform's acknowledgement (the outbox row's ``delivered_at -
  created_at``), and the order violations the simulator counted.

The simulator runs as its own process (``jicai-gateway simulate-platform``; the slow
platform is a second one started with ``--faults``).

    python bench/mirror.py [--events 6000] [--lag-seconds 10] [--skip-pg]
                           [--slow-seconds 60] [--slow-drain-cap 600] [--only slow]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests" / "mirror"))  # dispense_mix and its factory

from canonical.model import CHINA_TZ, Event, EventKind, Line, Party, Patient  # noqa: E402
from gateway.config import parse_config  # noqa: E402
from gateway.metrics import Metrics  # noqa: E402
from gateway.mirror.worker import Destination, Mirror  # noqa: E402
from gateway.platforms.registry import profile_for  # noqa: E402
from gateway.store.base import Incoming, PlannedDelivery  # noqa: E402
from gateway.store.msgid import MsgIdClock  # noqa: E402
from gateway.store.sqlite import SqliteStore  # noqa: E402

_order_key: Callable[[Event, int], str] | None
try:
    from gateway.platforms.nhsa import order_key as _order_key
except ImportError:  # a tree from before ordering keys: FIFO per hospital and stream
    _order_key = None

HOSPITALS = tuple(f"H3301{n:07d}" for n in range(16))
SLOW_HOSPITAL = "H33010200015"  # tests/mirror/factory.py's first hospital (dispense_mix)
SLOW_FAULTS = {"latency_s": 0.15, "latency_jitter_s": 0.05}
SLOW_LINES_PER_S = 50.0
SLOW_SEED = 20261204
PG_DSN = os.environ.get("JCGW_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 11, 23, 9, 30, tzinfo=CHINA_TZ)
# as tests/mirror/factory.py: every field 3505 needs (mdtrt_sn from the visit number)
PATIENT = Patient(id="P0012345", name="张伟", id_card="330102198001010016",
                  phone="13800138000", insurance_no="33010099887766", visit_no="MZ202611230017")
SALE_EXTRA = (("phar_prac_cert_no", "330102201800123"), ("hi_feesetl_type", "1"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _event(n: int) -> Event:
    """A complete one-line dispense (as tests/mirror/factory.py's ``dispense``)."""
    hospital = HOSPITALS[n % len(HOSPITALS)]
    return Event(
        event_id=f"bench-{uuid.uuid4().hex}", kind=EventKind.DISPENSE, hospital_id=hospital,
        source="bench", occurred_at=T0 + timedelta(seconds=n),
        lines=(Line(seq=1, item_code="Y0012345", item_name="阿那曲唑片",
                    specification="1mg*14片", manufacturer="杭州中美华东制药有限公司",
                    quantity=Decimal(2), unit="盒", price=Decimal("32.90"),
                    national_code="XL02BGA045A001010104520", national_quantity=Decimal(28),
                    national_unit="片", national_price=Decimal("2.35"),
                    lot_no="L2026090112", expiry="2028-08-31", manu_date="2026-09-01",
                    approval_no="国药准字H20203365", rx_only=True,
                    supplier=Party("S01", "华东医药股份有限公司"),
                    trace_codes=("81234567890123456789",)),),
        control_id=f"B{n:012d}", document_no=f"CFB{uuid.uuid4().hex[:16]}",
        prescriber=Party("D0107", "李明"), pharmacist=Party("Y0031", "孙丽"),
        patient=PATIENT, extra=SALE_EXTRA)


def _deliveries(event: Event, units: int) -> tuple[PlannedDelivery, ...]:
    """The event's outbox rows for ``nhsa``, each with the profile's ordering key."""
    if _order_key is None:
        return tuple(PlannedDelivery(0, "nhsa", u) for u in range(units))
    return tuple(PlannedDelivery(0, "nhsa", u, _order_key(event, u)) for u in range(units))


def _message(ev: Event, units: int = 1) -> Incoming:
    return Incoming(adapter="bench", sender="BENCH", control_id=ev.event_id,
                    message_type="RDS^O13", raw=b"MSH|bench", received_at=datetime.now(CHINA_TZ),
                    events=(ev,), held=(False,), deliveries=_deliveries(ev, units))


def _incoming(n: int) -> Incoming:
    return _message(_event(n))


def _config(url: str, concurrency: int = 64) -> Any:
    return parse_config({
        "hospitals": [{"code": h, "name": f"医院{i}"}
                      for i, h in enumerate((*HOSPITALS, SLOW_HOSPITAL))],
        "destinations": [{"name": "nhsa", "url": url, "batch_size": 1600,
                          "concurrency": concurrency, "idle_poll_s": 0.05, "timeout_s": 5}],
    }, "bench.yaml")


def _simulator(port: int, faults: dict[str, Any] | None = None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "gateway.cli", "simulate-platform", "--port", str(port)]
    if faults:
        cmd += ["--faults", json.dumps(faults)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _pct(values: list[float], p: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


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
        for proc in procs:
            proc.kill()
            proc.wait()
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


async def slow_platform(port: int, seconds: float, drain_cap_s: float,
                        tmp: Path) -> dict[str, Any]:
    """One hospital's dispensing (50 lines/s) behind a platform answering in 150 +- 50 ms.

    Events are committed in sending order, each as its own message and each after the one
    before it (as one MLLP connection waiting for its ACKs), while one mirror drains them.
    """
    from dispense_mix import dispense_mix, units  # type: ignore[import-not-found]

    from canonical.model import OrderControl

    base = f"http://127.0.0.1:{port}"
    url = f"{base}/fsi/api/inventory"
    events = dispense_mix(int(SLOW_LINES_PER_S * seconds), items=200, seed=SLOW_SEED)
    # each sale is due when the lines before it have been offered at 50 a second; a
    # return or correction goes out with the sale it follows in the sending order
    due: list[float] = []
    sold = 0
    for ev in events:
        due.append(sold / SLOW_LINES_PER_S)
        if ev.kind is EventKind.DISPENSE and ev.order_control is not OrderControl.CHANGE:
            sold += len(ev.lines)
    total_units = sum(units(ev) for ev in events)
    kinds = {"sales": sum(ev.kind is EventKind.DISPENSE and ev.order_control is None
                          for ev in events),
             "returns": sum(ev.kind is EventKind.DISPENSE_RETURN for ev in events),
             "corrections": sum(ev.order_control is OrderControl.CHANGE for ev in events)}
    print(f"slow platform: {len(events)} events ({kinds['sales']} prescriptions, "
          f"{kinds['returns']} returns, {kinds['corrections']} corrections), {sold} lines "
          f"at {SLOW_LINES_PER_S:.0f}/s, {total_units} units, platform "
          f"{SLOW_FAULTS['latency_s'] * 1000:.0f} +- "
          f"{SLOW_FAULTS['latency_jitter_s'] * 1000:.0f} ms")
    store = SqliteStore(tmp / "slow.db")
    await store.start()
    cfg = _config(url, concurrency=16)
    async with aiohttp.ClientSession() as session:
        d = cfg.destinations[0]
        mirror = Mirror(store, [Destination(d, profile_for(d.profile)(d, cfg))], Metrics(),
                        session)
        mirror.start()
        start = time.perf_counter()
        t_first = time.time()
        late = 0.0
        for ev, at in zip(events, due, strict=True):
            delay = start + at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = max(late, -delay)
            await store.commit(_message(ev, units(ev)))
            mirror.notify()
        t_offered = time.time()
        offer_s = time.perf_counter() - start
        deadline = time.monotonic() + drain_cap_s
        queued = (await store.balance()).queued.get("nhsa", 0)
        while queued and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            queued = (await store.balance()).queued.get("nhsa", 0)
        t_end = time.time()
        await mirror.stop()
        async with session.get(f"{base}/_sim/counts") as r:
            counts = await r.json()
    rows = await store.query("SELECT created_at, delivered_at FROM outbox WHERE state = 1")
    left = await store.query("SELECT created_at, state FROM outbox WHERE state != 1")
    await store.close()
    lags = sorted((dl - cr) * 1000 for cr, dl in rows)
    # what is still undelivered at the cap counts with its age then (a lower bound)
    with_left = sorted([*lags, *((t_end - cr) * 1000 for cr, _ in left)])
    last = max((dl for _, dl in rows), default=t_offered)
    return {
        "units": total_units, "delivered": len(rows),
        "pending": sum(1 for _, st in left if st == 0), "dead": sum(1 for _, st in left if st == 2),
        "p50": _pct(lags, 50), "p99": _pct(lags, 99), "max": lags[-1] if lags else float("nan"),
        "p99_at_cap": _pct(with_left, 99), "max_at_cap": with_left[-1] if with_left else 0.0,
        "offer_s": offer_s, "late_s": late, "drain_s": max(0.0, last - t_offered),
        "span_s": last - t_first, "capped": bool(left) and t_end >= t_offered + drain_cap_s,
        "cap_s": drain_cap_s, "counts": counts,
    }


def _report_slow(r: dict[str, Any], seconds: float) -> None:
    c = r["counts"]
    print(f"slow platform, {seconds:.0f}s offered (took {r['offer_s']:.1f}s, commits at most "
          f"{r['late_s'] * 1000:.0f} ms late): {r['delivered']}/{r['units']} units delivered; "
          f"commit -> acknowledgement p50 {r['p50']:.0f} ms, p99 {r['p99']:.0f} ms, "
          f"max {r['max']:.0f} ms")
    print(f"slow platform: last acknowledgement {r['drain_s']:.1f}s after the last commit "
          f"({r['span_s']:.1f}s from the first commit)")
    if r["pending"] or r["dead"]:
        print(f"slow platform: NOT DRAINED after {r['cap_s']:.0f}s: {r['pending']} units still "
              f"pending, {r['dead']} dead letters; counting them with their age then: "
              f"p99 {r['p99_at_cap']:.0f} ms, max {r['max_at_cap']:.0f} ms")
    print(f"slow platform, simulator: accepted {c.get('accepted')}, calls {c.get('calls')}, "
          f"rejected {c.get('rejected')}, duplicates {c.get('duplicates')}, order violations "
          f"{c.get('order_violations')} {c.get('order_violations_by_kind')}, rate limited "
          f"{c.get('rate_limited')}, max {c.get('max_per_s')} calls/s")


async def run(args: argparse.Namespace) -> None:
    import gateway

    print(f"gateway from {Path(gateway.__file__).parent}")
    only = args.only
    result: list[str] = []
    if only in (None, "main"):
        port = _free_port()
        sim = _simulator(port)
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
        result.append(f"drain_per_s={drain:.0f} pg_drain_per_s={pg:.0f} lag_p50_ms={p50:.1f} "
                      f"lag_p99_ms={p99:.1f}")
    if only in (None, "slow"):
        port = _free_port()
        sim = _simulator(port, SLOW_FAULTS)
        try:
            await _wait_port(port)
            with tempfile.TemporaryDirectory() as d:
                r = await slow_platform(port, args.slow_seconds, args.slow_drain_cap,
                                        Path(d))
        finally:
            sim.kill()
            sim.wait()
        _report_slow(r, args.slow_seconds)
        undelivered = r["pending"] + r["dead"]
        p99 = r["p99_at_cap"] if undelivered else r["p99"]
        result.append(f"rtt_lag_p99_ms={p99:.0f} "
                      f"rtt_order_violations={r['counts'].get('order_violations')}"
                      + (f" rtt_undelivered={undelivered}" if undelivered else ""))
    print("RESULT " + " ".join(result))


def main() -> None:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=6000)
    p.add_argument("--lag-seconds", type=float, default=10.0)
    p.add_argument("--skip-pg", action="store_true")
    p.add_argument("--slow-seconds", type=float, default=60.0,
                   help="seconds of dispensing offered to the slow platform")
    p.add_argument("--slow-drain-cap", type=float, default=600.0,
                   help="seconds to wait after the last commit for the slow platform's "
                        "backlog (what is left then is reported as undelivered)")
    p.add_argument("--only", choices=("main", "slow"),
                   help="run only the drain and lag scenarios (main) or the slow platform")
    args = p.parse_args()
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
