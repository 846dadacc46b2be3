"""Replicas sharing one PostgreSQL schema keep one ledger: every committed event is folded
exactly once whichever replica committed or folds it, a contract imported through one
replica changes every replica's warnings at once (NOTIFY, not polling), and a CDS token
used on one replica is refused on every other."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import jwt
import msgspec.structs
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import ROOT, MLLPClient, ack_fields, eventually, free_port, make_config, sample
from ledger_helpers import (
    ABIRATERONE_OTHER,
    ABIRATERONE_WIN_A,
    ABIRATERONE_WIN_B,
    DATA,
    EXEMESTANE_PFIZER,
    EXEMESTANE_WIN,
    HOSPITAL,
    cst,
    event,
    fold,
    incoming,
    view_of,
)
from pg import PG_DSN

from canonical.model import Event, EventKind, OrderControl, event_json
from gateway.app import build_app
from gateway.cds import CdsSettings, TrustedClient, cds_app
from gateway.ledger import Ledger, LedgerSettings, read_contracts
from gateway.ledger.calendar import WorkCalendar
from gateway.ledger.wiring import LedgerFeed
from gateway.rules import RuleSet
from gateway.store.base import PlannedDelivery
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore

# events committed, not held, and out of the ledger's queue: folded
_FOLDED = ("SELECT count(*) FROM events e WHERE held = 0"
           " AND NOT EXISTS (SELECT 1 FROM ledger_pending p WHERE p.seq = e.seq)")

pytestmark = pytest.mark.postgres

NOW = cst(2026, 7, 2, 10)
STENT = "C0201010010101000123"
PRODUCTS = (EXEMESTANE_WIN, EXEMESTANE_PFIZER, ABIRATERONE_WIN_A, ABIRATERONE_WIN_B,
            ABIRATERONE_OTHER, STENT)


@dataclass
class Replica:
    """One gateway process's ledger side: its store instance, view and feed."""

    store: PostgresStore
    ledger: Ledger
    feed: LedgerFeed
    task: asyncio.Task[None]


Start = Callable[..., Awaitable[Replica]]


@pytest.fixture
async def replica(pg_schema: str, calendar: WorkCalendar,
                  rules: RuleSet) -> AsyncIterator[Start]:
    """Start replicas on one schema; polling is slowed to a minute, so what a replica
    learns within a test it learns by NOTIFY."""
    started: list[Replica] = []

    async def start(name: str, poll_s: float = 60.0, batch: int = 500) -> Replica:
        store = PostgresStore(PG_DSN, schema=pg_schema, owner=name)
        await store.start()
        lg = Ledger(store, LedgerSettings(calendar=calendar), rules)
        await lg.load()
        feed = LedgerFeed(store, lg, batch=batch, poll_s=poll_s)
        store.committed_listeners.append(feed.committed)
        await store.listen(feed.on_change)
        r = Replica(store, lg, feed, asyncio.create_task(feed.run(), name=f"feed-{name}"))
        started.append(r)
        return r

    try:
        yield start
    finally:
        for r in started:
            r.task.cancel()
            await asyncio.gather(r.task, return_exceptions=True)
            await r.store.close()


async def _unfolded(store: Any) -> int:
    return int((await store.query("SELECT count(*) FROM ledger_pending"))[0][0])


def _with_outbox(events: list[Event]) -> Any:
    # outbox rows as the ingest path plans them: their commit is what replicas hear of
    return msgspec.structs.replace(incoming(events), deliveries=tuple(
        PlannedDelivery(i, "nhsa") for i in range(len(events))))


