"""The path of one message: parse → map → commit → reply. Commit before acknowledge."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from time import perf_counter
from typing import Any, Protocol

import msgspec

from adapters.base import (
    Adapter,
    Issue,
    Outcome,
    OutcomeStatus,
    ParsedMessage,
    Reply,
    Severity,
    rejection_issues,
)
from canonical.breaks import take_break, with_breaks
from canonical.errors import MessageRejected, StoreError
from canonical.model import CHINA_TZ, Event, EventKind, Line, event_json
from gateway.config import HOSPITAL_CODE
from gateway.ingest.limits import DEFAULT_LIMITS, Limits, check_values
from gateway.ingest.offload import ParseWorkers, WorkerFailed
from gateway.metrics import Metrics
from gateway.platforms.base import PlatformProfile
from gateway.security.identity import Identity
from gateway.store.base import CommitResult, Incoming, PlannedDelivery, Store
from gateway.store.plan import INCOMPLETE, UNMAPPED, raw_digest
from mappings.crosswalk import Crosswalk, map_event
from mappings.products import ProductFacts

__all__ = ["Advice", "CrosswalkSource", "Ingestor", "Route", "internal_error_reply"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """A destination and the profile that decides which events it takes."""

    destination: str
    profile: PlatformProfile


class Advice(msgspec.Struct, frozen=True):
    """Warnings for a prescription, whether a rule blocks it, and what to tell other
    systems (webhooks) once the message is committed — only then, and not for a
    duplicate."""

    issues: tuple[Issue, ...] = ()
    blocked: bool = False
    notices: tuple[Callable[[], None], ...] = ()


Advisor = Callable[[Event, datetime], Advice]


class CrosswalkSource(Protocol):
    """Where the current crosswalk comes from (the process's
    :class:`~gateway.crosswalk.holder.CrosswalkHolder`)."""

    @property
    def current(self) -> Crosswalk:
        """The crosswalk to map with now."""
        ...

    async def refresh(self) -> object:
        """Catch up with changes stored by other processes."""
        ...


def _now() -> datetime:
    return datetime.now(CHINA_TZ)


def internal_error_reply(adapter: Adapter, raw: bytes, now: datetime) -> Reply:
    """The answer when the gateway itself failed: nothing was stored, the sender resends."""
    issue = Issue(Severity.ERROR, "internal error, message not stored: send it again", "207")
    return adapter.reply(None, raw, Outcome(OutcomeStatus.ERROR, (issue,)), now=now)


def _tell(notices: Sequence[Callable[[], None]]) -> None:
    for notice in notices:
        try:
            notice()
        except Exception:  # the message is committed; a webhook's failure must not undo it
            log.exception("could not hand over a notice of a committed message")


def _context(adapter: Adapter, parsed: ParsedMessage | None, outcome: str,
             **more: str) -> dict[str, str]:
    """The fields of a log line about one message (JSON logs): identifiers only, never
    the patient or the message's content."""
    ctx = {"adapter": adapter.name, "outcome": outcome, **more}
    if parsed is not None:
        ctx.update(control_id=parsed.control_id, sender=parsed.sender,
                   message_type=parsed.message_type)
        if parsed.events:
            ctx["hospital"] = parsed.events[0].hospital_id
    return ctx


def _reused(result: CommitResult | BaseException) -> bool:
    return isinstance(result, CommitResult) and result.reused


class SenderNotPermitted(MessageRejected):
    """The authenticated sender may not send for a hospital the message names (AR / 403)."""


def _foreign(parsed: ParsedMessage, sender: Identity | None) -> _Prepared | None:
    """The refusal of a message naming a hospital ``sender`` may not act for (checked
    before mapping: a foreign message must not reach the crosswalk, rules or webhooks)."""
    if sender is None:
        return None
    for ev in parsed.events:
        if not sender.may_act_for(ev.hospital_id):
            return _Prepared(refusal=SenderNotPermitted(
                f"sender {sender.name!r} may not send for hospital {ev.hospital_id} (it may "
                f"act for {', '.join(sorted(sender.hospitals))}): not stored",
                code="207", reject=True))
    return None


_WELL_FORMED_HOSPITAL = re.compile(HOSPITAL_CODE).fullmatch


