"""Big messages are parsed in a worker process, so that no message holds the event loop.

Every listener, the mirror, the ledger and ``/healthz`` share one event loop. The HL7 v2
and vendor parsers are compiled to C (:mod:`gateway.native`) and keep the GIL for a
whole parse, so a thread would not help: a 2,000-line dispense (900 KB) holds the loop
for 60–90 ms and one at the 5,000-line limit for several times that, and every other
sender waits. A message of at least ``limits.parse_offload_bytes`` is therefore parsed
and checked against the limits in a worker process. The result comes back as the message
without its lines (unpickled, small) and the lines as MessagePack pieces, decoded in a
helper thread that takes breaks (:mod:`canonical.breaks`), so no single step of taking it
back holds the GIL for more than half a millisecond. A parse that takes longer than
``limits.parse_timeout_s`` is stopped (the worker is killed and replaced) and the message
refused naming the limit; a worker that dies under a message answers "internal error,
send it again", like any fault of the gateway's own.

The workers are forked from a fork server that imports the adapters once (a fork of the
gateway itself would copy its threads' locks), so a replaced worker is ready at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import traceback
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Any

import msgspec
from pebble import ProcessExpired, ProcessPool

from adapters.base import Adapter, MessageInvalid, ParsedMessage
from adapters.registry import create
from canonical.breaks import take_break, with_breaks
from canonical.errors import MessageRejected
from canonical.model import Line
from gateway.ingest.limits import Limits, check_values

__all__ = ["ParseWorkers", "WorkerFailed", "parse_in_worker"]

log = logging.getLogger(__name__)

# an adapter as the worker builds it: (key, registered name, configuration)
Recipe = tuple[int, str, Mapping[str, Any]]

_ADAPTERS: dict[int, Adapter] = {}  # in a worker: the adapters built so far
WORKER_NICENESS = 10  # added to a parse worker's scheduling niceness
# The lines come back as MessagePack, this many to a piece, decoded in a helper thread with
# breaks: unpickled whole, a 2,000-line dispense held the GIL for 8 ms in one call of the
# worker pool's result thread, and every acknowledgement due then waited for it.
LINES_PER_PIECE = 100
_LINES_ENCODER = msgspec.msgpack.Encoder()
_LINES_DECODER = msgspec.msgpack.Decoder(tuple[Line, ...])
# the events without their lines, and each event's lines in pieces
Packed = tuple[ParsedMessage, list[list[bytes]]]


class WorkerFailed(Exception):
    """The worker could not give an answer (it died, or the adapter raised a bug)."""


def parse_in_worker(recipe: Recipe, raw: bytes, received_at: datetime,
                    limits: Limits) -> tuple[str, Any]:
    """Parse one message in a worker: ``("packed", Packed)`` (see :func:`_pack`),
    ``("invalid", (issues, reject))``, ``("rejected", (reason, code, location, reject))``
    or ``("failed", traceback text)``. Exceptions are not pickled back: an adapter's own
    exception class may not survive the trip."""
    key, name, config = recipe
    try:
        adapter = _ADAPTERS.get(key)
        if adapter is None:
            adapter = _ADAPTERS[key] = create(name, config)
        parsed = adapter.parse(raw, received_at=received_at)
        check_values(parsed.events, limits)
    except MessageInvalid as exc:
        return "invalid", (exc.issues, exc.reject)
    except MessageRejected as exc:
        return "rejected", (exc.reason, exc.code, exc.location, exc.reject)
    except Exception:  # an adapter bug: reported with its traceback, the worker lives on
        return "failed", traceback.format_exc()
    return "packed", _pack(parsed)


def _pack(parsed: ParsedMessage) -> Packed:
    """The message with events of no lines, and each event's lines in MessagePack pieces."""
    shell = msgspec.structs.replace(parsed, events=tuple(ev.with_lines(())
                                                          for ev in parsed.events))
    return shell, [[_LINES_ENCODER.encode(ev.lines[i:i + LINES_PER_PIECE])
                     for i in range(0, len(ev.lines), LINES_PER_PIECE)]
                    for ev in parsed.events]


def _unpacked(packed: Packed) -> ParsedMessage:
    """The message :func:`_pack` packed (a helper thread's job, under ``with_breaks``)."""
    shell, pieces = packed
    events = []
    for ev, parts in zip(shell.events, pieces, strict=True):
        lines: list[Line] = []
        for part in parts:
            take_break()
            lines.extend(_LINES_DECODER.decode(part))
        events.append(ev.with_lines(tuple(lines)))
    return msgspec.structs.replace(shell, events=tuple(events))


