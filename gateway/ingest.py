"""The path of one message: parse → map → commit → reply. Commit before acknowledge."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from adapters.base import (
    Adapter,
    Issue,
    Outcome,
    OutcomeStatus,
    Reply,
    Severity,
    rejection_issues,
)
from mappings.crosswalk import Crosswalk, map_event

from .errors import MessageRejected, StoreError
from .metrics import Metrics
from .model import CHINA_TZ, Event, EventKind
from .profiles.base import PlatformProfile
from .store.base import Incoming, PlannedDelivery, Store

__all__ = ["Advice", "Ingestor", "Route"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """A destination and the profile that decides which events it takes."""

    destination: str
    profile: PlatformProfile


@dataclass(frozen=True, slots=True)
class Advice:
    """Warnings for a prescription, and whether a rule blocks it."""

    issues: tuple[Issue, ...] = ()
    blocked: bool = False


Advisor = Callable[[Event, datetime], Advice]


def _now() -> datetime:
    return datetime.now(CHINA_TZ)


class Ingestor:
    """Runs every received message through the pipeline; transports call :meth:`handle`."""

    def __init__(self, store: Store, crosswalk: Crosswalk, routes: Sequence[Route],
                 metrics: Metrics, *, notify: Callable[[], None] = lambda: None,
                 clock: Callable[[], datetime] = _now) -> None:
        self.store = store
        self.crosswalk = crosswalk
        self.routes = tuple(routes)
        self.metrics = metrics
        self.notify = notify
        self.clock = clock
        self.advisors: list[Advisor] = []

    def plan(self, events: Sequence[Event], held: Sequence[bool]) -> tuple[PlannedDelivery, ...]:
        """Outbox rows for the events that are ready (held events get none yet)."""
        out = []
        for i, (ev, is_held) in enumerate(zip(events, held, strict=True)):
            if is_held:
                continue
            for route in self.routes:
                for unit in range(route.profile.units(ev)):
                    out.append(PlannedDelivery(i, route.destination, unit))
        return tuple(out)

    def _advise(self, events: Sequence[Event], now: datetime) -> Advice:
        issues: list[Issue] = []
        blocked = False
        for ev in events:
            if ev.kind is not EventKind.PRESCRIPTION:
                continue
            for advisor in self.advisors:
                advice = advisor(ev, now)
                issues.extend(advice.issues)
                blocked = blocked or advice.blocked
        return Advice(tuple(issues), blocked)

    def remap(self, event: Event) -> tuple[Event, bool, tuple[PlannedDelivery, ...]]:
        """Map a held event with today's crosswalk: (event, still held?, deliveries)."""
        mapped, unmapped = map_event(event, self.crosswalk, self.clock().date())
        if unmapped:
            return mapped, True, ()
        return mapped, False, self.plan([mapped], [False])

    async def release_held(self, hospital_id: str | None = None) -> int:
        """Release the held events the crosswalk now maps, in their original order."""
        released = await self.store.release_held(self.remap, hospital_id)
        if released:
            log.info("released %d held event(s)", len(released))
            self.notify()
        return len(released)

    async def handle(self, adapter: Adapter, raw: bytes, peer: str) -> Reply:
        """Take one message; the reply is positive only after a durable commit."""
        received_at = self.clock()
        m = self.metrics
        try:
            parsed = adapter.parse(raw, received_at=received_at)
        except MessageRejected as exc:
            return await self._refuse(adapter, raw, peer, exc, received_at)
        except Exception as exc:  # an adapter bug must not lose the message either
            log.exception("adapter %s failed on a message from %s", adapter.name, peer)
            err = MessageRejected(f"internal error while parsing: {type(exc).__name__}",
                                  code="207")
            return await self._refuse(adapter, raw, peer, err, received_at)
        mtype = parsed.message_type
        m.received.labels(adapter.name, mtype).inc()
        day = received_at.date()
        events: list[Event] = []
        held: list[bool] = []
        for ev in parsed.events:
            mapped, unmapped = map_event(ev, self.crosswalk, day)
            events.append(mapped)
            held.append(bool(unmapped))
            if unmapped:
                m.events_held.labels(ev.hospital_id).inc()
                log.info("event %s held: %d unmapped item(s) %s", ev.event_id, len(unmapped),
                         ",".join(li.item_code for li in unmapped))
        advice = self._advise(events, received_at)
        if advice.blocked:
            why = "blocked by a 集采 rule: " + "; ".join(i.text for i in advice.issues)
            await self._keep(raw, peer, adapter.name, why, received_at)
            m.rejected.labels(adapter.name, mtype, "blocked").inc()
            return adapter.reply(parsed, raw, Outcome(OutcomeStatus.REJECTED, advice.issues,
                                                      blocked=True), now=self.clock())
        incoming = Incoming(adapter=adapter.name, sender=parsed.sender,
                            control_id=parsed.control_id, message_type=mtype, raw=raw,
                            received_at=received_at, events=tuple(events), held=tuple(held),
                            deliveries=self.plan(events, held), peer=peer)
        try:
            result = await self.store.commit(incoming)
        except StoreError as exc:
            log.error("commit failed for %s %s from %s: %s", mtype, parsed.control_id, peer, exc)
            m.rejected.labels(adapter.name, mtype, "error").inc()
            issue = Issue(Severity.ERROR, "message not stored, send it again", "207")
            return adapter.reply(parsed, raw, Outcome(OutcomeStatus.ERROR, (issue,)),
                                 now=self.clock())
        m.acknowledged.labels(adapter.name, mtype).inc()
        if result.duplicate:
            m.duplicates.labels(adapter.name, mtype).inc()
            return adapter.reply(parsed, raw, Outcome(OutcomeStatus.DUPLICATE), now=self.clock())
        if result.outbox_ids:
            self.notify()
        return adapter.reply(parsed, raw, Outcome(OutcomeStatus.ACCEPTED, advice.issues),
                             now=self.clock())

    async def _keep(self, raw: bytes, peer: str, adapter: str, reason: str,
                    received_at: datetime) -> bool:
        try:
            await self.store.quarantine(raw, peer=peer, adapter=adapter, reason=reason,
                                        received_at=received_at)
            self.metrics.quarantined.labels(adapter).inc()
            return True
        except StoreError:
            log.exception("could not quarantine %d bytes from %s", len(raw), peer)
            return False

    async def _refuse(self, adapter: Adapter, raw: bytes, peer: str, exc: MessageRejected,
                      received_at: datetime) -> Reply:
        log.warning("rejected message from %s via %s: %s [%s] (%d bytes quarantined)",
                    peer, adapter.name, exc.reason, exc.location or "-", len(raw))
        kept = await self._keep(raw, peer, adapter.name, exc.reason, received_at)
        status = OutcomeStatus.REJECTED if exc.reject and kept else OutcomeStatus.ERROR
        self.metrics.rejected.labels(adapter.name, "", status.value).inc()
        return adapter.reply(None, raw, Outcome(status, rejection_issues(exc)), now=self.clock())

    async def bad_bytes(self, adapter: Adapter, raw: bytes, peer: str, reason: str) -> None:
        """Quarantine bytes that are not even a message (framing errors)."""
        log.warning("%s from %s: %d bytes quarantined", reason, peer, len(raw))
        await self._keep(raw, peer, adapter.name, reason, self.clock())