def _unconfigured(parsed: ParsedMessage, hospitals: frozenset[str] | None) -> _Prepared | None:
    """The refusal of a message for a hospital this gateway is not configured for.

    HL7 v2 refuses an unknown MSH-4 in the adapter; a FHIR resource or a vendor document
    names its hospital in the body, so the check is here, for every adapter alike: an
    event of an unknown hospital would have no name, region or hash secret downstream.
    """
    for ev in parsed.events:
        # even with no hospitals configured: the code goes into every msgid (30 characters
        # only with a 12-character code) and every platform field that names the hospital
        if not _WELL_FORMED_HOSPITAL(ev.hospital_id):
            return _Prepared(refusal=MessageRejected(
                f"hospital_id {ev.hospital_id!r} is not a 12-character 定点医药机构编号 "
                "(capital letters and digits): not stored", code="204", location="hospital_id"))
        if hospitals and ev.hospital_id not in hospitals:
            return _Prepared(refusal=MessageRejected(
                f"hospital_id {ev.hospital_id!r} is not configured (configuration key "
                f"'hospitals[].code'; configured: {', '.join(sorted(hospitals))}): not stored",
                code="204", location="hospital_id"))
    return None


_NO_ADVICE = Advice()
MAX_ADVICE = 50  # warnings in one answer


@dataclass(slots=True)
class _Prepared:
    """A message after the synchronous half of the pipeline.

    Exactly one ending applies: ``refusal`` (quarantine and NAK), ``advice.blocked``
    (quarantine and AR), ``recheck`` (items unknown here on a shared store: catch up with
    the crosswalk, then map again) or ``incoming`` (commit, then acknowledge).
    """

    parsed: ParsedMessage | None = None
    advice: Advice = _NO_ADVICE
    incoming: Incoming | None = None
    refusal: MessageRejected | None = None
    recheck: bool = False


_Mapping = tuple[list[Event], list[bool], list[tuple[Line, ...]]]


def _waiting(held: Sequence[bool], incomplete: Sequence[bool]) -> list[bool]:
    """Which events get no outbox rows yet: unmapped, or lacking a platform's data
    (``incomplete`` may be empty: none)."""
    return [h or bool(incomplete and incomplete[i]) for i, h in enumerate(held)]


def _with_bodies(incoming: Incoming) -> Incoming:
    """``incoming`` with its events' stored JSON and its raw bytes' hash worked out."""
    return msgspec.structs.replace(incoming,
                                   bodies=tuple(event_json(ev) for ev in incoming.events),
                                   digest=raw_digest(incoming.raw))


def _map_events(parsed: ParsedMessage, crosswalk: Crosswalk, day: date,
                products: ProductFacts | None = None) -> _Mapping:
    """Each event mapped with ``crosswalk`` (and the catalog's ``products`` facts), whether
    it is held, and its unmapped lines."""
    events: list[Event] = []
    held: list[bool] = []
    missing: list[tuple[Line, ...]] = []
    for ev in parsed.events:
        mapped, unmapped = map_event(ev, crosswalk, day, products)
        events.append(mapped)
        # an item master is the dictionary itself, nothing waits for it: never held
        held.append(bool(unmapped) and ev.kind is not EventKind.ITEM_MASTER)
        missing.append(unmapped)
    return events, held, missing