def _workload(rnd: random.Random) -> tuple[list[Event], list[Event], list[Event]]:
    """Stock and open orders first; then receipts, returns, dispenses (traceability codes
    sold again among them), prescriptions and stock changes; then payments and filings.
    Within each phase the totals do not depend on the order events are folded in."""
    first = [event(EventKind.STOCKTAKE, [(code, 1000, None)], at=cst(2026, 2, 1),
                   event_id=f"st-{code}") for code in PRODUCTS]
    first += [event(EventKind.PURCHASE_ORDER, [(EXEMESTANE_WIN, 100, None)],
                    at=cst(2026, 2, 2, 9), doc=f"PO-{n}", event_id=f"po-{n}")
              for n in range(10)]
    second: list[Event] = []
    for n in range(600):
        day = cst(2026, 3, 1) + timedelta(days=rnd.randrange(60), minutes=rnd.randrange(600))
        code = rnd.choice(PRODUCTS)
        kind = rnd.choice([EventKind.RECEIPT, EventKind.RECEIPT, EventKind.DISPENSE,
                           EventKind.DISPENSE, EventKind.PRESCRIPTION, EventKind.RETURN,
                           EventKind.DISPENSE_RETURN, EventKind.STOCK_CHANGE])
        qty = rnd.randrange(1, 50)
        price = rnd.choice(["2.1350", "2.1400", "4.05", "9.80", None])
        extra: tuple[tuple[str, str], ...] = ()
        if n < 10:  # each order answered once
            kind, extra = EventKind.RECEIPT, (("order_no", f"PO-{n}"),)
        ev = event(kind, [(code, qty, price)], at=day, online=rnd.random() < 0.8,
                   doc=f"D-{n}", event_id=f"ev-{n}", extra=extra)
        if kind is EventKind.DISPENSE:
            line = msgspec.structs.replace(ev.lines[0], trace_codes=(
                f"8100000000000000{rnd.randrange(40):04d}",))
            ev = ev.with_lines((line,))
        if kind is EventKind.PRESCRIPTION and rnd.random() < 0.2:
            ev = msgspec.structs.replace(ev, order_control=OrderControl.CANCEL)
        second.append(ev)
    receipts = [e for e in second if e.kind is EventKind.RECEIPT]
    third = [event(EventKind.PAYMENT, [], at=e.occurred_at + timedelta(days=3),
                   event_id=f"pay-{e.event_id}", extra=(("receipt_no", e.document_no),))
             for e in receipts[::3]]
    third += [event(EventKind.STOCK_CHANGE, [], at=e.occurred_at + timedelta(days=1),
                    event_id=f"fil-{e.event_id}", extra=(("filing_for", e.document_no),))
              for e in receipts[1::4] if not e.online]
    return first, second, third


async def _commit_spread(replicas: list[Replica], events: list[Event],
                         rnd: random.Random) -> None:
    """Commit ``events`` in messages of one to three, spread over the replicas, at once."""
    shares: list[list[list[Event]]] = [[] for _ in replicas]
    i = 0
    while i < len(events):
        n = rnd.randrange(1, 4)
        shares[rnd.randrange(len(replicas))].append(events[i:i + n])
        i += n

    async def send(r: Replica, messages: list[list[Event]]) -> None:
        await asyncio.gather(*(r.store.commit(_with_outbox(m)) for m in messages))
    await asyncio.gather(*(send(r, m) for r, m in zip(replicas, shares, strict=True)))


async def _state(lg: Ledger) -> dict[str, Any]:
    """The stored totals and the view, order-free where the fold order may differ."""
    snap = await lg.tables.snapshot()
    deadlines = await lg.tables.deadlines()
    trace = Counter(f.code for f in await lg.trace_flags(HOSPITAL))
    view = view_of(lg, NOW)
    del view["version"]
    return {"daily": sorted(await lg.tables.daily(), key=lambda r: (
                r.national_code, r.kind, r.day, r.online)),
            "stock": sorted(snap.stock),
            "deadlines": sorted((d.kind, d.ref, d.closed_at, d.reminded_at) for d in deadlines),
            "price_flags": sorted((f.event_id, f.line, f.price)
                                  for f in await lg.price_flags(HOSPITAL)),
            "trace_flags": sorted(trace.items()), "view": view}


