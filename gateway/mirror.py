"""Mirror workers: drain each destination's outbox to its platform.

At-least-once with the msgid as idempotency key: a row is marked delivered only
after the platform said so, so a crash in between resends the same msgid and the
platform answers "duplicate", which counts as delivered. FIFO per hospital and
stream: a group stops at its first row that did not go through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

from .config import DestinationConfig
from .metrics import Metrics
from .profiles.base import Answer, PlatformProfile, Verdict
from .store.base import DeliveryUpdate, OutboxItem, Store

__all__ = ["Destination", "Mirror", "backoff_delay"]

log = logging.getLogger(__name__)

QUICK_TRIES = 3  # in-call tries for a blip, before the row waits in the outbox


@dataclass(frozen=True, slots=True)
class Destination:
    """A configured platform with its profile."""

    config: DestinationConfig
    profile: PlatformProfile

    @property
    def name(self) -> str:
        """The destination's configured name."""
        return self.config.name


def backoff_delay(attempts: int, initial: float, maximum: float,
                  rand: Callable[[], float] = random.random) -> float:
    """Exponential back-off with full jitter on the upper half, capped."""
    base = min(maximum, initial * (2 ** min(attempts, 30)))
    return base / 2 + rand() * base / 2


class Mirror:
    """One drain loop per destination."""

    def __init__(self, store: Store, destinations: Sequence[Destination], metrics: Metrics,
                 session: aiohttp.ClientSession, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.destinations = tuple(destinations)
        self.metrics = metrics
        self.session = session
        self.clock = clock
        self._wake = {d.name: asyncio.Event() for d in self.destinations}
        self._tasks: list[asyncio.Task[None]] = []
        self.reachable: dict[str, bool] = {d.name: True for d in self.destinations}

    def notify(self) -> None:
        """New outbox rows were committed."""
        for ev in self._wake.values():
            ev.set()

    def start(self) -> None:
        """Start the drain loops."""
        self._tasks = [asyncio.create_task(self._loop(d), name=f"mirror-{d.name}")
                       for d in self.destinations]

    async def stop(self) -> None:
        """Stop the drain loops (rows in flight are resent after restart)."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self, dest: Destination) -> None:
        wake = self._wake[dest.name]
        while True:
            wake.clear()
            try:
                delay = await self.drain_once(dest)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("mirror %s: drain failed; retrying", dest.name)
                delay = 1.0
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=delay)

    async def drain_once(self, dest: Destination) -> float:
        """Deliver what is due; returns how long to sleep (0: more work right away)."""
        cfg = dest.config
        items = await self.store.pending(dest.name, cfg.batch_size)
        if not items:
            return 5.0
        now = self.clock()
        groups: dict[tuple[str, str], list[OutboxItem]] = {}
        for it in items:
            groups.setdefault((it.hospital_id, it.stream), []).append(it)
        due = [g for g in groups.values() if g[0].next_attempt_at <= now]
        if not due:
            return max(0.05, min(g[0].next_attempt_at for g in groups.values()) - now)
        sem = asyncio.Semaphore(cfg.concurrency)
        results = await asyncio.gather(*(self._deliver_group(dest, g, sem) for g in due))
        updates = [u for r in results for u in r]
        await self.store.record_deliveries(updates)
        return 0.0

    async def _deliver_group(self, dest: Destination, group: list[OutboxItem],
                             sem: asyncio.Semaphore) -> list[DeliveryUpdate]:
        updates = []
        async with sem:
            for item in group:
                update = await self._deliver(dest, item)
                updates.append(update)
                if update.outcome == "retry":
                    break  # FIFO: nothing behind it goes first
        return updates

    async def _attempt(self, dest: Destination, item: OutboxItem) -> Answer:
        cfg = dest.config
        req = dest.profile.build(item.event, item.unit, item.msgid, self.clock())
        try:
            async with self.session.post(
                    cfg.url + req.path, data=req.body, headers=req.headers,
                    timeout=aiohttp.ClientTimeout(total=cfg.timeout_s)) as resp:
                body = await resp.read()
                answer = dest.profile.interpret(resp.status, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            answer = Answer(Verdict.RETRY, f"{type(exc).__name__}: {exc}")
        self.reachable[dest.name] = not answer.reason.startswith(("Client", "Server", "Timeout"))
        return answer

    async def _deliver(self, dest: Destination, item: OutboxItem) -> DeliveryUpdate:
        cfg = dest.config
        retrying = AsyncRetrying(
            stop=stop_after_attempt(QUICK_TRIES),
            wait=wait_exponential_jitter(multiplier=0.05, max=0.5, jitter=0.05),
            retry=retry_if_result(lambda a: a.verdict is Verdict.RETRY),
            # out of quick tries: hand back the last answer; the outbox schedules the rest
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None)
        answer: Answer = await retrying(self._attempt, dest, item)
        now = self.clock()
        m = self.metrics
        if answer.verdict is Verdict.DELIVERED:
            m.deliveries.labels(dest.name, "duplicate" if answer.duplicate else "delivered").inc()
            m.mirror_latency.labels(dest.name).observe(max(0.0, now - item.created_at))
            return DeliveryUpdate(item.id, "delivered", answer.reason, at=now,
                                  platform_ref=answer.platform_ref)
        if answer.verdict is Verdict.REJECTED or item.attempts + 1 >= cfg.max_attempts:
            m.deliveries.labels(dest.name, "dead").inc()
            log.error("mirror %s: msgid %s (event %s) is a dead letter after %d attempt(s): %s",
                      dest.name, item.msgid, item.event.event_id, item.attempts + 1,
                      answer.reason)
            return DeliveryUpdate(item.id, "dead", answer.reason, at=now)
        m.deliveries.labels(dest.name, "retry").inc()
        delay = backoff_delay(item.attempts, cfg.backoff_initial_s, cfg.backoff_max_s)
        log.warning("mirror %s: msgid %s not delivered (%s); next try in %.1fs",
                    dest.name, item.msgid, answer.reason, delay)
        return DeliveryUpdate(item.id, "retry", answer.reason, next_attempt_at=now + delay)
