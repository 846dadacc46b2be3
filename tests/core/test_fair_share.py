"""What keeps one big message, or the mirror's backlog, from holding everyone's ACKs:
a heavy message commits in a group of its own, and background work gives way while the
event loop runs late."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from prometheus_client import CollectorRegistry

from canonical.model import CHINA_TZ
from gateway.loop_lag import LoopLag
from gateway.store.base import CommitResult, Incoming
from gateway.store.group_commit import GroupCommit


def _incoming(name: str, size: int) -> Incoming:
    return Incoming(adapter="hl7v2", sender="HIS^ZJSRMYY", control_id=name,
                    message_type="RDS^O13", raw=b"x" * size,
                    received_at=datetime(2026, 11, 23, tzinfo=CHINA_TZ), events=(), held=())


async def test_a_heavy_message_is_committed_alone_after_the_light_ones_before_it() -> None:
    groups: list[list[str]] = []

    async def write(items: list[Incoming]) -> list[CommitResult]:
        groups.append([i.control_id for i in items])
        await asyncio.sleep(0)
        return [CommitResult(duplicate=False, message_id=n) for n, _ in enumerate(items)]

    commits = GroupCommit(write, max_batch=100)
    heavy = commits.heavy_bytes
    names = [("a", 100), ("b", 100), ("BIG", heavy), ("c", 100), ("d", 100)]
    results = await asyncio.gather(*(commits.commit(_incoming(n, s)) for n, s in names))
    assert len(results) == 5
    assert groups == [["a", "b"], ["BIG"], ["c", "d"]]


async def test_background_work_gives_way_while_the_loop_runs_late() -> None:
    registry = CollectorRegistry()
    lag = LoopLag(registry, interval_s=0.005, threshold_s=0.005, max_wait_s=0.1)
    lag.start()
    try:
        await asyncio.sleep(0.05)
        assert not lag.busy
        started = time.perf_counter()
        await lag.give_way()
        assert time.perf_counter() - started < 0.005  # a calm loop: no wait
        time.sleep(0.06)  # something holds the loop for 60 ms
        await asyncio.sleep(0.006)  # the sampler notices
        assert lag.busy and lag.lag_s >= 0.01
        started = time.perf_counter()
        await lag.give_way()
        assert time.perf_counter() - started >= 0.005  # waits about as long as the loop is late
        await asyncio.sleep(0.1)
        assert not lag.busy  # the figure decays once the loop keeps up again
    finally:
        await lag.stop()
    late = registry.get_sample_value("jcgw_event_loop_lag_seconds_bucket", {"le": "0.025"})
    total = registry.get_sample_value("jcgw_event_loop_lag_seconds_count")
    assert total is not None and late is not None and late < total  # the 60 ms was seen