async def test_three_replicas_fold_every_event_exactly_once_as_one_gateway_would(
        replica: Start, pg_schema: str, calendar: WorkCalendar, rules: RuleSet,
        tmp_path: Path) -> None:
    rnd = random.Random(20261201)
    first, second, third = _workload(rnd)
    late = event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 777, "2.1350")], at=cst(2026, 4, 1),
                 event_id="late-1", doc="LATE-1")
    # small batches: many fold sessions, the replicas contending for the ledger's lock
    a, b, c = [await replica(name, batch=40) for name in "abc"]
    replicas = [a, b, c]
    await a.ledger.load_contracts(read_contracts(DATA / "contracts.csv"), cst(2026, 1, 1))
    await a.store.commit(_with_outbox(first))
    await eventually(lambda: _is_zero(_unfolded(a.store)), timeout=10,
                     what="stock and orders folded")

    # a transaction of another replica takes its sequence number now and commits last:
    # events with higher numbers are committed (and folded) before it
    con = await asyncpg.connect(PG_DSN, server_settings={"search_path": pg_schema})
    tr = con.transaction()
    await tr.start()
    mid = await con.fetchval(
        "INSERT INTO messages (sender, control_id, adapter, message_type, peer, received_at,"
        " raw) VALUES ('late', 'late-1', 'test', 'TEST', '', 0, ''::bytea) RETURNING id")
    late_seq = await con.fetchval(
        "INSERT INTO events (event_id, message_id, hospital_id, kind, occurred_at, held, body)"
        " VALUES ($1, $2, $3, $4, $5, 0, $6) RETURNING seq", late.event_id, mid,
        late.hospital_id, late.kind.value, late.occurred_at.isoformat(), event_json(late))
    # as a replica's commit does: the event joins the ledger's queue in its transaction
    await con.execute("INSERT INTO ledger_pending (seq) VALUES ($1)", late_seq)
    await con.execute("SELECT pg_notify($1, 'outbox')", a.store.channel)
    try:
        await _commit_spread(replicas, second, rnd)
        await eventually(lambda: _is_zero(_unfolded(b.store)), timeout=30,
                         what="every committed event folded")
        top = (await a.store.query("SELECT max(seq) FROM events"))[0][0]
        assert late_seq < top  # the late event's number is lower than ones folded already
        await tr.commit()
    finally:
        await con.close()
    await _commit_spread(replicas, third, rnd)
    total = len(first) + len(second) + len(third) + 1
    await eventually(lambda: _is_zero(_unfolded(c.store)), timeout=30,
                     what="the late event and the last phase folded")
    assert (await a.store.query(_FOLDED))[0][0] == total
    # each event was folded by exactly one replica
    await eventually(lambda: sum(r.feed.folded for r in replicas) >= total, what="fold counts")
    assert sum(r.feed.folded for r in replicas) == total
    for r in replicas:
        await r.ledger.catch_up()

    # one SQLite gateway given the same events in commit order
    single = SqliteStore(tmp_path / "single.db")
    await single.start()
    try:
        ref = Ledger(single, LedgerSettings(calendar=calendar), rules)
        await ref.load()
        await ref.load_contracts(read_contracts(DATA / "contracts.csv"), cst(2026, 1, 1))
        for phase in (first, [*second, late], third):
            assert await fold(ref, phase) == len(phase)
        expected = await _state(ref)
        assert expected["view"]["orders"] == []  # every order was answered
        assert expected["price_flags"] and expected["trace_flags"]
        for r in replicas:
            assert await _state(r.ledger) == expected
        [exemestane] = [x for x in ref.contracts(HOSPITAL)
                        if EXEMESTANE_WIN in x.winning_codes]
        received = sum(ln.quantity for e in [*second, late] if e.kind is EventKind.RECEIPT
                       for ln in e.lines if ln.national_code == EXEMESTANE_WIN)
        returned = sum(ln.quantity for e in second if e.kind is EventKind.RETURN
                       for ln in e.lines if ln.national_code == EXEMESTANE_WIN)
        for lg in (ref, a.ledger, b.ledger, c.ledger):
            assert lg.status(exemestane, NOW).received_qty == received - returned
    finally:
        await single.close()


async def _is_zero(value: Awaitable[int]) -> bool:
    return await value == 0


async def test_a_fold_session_holds_the_ledger_lock_against_other_replicas(
        pg_schema: str) -> None:
    a = PostgresStore(PG_DSN, schema=pg_schema, owner="a")
    b = PostgresStore(PG_DSN, schema=pg_schema, owner="b")
    await a.start()
    await b.start()
    try:
        async with a.ledger.folding() as session:
            assert session.version == 0
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3), b.ledger.folding():
                    pass
        async with asyncio.timeout(5), b.ledger.folding() as session:
            assert session.version == 0  # the first session wrote nothing: no version used
    finally:
        await a.close()
        await b.close()


async def test_a_contract_imported_on_one_replica_warns_on_another_at_once(
        replica: Start, aiohttp_client: Any) -> None:
    a, b = await replica("a"), await replica("b")
    await fold(a.ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 10000, "2.1350")],
                                at=cst(2026, 3, 1))], store=a.store)
    app = web.Application()
    app.add_subapp("/cds-services", cds_app(b.ledger, CdsSettings(
        require_auth=False, default_hospital_id=HOSPITAL, required_prefetch=(),
        clock=lambda: NOW)))
    cli = await aiohttp_client(app)
    request = orjson.loads((DATA / "order_sign_request.json").read_bytes())
    prescription = event(EventKind.PRESCRIPTION, [(EXEMESTANE_PFIZER, 30, None)], at=NOW,
                         name="依西美坦片")

    async def cards() -> list[Any]:
        resp = await cli.post("/cds-services/jicai-order-sign", data=orjson.dumps(request))
        assert resp.status == 200
        found: list[Any] = (await resp.json())["cards"]
        return found
    assert b.ledger.evaluate_prescription(prescription, NOW).issues == ()
    assert await cards() == []
    await a.ledger.load_contracts(read_contracts(DATA / "contracts.csv"), NOW)
    # B hears of it by NOTIFY (its polling is a minute away) and rebuilds its view
    await eventually(lambda: b.ledger.evaluate_prescription(prescription, NOW).issues,
                     timeout=3, what="replica B warns about the non-winning product")
    [card] = await cards()
    assert card["source"]["topic"]["code"] == "nonwinning-while-lagging"
    assert b.ledger.version == a.ledger.version


