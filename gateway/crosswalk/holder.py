"""The one holder of a process's current crosswalk, kept in step with the store.

Ingest, the crosswalk service, the ledger and the CDS service all read
:attr:`CrosswalkHolder.current`; nothing else keeps a crosswalk. The holder follows the
store's audit trail: :meth:`refresh` applies the records appended after the last one it
applied (by this process or any replica sharing the store), so a change made anywhere
is what the next message here is mapped with. Crosswalks are immutable values; a reader
holding the old one never sees half a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from gateway.store.base import Topic
from gateway.store.state import CrosswalkTables
from mappings.changes import replay_records
from mappings.crosswalk import Crosswalk

__all__ = ["CrosswalkHolder", "OnApplied"]

log = logging.getLogger(__name__)

# told which hospitals' entries changed, after the holder applied the change
OnApplied = Callable[[frozenset[str]], Awaitable[None]]


class CrosswalkHolder:
    """The current crosswalk and the last audit record it includes."""

    def __init__(self, tables: CrosswalkTables, poll_s: float = 5.0) -> None:
        self.tables = tables
        self.current = Crosswalk()
        self.audit_id = 0
        self.poll_s = poll_s
        self.on_applied: list[OnApplied] = []
        self._lock = asyncio.Lock()
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """Read every entry from the store."""
        async with self._lock:
            self.current, self.audit_id = await self.tables.load()

    async def refresh(self) -> frozenset[str]:
        """Apply what was appended to the audit trail since the last refresh, then run
        the ``on_applied`` hooks.

        Returns:
            The hospitals whose entries changed (empty: nothing new).
        """
        async with self._lock:
            records = await self.tables.changes_after(self.audit_id)
            if not records:
                return frozenset()
            self.current = replay_records(self.current, (a.record for a in records))
            self.audit_id = records[-1].id
        hospitals = frozenset(a.record.hospital_id for a in records)
        await self._run_hooks(hospitals)
        return hospitals

    async def advance(self, base: int, crosswalk: Crosswalk, last: int,
                      hospitals: frozenset[str]) -> None:
        """Take a change this process just stored: ``crosswalk`` is the holder's crosswalk
        at audit id ``base`` with the change applied, which the store numbered up to
        ``last``. Its author has it already, so it is not read back; if the holder has
        moved meanwhile, it catches up from the store instead."""
        async with self._lock:
            if self.audit_id == base:
                self.current, self.audit_id = crosswalk, last
                applied = True
            else:
                applied = False
        if not applied:
            await self.refresh()
            return
        await self._run_hooks(hospitals)

    async def _run_hooks(self, hospitals: frozenset[str]) -> None:
        for hook in self.on_applied:
            try:
                await hook(hospitals)
            except Exception:  # the next change or restart does what the hook missed
                log.exception("crosswalk change hook failed for %s", sorted(hospitals))

    def on_change(self, topic: Topic) -> None:
        """Store listener: another process (or this one) changed the crosswalk."""
        if topic is Topic.CROSSWALK:
            self._wanted.set()

    def start(self) -> None:
        """Follow the store: refresh when told of a change, and every ``poll_s`` anyway
        (a replica whose LISTEN connection is down still catches up)."""
        self._task = asyncio.create_task(self._follow(), name="crosswalk-follow")

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), timeout=self.poll_s)
            self._wanted.clear()
            try:
                await self.refresh()
            except Exception:  # a database blip: the next poll tries again
                log.warning("could not read crosswalk changes; retrying", exc_info=True)
