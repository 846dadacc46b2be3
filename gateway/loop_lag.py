"""How late the event loop runs what is due, and background work that gives way to it.

Every listener, the mirror and the ledger share one event loop. A message waits for its
ACK behind whatever else is ready to run, so when the mirror works through the 2,000
requests of one big dispense as fast as the platform answers, every ACK in the meantime
waits for several of them. The mirror (and any other background work) therefore asks
:meth:`LoopLag.give_way` before each step: while the loop runs late by more than
``threshold_s``, it pauses for about as long as the loop is late, so messages waiting
for their acknowledgement go first, and the mirror catches up as soon as the load eases.
It never stops: each step waits at most ``max_wait_s``.

The lag is also an operator's first sign of an overloaded gateway
(``jcgw_event_loop_lag_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from prometheus_client import CollectorRegistry, Histogram

__all__ = ["LoopLag"]


class LoopLag:
    """Samples the loop's lateness every ``interval_s`` (while :meth:`run` runs)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, interval_s: float = 0.005,
                 threshold_s: float = 0.005, max_wait_s: float = 0.1) -> None:
        self.interval_s = interval_s
        self.threshold_s = threshold_s
        self.max_wait_s = max_wait_s
        self.lag_s = 0.0  # the latest sample, decaying while the loop keeps up
        self._task: asyncio.Task[None] | None = None
        self._histogram = Histogram(
            "jcgw_event_loop_lag_seconds", "How late the event loop ran a timer due now "
            "(every listener and worker shares the loop)", registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
        ) if registry is not None else None

    def start(self) -> None:
        """Start sampling."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="loop-lag")

    async def stop(self) -> None:
        """Stop sampling."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Sample forever."""
        interval = self.interval_s
        while True:
            due = time.perf_counter() + interval
            await asyncio.sleep(interval)
            late = max(0.0, time.perf_counter() - due)
            # a spike counts at once; a calm loop lowers the figure over a few samples
            self.lag_s = max(late, self.lag_s * 0.5)
            if self._histogram is not None:
                self._histogram.observe(late)

    @property
    def busy(self) -> bool:
        """Whether the loop runs later than the threshold."""
        return self.lag_s > self.threshold_s

    async def give_way(self) -> None:
        """Before a step of background work: wait while the loop runs late."""
        if self.busy:
            await asyncio.sleep(min(self.lag_s, self.max_wait_s))