def _ready() -> int:
    return os.getpid()


def _yield_cpu() -> None:
    """A worker's CPU goes after the listeners' (the gateway process, its store threads):
    on a small server a long parse must not take a core from the messages being answered."""
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICENESS)


async def _unpack(result: tuple[str, Any]) -> ParsedMessage:
    kind, value = result
    if kind == "packed":
        return await asyncio.to_thread(with_breaks, _unpacked, value)
    if kind == "invalid":
        issues, reject = value
        raise MessageInvalid(tuple(issues), reject=reject)
    if kind == "rejected":
        reason, code, location, reject = value
        raise MessageRejected(reason, code=code, location=location, reject=reject)
    raise WorkerFailed(f"the adapter failed in the parse worker:\n{value}")


class ParseWorkers:
    """Worker processes that parse messages of at least ``min_bytes``.

    Only adapters :meth:`register`-ed (with the name and configuration they were created
    from) are parsed there; any other is parsed inline. The workers start with the first
    big message (most deployments never see one); if they cannot start, that is logged
    and every message is parsed inline. After :meth:`close`, everything is parsed inline.
    """

    def __init__(self, min_bytes: int, timeout_s: float, workers: int = 1) -> None:
        self.min_bytes = min_bytes
        self.timeout_s = timeout_s
        self.workers = workers
        self._recipes: dict[int, Recipe] = {}
        self._pool: ProcessPool | None = None
        self._starting: asyncio.Lock | None = None
        self._unavailable = min_bytes <= 0

    def register(self, adapter: Adapter, name: str, config: Mapping[str, Any]) -> None:
        """Parse ``adapter``'s big messages in the workers, built as ``create(name, config)``."""
        self._recipes[id(adapter)] = (len(self._recipes), name, dict(config))

    def takes(self, adapter: Adapter, raw: bytes) -> bool:
        """Whether ``raw`` is parsed in a worker."""
        return (not self._unavailable and self.min_bytes <= len(raw)
                and id(adapter) in self._recipes)

    async def _started(self) -> ProcessPool:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._pool is not None:
                return self._pool
            if self._unavailable:
                raise WorkerFailed("the parse workers are stopped")
            try:
                # starting the first worker waits for the fork server to import the
                # adapters (a second or so): not on the event loop
                pool, pid = await asyncio.to_thread(self._create)
            except Exception as exc:
                self._unavailable = True
                log.exception("cannot start the parse workers: big messages are parsed in "
                              "the event loop and hold it while they are")
                raise WorkerFailed(f"the parse workers cannot start ({exc})") from exc
            self._pool = pool
            log.info("%d parse worker(s) for messages of %d bytes or more (first pid %d)",
                     self.workers, self.min_bytes, pid)
            return pool

    def _create(self) -> tuple[ProcessPool, int]:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        pool = ProcessPool(max_workers=self.workers, context=ctx, initializer=_yield_cpu)
        try:
            return pool, int(pool.schedule(_ready).result(timeout=60))
        except BaseException:
            pool.stop()  # type: ignore[no-untyped-call]
            raise

    async def close(self) -> None:
        """Stop the workers (a parse in flight is abandoned: its sender hears nothing and
        resends)."""
        self._unavailable = True
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()  # type: ignore[no-untyped-call]
            await asyncio.to_thread(pool.join, 10)

    async def parse(self, adapter: Adapter, raw: bytes, received_at: datetime,
                    limits: Limits) -> ParsedMessage:
        """Parse ``raw`` in a worker and check it against ``limits``.

        Raises:
            MessageRejected: as the adapter or the limits refuse it, or after
                ``timeout_s`` (naming ``limits.parse_timeout_s``).
            WorkerFailed: the workers cannot start, one died, or the adapter raised a bug.
        """
        pool = await self._started()
        future = pool.schedule(parse_in_worker,
                               (self._recipes[id(adapter)], raw, received_at, limits),
                               timeout=self.timeout_s)
        try:
            result: tuple[str, Any] = await asyncio.wrap_future(future)
        except FutureTimeout:
            raise MessageRejected(
                f"the message ({len(raw)} bytes) could not be parsed within "
                f"{self.timeout_s:g} s (limits.parse_timeout_s)", code="207",
                location="message", reject=True) from None
        except ProcessExpired as exc:
            raise WorkerFailed(f"the parse worker died ({exc})") from None
        return await _unpack(result)
