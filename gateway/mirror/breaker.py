"""A circuit breaker per destination: stop hammering a platform that is down.

Closed: calls go through; ``failures`` platform failures in a row open it. Open:
no call for the cool-down, which doubles on every failed probe up to a cap. Then
half-open: one probe call at a time; a success closes it, a failure opens it again.
While it is open, events do not use up their retry budget — the platform being
down is not the event's fault.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker with exponential cool-down; time is passed in."""

    def __init__(self, failures: int = 5, cooldown_s: float = 1.0,
                 cooldown_max_s: float = 60.0) -> None:
        self.threshold = failures
        self.cooldown_initial = cooldown_s
        self.cooldown_max = cooldown_max_s
        self.cooldown = cooldown_s
        self.consecutive = 0
        self.opened_until = 0.0
        self.probing = False
        # observable history (diagnostics, tests): times it opened from closed, and
        # probes that failed and opened it again
        self.opened_count = 0
        self.failed_probes = 0
        self._open = False

    def state(self, now: float) -> BreakerState:
        """The state at ``now``."""
        if not self._open:
            return BreakerState.CLOSED
        return BreakerState.OPEN if now < self.opened_until else BreakerState.HALF_OPEN

    def wait_s(self, now: float) -> float:
        """Seconds until a call may go (0 when one may go now)."""
        if not self._open:
            return 0.0
        if now < self.opened_until:
            return self.opened_until - now
        return 0.05 if self.probing else 0.0

    def allow(self, now: float) -> bool:
        """Whether a call may go now; in half-open state, takes the single probe slot."""
        state = self.state(now)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        """A call went through (delivered or rejected on its merits)."""
        self.consecutive = 0
        self._open = False
        self.probing = False
        self.cooldown = self.cooldown_initial

    def failure(self, now: float) -> None:
        """A call failed for a platform reason (transport, 5xx, timeout, garbage)."""
        self.consecutive += 1
        if self._open:
            if self.probing:  # the probe failed: open again, longer
                self.probing = False
                self.failed_probes += 1
                self.cooldown = min(self.cooldown_max, self.cooldown * 2)
                self.opened_until = now + self.cooldown
            return
        if self.consecutive >= self.threshold:
            self._open = True
            self.opened_count += 1
            self.opened_until = now + self.cooldown

    def is_open(self, now: float) -> bool:
        """True while calls are held back (open or probing)."""
        return self._open
