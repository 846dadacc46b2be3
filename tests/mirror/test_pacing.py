"""Pacing one destination: the request rate, the adaptive in-flight bound, per hospital."""

from __future__ import annotations

import asyncio
import time

from gateway.mirror.pacing import PACE_MARGIN, AdaptiveLimit, Pacing, RatePacer


def max_in_any_second(times: list[float]) -> int:
    """The most of ``times`` inside any half-open window of one second."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def test_the_pacer_never_lets_a_second_hold_more_than_the_limit() -> None:
    pacer = RatePacer(40)
    sent: list[float] = []

    async def one() -> None:
        await pacer.wait()
        sent.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(100)))  # all at once: a burst to pace
    assert len(sent) == 100
    assert max_in_any_second(sent) <= 40
    # and it is not needlessly slow: the pace is the limit less the jitter margin
    assert sent[-1] - sent[0] < 99 / (40 * PACE_MARGIN) + 0.5


async def test_too_frequent_halves_the_pace_and_quiet_seconds_bring_it_back() -> None:
    now = [1000.0]
    pacer = RatePacer(50, clock=lambda: now[0])
    full = 50 * PACE_MARGIN
    assert pacer.current == full
    pacer.throttled()
    assert pacer.current == full / 2
    pacer.throttled()
    assert pacer.current == full / 4
    for _ in range(40):  # forty quiet seconds
        now[0] += 1.01
        pacer._recover(now[0])
    assert pacer.current == full  # back at the configured pace, never above it


async def test_without_a_configured_limit_the_first_too_frequent_sets_a_pace() -> None:
    now = [0.0]
    pacer = RatePacer(None, clock=lambda: now[0])
    for _ in range(30):  # thirty requests within the last second
        await pacer.wait()
    assert pacer.current == 0.0  # no limit yet
    pacer.throttled()
    assert pacer.current == 15.0  # half of what went out in the last second


async def test_the_in_flight_bound_backs_off_when_latency_climbs_and_recovers_after() -> None:
    now = [0.0]
    limit = AdaptiveLimit(16, clock=lambda: now[0])
    for _ in range(100):  # a platform answering in 150 ms
        now[0] += 0.01
        limit._learn(0.15, ok=True)
    assert limit.bound == 16
    for _ in range(200):  # it slows to 900 ms: congestion
        now[0] += 0.1
        limit._learn(0.9, ok=True)
    assert limit.bound < 8
    low = limit.bound
    for _ in range(2000):  # and recovers
        now[0] += 0.01
        limit._learn(0.15, ok=True)
    assert limit.bound == 16 > low


async def test_errors_back_off_once_per_round_trip_never_below_one() -> None:
    now = [0.0]
    limit = AdaptiveLimit(16, clock=lambda: now[0])
    limit._learn(0.2, ok=True)
    for _ in range(10):  # ten failures answered within one round trip: one decrease
        limit._learn(None, ok=False)
    assert limit.bound == int(16 * 0.7)
    for _ in range(100):
        now[0] += 1.0
        limit._learn(None, ok=False)
    assert limit.bound == 1


async def test_a_fixed_bound_when_adaptive_concurrency_is_off() -> None:
    limit = AdaptiveLimit(8, adaptive=False)
    for _ in range(50):
        await limit.acquire()
        await limit.release(None, ok=False)
    assert limit.bound == 8


async def test_one_hospital_cannot_take_every_place_in_flight() -> None:
    pacing = Pacing(concurrency=8, hospital_concurrency=2, rate_per_s=None)
    busy = {"A": 0, "B": 0}
    most = {"A": 0, "B": 0}
    gate = asyncio.Event()

    async def request(hospital: str) -> None:
        async with pacing.request(hospital) as outcome:
            busy[hospital] += 1
            most[hospital] = max(most[hospital], busy[hospital])
            await gate.wait()
            busy[hospital] -= 1
            outcome.latency_s, outcome.ok = 0.01, True

    tasks = [asyncio.create_task(request("A")) for _ in range(6)]
    tasks.append(asyncio.create_task(request("B")))
    await asyncio.sleep(0.05)
    assert busy == {"A": 2, "B": 1}  # B is not queued behind A's backlog
    assert pacing.in_flight == 3
    gate.set()
    await asyncio.gather(*tasks)
    assert most == {"A": 2, "B": 1} and pacing.in_flight == 0
