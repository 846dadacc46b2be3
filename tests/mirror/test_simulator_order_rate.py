"""The simulator's latency jitter, rate limit and order checks, over loopback HTTP.

Requests are built by the real NHSA profile from the factory's events, as the mirror
builds them. The simulator's waits are recorded by wrapping the sleep it calls, so the
jitter's draws are checked exactly (bounds, never negative, repeated with the seed)
while the calls still go over HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import msgspec
import orjson
import pytest
from factory import dispense
from rig import gateway_config, start_simulator

from canonical.model import Event, EventKind, OrderControl
from gateway.cli.main import main as cli_main
from gateway.platforms import simulator
from gateway.platforms.base import Request
from gateway.platforms.nhsa import NhsaInventoryProfile
from gateway.platforms.simulator import TOO_FREQUENT, SimulatorState

CFG = gateway_config([{"name": "nhsa", "url": "http://127.0.0.1:9/fsi/api/inventory"}])
PROFILE = NhsaInventoryProfile(CFG.destinations[0], CFG)
_SERIAL = itertools.count(1)


def request(event: Event, unit: int = 0) -> Request:
    """Unit ``unit`` of ``event`` as the mirror would send it, under a fresh msgid."""
    msgid = f"{event.hospital_id}20261204093000{next(_SERIAL) % 10_000:04d}"
    return PROFILE.build(event, unit, msgid, time.time())


class Platform:
    """A running simulator and a client session to it."""

    def __init__(self, state: SimulatorState, base: str, session: aiohttp.ClientSession):
        self.state, self.base, self.session = state, base, session

    async def post(self, req: Request) -> tuple[int, dict[str, Any]]:
        async with self.session.post(f"{self.base}/fsi/api/inventory{req.path}",
                                     data=req.body, headers=req.headers) as r:
            return r.status, orjson.loads(await r.read())

    async def send(self, event: Event, unit: int = 0) -> tuple[int, dict[str, Any]]:
        return await self.post(request(event, unit))

    async def infcode(self, event: Event, unit: int = 0) -> int:
        return int((await self.send(event, unit))[1]["infcode"])

    async def counts(self) -> dict[str, Any]:
        async with self.session.get(f"{self.base}/_sim/counts") as r:
            out: dict[str, Any] = await r.json()
            return out


async def _platform(state: SimulatorState) -> AsyncIterator[Platform]:
    server = await start_simulator(state)
    async with aiohttp.ClientSession() as s:
        yield Platform(state, f"http://127.0.0.1:{server.port}", s)
    await server.close()


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    async for p in _platform(SimulatorState()):
        yield p


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait the simulator asks for, in order (the waits still happen)."""
    real_sleep = asyncio.sleep
    asked: list[float] = []

    async def sleep(delay: float) -> None:
        asked.append(delay)
        await real_sleep(delay)

    monkeypatch.setattr(simulator, "asyncio", SimpleNamespace(sleep=sleep))
    return asked


def _receipt(n: int, *, back: bool = False) -> Event:
    """A purchase receipt (3503) or, ``back``, a purchase return (3504) of the factory's item
    and lot."""
    kind = EventKind.RETURN if back else EventKind.RECEIPT
    ev = dispense(n, kind=kind, doc=f"RK2026120400{n:03d}")
    if back:
        ev = msgspec.structs.replace(ev, extra=(*ev.extra, ("original_no", "RK2026120400001")))
    return ev


def _sale_return(n: int) -> Event:
    """A 3506 giving back dispense ``n``'s item (``original_no`` = that sale's document)."""
    return dispense(n, kind=EventKind.DISPENSE_RETURN, doc=f"TY{n:010d}")


# latency and its jitter ---------------------------------------------------------------


async def _delays(seed: int, sleeps: list[float], calls: int = 24) -> list[float]:
    state = SimulatorState(seed=seed)
    state.set_faults({"latency_s": 0.01, "latency_jitter_s": 0.03})
    sleeps.clear()
    async for p in _platform(state):
        for n in range(calls):
            assert await p.infcode(dispense(400 + n)) == 0
    return list(sleeps)


