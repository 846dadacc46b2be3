"""The ledger's state in the deployment's store, on SQLite and on PostgreSQL: held events
folded when released, the change log pruned and a view rebuilt, deadlines changed by hand,
an old ledger file taken over, token ids, cards and feedback."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec.structs
import orjson
import pytest
from ledger_helpers import (
    ABIRATERONE_WIN_A,
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

from canonical.model import Event, EventKind
from gateway.ledger import Ledger, LedgerSettings, read_contracts
from gateway.ledger.calendar import WorkCalendar
from gateway.ledger.ledger import _contract_rows
from gateway.ledger.legacy import import_legacy_ledger
from gateway.ledger.wiring import LedgerFeed
from gateway.rules import RuleSet
from gateway.store.ledger_records import CardRow, FeedbackRow, to_micros

# events committed, not held, and out of the ledger's queue: folded
_FOLDED = ("SELECT count(*) FROM events e WHERE held = 0"
           " AND NOT EXISTS (SELECT 1 FROM ledger_pending p WHERE p.seq = e.seq)")

NOW = cst(2026, 7, 1)


async def _ledger(store: Any, calendar: WorkCalendar, rules: RuleSet, *,
                  contracts: bool = True) -> Ledger:
    lg = Ledger(store, LedgerSettings(calendar=calendar), rules)
    await lg.load()
    if contracts:
        await lg.load_contracts(read_contracts(DATA / "contracts.csv"), cst(2026, 1, 1))
    return lg


async def _two_ledgers(make_store: Any, calendar: WorkCalendar,
                       rules: RuleSet) -> tuple[Ledger, Ledger]:
    """Two processes' ledgers over one deployment (on PostgreSQL, two connections); only
    the first loaded the contracts."""
    store = await make_store()
    other = store if make_store.backend == "sqlite" else await make_store()
    return (await _ledger(store, calendar, rules),
            await _ledger(other, calendar, rules, contracts=False))


async def _count(store: Any, sql: str) -> int:
    return int((await store.query(sql))[0][0])


async def test_a_held_event_is_folded_once_when_released_with_its_national_codes(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    store = await make_store()
    lg = await _ledger(store, calendar, rules)
    feed = LedgerFeed(store, lg)
    store.committed_listeners.append(feed.committed)
    # the first line's item is not mapped yet: the event waits for 对码
    held = event(EventKind.DISPENSE, [(None, 14, None), (EXEMESTANE_WIN, 1, None)],
                 at=cst(2026, 3, 2), event_id="held-1")
    ready = event(EventKind.DISPENSE, [(EXEMESTANE_WIN, 5, None)], at=cst(2026, 3, 2))
    await store.commit(incoming([held, ready], held=[True, False]))
    assert await feed.fold_pending() == 1
    daily = await lg.tables.daily(HOSPITAL)
    assert [(r.national_code, r.qty) for r in daily] == [(EXEMESTANE_WIN, 5)]

    def remap(ev: Event) -> tuple[Event, bool, tuple[()]]:
        line = msgspec.structs.replace(ev.lines[0], national_code=EXEMESTANE_PFIZER)
        return ev.with_lines((line, *ev.lines[1:])), False, ()
    assert [e.event_id for e in await store.release_held(remap)] == ["held-1"]
    assert await feed.fold_pending() == 1
    daily = {r.national_code: r.qty for r in await lg.tables.daily(HOSPITAL)}
    # both lines count, the one mapped on release with its national code
    assert daily == {EXEMESTANE_WIN: 6, EXEMESTANE_PFIZER: 14}
    assert await feed.fold_pending() == 0
    assert await _count(store, _FOLDED) == 2
    [c] = [c for c in lg.contracts(HOSPITAL) if EXEMESTANE_WIN in c.winning_codes]
    st = lg.status(c, NOW)
    assert st.use_share == Decimal(6) / Decimal(20)


async def test_a_view_behind_the_pruned_log_is_rebuilt_from_a_snapshot(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    store = await make_store()
    # keep almost no log: every change prunes all but the last two entries
    store.ledger.keep_changes, store.ledger.keep_changes_s, store.ledger.prune_every = 2, 0, 1
    behind = await _ledger(store, calendar, rules, contracts=False)
    lg = await _ledger(store, calendar, rules)
    await fold(lg, [event(EventKind.STOCKTAKE, [(EXEMESTANE_WIN, 100, None)],
                          at=cst(2026, 2, 1))])
    for day in range(2, 6):
        await fold(lg, [
            event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 1000, "2.1350"),
                                      (ABIRATERONE_WIN_A, 500, "4.05")], at=cst(2026, 3, day)),
            event(EventKind.DISPENSE, [(EXEMESTANE_WIN, 30, None)], at=cst(2026, 3, day)),
            event(EventKind.RECEIPT, [(EXEMESTANE_PFIZER, 10, "9.80")], at=cst(2026, 3, day),
                  online=False)])
    await fold(lg, [event(EventKind.PURCHASE_ORDER, [(EXEMESTANE_WIN, 10, None)],
                          at=cst(2026, 3, 9), doc=f"PO-{n}") for n in range(3)])
    assert await lg.record_order_reminder(HOSPITAL, "PO-1", cst(2026, 3, 12))
    assert await lg.close_deadline(HOSPITAL, "order", "PO-2", cst(2026, 3, 12))
    assert lg.version > 8
    assert await store.ledger.changes_after(0) is None  # the log no longer reaches back
    assert behind.version == 0
    assert await behind.catch_up() == lg.version
    assert view_of(behind, NOW) == view_of(lg, NOW)
    fresh = await _ledger(store, calendar, rules, contracts=False)
    assert view_of(fresh, NOW) == view_of(lg, NOW)
    assert view_of(lg, NOW)["orders"] == [(HOSPITAL, "PO-0", None),
                                          (HOSPITAL, "PO-1", cst(2026, 3, 12))]


async def test_a_fold_brings_a_view_up_to_contracts_imported_elsewhere_first(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    store = await make_store()
    other = store if make_store.backend == "sqlite" else await make_store()
    folder = await _ledger(other, calendar, rules, contracts=False)
    importer = await _ledger(store, calendar, rules)  # the folder has not heard of it
    await store.commit(incoming([event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 9000, "2.1350")],
                                       at=cst(2026, 2, 10))]))
    assert folder.contracts() == []
    assert len(await folder.fold()) == 1  # caught up (a rebuild) inside its fold session
    [c] = [c for c in folder.contracts(HOSPITAL) if EXEMESTANE_WIN in c.winning_codes]
    assert folder.status(c, NOW).received_qty == 9000
    await importer.catch_up()
    assert view_of(importer, NOW) == view_of(folder, NOW)


async def test_an_event_the_ledger_cannot_fold_is_set_aside_and_the_rest_folded(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A price of 81000000000000000123 (acknowledged before the door checked it) overflowed
    the ledger's sums; the fold failed the same way on every retry and the ledger stopped
    for good at that event."""
    from gateway.ledger.wiring import LedgerFeed

    store = await make_store()
    lg = await _ledger(store, calendar, rules)
    for n, price in ((1, "2.1350"), (2, "81000000000000000123"), (3, "2.1350")):
        await store.commit(incoming([event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 1000, price)],
                                           at=cst(2026, 3, n), event_id=f"rk-{n}")]))
    told: list[tuple[int, str]] = []
    feed = LedgerFeed(store, lg, batch=10, on_poison=lambda s, r: told.append((s, r)))
    assert await feed.fold_pending() == 3  # two folded, one set aside
    [(seq, reason, _)] = await lg.tables.poisoned()
    assert told == [(seq, reason)]
    assert re.search(r"Overflow|too large|out of \w* ?range", reason), reason
    [c] = [c for c in lg.contracts(HOSPITAL) if EXEMESTANE_WIN in c.winning_codes]
    assert lg.status(c, NOW).received_qty == 2000  # the events before and after it
    assert await feed.fold_pending() == 0

    # folded again unchanged, it is set aside again; after a fix it is folded
    assert await lg.tables.refold() == 1
    assert await feed.fold_pending() == 1 and len(await lg.tables.poisoned()) == 1
    original = Ledger.plan

    def fixed(self: Ledger, events: Any) -> Any:  # the fix: such a price is not counted
        return original(self, [(s, ev.with_lines(tuple(
            msgspec.structs.replace(li, price=None) for li in ev.lines))) for s, ev in events])
    monkeypatch.setattr(Ledger, "plan", fixed)
    assert await lg.tables.refold([seq]) == 1
    assert await feed.fold_pending() == 1
    assert await lg.tables.poisoned() == []
    assert lg.status(c, NOW).received_qty == 3000


