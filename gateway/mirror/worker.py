"""Mirror workers: drain each destination's outbox to its platform.

At-least-once with the msgid as idempotency key: a row is marked delivered only
after the platform said so, so a crash in between resends the same msgid and the
platform answers "duplicate", which counts as delivered.

Order is what the profile's ordering keys say and no more: the rows of one key (a sale
and its return and corrections; one item and lot's stock movements) go out strictly in
commit order, one at a time, and a key's chain stops at its first row that did not go
through; rows of different keys go out concurrently. The store hands out only rows no
earlier row of their key holds up (waiting out its back-off, or a dead letter — which
holds up its own key until it is replayed), on PostgreSQL in leased lanes that hold a
key's whole chain, renewed while requests are in flight.

Each destination has its own loop, outbox rows, circuit breaker and pacing (in-flight
bounds per destination and hospital, adaptive concurrency, the request rate the platform
allows: :mod:`gateway.mirror.pacing`), so one platform being slow or down never stalls
another.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
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

from canonical.errors import StoreError
from gateway.config import DestinationConfig
from gateway.loop_lag import LoopLag
from gateway.metrics import Metrics
from gateway.mirror.attempts import attempt
from gateway.mirror.breaker import CircuitBreaker
from gateway.mirror.ordering import by_scope, phases
from gateway.mirror.pacing import Pacing, Waiters
from gateway.platforms.base import Answer, PlatformProfile, Verdict
from gateway.store.base import Attempt, DeliveryUpdate, OutboxItem, Store, Topic

__all__ = ["Destination", "Mirror", "backoff_delay"]

log = logging.getLogger(__name__)

QUICK_TRIES = 3  # in-call tries for a blip, before the row waits in the outbox
QUICK_WAIT_S = 0.05  # first wait between them (doubling, plus up to as much jitter)


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
    base = min(maximum, initial * 2.0 ** min(attempts, 30))
    return base / 2 + rand() * base / 2


class _Marks:
    """Delivery outcomes written as the answers arrive.

    Whatever arrived while the previous write ran goes in the next one (a group commit
    of marks), so a restart resends at most the requests that were in flight and the
    answers of the last few milliseconds, not a whole claimed batch.
    """

    def __init__(self, store: Store, window: int) -> None:
        self.store = store
        self.window = window
        self._pending: list[DeliveryUpdate] = []
        self._writing = 0  # outcomes in the write now running
        self._reserved = 0  # requests under way whose outcome is not known yet
        self._writer: asyncio.Task[None] | None = None
        self._waiters = Waiters()

    @property
    def unrecorded(self) -> int:
        """Outcomes known here and not yet committed: a crash now resends their rows."""
        return len(self._pending) + self._writing

    async def reserve(self) -> None:
        """Wait for room for one more request: requests in flight and outcomes not yet
        written stay under ``window`` together, so a crash resends at most ``window``
        rows however slow the store's writes are next to the platform's answers.
        Follow with :meth:`add` (the outcome) or :meth:`unreserve` (nothing was sent)."""
        while self.unrecorded + self._reserved >= self.window:
            if self._writer is None and self._pending:  # a failed write left them
                self._writer = asyncio.create_task(self._write())
            await self._waiters.wait()
        self._reserved += 1

    def _room(self) -> None:
        self._waiters.wake(self.window - self.unrecorded - self._reserved)

    def unreserve(self) -> None:
        """Give back a reservation whose request was not sent."""
        self._reserved -= 1
        self._room()

    def add(self, update: DeliveryUpdate) -> None:
        """Record ``update`` (of a reserved request) soon (now, unless a write is running)."""
        self._reserved -= 1
        self._pending.append(update)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                self._writing = len(batch)
                try:
                    await self.store.record_deliveries(batch)
                except Exception:  # drain() writes them, or the rows are simply sent again
                    self._pending[:0] = batch
                    log.warning("could not record %d delivery outcome(s) yet", len(batch),
                                exc_info=True)
                    await asyncio.sleep(1.0)  # the store is failing: no tight loop of tries
                    return
                finally:
                    self._writing = 0
                    self._room()
        finally:
            self._writer = None

    async def drain(self) -> None:
        """Wait until every outcome added so far is written.

        Raises:
            StoreError: a write failed (the rows stay pending: they are sent again).
        """
        while self._writer is not None:
            await asyncio.shield(self._writer)
        if self._pending:  # a failed write left some behind
            batch, self._pending = self._pending, []
            await self.store.record_deliveries(batch)


class Mirror:
    """One drain loop per destination.

    ``clock`` gives the time (unix seconds) that back-off, cool-downs, leases and time
    budgets are reckoned in; ``quick_wait_s`` is the first wait between the quick tries;
    with ``lag``, each delivery gives way while the event loop runs late.
    """

    def __init__(self, store: Store, destinations: Sequence[Destination], metrics: Metrics,
                 session: aiohttp.ClientSession, clock: Callable[[], float] = time.time,
                 quick_wait_s: float = QUICK_WAIT_S, lag: LoopLag | None = None) -> None:
        self.store = store
        self.lag = lag  # deliveries give way while the loop runs late (ACKs first)
        self.destinations = tuple(destinations)
        self.metrics = metrics
        self.session = session
        self.clock = clock
        self.quick_wait_s = quick_wait_s
        self._wake = {d.name: asyncio.Event() for d in self.destinations}
        self._tasks: list[asyncio.Task[None]] = []
        self.reachable: dict[str, bool] = {d.name: True for d in self.destinations}
        self.breakers = {d.name: CircuitBreaker(d.config.breaker_failures,
                                                d.config.breaker_cooldown_s,
                                                d.config.breaker_cooldown_max_s)
                         for d in self.destinations}
        self.pacing = {d.name: Pacing(d.config.concurrency, d.config.hospital_concurrency,
                                      d.config.rate_limit_per_s, d.config.adaptive_concurrency)
                       for d in self.destinations}
        self._lease_lost: dict[str, bool] = {d.name: False for d in self.destinations}
        self._pace_shown: dict[str, float] = {}
        for d in self.destinations:
            self._show_pace(d.name, now=True)

    def notify(self) -> None:
        """New outbox rows were committed."""
        for ev in self._wake.values():
            ev.set()

    def on_change(self, topic: Topic) -> None:
        """Store listener: outbox rows committed or replayed here or by another replica."""
        if topic is Topic.OUTBOX:
            self.notify()

    def start(self) -> None:
        """Start the drain loops (each destination's profile facts go to the log)."""
        for d in self.destinations:
            log.info("mirror %s → %s %s", d.name, d.config.url, d.profile.describe())
        self._tasks = [asyncio.create_task(self._loop(d), name=f"mirror-{d.name}")
                       for d in self.destinations]

    @property
    def running(self) -> bool:
        """Whether any drain loop is running."""
        return any(not t.done() for t in self._tasks)

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
        breaker = self.breakers[dest.name]
        now = self.clock()
        held_back = breaker.wait_s(now)
        if held_back > 0:
            return held_back
        try:
            await dest.profile.prepare(self.session)
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            log.warning("mirror %s: cannot authenticate: %s", dest.name, exc)
            breaker.failure(self.clock())
            self.reachable[dest.name] = False
            return max(breaker.wait_s(self.clock()), cfg.backoff_initial_s)
        claim = await self.store.claim(dest.name, cfg.batch_size, now)
        if not claim.items:
            if claim.next_due is not None:
                return max(0.01, min(cfg.idle_poll_s, claim.next_due - now))
            return cfg.idle_poll_s
        scopes = by_scope(claim.items)
        # requests in flight and answers waiting for their write, together: what a crash
        # makes the gateway send again is never more than the requests it may have in flight
        marks = _Marks(self.store, cfg.concurrency)
        self._lease_lost[dest.name] = False
        renewer = asyncio.create_task(self._renew(dest)) \
            if self.store.renew_every_s is not None else None
        try:
            await asyncio.gather(*(self._deliver_scope(dest, items, marks)
                                   for items in scopes.values()))
        finally:
            if renewer is not None:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer
            await marks.drain()
        await self.store.release(dest.name)  # a shared store: any replica may take them next
        return 0.0

    async def _renew(self, dest: Destination) -> None:
        """Keep the claimed lanes leased while their deliveries are in flight; if that
        fails, start nothing more (another replica may take the lanes once they lapse)."""
        every = self.store.renew_every_s or 1.0
        while True:
            await asyncio.sleep(every)
            try:
                await self.store.renew(dest.name, self.clock())
            except StoreError as exc:
                log.warning("mirror %s: %s; no new request until the next claim",
                            dest.name, exc)
                self._lease_lost[dest.name] = True

    async def _deliver_scope(self, dest: Destination, items: list[OutboxItem],
                             marks: _Marks) -> None:
        for phase in phases(items):
            if len(phase) == 1:  # most scopes: one chain, no tasks to make
                if not await self._deliver_chain(dest, phase[0], marks):
                    return
                continue
            if not await self._deliver_chains(dest, phase, marks):
                return  # what follows in the scope waits for what did not go through

    async def _deliver_chains(self, dest: Destination, chains: list[list[OutboxItem]],
                              marks: _Marks) -> bool:
        """Deliver independent chains concurrently; whether all went through.

        As many workers as requests may be in flight take the chains in turn: a task per
        chain made a 2,000-line dispense start 2,000 tasks in one turn of the event loop,
        30-40 ms in which no message was acknowledged, for requests that could only wait
        for one of the destination's few slots anyway.
        """
        pending = iter(chains)
        failed = False

        async def worker() -> None:
            nonlocal failed
            for chain in pending:
                if not await self._deliver_chain(dest, chain, marks):
                    failed = True

        workers = min(len(chains), dest.config.concurrency)
        await asyncio.gather(*(worker() for _ in range(workers)))
        return not failed

    async def _deliver_chain(self, dest: Destination, chain: list[OutboxItem],
                             marks: _Marks) -> bool:
        """Deliver ``chain`` in order; whether all of it went through."""
        breaker = self.breakers[dest.name]
        for item in chain:
            if self.lag is not None:
                await self.lag.give_way()
            await marks.reserve()
            if self._lease_lost[dest.name] or not breaker.allow(self.clock()):
                marks.unreserve()
                return False  # the row stays as it is, uncharged
            try:
                update = await self._deliver(dest, item)
            except BaseException:
                marks.unreserve()
                raise
            marks.add(update)
            if update.outcome != "delivered":
                return False  # its key waits: nothing behind it goes first
        return True

    def _show_pace(self, name: str, *, now: bool = False) -> None:
        # gauges for a scrape every few seconds: set a few times a second, not per request
        at = time.monotonic()
        if not now and at - self._pace_shown.get(name, 0.0) < 0.2:
            return
        self._pace_shown[name] = at
        pacing, m = self.pacing[name], self.metrics
        m.labelled(m.mirror_in_flight, name).set(pacing.in_flight)
        m.labelled(m.mirror_concurrency, name).set(pacing.limit.bound)
        m.labelled(m.mirror_rate, name).set(pacing.pacer.current)

    async def _attempt(self, dest: Destination, item: OutboxItem,
                       tries: list[Attempt]) -> Answer:
        cfg = dest.config
        breaker = self.breakers[dest.name]
        if breaker.is_open(self.clock()) and not breaker.probing:
            # no request went out: nothing for the platform's record of this row
            return Answer(Verdict.RETRY, "circuit open: platform unavailable")
        started, at = time.monotonic(), self.clock()
        try:
            req = dest.profile.build(item.event, item.unit, item.msgid, self.clock())
        except Exception as exc:
            # building is a pure function of the event: it will fail the same way every
            # time, and raising here would stall the whole destination behind this row
            log.exception("mirror %s: msgid %s (event %s): payload cannot be built",
                          dest.name, item.msgid, item.event.event_id)
            self.metrics.internal_errors.labels("payload").inc()
            answer = Answer(Verdict.REJECTED,
                            f"payload cannot be built: {type(exc).__name__}: {exc}")
            tries.append(attempt(answer, at=at, latency_s=0.0))
            return answer
        status: int | None = None
        body = b""
        pacing = self.pacing[dest.name]
        async with pacing.request(item.hospital_id) as pace:
            started, at = time.monotonic(), self.clock()
            self._show_pace(dest.name)
            try:
                async with self.session.post(
                        cfg.url + req.path, data=req.body, headers=req.headers,
                        timeout=aiohttp.ClientTimeout(total=cfg.timeout_s)) as resp:
                    status = resp.status
                    body = await resp.read()
                    answer = dest.profile.interpret(resp.status, body)
            except (aiohttp.ClientError, TimeoutError) as exc:
                answer = Answer(Verdict.RETRY, f"{type(exc).__name__}: {exc}")
            latency = time.monotonic() - started
            pace.latency_s = latency if status is not None else None
            pace.ok = answer.verdict is not Verdict.RETRY or answer.throttled
        self._show_pace(dest.name)
        tries.append(attempt(answer, at=at, latency_s=latency, status=status, body=body))
        if answer.throttled:
            # the platform is up and says "slower": pace down, keep the circuit closed
            pacing.pacer.throttled()
            self.metrics.labelled(self.metrics.mirror_throttled, dest.name).inc()
            self._show_pace(dest.name)
            breaker.success()
        elif answer.verdict is Verdict.RETRY:
            breaker.failure(self.clock())
        else:
            breaker.success()
        self.reachable[dest.name] = answer.verdict is not Verdict.RETRY or answer.throttled
        return answer

    async def _deliver(self, dest: Destination, item: OutboxItem) -> DeliveryUpdate:
        tries: list[Attempt] = []
        answer = await self._attempt(dest, item, tries)
        if answer.verdict is Verdict.RETRY:
            # a blip: the remaining quick tries, with tenacity's back-off between them (most
            # deliveries go through at once and never pay for setting it up)
            await asyncio.sleep(self.quick_wait_s * (1 + random.random()))
            answer = await self._retrying()(self._attempt, dest, item, tries)
        update = self._outcome(dest, item, answer)
        return dataclasses.replace(update, tries=tuple(tries))

    def _retrying(self) -> AsyncRetrying:
        """The quick tries after a first one that did not go through."""
        return AsyncRetrying(
            stop=stop_after_attempt(QUICK_TRIES - 1),
            wait=wait_exponential_jitter(multiplier=self.quick_wait_s,
                                         max=10 * self.quick_wait_s, jitter=self.quick_wait_s),
            retry=retry_if_result(lambda a: a.verdict is Verdict.RETRY),
            # out of quick tries: hand back the last answer; the outbox schedules the rest
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None)

    def _outcome(self, dest: Destination, item: OutboxItem, answer: Answer) -> DeliveryUpdate:
        cfg = dest.config
        now = self.clock()
        m = self.metrics
        if answer.verdict is Verdict.DELIVERED:
            m.deliveries.labels(dest.name, "duplicate" if answer.duplicate else "delivered").inc()
            m.mirror_latency.labels(dest.name).observe(max(0.0, now - item.created_at))
            return DeliveryUpdate(item.id, "delivered", answer.reason, at=now,
                                  platform_ref=answer.platform_ref)
        if answer.throttled:
            # too fast, not wrong: the retry budget is for events the platform refuses
            m.deliveries.labels(dest.name, "retry").inc()
            return DeliveryUpdate(item.id, "retry", answer.reason, charge=False,
                                  next_attempt_at=now + cfg.backoff_initial_s)
        charged = not self.breakers[dest.name].is_open(now)
        # the time budget runs from this event's first charged failure: an outage of the
        # whole platform (circuit open) never starts it, a replay restarts it
        failing_s = now - (item.first_failed_at if item.first_failed_at is not None else now)
        out_of_tries = item.attempts + 1 >= cfg.max_attempts
        out_of_time = cfg.max_age_s is not None and failing_s >= cfg.max_age_s
        if answer.verdict is Verdict.REJECTED or (charged and (out_of_tries or out_of_time)):
            m.deliveries.labels(dest.name, "dead").inc()
            reason = answer.reason
            if answer.verdict is not Verdict.REJECTED:
                reason += (f" (retry budget spent: {item.attempts + 1} attempts)" if out_of_tries
                           else f" (retry budget spent: failing for {failing_s:.0f} s)")
            log.error("mirror %s: msgid %s (event %s) is a dead letter: %s", dest.name,
                      item.msgid, item.event.event_id, reason)
            return DeliveryUpdate(item.id, "dead", reason, at=now)
        m.deliveries.labels(dest.name, "retry").inc()
        breaker = self.breakers[dest.name]
        if breaker.is_open(now):
            # the platform is down for everyone: wait for the circuit, keep the budget
            delay = max(breaker.wait_s(now), cfg.backoff_initial_s)
            return DeliveryUpdate(item.id, "retry", answer.reason, next_attempt_at=now + delay,
                                  charge=False)
        delay = backoff_delay(item.attempts, cfg.backoff_initial_s, cfg.backoff_max_s)
        log.warning("mirror %s: msgid %s not delivered (%s); next try in %.1fs",
                    dest.name, item.msgid, answer.reason, delay)
        return DeliveryUpdate(item.id, "retry", answer.reason, next_attempt_at=now + delay,
                              at=now)
