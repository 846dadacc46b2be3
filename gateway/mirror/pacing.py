"""How fast the mirror may call one platform: in-flight bounds and a request rate.

A provincial or medical-insurance platform answers in 100–500 ms and limits how often a
hospital may call it. Three things keep the mirror within what it allows:

- :class:`AdaptiveLimit` bounds the requests in flight. It starts at the destination's
  ``concurrency`` and lowers the bound (multiplicatively, at most once per round trip)
  when the platform's latency climbs well above the best it has recently shown or when
  calls fail, then raises it again by one per round trip of good answers — additive
  increase, multiplicative decrease, as TCP does for the same reason;
- a per-hospital bound, so one hospital's morning backlog leaves room for the others;
- :class:`RatePacer` spaces requests evenly so that no second ever holds more than the
  configured ``rate_limit_per_s``; the platform's "too frequent" answers (HTTP 429, or a
  business answer saying so) halve the pace, which then creeps back up while the
  platform stays quiet.

The pacer spaces requests at 95 % of the limit: the platform counts arrivals, and a
request that spent a little less time on the network than the one before it must not
make a second hold one request too many.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

__all__ = ["AdaptiveLimit", "Pacing", "RatePacer", "Waiters"]

PACE_MARGIN = 0.95  # share of the configured rate the pacer actually uses
MIN_RATE = 0.5  # requests per second the pacer never goes below after "too frequent"
RECOVER_EVERY_S = 1.0  # a quiet second raises a throttled pace by RECOVER_FACTOR
RECOVER_FACTOR = 1.1
LATENCY_SAMPLES = 200  # the recent answers whose best latency is the baseline
CONGESTED_RATIO = 2.0  # smoothed latency above this many baselines (plus slack) backs off
CONGESTED_SLACK_S = 0.05
DECREASE_FACTOR = 0.7


class Waiters:
    """Tasks waiting for room, woken first come first served, as many as there is room.

    A claimed batch is hundreds of tasks waiting for a few places; waking them all at each
    freed place (``notify_all``, an ``Event``) costs a pass over all of them per request.
    """

    def __init__(self) -> None:
        self._queue: deque[asyncio.Future[None]] = deque()

    async def wait(self) -> None:
        """Wait until :meth:`wake` picks this task (then check the room again)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.wake(1)  # picked, but not taking it: the next one may
            raise

    def wake(self, n: int) -> None:
        """Wake up to ``n`` waiting tasks, oldest first."""
        while n > 0 and self._queue:
            fut = self._queue.popleft()
            if not fut.done():
                fut.set_result(None)
                n -= 1