class Ingestor:
    """Runs every received message through the pipeline; transports call :meth:`handle`."""

    def __init__(self, store: Store, crosswalk: CrosswalkSource, routes: Sequence[Route],
                 metrics: Metrics, *, notify: Callable[[], None] = lambda: None,
                 clock: Callable[[], datetime] = _now,
                 limits: Limits = DEFAULT_LIMITS,
                 workers: ParseWorkers | None = None,
                 hospitals: frozenset[str] | None = None,
                 products: Callable[[], ProductFacts] = dict) -> None:
        self.store = store
        # the latest catalogs' product facts (prescription-only, manufacturer), read at
        # each mapping: a catalog import replaces them
        self.products = products
        self.hospitals = hospitals  # the configured hospital codes (None: not checked)
        self.limits = limits
        self.workers = workers
        self.crosswalk = crosswalk
        self.routes = tuple(routes)
        self.metrics = metrics
        self.notify = notify
        self.clock = clock
        self.advisors: list[Advisor] = []
        self._batch: list[tuple[Adapter, bytes, str, Callable[[Reply | None], None],
                                Identity | None]] = []
        self._tasks: set[asyncio.Future[Reply]] = set()

    def plan(self, events: Sequence[Event], held: Sequence[bool]) -> tuple[PlannedDelivery, ...]:
        """Outbox rows for the events that are ready (held events get none yet)."""
        out = []
        for i, (ev, is_held) in enumerate(zip(events, held, strict=True)):
            if is_held:
                continue
            for route in self.routes:
                profile = route.profile
                for unit in range(profile.units(ev)):
                    take_break()
                    out.append(PlannedDelivery(i, route.destination, unit,
                                               profile.order_key(ev, unit)))
        return tuple(out)

    def _advise(self, events: Sequence[Event], now: datetime) -> Advice:
        issues: list[Issue] = []
        notices: list[Callable[[], None]] = []
        blocked = False
        for ev in events:
            if ev.kind is not EventKind.PRESCRIPTION:
                continue
            for advisor in self.advisors:
                advice = advisor(ev, now)
                issues.extend(advice.issues)
                notices.extend(advice.notices)
                blocked = blocked or advice.blocked
        if len(issues) > MAX_ADVICE:
            # one warning a line would make the answer to a 600-line prescription larger
            # than the prescription; the rest are in the ledger and the CDS service
            more = len(issues) - MAX_ADVICE + 1
            issues[MAX_ADVICE - 1:] = [Issue(Severity.WARNING, f"… and {more} more 集采 "
                                             "warning(s) for this message", "")]
        return Advice(tuple(issues), blocked, tuple(notices))

    def remap(self, event: Event) -> tuple[Event, int, tuple[PlannedDelivery, ...]]:
        """Map a held event with today's crosswalk: (event, how it is held now — 0, 1
        unmapped, 2 mapped but lacking a platform's data —, deliveries)."""
        mapped, unmapped = map_event(event, self.crosswalk.current, self.clock().date(),
                                     self.products())
        if unmapped:
            return mapped, UNMAPPED, ()
        if self.gaps(mapped):
            return mapped, INCOMPLETE, ()
        return mapped, 0, self.plan([mapped], [False])

    def gaps(self, event: Event) -> dict[tuple[str, str], str]:
        """What a platform would refuse in a mapped event — mandatory data it lacks,
        values not of the interface's form: (destination, "3505 field") → why."""
        return {(route.destination, field): why for route in self.routes
                for field, why in route.profile.missing(event).items()}

    def hold_reasons(self, event: Event) -> list[str]:
        """Why a held event waits, in an operator's words (unmapped items, missing data)."""
        mapped, unmapped = map_event(event, self.crosswalk.current, self.clock().date(),
                                     self.products())
        reasons = [f"unmapped item {li.item_code} {li.item_name}".rstrip() for li in unmapped]
        if not unmapped:
            reasons += [f"{dest}: {field} {why}" for (dest, field), why in
                        self.gaps(mapped).items()]
        return reasons

    def gaps_of(self, events: Sequence[Event],
                held: Sequence[bool]) -> list[dict[tuple[str, str], str]]:
        """:meth:`gaps` of each mapped event (none for held events and item masters)."""
        return [{} if h or ev.kind is EventKind.ITEM_MASTER else self.gaps(ev)
                for ev, h in zip(events, held, strict=True)]

    def _incomplete(self, adapter: Adapter, parsed: ParsedMessage, events: Sequence[Event],
                    held: Sequence[bool],
                    found: list[dict[tuple[str, str], str]] | None = None) -> tuple[bool, ...]:
        """Which mapped events a platform would refuse for missing mandatory data: they
        count in the ledger now and wait for the data without outbox rows."""
        m = self.metrics
        incomplete = [False] * len(events)
        for i, (ev, gaps) in enumerate(zip(events, found or self.gaps_of(events, held),
                                           strict=True)):
            if not gaps:
                continue
            incomplete[i] = True
            for dest, field in gaps:
                m.labelled(m.events_incomplete, dest, field).inc()
            log.warning("event %s held: a platform would refuse it: %s", ev.event_id,
                        "; ".join(f"{d} {f} {why}" for (d, f), why in gaps.items()),
                        extra=_context(adapter, parsed, "held", event_id=ev.event_id,
                                       hospital=ev.hospital_id))
        return tuple(incomplete) if any(incomplete) else ()

    async def release_held(self, hospital_id: str | None = None) -> int:
        """Release the held events the crosswalk now maps, in their original order."""
        released = await self.store.release_held(self.remap, hospital_id)
        if released:
            log.info("released %d held event(s)", len(released))
            self.notify()
        return len(released)

    def _prepare(self, adapter: Adapter, raw: bytes, peer: str,
                 received_at: datetime, sender: Identity | None = None) -> _Prepared:
        """The synchronous half: parse, map, advise; what is left to do is in the result."""
        parsed = self._parse(adapter, raw, peer, received_at)
        if isinstance(parsed, _Prepared):
            return parsed
        return (_foreign(parsed, sender) or _unconfigured(parsed, self.hospitals)
                or self._map_and_advise(adapter, raw, peer, parsed, received_at))

    def _parse(self, adapter: Adapter, raw: bytes, peer: str,
               received_at: datetime) -> ParsedMessage | _Prepared:
        """The adapter's parse (within the message limits), or the refusal to answer with."""
        started = perf_counter()
        try:
            parsed = adapter.parse(raw, received_at=received_at)
            check_values(parsed.events, self.limits)
            return parsed
        except MessageRejected as exc:
            return _Prepared(refusal=exc)
        except Exception as exc:  # an adapter bug must not lose the message either
            log.exception("adapter %s failed on a message from %s", adapter.name, peer)
            self.metrics.internal_errors.labels("parse").inc()
            return _Prepared(refusal=MessageRejected(
                f"internal error while parsing: {type(exc).__name__}", code="207"))
        finally:
            m = self.metrics
            m.labelled(m.parse_seconds, adapter.name).observe(perf_counter() - started)

    def parses_elsewhere(self, adapter: Adapter, raw: bytes) -> bool:
        """Whether ``raw`` is big enough to be parsed in a worker process (the loop goes on
        meanwhile, so what arrives after it may be committed before it)."""
        return self.workers is not None and self.workers.takes(adapter, raw)

    async def _parse_elsewhere(self, adapter: Adapter, raw: bytes, peer: str,
                               received_at: datetime) -> ParsedMessage | _Prepared:
        assert self.workers is not None
        self.metrics.labelled(self.metrics.parsed_in_worker, adapter.name).inc()
        try:
            return await self.workers.parse(adapter, raw, received_at, self.limits)
        except MessageRejected as exc:
            return _Prepared(refusal=exc)
        except WorkerFailed as exc:
            if not self.workers.takes(adapter, raw):  # the workers could not start
                return self._parse(adapter, raw, peer, received_at)
            log.error("adapter %s failed on %d bytes from %s: %s", adapter.name, len(raw),
                      peer, exc)
            self.metrics.internal_errors.labels("parse").inc()
            return _Prepared(refusal=MessageRejected(
                "internal error while parsing, message not stored: send it again",
                code="207"))

    async def _prepare_anywhere(self, adapter: Adapter, raw: bytes, peer: str,
                                received_at: datetime,
                                sender: Identity | None = None) -> _Prepared:
        """:meth:`_prepare`, with the parse in a worker process for a big message."""
        if not self.parses_elsewhere(adapter, raw):
            return self._prepare(adapter, raw, peer, received_at, sender)
        parsed = await self._parse_elsewhere(adapter, raw, peer, received_at)
        if isinstance(parsed, _Prepared):
            return parsed
        refused = _foreign(parsed, sender) or _unconfigured(parsed, self.hospitals)
        if refused is not None:
            return refused
        # mapping 2,000 lines takes ~10 ms and checking their mandatory data a few more:
        # in a thread, where the loop keeps its turns, with breaks in which the loop and
        # the store's writer have the GIL (canonical.breaks)
        mapping = await asyncio.to_thread(with_breaks, _map_events, parsed,
                                          self.crosswalk.current, received_at.date(),
                                          self.products())
        found, deliveries = await asyncio.to_thread(with_breaks, self._gaps_and_plan,
                                                    mapping[0], mapping[1])
        prep = self._map_and_advise(adapter, raw, peer, parsed, received_at, mapping=mapping,
                                    found=found, deliveries=deliveries)
        if prep.incoming is not None:
            # the stored JSON of 2,000 lines and the hash of a megabyte: here, not in the
            # store's single writer that every acknowledgement waits for
            prep.incoming = await asyncio.to_thread(_with_bodies, prep.incoming)
        return prep

    def _gaps_and_plan(self, events: Sequence[Event], held: Sequence[bool]
                       ) -> tuple[list[dict[tuple[str, str], str]], tuple[PlannedDelivery, ...]]:
        """:meth:`gaps_of` and the outbox rows of the events that may go (a thread's work
        for a big message: 2,000 ordering keys are a few ms of the loop's time)."""
        found = self.gaps_of(events, held)
        return found, self.plan(events, _waiting(held, [bool(g) for g in found]))

    def _map_and_advise(self, adapter: Adapter, raw: bytes, peer: str, parsed: ParsedMessage,
                        received_at: datetime, *, rechecked: bool = False,
                        mapping: _Mapping | None = None,
                        found: list[dict[tuple[str, str], str]] | None = None,
                        deliveries: tuple[PlannedDelivery, ...] | None = None) -> _Prepared:
        m = self.metrics
        mtype = parsed.message_type
        if not rechecked:
            m.labelled(m.received, adapter.name, mtype).inc()
        events, held, missing = mapping or _map_events(parsed, self.crosswalk.current,
                                                        received_at.date(), self.products())
        if any(held):
            if self.store.shared and not rechecked:
                # another replica may have mapped the item a moment ago: the next message
                # after a mapping is accepted anywhere must not be held
                return _Prepared(parsed=parsed, recheck=True)
            for ev, is_held, unmapped in zip(events, held, missing, strict=True):
                if is_held:
                    m.events_held.labels(ev.hospital_id).inc()
                    log.info("event %s held: %d unmapped item(s) %s", ev.event_id,
                             len(unmapped), ",".join(li.item_code for li in unmapped),
                             extra=_context(adapter, parsed, "held", event_id=ev.event_id,
                                            hospital=ev.hospital_id))
        incomplete = self._incomplete(adapter, parsed, events, held,
                                      found if mapping is not None else None)
        advice = self._advise(events, received_at)
        if advice.blocked:
            return _Prepared(parsed=parsed, advice=advice)
        incoming = Incoming(adapter=adapter.name, sender=parsed.sender,
                            control_id=parsed.control_id, message_type=mtype, raw=raw,
                            received_at=received_at, events=tuple(events), held=tuple(held),
                            deliveries=deliveries if deliveries is not None else self.plan(
                                events, _waiting(held, incomplete)),
                            peer=peer, incomplete=incomplete)
        return _Prepared(parsed=parsed, advice=advice, incoming=incoming)

    async def _settle(self, adapter: Adapter, raw: bytes, peer: str, prep: _Prepared,
                      received_at: datetime) -> Reply:
        """The rare endings that write to the store first: refused or blocked messages."""
        if prep.refusal is not None:
            return await self._refuse(adapter, raw, peer, prep.refusal, received_at)
        assert prep.parsed is not None
        advice = prep.advice
        why = "blocked by a 集采 rule: " + "; ".join(i.text for i in advice.issues)
        await self._keep(raw, peer, adapter.name, why, received_at)
        self.metrics.rejected.labels(adapter.name, prep.parsed.message_type, "blocked").inc()
        return adapter.reply(prep.parsed, raw, Outcome(OutcomeStatus.REJECTED, advice.issues,
                                                      blocked=True), now=self.clock())

    def _committed(self, adapter: Adapter, raw: bytes, peer: str, prep: _Prepared,
                   result: CommitResult | BaseException) -> Reply:
        """The answer once the commit returned (or failed)."""
        parsed = prep.parsed
        assert parsed is not None
        m = self.metrics
        mtype = parsed.message_type
        if isinstance(result, BaseException):
            log.error("commit failed for %s %s from %s: %s", mtype, parsed.control_id, peer,
                      result, extra=_context(adapter, parsed, "error", peer=peer))
            m.rejected.labels(adapter.name, mtype, "error").inc()
            issue = Issue(Severity.ERROR, "message not stored, send it again", "207")
            return adapter.reply(parsed, raw, Outcome(OutcomeStatus.ERROR, (issue,)),
                                 now=self.clock())
        m.labelled(m.acknowledged, adapter.name, mtype).inc()
        if log.isEnabledFor(logging.DEBUG):  # one line a message: only when asked for
            log.debug("%s %s from %s committed%s", mtype, parsed.control_id, peer,
                      " (a resend)" if result.duplicate else "",
                      extra=_context(adapter, parsed,
                                     "duplicate" if result.duplicate else "accepted", peer=peer))
        if result.duplicate:
            m.duplicates.labels(adapter.name, mtype).inc()
            return adapter.reply(parsed, raw, Outcome(OutcomeStatus.DUPLICATE), now=self.clock())
        if result.outbox_ids:
            self.notify()
        _tell(prep.advice.notices)
        return adapter.reply(parsed, raw, Outcome(OutcomeStatus.ACCEPTED, prep.advice.issues),
                             now=self.clock())

    async def handle(self, adapter: Adapter, raw: bytes, peer: str,
                     sender: Identity | None = None) -> Reply:
        """Take one message; the reply is positive only after a durable commit. With
        ``sender``, a message for a hospital it may not act for is refused (quarantined)."""
        received_at = self.clock()
        prep = await self._prepare_anywhere(adapter, raw, peer, received_at, sender)
        return await self._finish(adapter, raw, peer, prep, received_at)

    async def _finish(self, adapter: Adapter, raw: bytes, peer: str, prep: _Prepared,
                      received_at: datetime) -> Reply:
        """Everything after the synchronous half, one message at a time."""
        if prep.recheck:
            assert prep.parsed is not None
            await self.crosswalk.refresh()
            prep = self._map_and_advise(adapter, raw, peer, prep.parsed, received_at,
                                        rechecked=True)
        if prep.incoming is None:
            return await self._settle(adapter, raw, peer, prep, received_at)
        started = perf_counter()
        try:
            result: CommitResult | BaseException = await self.store.commit(prep.incoming)
        except StoreError as exc:
            result = exc
        self.metrics.commit_seconds.observe(perf_counter() - started)
        if _reused(result):
            return await self._refuse_reuse(adapter, raw, peer, prep)
        return self._committed(adapter, raw, peer, prep, result)

    def submit(self, adapter: Adapter, raw: bytes, peer: str,
               done: Callable[[Reply | None], None], *,
               sender: Identity | None = None) -> None:
        """Take one message; ``done`` is called exactly once with the reply.

        The reply is positive only after a durable commit. ``done(None)`` means no
        answer could be built at all (the adapter's own reply failed; logged): the
        sender hears nothing and resends, as after a lost ACK.

        Messages submitted in the same turn of the event loop are prepared together
        (every parse, then every mapping and rule check) and join the group commit
        together: each stage's code stays in the CPU caches, and no task is created per
        message. This is the MLLP listener's path; :meth:`handle` is the one-at-a-time
        equivalent. A big message is parsed in a worker process (:meth:`parses_elsewhere`)
        and goes its own way.
        """
        if self.parses_elsewhere(adapter, raw):
            self._spawn(self.handle(adapter, raw, peer, sender), adapter, raw, done)
            return
        self._batch.append((adapter, raw, peer, done, sender))
        if len(self._batch) == 1:
            asyncio.get_running_loop().call_soon(self._run_batch)

    def _run_batch(self) -> None:
        batch, self._batch = self._batch, []
        received_at = self.clock()
        parsed = [self._parse(adapter, raw, peer, received_at)
                  for adapter, raw, peer, _, _ in batch]
        for (adapter, raw, peer, done, sender), p in zip(batch, parsed, strict=True):
            try:
                prep = p if isinstance(p, _Prepared) else _foreign(p, sender) or \
                    self._map_and_advise(adapter, raw, peer, p, received_at)
                if prep.incoming is None:
                    self._spawn(self._finish(adapter, raw, peer, prep, received_at),
                                adapter, raw, done)
                else:
                    self._commit_then(adapter, raw, peer, prep, done)
            except Exception:
                log.exception("unexpected error handling a message from %s", peer)
                self.metrics.internal_errors.labels("ingest").inc()
                self._answer_error(adapter, raw, done)

    def _answer(self, done: Callable[[Reply | None], None], reply: Reply | None) -> None:
        try:
            done(reply)
        except Exception:  # the transport's problem; the other messages go on
            log.exception("could not hand over an answer")

    def _answer_error(self, adapter: Adapter, raw: bytes,
                      done: Callable[[Reply | None], None]) -> None:
        try:
            reply: Reply | None = internal_error_reply(adapter, raw, self.clock())
        except Exception:
            log.exception("adapter %s could not build an error reply", adapter.name)
            reply = None
        self._answer(done, reply)

    def _commit_then(self, adapter: Adapter, raw: bytes, peer: str, prep: _Prepared,
                     done: Callable[[Reply | None], None]) -> None:
        assert prep.incoming is not None
        started = perf_counter()

        def committed(result: CommitResult | BaseException) -> None:
            self.metrics.commit_seconds.observe(perf_counter() - started)
            if _reused(result):  # quarantined first: a write, so off this callback
                self._spawn(self._refuse_reuse(adapter, raw, peer, prep), adapter, raw, done)
                return
            try:
                reply = self._committed(adapter, raw, peer, prep, result)
            except Exception:
                log.exception("unexpected error answering a message from %s", peer)
                self.metrics.internal_errors.labels("ingest").inc()
                self._answer_error(adapter, raw, done)
                return
            self._answer(done, reply)

        self.store.commit_then(prep.incoming, committed)

    def _spawn(self, work: Coroutine[Any, Any, Reply], adapter: Adapter, raw: bytes,
               done: Callable[[Reply | None], None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)

        def finished(t: asyncio.Future[Reply]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is None:
                self._answer(done, t.result())
                return
            if not t.cancelled():
                log.error("unexpected error handling a message", exc_info=t.exception())
                self.metrics.internal_errors.labels("ingest").inc()
            # cancelled at shutdown or failed: nothing is known to be stored, resend
            self._answer_error(adapter, raw, done)

        task.add_done_callback(finished)

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
        kept = await self._keep(raw, peer, adapter.name, exc.reason, received_at)
        status = OutcomeStatus.REJECTED if exc.reject and kept else OutcomeStatus.ERROR
        log.warning("rejected message from %s via %s: %s [%s] (%d bytes quarantined)",
                    peer, adapter.name, exc.reason, exc.location or "-", len(raw),
                    extra=_context(adapter, None, status.value, peer=peer))
        self.metrics.rejected.labels(adapter.name, "", status.value).inc()
        reply = adapter.reply(None, raw, Outcome(status, rejection_issues(exc)), now=self.clock())
        if isinstance(exc, SenderNotPermitted) and kept and adapter.transport == "http":
            # the adapter's body, with the status that says the caller lacks the right
            reply = msgspec.structs.replace(reply, status=403)
        return reply

    async def _refuse_reuse(self, adapter: Adapter, raw: bytes, peer: str,
                            prep: _Prepared) -> Reply:
        """Another message under a control id the sender already used: answering it as a
        resend would drop it unseen, so it is refused, kept in quarantine and counted."""
        parsed, incoming = prep.parsed, prep.incoming
        assert parsed is not None and incoming is not None
        why = (f"control id {parsed.control_id!r} of sender {parsed.sender!r} was already "
               "used for a message with different content: not stored; send it under a "
               "new control id")
        log.warning("refused %s from %s via %s: %s (%d bytes quarantined)",
                    parsed.message_type, peer, adapter.name, why, len(raw),
                    extra=_context(adapter, parsed, OutcomeStatus.CONFLICT.value, peer=peer))
        await self._keep(raw, peer, adapter.name, why, incoming.received_at)
        m = self.metrics
        m.labelled(m.control_id_reused, adapter.name).inc()
        m.rejected.labels(adapter.name, parsed.message_type,
                          OutcomeStatus.CONFLICT.value).inc()
        issue = Issue(Severity.ERROR, why, "205")  # HL7 table 0357: duplicate key identifier
        return adapter.reply(parsed, raw, Outcome(OutcomeStatus.CONFLICT, (issue,)),
                             now=self.clock())

    async def bad_bytes(self, adapter: Adapter, raw: bytes, peer: str, reason: str) -> None:
        """Quarantine bytes that are not even a message (framing errors)."""
        log.warning("%s from %s: %d bytes quarantined", reason, peer, len(raw),
                    extra=_context(adapter, None, "quarantined", peer=peer))
        await self._keep(raw, peer, adapter.name, reason, self.clock())