async def test_a_token_used_on_one_replica_is_refused_on_another(
        replica: Start, aiohttp_client: Any) -> None:
    a, b = await replica("a"), await replica("b")
    await a.ledger.load_contracts(read_contracts(DATA / "contracts.csv"), cst(2026, 1, 1))
    await fold(a.ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 10000, "2.1350")],
                                at=cst(2026, 3, 1))], store=a.store)
    await b.ledger.catch_up()
    base = "https://gateway.example.local/cds-services"
    iss = "https://his.example.local"
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "his", "alg": "ES384"})
    settings = CdsSettings(clients={iss: TrustedClient(iss, {"keys": [jwk]},
                                                       hospital_id=HOSPITAL)},
                           public_base_url=base, clock=lambda: NOW)

    async def client(r: Replica) -> Any:
        async def no_fetch(server: str, query: str, auth: Any) -> Any:
            raise LookupError("unreachable")
        app = web.Application()
        app.add_subapp("/cds-services", cds_app(r.ledger, settings, fetch=no_fetch))
        return await aiohttp_client(app)
    on_a, on_b = await client(a), await client(b)

    def token(aud: str = f"{base}/jicai-order-sign") -> str:
        now = int(time.time())
        return jwt.encode({"iss": iss, "aud": aud, "iat": now, "exp": now + 120,
                           "jti": str(uuid.uuid4())}, key, algorithm="ES384",
                          headers={"kid": "his"})
    body = (DATA / "order_sign_request.json").read_bytes()
    once = {"Authorization": f"Bearer {token()}"}
    first = await on_a.post("/cds-services/jicai-order-sign", data=body, headers=once)
    assert first.status == 200
    [card] = (await first.json())["cards"]
    replayed = await on_b.post("/cds-services/jicai-order-sign", data=body, headers=once)
    assert replayed.status == 401 and "jti" in (await replayed.json())["error"]
    # the card A issued is answered through B, and A's report counts the answer
    await a.store.cds.flush()
    fb = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                        "overrideReason": {"reason": card["overrideReasons"][0]},
                        "outcomeTimestamp": "2026-07-02T10:01:00+08:00"}]}
    resp = await on_b.post("/cds-services/jicai-order-sign/feedback", data=orjson.dumps(fb),
                           headers={"Authorization": "Bearer " + token(
                               f"{base}/jicai-order-sign/feedback")})
    assert resp.status == 200 and (await resp.json())["recorded"] == 1
    [(stored, answer)] = await a.ledger.cds.feedback_rows()
    assert stored.uuid == card["uuid"] and answer is not None
    assert answer.outcome == "overridden"


async def test_contracts_imported_through_one_gateway_warn_in_another_gateways_acks(
        pg_schema: str, tmp_path: Path) -> None:
    rde = sample("rde_o11_prescription_utf8.hl7")

    def prescription(n: int) -> bytes:
        return (rde.replace(b"RDE20261123000042", f"RDEREPL{n:010d}".encode())
                   .replace(b"CF20261123000456", f"CFREPL{n:010d}".encode()))

    servers: list[TestServer] = []

    async def gateway(name: str) -> tuple[TestServer, int]:
        mllp = free_port()
        cfg = make_config(tmp_path / name, mllp_port=mllp, http_port=0,
                          platform_url="http://127.0.0.1:9/fsi/api/inventory",
                          store={"backend": "postgres", "postgres_dsn": PG_DSN,
                                 "postgres_schema": pg_schema},
                          ledger={"calendar_dir": str(ROOT / "config" / "calendar"),
                                  "rules": str(ROOT / "config" / "rules.yaml")})
        server = TestServer(build_app(cfg), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return server, mllp

    async def warnings(port: int, n: int) -> list[list[str]]:
        client = await MLLPClient.connect(port)
        try:
            ack = (await client.send(prescription(n))).decode()
        finally:
            await client.close()
        segs = [s.split("|") for s in ack.split("\r") if s]
        assert ack_fields(ack.encode())["MSA"][1] == "AA"
        return [s for s in segs if s[0] == "ERR"]

    try:
        (a, _), (_, b_mllp) = await gateway("a"), await gateway("b")
        assert await warnings(b_mllp, 0) == []  # no contracts yet: nothing to warn about
        async with aiohttp.ClientSession() as s, s.post(
                a.make_url("/ledger/contracts"), headers={"Content-Type": "text/csv"},
                data=(ROOT / "config" / "contracts.sample.csv").read_bytes()) as r:
            assert r.status == 200
        n = 0

        async def warned() -> bool:
            nonlocal n
            n += 1
            errs = await warnings(b_mllp, n)
            return bool(errs) and errs[0][4] == "W" and "阿那曲唑片" in errs[0][8]
        await eventually(warned, timeout=3, interval=0.05,
                         what="gateway B's ACK warns about the contract imported through A")
    finally:
        for server in servers:
            await server.close()
