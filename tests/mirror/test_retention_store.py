"""Retention on both stores: raw bytes go once every event is delivered and the retention
has passed; quarantine goes after its own; a quarantined message is kept at most so big."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import msgspec
from factory import HOSPITALS, dispense, incoming

from canonical.model import CHINA_TZ, EventKind
from gateway.config import StoreConfig
from gateway.metrics import Metrics
from gateway.retention import DAY_S, cutoffs, purge_once
from gateway.store.base import DeliveryUpdate

NOW = time.time()


def _received(days_ago: float, n: int, *, held: bool = False, units: int = 1,
              kind: EventKind = EventKind.DISPENSE) -> Any:
    """Dispense ``n`` as a message received ``days_ago`` days before NOW."""
    inc = incoming([dispense(n, HOSPITALS[0], kind=kind)], [("nhsa", units)])
    at = datetime.fromtimestamp(NOW, CHINA_TZ) - timedelta(days=days_ago)
    return msgspec.structs.replace(inc, received_at=at, held=(held,),
                                   deliveries=() if held else inc.deliveries)


async def _raw(store: Any) -> dict[str, bytes]:
    rows = await store.query("SELECT control_id, raw FROM messages")
    return {c: bytes(r) for c, r in rows}


async def test_raw_bytes_go_only_when_old_enough_and_every_event_is_delivered(
        make_store) -> None:
    store = await make_store()
    delivered = await store.commit(_received(200, 1))
    pending = await store.commit(_received(200, 2))
    dead = await store.commit(_received(200, 3))
    held = await store.commit(_received(200, 4, held=True))
    recent = await store.commit(_received(10, 5))
    unmirrored = await store.commit(_received(200, 6, kind=EventKind.PRESCRIPTION, units=0))
    await store.record_deliveries([
        DeliveryUpdate(delivered.outbox_ids[0], "delivered", at=NOW),
        DeliveryUpdate(dead.outbox_ids[0], "dead", "infcode -1: 医疗目录编码无效", at=NOW),
        DeliveryUpdate(recent.outbox_ids[0], "delivered", at=NOW)])
    assert pending.outbox_ids and not held.outbox_ids and not unmirrored.outbox_ids
    before = await _raw(store)

    purged = await store.purge(raw_before=NOW - 180 * DAY_S, quarantine_before=None, now=NOW,
                               batch=1)  # one row per transaction: the batches add up
    assert purged.raw_messages == 2 and purged.quarantined == 0
    after = await _raw(store)
    gone = {dispense(1).control_id, dispense(6).control_id}
    assert {c for c, raw in after.items() if raw == b""} == gone
    assert {c: r for c, r in after.items() if c not in gone} == {
        c: r for c, r in before.items() if c not in gone}
    stamps = await store.query("SELECT control_id FROM messages WHERE raw_purged_at IS NOT NULL")
    assert {r[0] for r in stamps} == gone
    again = await store.purge(raw_before=NOW - 180 * DAY_S, quarantine_before=None, now=NOW)
    assert again.raw_messages == 0
    # the row and its digest stay: a late resend is still a resend
    resend = await store.commit(_received(0, 1))
    assert resend.duplicate and not resend.reused

    # the pending one, once delivered, lets its bytes go too; the dead letter's stay
    await store.record_deliveries([DeliveryUpdate(pending.outbox_ids[0], "delivered", at=NOW)])
    later = await store.purge(raw_before=NOW - 180 * DAY_S, quarantine_before=None, now=NOW)
    assert later.raw_messages == 1
    assert (await _raw(store))[dispense(2).control_id] == b""
    assert (await _raw(store))[dispense(3).control_id] == before[dispense(3).control_id]


async def test_quarantine_is_deleted_after_its_retention_and_cut_at_its_size(make_store) -> None:
    store = await make_store()
    store.quarantine_max_bytes = 2048
    old = datetime.fromtimestamp(NOW, CHINA_TZ) - timedelta(days=91)
    new = datetime.fromtimestamp(NOW, CHINA_TZ) - timedelta(days=1)
    garbage = "MSH|^~\\&|HIS|ZJSRMYY|||乱码".encode() * 1000
    await store.quarantine(b"\x0bMSH|bad", peer="10.12.0.31:51544", adapter="hl7v2",
                           reason="not an HL7 message", received_at=old)
    await store.quarantine(garbage, peer="10.12.0.31:51544", adapter="hl7v2",
                           reason="frame above max_frame_bytes", received_at=new)
    rows = await store.query("SELECT raw, original_size FROM quarantine ORDER BY id")
    assert [r[1] for r in rows] == [8, len(garbage)]
    cut = bytes(rows[1][0])
    assert cut.startswith(garbage[:2048]) and len(cut) < 2200
    assert cut.endswith(f"[truncated by jicai-gateway: 2048 of {len(garbage)} bytes kept]"
                        .encode())

    purged = await store.purge(raw_before=None, quarantine_before=NOW - 90 * DAY_S, now=NOW)
    assert purged.quarantined == 1 and purged.raw_messages == 0
    left = await store.query("SELECT reason FROM quarantine")
    assert [r[0] for r in left] == ["frame above max_frame_bytes"]


async def test_a_pass_follows_the_configuration_and_is_counted(make_store) -> None:
    store = await make_store()
    done = await store.commit(_received(200, 1))
    await store.record_deliveries([DeliveryUpdate(done.outbox_ids[0], "delivered", at=NOW)])
    metrics = Metrics()
    forever = StoreConfig(raw_retention_days=0, quarantine_retention_days=0)
    assert cutoffs(forever, NOW) == (None, None)
    assert (await purge_once(store, forever, metrics, NOW)).raw_messages == 0
    purged = await purge_once(store, StoreConfig(), metrics, NOW)  # 180 days by default
    assert purged.raw_messages == 1
    assert metrics.registry.get_sample_value(
        "jcgw_retention_purged_total", {"what": "raw_message"}) == 1.0