async def test_jitter_is_drawn_from_the_seed_within_its_bounds_and_never_negative(
        sleeps: list[float]) -> None:
    first = await _delays(7, sleeps)
    assert len(first) == 24  # one wait a call
    # 10 ms ± up to 30 ms: never below zero, never above 40 ms
    assert all(0.0 <= d <= 0.04 + 1e-9 for d in first)
    assert 0.0 in first  # a draw below zero waits nothing rather than a negative time
    assert max(first) - min(first) > 0.02  # spread, not one fixed latency
    assert await _delays(7, sleeps) == first  # the same seed, the same waits
    assert await _delays(8, sleeps) != first  # another seed, other waits


async def test_per_transaction_jitter_set_from_the_cli_waits_for_that_transaction_only(
        platform: Platform, sleeps: list[float]) -> None:
    faults = '{"transactions": {"3505": {"latency_s": 0.15, "latency_jitter_s": 0.05}}}'
    rc = await asyncio.to_thread(cli_main, ["sim-faults", "--url", platform.base, faults])
    assert rc == 0
    assert platform.state.sub_faults["3505"].latency_jitter_s == 0.05
    assert await platform.infcode(_receipt(1)) == 0  # a 3503: no wait
    assert sleeps == []
    for n in range(6):
        assert await platform.infcode(dispense(500 + n)) == 0  # 3505s
    assert len(sleeps) == 6 and all(0.10 - 1e-9 <= d <= 0.20 + 1e-9 for d in sleeps)
    assert len(set(sleeps)) > 1
    # the same over HTTP, globally and merged with what is set: every call waits
    async with platform.session.post(f"{platform.base}/_sim/faults",
                                     json={"latency_s": 0.01,
                                           "latency_jitter_s": 0.005}) as r:
        assert r.status == 200
        now = await r.json()
    assert now["latency_jitter_s"] == 0.005 and "3505" in now["transactions"]
    sleeps.clear()
    assert await platform.infcode(_receipt(2)) == 0
    assert len(sleeps) == 1 and 0.005 - 1e-9 <= sleeps[0] <= 0.015 + 1e-9
    async with platform.session.post(f"{platform.base}/_sim/faults",
                                     json={"latency_jitter_s": "soon"}) as r:
        assert r.status == 400


# the rate limit ----------------------------------------------------------------------


async def test_a_call_refused_for_rate_is_not_recorded_and_its_retry_goes_through_later(
        platform: Platform) -> None:
    async with platform.session.post(f"{platform.base}/_sim/faults",
                                     json={"rate_limit_per_s": 3}) as r:
        assert r.status == 200
    reqs = [request(dispense(600 + n)) for n in range(5)]
    answers = await asyncio.gather(*(platform.post(q) for q in reqs))
    refused = [q for q, (status, _) in zip(reqs, answers, strict=True) if status == 429]
    assert len(refused) == 2
    assert [a for s, a in answers if s == 429] == [
        {"infcode": -1, "msgid": "", "err_msg": TOO_FREQUENT, "output": {}}] * 2
    for q in refused:
        msgid = orjson.loads(q.body)["msgid"]
        assert msgid not in platform.state.accepted and msgid not in platform.state.received_at
    await asyncio.sleep(1.1)  # the second has passed
    for q in refused:  # the very same requests, same msgids: accepted, not duplicates
        status, answer = await platform.post(q)
        assert status == 200 and answer["infcode"] == 0
    counts = await platform.counts()
    assert counts["accepted"] == 5 and counts["duplicates"] == 0
    assert counts["rate_limited"] == 2 and counts["max_per_s"] == 5


async def test_a_client_offering_twice_the_limit_gets_the_limit_through_every_second(
        platform: Platform) -> None:
    platform.state.set_faults({"rate_limit_per_s": 10})
    start = time.perf_counter()
    tasks = []
    for n in range(40):  # 20 a second for 2 s
        await asyncio.sleep(max(0.0, start + n * 0.05 - time.perf_counter()))
        tasks.append(asyncio.create_task(platform.send(dispense(700 + n))))
    answers = await asyncio.gather(*tasks)
    accepted = sorted(platform.state.received_at.values())
    # refused calls do not keep the client out: about 10 in each of the two seconds
    assert 15 <= len(accepted) <= 22
    assert sum(1 for s, _ in answers if s == 429) == 40 - len(accepted)
    for i, t in enumerate(accepted):  # never more than 10 in any second (less the timing)
        assert sum(1 for u in accepted[i:] if u < t + 0.95) <= 10
    counts = platform.state.counts()
    assert counts["rate_limited"] == 40 - len(accepted)
    assert 15 <= counts["max_per_s"] <= 25  # what arrived, refused or not