class _Recorder:
    """A webhook sender that records what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, event_type: str, payload: dict[str, Any]) -> None:
        self.sent.append((event_type, payload["ref"]))

    async def close(self) -> None:
        """Nothing to close."""


async def test_an_overdue_deadline_is_pushed_once_by_one_replica(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    from gateway.ledger.wiring import WarningPusher

    a, b = await _two_ledgers(make_store, calendar, rules)
    await fold(a, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 100, "2.1350")],
                         at=cst(2026, 3, 2), doc="YS-OVERDUE")])
    await b.catch_up()
    senders = [_Recorder(), _Recorder()]
    pushers = [WarningPusher(s, lg) for s, lg in zip(senders, (a, b), strict=True)]
    later = cst(2026, 12, 1)  # the payment deadline has long passed
    pushed = [await p.check_deadlines(later) for p in pushers]
    pushed += [await p.check_deadlines(later) for p in pushers]  # the next minute's check
    await asyncio.sleep(0)  # the pushes run as tasks
    sent = senders[0].sent + senders[1].sent
    assert sent == [("deadline.overdue", "YS-OVERDUE")] and sum(pushed) == 1
    # a restarted gateway (a new pusher, nothing in memory) does not push it again
    assert await WarningPusher(_Recorder(), b).check_deadlines(later) == 0


async def test_deadlines_changed_by_hand_reach_every_view(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    a, b = await _two_ledgers(make_store, calendar, rules)
    await fold(a, [event(EventKind.PURCHASE_ORDER, [(EXEMESTANE_WIN, 10, None)],
                         at=cst(2026, 3, 9), doc="PO-7")])
    await b.catch_up()
    assert [o.ref for o in b.open_orders()] == ["PO-7"]
    assert await a.record_order_reminder(HOSPITAL, "PO-7", cst(2026, 3, 11, 12))
    await b.catch_up()
    assert [o.reminded_at for o in b.open_orders()] == [cst(2026, 3, 11, 12)]
    [d] = await b.deadlines(HOSPITAL, cst(2026, 3, 12, 12, 0, 1))
    assert d.state == "escalate"
    assert await b.close_deadline(HOSPITAL, "order", "PO-7", cst(2026, 3, 13))
    assert not await b.close_deadline(HOSPITAL, "order", "PO-7", cst(2026, 3, 14))  # closed
    await a.catch_up()
    assert a.open_orders() == [] and b.open_orders() == []
    [d] = await a.deadlines(HOSPITAL, cst(2026, 3, 20))
    assert (d.state, d.closed_at) == ("answered", cst(2026, 3, 13))


async def test_contracts_identical_to_the_stored_ones_are_not_written_again(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    store = await make_store()
    lg = await _ledger(store, calendar, rules)
    version = lg.version
    assert await lg.load_contracts(read_contracts(DATA / "contracts.csv"), NOW) == 3
    assert lg.version == version  # a restart with the configured file changes nothing
    [c] = [c for c in lg.contracts(HOSPITAL) if EXEMESTANE_WIN in c.winning_codes]
    await lg.load_contracts([dataclasses.replace(c, agreed_volume=Decimal(40000))], NOW)
    assert lg.version == version + 1
    assert next(x for x in lg.contracts() if x.contract_id == c.contract_id).agreed_volume == 40000


async def test_an_event_is_folded_at_most_once_even_when_asked_twice(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet) -> None:
    from canonical.errors import StoreError
    from gateway.store.ledger_records import LedgerWrites

    store = await make_store()
    lg = await _ledger(store, calendar, rules)
    await store.commit(incoming([event(EventKind.DISPENSE, [(EXEMESTANE_WIN, 5, None)],
                                       at=cst(2026, 3, 2))]))
    [seq] = await lg.fold()
    version = lg.version
    async with store.ledger.folding() as session:
        with pytest.raises(StoreError, match="folded already"):
            await session.commit(LedgerWrites(seqs=(seq,)))
    assert (await store.ledger.snapshot()).version == version  # nothing was written


# -- an old ledger file -------------------------------------------------------------------

# the schema of the ledger file of earlier releases (gateway/ledger/store.py, removed)
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_contracts (
  contract_id TEXT PRIMARY KEY, body BLOB NOT NULL, imported_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_applied (event_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS ledger_cursor (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_daily (
  hospital_id TEXT NOT NULL, national_code TEXT NOT NULL, kind TEXT NOT NULL,
  day TEXT NOT NULL, online INTEGER NOT NULL, qty INTEGER NOT NULL, amount INTEGER NOT NULL,
  PRIMARY KEY (hospital_id, national_code, kind, day, online));
CREATE TABLE IF NOT EXISTS ledger_stock (
  hospital_id TEXT NOT NULL, national_code TEXT NOT NULL, qty INTEGER NOT NULL,
  PRIMARY KEY (hospital_id, national_code));
CREATE TABLE IF NOT EXISTS ledger_deadlines (
  hospital_id TEXT NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL,
  opened_at TEXT NOT NULL, due_at TEXT NOT NULL, closed_at TEXT, reminded_at TEXT,
  detail BLOB NOT NULL, PRIMARY KEY (hospital_id, kind, ref));
CREATE TABLE IF NOT EXISTS ledger_price_flags (
  event_id TEXT NOT NULL, seq INTEGER NOT NULL, hospital_id TEXT NOT NULL,
  national_code TEXT NOT NULL, day TEXT NOT NULL, price TEXT NOT NULL,
  winning_price TEXT NOT NULL, PRIMARY KEY (event_id, seq));
CREATE TABLE IF NOT EXISTS ledger_trace (
  hospital_id TEXT NOT NULL, code TEXT NOT NULL, event_id TEXT NOT NULL,
  national_code TEXT NOT NULL, day TEXT NOT NULL, PRIMARY KEY (hospital_id, code));
CREATE TABLE IF NOT EXISTS ledger_trace_flags (
  hospital_id TEXT NOT NULL, code TEXT NOT NULL, first_event TEXT NOT NULL,
  first_day TEXT NOT NULL, event_id TEXT NOT NULL, day TEXT NOT NULL,
  national_code TEXT NOT NULL, PRIMARY KEY (hospital_id, code, event_id));
CREATE TABLE IF NOT EXISTS cds_cards (
  uuid TEXT PRIMARY KEY, service TEXT NOT NULL, hospital_id TEXT NOT NULL,
  doctor TEXT NOT NULL, department TEXT NOT NULL, rule_id TEXT NOT NULL,
  national_code TEXT NOT NULL, suggestions BLOB NOT NULL, issued_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cds_feedback (
  card TEXT NOT NULL, outcome TEXT NOT NULL, reason_code TEXT NOT NULL,
  reason_display TEXT NOT NULL, comment TEXT NOT NULL, accepted BLOB NOT NULL,
  at TEXT NOT NULL, PRIMARY KEY (card, outcome));
"""


