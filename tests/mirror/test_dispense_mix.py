"""The dispensing workload of the slow-platform benchmark and the ordered-mix test.

What ``dispense_mix`` promises: the same events for the same seed, sales totalling the
lines asked for over real national codes, a return always after its sale (same item, its
``original_no`` the sale's document number), a correction always after its original line
(same document and line), about the shares asked for; and sent in that order, one request
at a time, the platform accepts every request without an order violation.
"""

from __future__ import annotations

import csv
import itertools
import time

import aiohttp
import orjson
from dispense_mix import CODES, dispense_mix, units
from rig import gateway_config, start_simulator

from canonical.model import EventKind, OrderControl
from codes import validate as validate_code
from gateway.platforms.nhsa import NhsaInventoryProfile
from gateway.platforms.simulator import SimulatorState

SEED = 20261204


def test_the_same_seed_gives_the_same_events_another_seed_others() -> None:
    assert dispense_mix(300, 50, 7) == dispense_mix(300, 50, 7)
    assert dispense_mix(300, 50, 7) != dispense_mix(300, 50, 8)


def test_returns_follow_their_sales_and_corrections_their_originals() -> None:
    events = dispense_mix(2000, 200, SEED)
    sold: dict[str, set[str]] = {}  # sale document → item codes
    sold_lines: dict[tuple[str, int], str] = {}  # (document, line) → item code
    sale_lines = returns = corrections = 0
    for ev in events:
        if ev.kind is EventKind.DISPENSE and ev.order_control is None:
            sale_lines += len(ev.lines)
            sold[ev.document_no] = {li.item_code for li in ev.lines}
            sold_lines.update({(ev.document_no, li.seq): li.item_code for li in ev.lines})
        elif ev.kind is EventKind.DISPENSE_RETURN:
            returns += 1
            original = dict(ev.extra)["original_no"]
            assert original in sold, f"return {ev.event_id} before its sale {original}"
            assert {li.item_code for li in ev.lines} <= sold[original]
        else:
            assert ev.order_control is OrderControl.CHANGE and ev.kind is EventKind.DISPENSE
            corrections += 1
            for li in ev.lines:
                assert sold_lines.get((ev.document_no, li.seq)) == li.item_code, \
                    f"correction {ev.event_id} before its original line"
    assert sale_lines == 2000
    assert 70 <= returns <= 130 and 20 <= corrections <= 60  # 5 % and 2 % of the lines
    with CODES.open(encoding="utf-8") as f:
        national = {r["national_code"] for r in csv.DictReader(f)}
    used = {li.national_code or "" for ev in events for li in ev.lines}
    assert used <= national and not [c for c in used if validate_code(c)]
    assert 180 <= len({li.item_code for ev in events for li in ev.lines}) <= 200


async def test_sent_in_order_one_at_a_time_the_platform_accepts_everything() -> None:
    events = dispense_mix(300, 40, SEED)
    cfg = gateway_config([{"name": "nhsa", "url": "http://127.0.0.1:9/fsi/api/inventory"}])
    profile = NhsaInventoryProfile(cfg.destinations[0], cfg)
    state = SimulatorState()
    server = await start_simulator(state)
    serial = itertools.count(1)
    try:
        async with aiohttp.ClientSession() as s:
            for ev in events:
                for unit in range(units(ev)):
                    msgid = f"{ev.hospital_id}20261204093000{next(serial):04d}"
                    req = profile.build(ev, unit, msgid, time.time())
                    async with s.post(f"http://127.0.0.1:{server.port}/fsi/api/inventory"
                                      + req.path, data=req.body, headers=req.headers) as r:
                        answer = orjson.loads(await r.read())
                    assert answer["infcode"] == 0, (ev.event_id, unit, answer["err_msg"])
    finally:
        await server.close()
    counts = state.counts()
    assert counts["order_violations"] == 0 and counts["rejected"] == 0
    assert counts["accepted"] == sum(units(ev) for ev in events)
    assert counts["deleted"] == sum(ev.order_control is OrderControl.CHANGE for ev in events)
