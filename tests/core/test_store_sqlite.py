"""The SQLite store: one transaction per group, duplicates, msgids that never repeat."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from helpers import HOSPITAL, numbered_dispense

from adapters.hl7v2 import HL7v2Adapter
from canonical.errors import StoreError
from canonical.model import CHINA_TZ
from gateway.store.base import CommitResult, Incoming, PlannedDelivery
from gateway.store.msgid import MsgIdClock
from gateway.store.sqlite import SqliteStore

ADAPTER = HL7v2Adapter({"facilities": {"ZJSRMYY": HOSPITAL}})


def incoming(n: int) -> Incoming:
    raw = numbered_dispense(n)
    now = datetime.now(CHINA_TZ)
    parsed = ADAPTER.parse(raw, received_at=now)
    return Incoming(adapter="hl7v2", sender=parsed.sender, control_id=parsed.control_id,
                    message_type=parsed.message_type, raw=raw, received_at=now,
                    events=parsed.events, held=(False,) * len(parsed.events),
                    deliveries=(PlannedDelivery(0, "nhsa", 0),))


async def test_concurrent_commits_share_transactions(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "g.db")
    await store.start()
    results = await asyncio.gather(*(store.commit(incoming(n)) for n in range(200)))
    assert all(not r.duplicate and len(r.outbox_ids) == 1 for r in results)
    assert store.commits < 20  # 200 messages, a handful of fsyncs
    pending = await store.pending("nhsa", 1000)
    assert [p.event.control_id for p in pending] == [f"RDS{n:012d}" for n in range(200)]
    msgids = [p.msgid for p in pending]
    assert len(set(msgids)) == 200 and msgids == sorted(msgids)
    await store.close()


async def test_duplicate_is_not_stored_twice(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "g.db")
    await store.start()
    first = await store.commit(incoming(1))
    again = await store.commit(incoming(1))
    assert again.duplicate and again.message_id == first.message_id and not again.outbox_ids
    assert (await store.query("SELECT count(*) FROM outbox"))[0][0] == 1
    await store.close()


async def test_committed_data_survives_reopen_and_msgids_continue(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store = SqliteStore(path)
    await store.start()
    await asyncio.gather(*(store.commit(incoming(n)) for n in range(50)))
    before = {p.msgid for p in await store.pending("nhsa", 100)}
    await store.close()
    store = SqliteStore(path)
    await store.start()
    await store.commit(incoming(99))
    after = {p.msgid for p in await store.pending("nhsa", 100)}
    assert before < after and len(after) == 51
    await store.close()


async def test_failed_transaction_raises_store_error_for_every_waiter(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store = SqliteStore(path)
    await store.start()
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    store._wcon.execute("PRAGMA busy_timeout=50")  # type: ignore[union-attr]
    with pytest.raises(StoreError):
        await store.commit(incoming(7))
    blocker.rollback()
    blocker.close()
    ok = await store.commit(incoming(7))  # nothing of the failed attempt was kept
    assert not ok.duplicate
    await store.close()


async def test_callback_commits_hear_results_and_failures_like_awaiting_ones(
        tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store = SqliteStore(path)
    await store.start()
    heard: list[object] = []
    done = asyncio.Event()

    def listen(outcome: object) -> None:
        heard.append(outcome)
        if len(heard) == 3:
            done.set()

    def broken(outcome: object) -> None:
        raise RuntimeError("a caller's bug")

    store.commit_then(incoming(1), listen)
    store.commit_then(incoming(2), broken)  # must not keep the others from hearing
    store.commit_then(incoming(3), listen)
    store.commit_then(incoming(1), listen)  # a duplicate within the same group
    await asyncio.wait_for(done.wait(), 5)
    first, third, dup = heard
    assert isinstance(first, CommitResult) and not first.duplicate
    assert isinstance(third, CommitResult) and not third.duplicate
    assert isinstance(dup, CommitResult) and dup.duplicate
    assert (await store.query("SELECT count(*) FROM messages"))[0][0] == 3

    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")
    store._wcon.execute("PRAGMA busy_timeout=50")  # type: ignore[union-attr]
    failed: list[object] = []
    both = asyncio.Event()

    def fail(outcome: object) -> None:
        failed.append(outcome)
        if len(failed) == 2:
            both.set()

    store.commit_then(incoming(8), fail)
    store.commit_then(incoming(9), fail)
    await asyncio.wait_for(both.wait(), 5)
    blocker.rollback()
    blocker.close()
    assert all(isinstance(f, StoreError) for f in failed)
    assert (await store.query("SELECT count(*) FROM messages"))[0][0] == 3
    await store.close()


def test_msgid_clock_never_repeats_within_a_second_or_after_seed() -> None:
    clock = MsgIdClock()
    t = 1795400000.5
    ids = [clock.next(HOSPITAL, t) for _ in range(10_001)]
    assert len(set(ids)) == 10_001
    assert ids[0].endswith("0000") and ids[9999].endswith("9999")
    assert ids[10_000][12:26] > ids[0][12:26]  # borrowed the next second
    fresh = MsgIdClock()
    fresh.seed(HOSPITAL, ids[-1])
    assert fresh.next(HOSPITAL, t) > ids[-1]
    assert all(len(i) == 30 and i.startswith(HOSPITAL) for i in ids[:5])


async def test_commit_listeners_hear_new_events_in_order_and_never_duplicates(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "g.db")
    heard: list[tuple[int, str]] = []
    store.committed_listeners.append(lambda evs: heard.extend((s, e.control_id) for s, e in evs))
    await store.start()
    await asyncio.gather(*(store.commit(incoming(n)) for n in range(20)))
    again = await asyncio.gather(*(store.commit(incoming(n)) for n in (3, 4, 25)))
    assert [r.duplicate for r in again] == [True, True, False]
    assert [c for _, c in heard] == [f"RDS{n:012d}" for n in [*range(20), 25]]
    seqs = [s for s, _ in heard]
    assert seqs == sorted(seqs) and len(set(seqs)) == 21
    await store.close()


async def test_a_store_newer_than_the_gateway_refuses_to_start_and_leaves_nothing_open(
        tmp_path: Path) -> None:
    import sqlite3

    from canonical.errors import StoreError

    path = tmp_path / "gw.db"
    first = SqliteStore(path)
    await first.start()
    await first.close()
    con = sqlite3.connect(path)
    con.execute("INSERT INTO schema_version VALUES (999)")  # written by a newer release
    con.commit()
    con.close()
    store = SqliteStore(path)
    with pytest.raises(StoreError, match="newer than this gateway"):
        await store.start()
    assert store.closed
    con = sqlite3.connect(path, timeout=0.1)  # no connection of ours holds it
    con.execute("BEGIN IMMEDIATE")
    con.execute("DELETE FROM schema_version WHERE version = 999")
    con.execute("COMMIT")
    con.close()


def test_msgids_in_bulk_are_the_ids_one_at_a_time_would_be() -> None:
    """A big commit takes its msgids in one call: the same ids, across the borrowed
    second and for several hospitals interleaved."""
    t = 1795400000.5
    hospitals = [HOSPITAL, "H33010200016"] * 6_000
    one, bulk = MsgIdClock(), MsgIdClock()
    for clock in (one, bulk):
        clock.seed(HOSPITAL, "H33010200015" + "20261123000000" + "0100")
    assert bulk.many(hospitals, t) == [one.next(h, t) for h in hospitals]
    assert bulk.next(HOSPITAL, t) == one.next(HOSPITAL, t)
