"""The simulator answers out-of-order and too-frequent calls as the platform does.

Requests are built by the real NHSA profile from realistic events and sent over loopback
HTTP, so what is checked is what the mirror would send.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import orjson
import pytest
from factory import dispense
from rig import gateway_config, start_simulator

from canonical.model import Event, EventKind, OrderControl
from gateway.platforms.nhsa import NhsaInventoryProfile
from gateway.platforms.simulator import TOO_FREQUENT, SimulatorState

CFG = gateway_config([{"name": "nhsa", "url": "http://127.0.0.1:9/fsi/api/inventory"}])
PROFILE = NhsaInventoryProfile(CFG.destinations[0], CFG)
_SEQ = [0]


class Platform:
    def __init__(self, state: SimulatorState, url: str, session: aiohttp.ClientSession):
        self.state, self.url, self.session = state, url, session

    async def send(self, event: Event, unit: int = 0) -> tuple[int, dict[str, Any]]:
        _SEQ[0] += 1
        msgid = f"{event.hospital_id}20261204093000{_SEQ[0] % 10_000:04d}"
        req = PROFILE.build(event, unit, msgid, time.time())
        async with self.session.post(self.url + req.path, data=req.body,
                                     headers=req.headers) as r:
            return r.status, orjson.loads(await r.read())


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    state = SimulatorState()
    server = await start_simulator(state)
    async with aiohttp.ClientSession() as s:
        yield Platform(state, f"http://127.0.0.1:{server.port}/fsi/api/inventory", s)
    await server.close()


def _receipt(n: int, lot: str = "L2026090112", kind: EventKind = EventKind.RECEIPT) -> Event:
    ev = dispense(n, kind=kind, doc=f"RK2026112300{n:03d}")
    extra = ev.extra + ((("original_no", "RK2026112300001"),) if kind is EventKind.RETURN
                        else ())
    return msgspec.structs.replace(ev.with_lines(tuple(
        msgspec.structs.replace(li, lot_no=lot) for li in ev.lines)), extra=extra)


async def test_a_return_before_its_sale_is_refused_and_counted_after_it_accepted(
        platform: Platform) -> None:
    ret = dispense(1, kind=EventKind.DISPENSE_RETURN)
    status, answer = await platform.send(ret)
    assert status == 200 and answer["infcode"] == -1 and "原销售" in answer["err_msg"]
    counts = platform.state.counts()
    assert counts["order_violations_by_kind"] == {"return_before_sale": 1}
    assert (await platform.send(dispense(1)))[1]["infcode"] == 0  # the sale
    status, answer = await platform.send(ret)  # the same return, now in order
    assert answer["infcode"] == 0
    # a return of another item of that prescription still has no sale
    other = dispense(1, kind=EventKind.DISPENSE_RETURN, item="Y0099999")
    assert (await platform.send(other))[1]["infcode"] == -1


async def test_a_sale_deleted_by_3507_can_no_longer_be_given_back(platform: Platform) -> None:
    assert (await platform.send(dispense(2)))[1]["infcode"] == 0
    cancel = dispense(2, control=OrderControl.CANCEL, event_id="cancel-2")
    assert (await platform.send(cancel))[1]["infcode"] == 0  # the 3507 delete
    ret = dispense(2, kind=EventKind.DISPENSE_RETURN)
    assert (await platform.send(ret))[1]["infcode"] == -1
    # and a second delete of it is a delete of an unknown upload
    assert (await platform.send(cancel))[1]["infcode"] == -1
    assert platform.state.counts()["order_violations_by_kind"] == {
        "return_before_sale": 1, "delete_unknown": 1}


async def test_a_purchase_return_needs_the_receipt_of_its_item_and_lot(
        platform: Platform) -> None:
    back = _receipt(9, kind=EventKind.RETURN)
    assert (await platform.send(back))[1]["infcode"] == -1
    assert (await platform.send(_receipt(1, lot="L-OTHER")))[1]["infcode"] == 0
    assert (await platform.send(back))[1]["infcode"] == -1  # another lot was received
    assert (await platform.send(_receipt(2)))[1]["infcode"] == 0
    assert (await platform.send(back))[1]["infcode"] == 0
    assert platform.state.counts()["order_violations_by_kind"] == {
        "purchase_return_before_receipt": 2}


async def test_calls_beyond_the_rate_limit_get_429_and_the_most_in_a_second_is_reported(
        platform: Platform) -> None:
    platform.state.set_faults({"rate_limit_per_s": 10})
    answers = await asyncio.gather(*(platform.send(dispense(100 + n)) for n in range(30)))
    ok = [a for s, a in answers if s == 200 and a["infcode"] == 0]
    limited = [a for s, a in answers if s == 429]
    assert len(ok) == 10 and len(limited) == 20
    assert all(a["err_msg"] == TOO_FREQUENT for a in limited)
    counts = platform.state.counts()
    assert counts["rate_limited"] == 20 and counts["accepted"] == 10
    assert counts["max_per_s"] == 30  # what arrived, refused or not
    # the business form of the same refusal, as some provincial front ends answer
    platform.state.set_faults({"rate_limit_per_s": 1, "rate_limit_answer": "business"})
    status, answer = await platform.send(dispense(200))
    assert status == 200 and answer["infcode"] == -1 and answer["err_msg"] == TOO_FREQUENT
    # and the profile reads both as "too fast", not as a refusal of the event
    assert PROFILE.interpret(429, orjson.dumps(answer)).throttled
    assert PROFILE.interpret(200, orjson.dumps(answer)).throttled


async def test_latency_jitter_stays_within_its_bounds() -> None:
    async def delays() -> list[float]:
        state = SimulatorState()
        state.set_faults({"latency_s": 0.05, "latency_jitter_s": 0.04})
        server = await start_simulator(state)
        out = []
        async with aiohttp.ClientSession() as s:
            for n in range(12):
                start = time.perf_counter()
                req = PROFILE.build(dispense(300 + n), 0, f"H3301020001520261204093000{n:04d}",
                                    time.time())
                async with s.post(f"http://127.0.0.1:{server.port}/fsi/api/inventory"
                                  + req.path, data=req.body, headers=req.headers) as r:
                    await r.read()
                out.append(time.perf_counter() - start)
        await server.close()
        return out

    taken = await delays()
    assert all(0.009 <= d < 0.2 for d in taken)  # 50 ms ± 40 ms, plus the round trip
    assert max(taken) - min(taken) > 0.02  # spread, not one fixed latency
