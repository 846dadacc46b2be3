"""The contract between the mirror and one platform's dialect."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import aiohttp

from canonical.model import Event

__all__ = ["Answer", "PlatformProfile", "Request", "Verdict"]


class Verdict(StrEnum):
    """What the mirror does with the event after an answer."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request to a platform."""

    path: str
    body: bytes
    headers: dict[str, str]
    infno: str


@dataclass(frozen=True, slots=True)
class Answer:
    """A platform's answer reduced to what the mirror needs."""

    verdict: Verdict
    reason: str = ""
    platform_ref: str = ""
    duplicate: bool = False
    # the platform said "too fast" (HTTP 429, a "too frequent" business answer): the
    # request is sent again later and the destination's pace slows down; the platform
    # is up, so neither its circuit nor the event's retry budget is touched
    throttled: bool = False


class PlatformProfile(Protocol):
    """Turns events into requests and answers into verdicts."""

    async def prepare(self, session: aiohttp.ClientSession) -> None:
        """Get ready to send (e.g. fetch or renew a token); raises what a failed call
        raises (aiohttp errors, TimeoutError, ValueError, KeyError)."""

    def units(self, event: Event) -> int:
        """How many requests the event becomes (0: this platform does not take it)."""
        ...

    def order_key(self, event: Event, unit: int) -> str:
        """What must precede what: units with the same key go out strictly in commit
        order (also across retries, dead letters, replay and restarts), units with
        different keys concurrently."""
        ...

    def build(self, event: Event, unit: int, msgid: str, now: float) -> Request:
        """The request for one unit of an event."""
        ...

    def missing(self, event: Event) -> dict[str, str]:
        """What this platform would refuse in the event — mandatory data it lacks, values
        not of the interface's form: ``"3505 phar_prac_cert_no"`` → why, naming where the
        value comes from. An event with any is held, not sent to be refused."""
        ...

    def interpret(self, status: int, body: bytes) -> Answer:
        """The verdict for an HTTP status and body."""
        ...

    def describe(self) -> dict[str, Any]:
        """Facts for logs and the admin API."""
        ...
