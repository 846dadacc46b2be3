"""The working-day calendar read again when its files change, and provisional deadlines
counted again with it.

A deadline that runs into a year with no ``config/calendar/<year>.yaml`` is counted on
weekdays alone and marked provisional. The watch looks at the calendar directory's files
(names, sizes, modification times) every ``interval_s``; when they changed it reads them
again and, the new calendar valid, counts the provisional deadlines again. A malformed
file keeps the calendar in use (the error is logged until the file is fixed). Every check
also counts the deadlines still provisional, for ``/readyz`` and the
``jcgw_ledger_provisional_deadlines`` gauge.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from canonical.errors import ConfigError
from gateway.ledger.calendar import load_calendar
from gateway.ledger.ledger import Ledger

__all__ = ["CalendarWatch", "files_stamp"]

log = logging.getLogger(__name__)

Stamp = tuple[tuple[str, int, int], ...]


def files_stamp(directory: Path) -> Stamp:
    """What changes when a calendar file is added, edited or removed."""
    out = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            st = path.stat()
        except OSError:
            continue  # removed between the listing and the look
        out.append((path.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


class CalendarWatch:
    """Reloads the calendar on change and keeps the count of provisional deadlines."""

    def __init__(self, directory: Path, ledger: Ledger, interval_s: float = 60.0,
                 on_count: Callable[[int], None] | None = None) -> None:
        self.directory = directory
        self.ledger = ledger
        self.interval_s = interval_s
        self.on_count = on_count
        self.provisional = 0  # deadlines still counted without their year's calendar
        self.missing_years: tuple[int, ...] = ()  # the years they wait for
        self._stamp = files_stamp(directory)
        self._years = ledger.settings.calendar.years
        # a file added while the gateway was stopped: the first check counts again too
        self._recount = True

    def reload(self) -> bool:
        """Read the calendar files again if they changed; True when a new calendar is
        in use."""
        stamp = files_stamp(self.directory)
        if stamp == self._stamp:
            return False
        try:
            calendar = load_calendar(self.directory)
        except ConfigError as exc:
            log.error("working-day calendar not reloaded, the one in use stays: %s", exc)
            return False
        self._stamp = stamp
        self.ledger.use_calendar(calendar)
        if calendar.years != self._years:
            log.info("working-day calendar now covers %s", calendar.years)
        self._years = calendar.years
        return True

    async def check(self) -> int:
        """Reload on change, count provisional deadlines again when it did; returns how
        many stay provisional."""
        if self.reload() or self._recount:
            await self.ledger.recount_provisional()
            self._recount = False
        rows = await self.ledger.provisional_deadlines()
        covered = set(self.ledger.settings.calendar.years)
        self.provisional = len(rows)
        self.missing_years = tuple(sorted(
            {year for d in rows for year in range(d.opened_at.year, d.due_at.year + 1)}
            - covered))
        if self.on_count is not None:
            self.on_count(self.provisional)
        return self.provisional

    def reason(self) -> str:
        """Why deadlines are provisional, and what to do, in an operator's words."""
        files = ", ".join(f"config/calendar/{y}.yaml" for y in self.missing_years)
        return (f"{self.provisional} deadline(s) counted on weekdays alone: add "
                f"{files or 'the missing year files'} from the State Council's holiday "
                "arrangement; they are counted again at the next look at the calendar")

    async def run(self) -> None:
        """Check every ``interval_s`` until cancelled."""
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("calendar check failed")
            await asyncio.sleep(self.interval_s)