async def test_without_a_limit_nothing_is_refused_but_the_busiest_second_is_measured(
        platform: Platform) -> None:
    answers = await asyncio.gather(*(platform.send(dispense(800 + n)) for n in range(25)))
    assert all(s == 200 and a["infcode"] == 0 for s, a in answers)
    counts = await platform.counts()
    assert counts["rate_limited"] == 0 and counts["max_per_s"] == 25
    await asyncio.sleep(1.05)
    assert await platform.infcode(dispense(830)) == 0
    assert (await platform.counts())["max_per_s"] == 25  # the most, not the latest


# order checks ------------------------------------------------------------------------


async def test_a_return_before_its_sale_is_refused_and_counted_after_it_accepted(
        platform: Platform) -> None:
    status, answer = await platform.send(_sale_return(1))
    assert status == 200 and answer["infcode"] == -1 and "原销售" in answer["err_msg"]
    assert await platform.infcode(dispense(1)) == 0  # the sale
    assert await platform.infcode(_sale_return(1)) == 0  # the return, now in order
    counts = await platform.counts()
    assert counts["order_violations"] == 1
    assert counts["order_violations_by_kind"] == {"return_before_sale": 1}
    assert counts["accepted"] == 2


async def test_a_purchase_return_before_its_receipt_is_refused_after_it_accepted(
        platform: Platform) -> None:
    answer = (await platform.send(_receipt(2, back=True)))[1]
    assert answer["infcode"] == -1 and "原采购入库" in answer["err_msg"]
    assert await platform.infcode(_receipt(1)) == 0
    assert await platform.infcode(_receipt(2, back=True)) == 0
    assert (await platform.counts())["order_violations_by_kind"] == {
        "purchase_return_before_receipt": 1}


async def test_a_second_upload_of_a_live_batch_is_counted_and_a_correction_goes_through(
        platform: Platform) -> None:
    assert await platform.infcode(dispense(3)) == 0
    answer = (await platform.send(dispense(3)))[1]  # the same line under a new msgid
    assert answer["infcode"] == -1 and "已上传" in answer["err_msg"]
    # a correction: the profile deletes the upload (3507), then uploads the line again
    change = dispense(3, control=OrderControl.CHANGE, event_id="change-3")
    delete, upload = request(change, 0), request(change, 1)
    assert orjson.loads(delete.body)["infno"] == "3507"
    assert (await platform.post(delete))[1]["infcode"] == 0
    assert (await platform.post(upload))[1]["infcode"] == 0
    assert await platform.infcode(_sale_return(3)) == 0  # of the corrected sale
    counts = await platform.counts()
    assert counts["order_violations_by_kind"] == {"reupload_live": 1}
    assert counts["deleted"] == 1 and counts["accepted"] == 4


async def test_order_checks_off_let_returns_through_but_still_count_unknown_deletes(
        ) -> None:
    state = SimulatorState()
    state.check_order = False
    async for p in _platform(state):
        assert await p.infcode(_sale_return(4)) == 0
        assert await p.infcode(_receipt(4, back=True)) == 0
        cancel = dispense(5, control=OrderControl.CANCEL, event_id="cancel-5")
        assert await p.infcode(cancel) == -1  # nothing to delete
        await asyncio.sleep(1.05)  # the calls above out of the last second
        p.state.set_faults({"rate_limit_per_s": 1})
        await asyncio.gather(*(p.send(dispense(900 + n)) for n in range(3)))
        counts = await p.counts()
        assert counts["order_violations_by_kind"] == {"delete_unknown": 1}
        assert counts["rate_limited"] == 2 and counts["max_per_s"] == 3
        async with p.session.post(f"{p.base}/_sim/reset") as r:
            assert r.status == 200
        assert await p.counts() == {
            "accepted": 0, "duplicates": 0, "rejected": 0, "calls": 0, "deleted": 0,
            "injected": {}, "order_violations": 0, "order_violations_by_kind": {},
            "rate_limited": 0, "max_per_s": 0}
        assert p.state.check_order is False  # kept, as the keys and the seed are
        assert p.state.faults.rate_limit_per_s == 0
        assert await p.infcode(_sale_return(6)) == 0
