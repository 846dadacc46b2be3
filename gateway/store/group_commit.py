"""Group commit, shared by every store: whoever arrives while a commit is in flight
goes in the next one, so concurrent senders share a transaction and its fsync."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from canonical.errors import StoreError
from canonical.model import Event
from gateway.store.base import CommitResult, Incoming

__all__ = ["CommitCallback", "CommitListener", "GroupCommit", "GroupCommitting"]

log = logging.getLogger(__name__)

# called in commit order, right after each group commit, with (seq, event) pairs
CommitListener = Callable[[list[tuple[int, Event]]], None]
# told the outcome of one message's commit: its result, or the StoreError
CommitCallback = Callable[[CommitResult | BaseException], None]
Waiter = asyncio.Future[CommitResult] | CommitCallback


class GroupCommit:
    """Queues messages and writes them in groups with the store's ``write`` function."""

    # loop turns to wait for more messages after answering a group (measured: 4 beats
    # 0, 2 and 8 with 32 senders; see bench/README.md)
    gather_turns = 4
    # a message this big (a 2,000-line dispense) takes its transaction tens of
    # milliseconds; it is written in a group of its own, after the messages queued before
    # it, so that they are not kept waiting for it
    heavy_bytes = 65_536

    def __init__(self, write: Callable[[list[Incoming]], Awaitable[list[CommitResult]]],
                 max_batch: int, on_batch: Callable[[int], None] | None = None) -> None:
        self._write = write
        self.max_batch = max_batch
        self.on_batch = on_batch
        self.listeners: list[CommitListener] = []
        self._pending: list[tuple[Incoming, Waiter]] = []
        self._flush_task: asyncio.Task[None] | None = None

    async def commit(self, incoming: Incoming) -> CommitResult:
        """Join the next group; returns once its transaction is durable.

        Raises:
            StoreError: the transaction failed; nothing of the message was stored.
        """
        fut: asyncio.Future[CommitResult] = asyncio.get_running_loop().create_future()
        self._pending.append((incoming, fut))
        if self._flush_task is None:
            self._flush_task = asyncio.create_task(self._flush())
        return await fut

    def commit_then(self, incoming: Incoming, done: CommitCallback) -> None:
        """Join the next group; ``done`` is called once its transaction is durable (or failed).

        The callback form of :meth:`commit`, for callers that handle many messages per
        turn of the event loop and would otherwise pay a task and a future for each.
        """
        self._pending.append((incoming, done))
        if self._flush_task is None:
            self._flush_task = asyncio.create_task(self._flush())

    async def drain(self) -> None:
        """Wait until every queued message has been written (or has failed)."""
        if self._flush_task is not None:
            await asyncio.shield(self._flush_task)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._take()
                try:
                    results: list[CommitResult] | BaseException = await self._write(
                        [inc for inc, _ in batch])
                except BaseException as exc:  # every waiter must hear of it
                    results = exc
                # answered before the next group starts: starting it first measured slower,
                # the groups shrink and each pays its own fsync
                self._finish(batch, results)
                # The senders just answered send their next messages at once: a few turns
                # of the event loop let those arrive, be prepared and join the next group
                # together, instead of trickling into several small groups that each pay
                # an fsync. Idle turns cost microseconds.
                for _ in range(self.gather_turns):
                    if len(self._pending) >= self.max_batch:
                        break
                    await asyncio.sleep(0)
        finally:
            self._flush_task = None

    def _take(self) -> list[tuple[Incoming, Waiter]]:
        pending = self._pending
        size = min(len(pending), self.max_batch)
        for i in range(size):
            if len(pending[i][0].raw) >= self.heavy_bytes:
                size = i or 1  # the light ones before it; or it, alone
                break
        batch = pending[:size]
        del pending[:size]
        return batch

    def _finish(self, batch: list[tuple[Incoming, Waiter]],
                results: list[CommitResult] | BaseException) -> None:
        if isinstance(results, BaseException):
            error = StoreError(f"commit failed: {results}")
            for _, waiter in batch:
                _tell(waiter, error)
            return
        if self.on_batch is not None:
            try:
                self.on_batch(len(batch))
            except Exception:  # a metrics hook must not keep the answers back
                log.exception("commit batch hook failed")
        for (_, waiter), result in zip(batch, results, strict=True):
            _tell(waiter, result)
        if self.listeners:
            self._tell_listeners([inc for inc, _ in batch], results)

    def _tell_listeners(self, items: list[Incoming], results: list[CommitResult]) -> None:
        committed = [(seq, ev) for inc, res in zip(items, results, strict=True)
                     if not res.duplicate
                     for seq, ev in zip(res.event_seqs, inc.events, strict=True)
                     if seq is not None]
        if not committed:
            return
        for listener in self.listeners:
            try:
                listener(committed)
            except Exception:  # the commit stands; a listener catches up from the store
                log.exception("commit listener failed")


def _tell(waiter: Waiter,
          outcome: CommitResult | StoreError) -> None:
    if isinstance(waiter, asyncio.Future):
        if waiter.done():
            return
        if isinstance(outcome, StoreError):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
        return
    try:
        waiter(outcome)
    except Exception:  # one caller's failure must not keep the others from hearing
        log.exception("commit callback failed")


class GroupCommitting:
    """The ingest side of a store whose ``_group`` does the group commit."""

    _group: GroupCommit

    async def commit(self, incoming: Incoming) -> CommitResult:
        """Join the next group commit; returns once the transaction is durable.

        Raises:
            StoreError: the transaction failed; nothing of the message was stored.
        """
        return await self._group.commit(incoming)

    def commit_then(self, incoming: Incoming, done: CommitCallback) -> None:
        """Join the next group commit; ``done`` hears the result once it is durable."""
        self._group.commit_then(incoming, done)

    @property
    def committed_listeners(self) -> list[CommitListener]:
        """Called after each group commit with its new (seq, event) pairs, in order."""
        return self._group.listeners
