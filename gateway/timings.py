"""Intervals of the gateway's own background work, one value per timer (tests pass short
ones to ``build_app``; production uses the defaults)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Timings"]


@dataclass(frozen=True, slots=True)
class Timings:
    """Intervals of the application's own background work (tests pass short ones)."""

    stats_s: float = 1.0
    """How often the outbox gauges are read from the store."""
    retention_s: float = 3600.0
    """How often raw messages and quarantine past their retention are purged."""
    follow_up_s: float = 1.0
    """A message mapped with the old crosswalk may commit, held, just after a change
    released the held events: they are released once more this much later."""
    calendar_s: float = 60.0
    """How often the working-day calendar files are looked at (reloaded when changed, the
    provisional deadlines then counted again)."""