def _old_ledger_file(path: Path, cursor: int, *, received: int = 12000,
                     card: str = "card-1") -> None:
    """A ledger file as an earlier release left it, rows as it wrote them."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(OLD_SCHEMA)
    db.executemany("INSERT INTO ledger_contracts VALUES (?,?,?)",
                   [(c.contract_id, orjson.dumps(_contract_rows(c), default=str),
                     "2026-01-01T09:00:00+08:00") for c in read_contracts(DATA / "contracts.csv")])
    db.execute("INSERT INTO ledger_cursor VALUES ('events', ?)", (cursor,))
    db.executemany("INSERT INTO ledger_applied VALUES (?)", [(f"old-{n}",) for n in range(cursor)])
    db.executemany("INSERT INTO ledger_daily VALUES (?,?,?,?,?,?,?)", [
        (HOSPITAL, EXEMESTANE_WIN, "receipt", "2026-02-10", 1, to_micros(Decimal(received)),
         to_micros(Decimal(received) * Decimal("2.135"))),
        (HOSPITAL, EXEMESTANE_WIN, "dispense", "2026-02-11", 1, to_micros(Decimal(40)), 0)])
    db.execute("INSERT INTO ledger_stock VALUES (?,?,?)",
               (HOSPITAL, EXEMESTANE_WIN, to_micros(Decimal(received - 40))))
    db.executemany("INSERT INTO ledger_deadlines VALUES (?,?,?,?,?,?,?,?)", [
        (HOSPITAL, "order", "PO-OLD", "2026-02-01T09:00:00+08:00", "2026-02-03T09:00:00+08:00",
         None, "2026-02-03T10:00:00+08:00", b'{"supplier":"S","amount":"10"}'),
        (HOSPITAL, "filing", "YJ-OLD", "2026-02-01T09:00:00+08:00",
         "2026-02-10T23:59:59.999999+08:00", "2026-02-05T09:00:00+08:00", None,
         b'{"emergency":false,"provisional":false,"event_id":"old-1","amount":"98"}')])
    db.execute("INSERT INTO ledger_price_flags VALUES (?,?,?,?,?,?,?)",
               ("old-2", 1, HOSPITAL, EXEMESTANE_WIN, "2026-02-10", "2.1400", "2.1350"))
    db.executemany("INSERT INTO ledger_trace VALUES (?,?,?,?,?)", [
        (HOSPITAL, "81000000000000000001", "old-3", EXEMESTANE_WIN, "2026-02-11")])
    db.execute("INSERT INTO ledger_trace_flags VALUES (?,?,?,?,?,?,?)",
               (HOSPITAL, "81000000000000000001", "old-3", "2026-02-11", "old-4", "2026-02-12",
                EXEMESTANE_WIN))
    db.execute("INSERT INTO cds_cards VALUES (?,?,?,?,?,?,?,?,?)",
               (card, "jicai-order-sign", HOSPITAL, "Practitioner/D1", "肿瘤内科",
                "nonwinning-while-lagging", EXEMESTANE_PFIZER, b'["s-1"]',
                "2026-02-12T10:00:00+08:00"))
    db.execute("INSERT INTO cds_feedback VALUES (?,?,?,?,?,?,?)",
               (card, "overridden", "clinical-necessity", "临床必需，不可替代", "", b"[]",
                "2026-02-12T10:01:00+08:00"))
    db.commit()
    db.close()


async def test_an_old_ledger_file_brings_its_decisions_and_the_store_refolds_the_totals(
        make_store: Any, calendar: WorkCalendar, rules: RuleSet, tmp_path: Path) -> None:
    store = await make_store()
    # the store holds five receipts and one held one (its second item not mapped yet);
    # the old file counted other totals (12,000) and the held receipt's mapped line
    events = [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 1000, "2.1350")], at=cst(2026, 2, d),
                    event_id=f"old-{d}") for d in range(1, 6)]
    for ev in events:
        await store.commit(incoming([ev]))
    held = event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 500, "2.1350"), ("", 300, "2.1350")],
                 at=cst(2026, 2, 20), event_id="old-held", doc="YS-HELD")
    await store.commit(msgspec.structs.replace(incoming([held]), held=(True,)))
    path = tmp_path / "legacy" / "ledger.db"
    path.parent.mkdir()
    _old_ledger_file(path, cursor=6)
    assert await import_legacy_ledger(path, store)
    assert not path.exists() and (tmp_path / "legacy" / "ledger.db.imported").exists()
    assert not await import_legacy_ledger(path, store)  # once
    lg = await _ledger(store, calendar, rules, contracts=False)
    assert len(lg.contracts()) == 3  # the file's contracts
    # the decisions taken by hand come over: the reminder sent, the filing closed
    deadlines = {d.ref: d for d in await lg.deadlines(HOSPITAL, NOW)}
    assert deadlines["YJ-OLD"].state == "met"
    assert deadlines["PO-OLD"].state == "escalate"
    [(card, fb)] = await lg.cds.feedback_rows()
    assert (card.doctor, card.suggestions, fb and fb.outcome) == (
        "Practitioner/D1", ("s-1",), "overridden")
    # the totals are the store's events folded once, not the file's
    assert await fold(lg, []) == 5
    [c] = [c for c in lg.contracts(HOSPITAL) if EXEMESTANE_WIN in c.winning_codes]
    assert lg.status(c, NOW).received_qty == 5000
    assert lg.stock(HOSPITAL, EXEMESTANE_WIN) == 5000

    # the receipt held at the upgrade counts once, whole, when its item is mapped
    def remap(ev: Event) -> tuple[Event, bool, tuple[()]]:
        line = msgspec.structs.replace(ev.lines[1], national_code=EXEMESTANE_PFIZER)
        return ev.with_lines((ev.lines[0], line)), False, ()
    assert [e.event_id for e in await store.release_held(remap)] == ["old-held"]
    assert await fold(lg, []) == 1
    assert lg.status(c, NOW).received_qty == 5500
    assert await _count(store, _FOLDED) == 6

    # another replica's file adds what the store lacks, and changes no total
    other = tmp_path / "other" / "ledger.db"
    other.parent.mkdir()
    _old_ledger_file(other, cursor=6, received=99999, card="card-2")
    assert await import_legacy_ledger(other, store)
    await lg.catch_up()
    assert lg.status(c, NOW).received_qty == 5500
    assert await fold(lg, []) == 0
    assert sorted(card.uuid for card, _ in await lg.cds.feedback_rows()) == ["card-1", "card-2"]


# -- token ids, cards and feedback --------------------------------------------------------

async def test_a_token_id_is_refused_everywhere_until_its_token_expires(
        make_store: Any) -> None:
    store = await make_store()
    now = 1_800_000_000.0
    assert await store.cds.claim_jti("iss", "t-1", now + 120, now)
    assert not await store.cds.claim_jti("iss", "t-1", now + 120, now + 1)
    assert await store.cds.claim_jti("other-iss", "t-1", now + 120, now + 1)
    assert await store.cds.claim_jti("iss", "t-1", now + 400, now + 121)  # expired: a new one
    if make_store.backend == "postgres":  # another replica, at the same time
        other = await make_store()
        assert not await other.cds.claim_jti("iss", "t-1", now + 400, now + 122)
        assert await other.cds.claim_jti("iss", "t-2", now + 400, now + 122)
        assert not await store.cds.claim_jti("iss", "t-2", now + 400, now + 123)
    await store.close()
    # written before closing: a restart still refuses it
    again = await make_store()
    assert not await again.cds.claim_jti("iss", "t-1", now + 400, now + 124)


async def test_cards_and_feedback_are_kept_in_the_store(make_store: Any) -> None:
    store = await make_store()
    other = store if make_store.backend == "sqlite" else await make_store()
    issued = cst(2026, 7, 2, 10)
    cards = [CardRow(f"card-{n}", "jicai-order-sign", HOSPITAL, "Practitioner/D1", "肿瘤内科",
                     "nonwinning-while-lagging", EXEMESTANE_PFIZER, ("s-1",),
                     issued + timedelta(seconds=n)) for n in range(3)]
    await store.cds.save_cards(cards)
    assert await store.cds.card("card-1") == cards[1]  # before the batch is written
    await store.cds.flush()
    assert await other.cds.card("card-2") == cards[2]
    assert await other.cds.card("nope") is None
    accepted = FeedbackRow("card-0", "accepted", "", "", "", ("s-1",), "2026-07-02T10:00:05+08:00")
    await other.cds.save_feedback([accepted])
    overridden = FeedbackRow("card-0", "overridden", "clinical-necessity", "临床必需，不可替代",
                             "", (), "2026-07-02T10:00:09+08:00")
    await store.cds.save_feedback([overridden])  # the prescriber changed their mind
    rows = await other.cds.feedback_rows()
    assert [(c.uuid, f) for c, f in rows] == [("card-0", overridden), ("card-1", None),
                                              ("card-2", None)]


async def test_an_unreadable_old_ledger_file_stops_the_start_and_stays(
        store: Any, tmp_path: Path) -> None:
    from helpers import make_config

    from canonical.errors import ConfigError
    from gateway.ledger.wiring import legacy_ledger_path, open_ledger

    cfg = make_config(tmp_path, mllp_port=0, http_port=0, platform_url="http://127.0.0.1:9/")
    path = legacy_ledger_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a database, just bytes " * 100)
    with pytest.raises(ConfigError, match="cannot be imported"):
        await open_ledger(cfg, store, lambda hospital, item: None)
    assert path.exists()
