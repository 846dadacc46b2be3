"""Benchmark: CDS Hooks order-sign at a fixed arrival rate against a 1,000-contract ledger.

The service runs in its own process (as in production: one gateway process, its ledger in
the SQLite store, token ids checked in memory and written behind); this process
generates load open-loop (a request every 1/rate seconds whatever the answers do), each
with a fresh ES384-signed JWT (signed before the clock starts), and measures latency.
The same run measures plain ``GET /healthz`` at the same rate as the floor: what the
HTTP stack alone costs on this machine.

    python bench/cds.py            # 200 req/s, 30 s order-sign, 10 s healthz
    BENCH_RATE=200 BENCH_SECONDS=30 BENCH_FLOOR_SECONDS=10 python bench/cds.py

Last line: RESULT p50_ms=… p99_ms=… floor_p99_ms=… rps=…
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOSPITAL = "H36070200012"
BASE = "http://127.0.0.1:{port}/cds-services"
ISS = "https://his.bench.local"
CODES = Path("/work/shared/data/nhsa_drug_codes.csv")
CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 7, 2, 10, tzinfo=CST)


def _contract_rows(n: int) -> list[dict[str, str]]:
    """n contracts over real generic keys; the first code of a key wins, others do not."""
    by_key: dict[str, list[tuple[str, str]]] = {}
    src = CODES if CODES.exists() else ROOT / "tests" / "data" / "ledger" / "contracts.csv"
    with src.open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            code = row.get("national_code", "")
            if code.startswith("X") and len(code) == 23:
                by_key.setdefault(code[:10], []).append((code, row.get("drug_name", "")))
    rows = []
    for i, (_key, items) in enumerate(sorted(by_key.items())):
        if len(rows) >= n:
            break
        code, name = items[0]
        rows.append({"hospital_id": HOSPITAL, "project": "国家组织药品集中带量采购",
                     "batch": f"第{i % 10 + 1}批", "generic_name": name or f"药品{i}",
                     "national_code": code, "product_name": name, "winning_price": "1.2345",
                     "supplier": "示例制药有限公司", "cycle_start": "2026-01-01",
                     "cycle_end": "2026-12-31", "agreed_volume": "100000",
                     "agreed_ratio": "0.7"})
    return rows


def _non_winning(code: str, k: int) -> str:
    # same class and generic segments, another enterprise: a non-winning product
    return code[:18] + f"{(int(code[18:]) + 1 + k) % 100000:05d}"


def serve(port: int, db: str, jwks_path: str) -> None:
    """Run the gateway-side app: /healthz and the CDS sub-app on a 1,000-contract ledger
    kept in a SQLite store, as the gateway keeps it."""
    from collections.abc import AsyncIterator

    from aiohttp import web

    from canonical.model import Event, EventKind, Line
    from gateway.cds import CdsSettings, TrustedClient, cds_app
    from gateway.ledger import Ledger, LedgerSettings, read_contracts_json
    from gateway.ledger.calendar import load_calendar
    from gateway.rules import load_rules
    from gateway.store.base import Incoming
    from gateway.store.sqlite import SqliteStore

    rows = json.loads(Path(db + ".rows.json").read_text(encoding="utf-8"))
    ledger_key: web.AppKey[Ledger] = web.AppKey("ledger")
    app = web.Application()

    async def open_ledger(app: web.Application) -> AsyncIterator[None]:
        store = SqliteStore(db)
        await store.start()
        ledger = Ledger(store, LedgerSettings(load_calendar(ROOT / "config" / "calendar")),
                        load_rules(ROOT / "config" / "rules.yaml"))
        await ledger.load()
        await ledger.load_contracts(read_contracts_json(rows), NOW)
        # every contract 20 % received by March: lagging on 2026-07-02
        events = tuple(Event(f"bench-{i}", EventKind.RECEIPT, HOSPITAL, "bench", datetime(
            2026, 3, 1, tzinfo=CST), (Line(1, "x", quantity=Decimal(20000),
                                           price=Decimal("1.2345"),
                                           national_code=r["national_code"]),))
            for i, r in enumerate(rows))
        await store.commit(Incoming("bench", "bench", "bench-receipts", "TEST", b"",
                                    datetime.now(CST), events, (False,) * len(events)))
        while await ledger.fold(1000):
            pass
        app[ledger_key] = ledger
        yield
        await store.close()

    jwks = json.loads(Path(jwks_path).read_text())
    settings = CdsSettings(clients={ISS: TrustedClient(ISS, jwks, hospital_id=HOSPITAL)},
                           public_base_url=BASE.format(port=port), clock=lambda: NOW)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.cleanup_ctx.append(open_ledger)
    app.router.add_get("/healthz", healthz)
    app.add_subapp("/cds-services", cds_app(lambda: app[ledger_key], settings))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _request(code: str, name: str) -> bytes:
    body = json.loads((ROOT / "tests" / "data" / "ledger" / "order_sign_request.json")
                      .read_text(encoding="utf-8"))
    body["hookInstance"] = str(uuid.uuid4())
    mr = body["context"]["draftOrders"]["entry"][0]["resource"]
    mr["medicationCodeableConcept"] = {"coding": [{
        "system": "http://www.nhsa.gov.cn/CodeSystem/drug", "code": code}], "text": name}
    return json.dumps(body, ensure_ascii=False).encode()


async def _load(url: str, rate: float, seconds: float, bodies: list[bytes] | None,
                tokens: list[str] | None) -> tuple[list[float], float, int]:
    import aiohttp

    n = int(rate * seconds)
    lat: list[float] = []
    errors = 0
    conn = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=conn) as session:
        async def one(i: int) -> None:
            nonlocal errors
            t = time.perf_counter()
            try:
                if bodies is None:
                    async with session.get(url) as r:
                        await r.read()
                        ok = r.status == 200
                else:
                    assert tokens is not None
                    async with session.post(url, data=bodies[i % len(bodies)], headers={
                            "Authorization": f"Bearer {tokens[i]}",
                            "Content-Type": "application/json"}) as r:
                        data = await r.read()
                        ok = r.status == 200 and len(json.loads(data)["cards"]) == 1
            except aiohttp.ClientError:
                ok = False
            lat.append((time.perf_counter() - t) * 1000)
            if not ok:  # an error, or an answer without the one expected card
                errors += 1

        tasks = []
        start = time.perf_counter()
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return lat, n / elapsed, errors


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def main() -> None:
    """Start the server process, warm up, measure the floor and order-sign, print RESULT."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    rate = float(os.environ.get("BENCH_RATE", "200"))
    seconds = float(os.environ.get("BENCH_SECONDS", "30"))
    floor_seconds = float(os.environ.get("BENCH_FLOOR_SECONDS", "10"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-cds-"))
    rows = _contract_rows(1000)
    db = str(tmp / "gateway.db")
    Path(db + ".rows.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "bench", "alg": "ES384"})
    (tmp / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), db,
                             str(tmp / "jwks.json")])
    try:
        base = BASE.format(port=port)
        aud = f"{base}/jicai-order-sign"
        n = int(rate * seconds) + 200
        now = int(time.time())
        tokens = [jwt.encode({"iss": ISS, "sub": "bench", "aud": aud, "iat": now,
                              "exp": now + 240, "jti": str(uuid.uuid4())}, key,
                             algorithm="ES384", headers={"kid": "bench"}) for _ in range(n)]
        rnd = random.Random(7)
        bodies = [_request(_non_winning(r["national_code"], rnd.randrange(50)),
                           r["generic_name"]) for r in rows]
        rnd.shuffle(bodies)
        for _ in range(300):  # wait for the server (bounded)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        warm_lat, _, warm_err = asyncio.run(_load(aud, 100, 1, bodies, tokens[:100]))
        floor, floor_rps, floor_err = asyncio.run(
            _load(f"http://127.0.0.1:{port}/healthz", rate, floor_seconds, None, None))
        lat, rps, errors = asyncio.run(_load(aud, rate, seconds, bodies, tokens[100:]))
        print(f"warm-up: {len(warm_lat)} requests, {warm_err} errors")
        print(f"healthz: {len(floor)} requests in {floor_seconds:.0f} s at {floor_rps:.1f} "
              f"req/s, p50 {_pct(floor, 50):.2f} ms, p99 {_pct(floor, 99):.2f} ms, "
              f"errors {floor_err}")
        print(f"order-sign: {len(lat)} requests in {seconds:.0f} s at {rps:.1f} req/s, "
              f"p50 {_pct(lat, 50):.2f} ms, p90 {_pct(lat, 90):.2f} ms, "
              f"p99 {_pct(lat, 99):.2f} ms, max {max(lat):.2f} ms, errors {errors}; "
              f"1000 contracts, one card per request")
        print(f"RESULT p50_ms={_pct(lat, 50):.2f} p99_ms={_pct(lat, 99):.2f} "
              f"floor_p99_ms={_pct(floor, 99):.2f} rps={rps:.1f}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        main()