class RatePacer:
    """Requests spaced evenly, never more than ``rate_per_s`` in any second.

    With ``rate_per_s`` None there is no limit until the platform says "too frequent";
    the pace then starts at half of what was sent in the last second.
    """

    def __init__(self, rate_per_s: float | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = rate_per_s
        self.rate: float | None = None if rate_per_s is None else rate_per_s * PACE_MARGIN
        self.clock = clock
        self._last_sent = -math.inf
        self._sent: deque[float] = deque()
        self._quiet_since = 0.0
        self.throttled_total = 0

    async def wait(self) -> None:
        """Wait until this request may go: at least one interval after the one before.

        Measured from when the previous request really went, not from a slot handed out
        in advance: requests that wake late together (a busy event loop) would otherwise
        go out in a burst the platform counts in one second.
        """
        while True:
            now = self.clock()
            self._recover(now)
            if self.rate is None:
                break
            due = self._last_sent + 1.0 / self.rate
            if due <= now:
                break
            await asyncio.sleep(due - now)
        self._last_sent = self.clock()
        self._note_sent(self._last_sent)

    def _note_sent(self, at: float) -> None:
        self._sent.append(at)
        while self._sent and self._sent[0] < at - 1.0:
            self._sent.popleft()

    def throttled(self) -> None:
        """The platform said "too frequent": halve the pace."""
        now = self.clock()
        self.throttled_total += 1
        current = self.rate if self.rate is not None else max(MIN_RATE, float(len(self._sent)))
        self.rate = max(MIN_RATE, current / 2)
        self._quiet_since = now
        self._last_sent = max(self._last_sent, now)  # the next one waits a whole interval

    def _recover(self, now: float) -> None:
        ceiling = None if self.limit is None else self.limit * PACE_MARGIN
        if self.rate is None or self.rate == ceiling:
            return
        if now - self._quiet_since < RECOVER_EVERY_S:
            return
        self._quiet_since = now
        raised = self.rate * RECOVER_FACTOR
        if ceiling is None:
            # no configured limit: back to none once the pace is well above what is sent
            self.rate = None if raised > 4 * max(1, len(self._sent)) else raised
        else:
            self.rate = min(ceiling, raised)

    @property
    def current(self) -> float:
        """The pace now, requests per second (0: no limit)."""
        return 0.0 if self.rate is None else self.rate


class AdaptiveLimit:
    """A bound on requests in flight that follows the platform's latency and errors."""

    def __init__(self, maximum: int, adaptive: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.maximum = maximum
        self.adaptive = adaptive
        self.clock = clock
        self.limit = float(maximum)
        self.in_flight = 0
        self._waiters = Waiters()
        self._latencies: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self._smoothed: float | None = None
        self._last_decrease = -math.inf

    @property
    def bound(self) -> int:
        """Requests allowed in flight now."""
        return max(1, int(self.limit))

    async def acquire(self) -> None:
        """Wait for room under the bound."""
        while self.in_flight >= self.bound:
            await self._waiters.wait()
        self.in_flight += 1

    async def release(self, latency_s: float | None, ok: bool) -> None:
        """A request ended: ``ok`` False for an error or timeout (None latency: no answer)."""
        self.in_flight -= 1
        if self.adaptive:
            self._learn(latency_s, ok)
        self._waiters.wake(self.bound - self.in_flight)

    def _learn(self, latency_s: float | None, ok: bool) -> None:
        now = self.clock()
        congested = not ok
        if latency_s is not None:
            self._latencies.append(latency_s)
            self._smoothed = latency_s if self._smoothed is None \
                else 0.9 * self._smoothed + 0.1 * latency_s
            baseline = min(self._latencies)
            congested = congested or \
                self._smoothed > CONGESTED_RATIO * baseline + CONGESTED_SLACK_S
        round_trip = self._smoothed or 0.0
        if congested:
            if now - self._last_decrease >= round_trip:  # once per round trip
                self.limit = max(1.0, self.limit * DECREASE_FACTOR)
                self._last_decrease = now
        else:
            self.limit = min(float(self.maximum), self.limit + 1.0 / max(1.0, self.limit))


class Pacing:
    """Everything that paces one destination: in-flight bounds and the request rate."""

    def __init__(self, concurrency: int, hospital_concurrency: int | None,
                 rate_per_s: float | None, adaptive: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = AdaptiveLimit(concurrency, adaptive, clock)
        self.pacer = RatePacer(rate_per_s, clock)
        self.per_hospital = hospital_concurrency or concurrency
        self._hospitals: dict[str, asyncio.Semaphore] = {}

    @contextlib.asynccontextmanager
    async def request(self, hospital_id: str) -> AsyncIterator[_Outcome]:
        """Hold a place for one request of ``hospital_id``; report its outcome on the
        yielded object (``latency_s``, ``ok``) before leaving."""
        sem = self._hospitals.get(hospital_id)
        if sem is None:
            sem = self._hospitals[hospital_id] = asyncio.Semaphore(self.per_hospital)
        outcome = _Outcome()
        async with sem:
            await self.limit.acquire()
            try:
                await self.pacer.wait()
                yield outcome
            finally:
                await self.limit.release(outcome.latency_s, outcome.ok)

    @property
    def in_flight(self) -> int:
        """Requests in flight now."""
        return self.limit.in_flight


class _Outcome:
    """What the caller learned from one request (a request without an answer: ok False)."""

    __slots__ = ("latency_s", "ok")

    def __init__(self) -> None:
        self.latency_s: float | None = None
        self.ok = False
