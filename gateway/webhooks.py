"""Signed webhooks: warnings and ledger alerts pushed to other systems.

Each delivery is a JSON POST with ``X-Jicai-Timestamp`` (seconds), ``X-Jicai-Event``
(the delivery id, stable across retries so receivers can deduplicate) and
``X-Jicai-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` under the
receiver's shared secret. 5xx answers, 429 and connection errors are retried with
exponential back-off a bounded number of times; other 4xx answers are final.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

__all__ = ["WebhookResult", "WebhookSender", "WebhookTarget", "sign", "verify"]

log = logging.getLogger(__name__)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, *, now: float,
           tolerance: float = 300) -> bool:
    """Check a received webhook: signature matches and the timestamp is recent."""
    try:
        ts = float(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """One receiver: URL, shared secret, which event types it wants (empty: all)."""

    url: str
    secret: bytes
    events: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """How one delivery ended."""

    url: str
    delivery_id: str
    status: int | None  # the last HTTP status, None if never answered
    attempts: int
    delivered: bool


class WebhookSender:
    """Deliver events to targets with retries; one ``aiohttp`` session, given or owned."""

    def __init__(self, targets: Sequence[WebhookTarget], *,
                 session: aiohttp.ClientSession | None = None, max_attempts: int = 5,
                 base_delay: float = 0.5, max_delay: float = 30.0, timeout: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.targets = tuple(targets)
        self._session = session
        self._own_session = session is None
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.clock = clock

    async def close(self) -> None:
        """Close the session if the sender opened it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, event_type: str, payload: Mapping[str, Any]) -> list[WebhookResult]:
        """Deliver ``payload`` to every target that wants ``event_type``.

        Args:
            event_type: e.g. ``cds.warning``, ``ledger.contract_lagging``.
            payload: JSON-serialisable body fields (``type`` and ``id`` are added).

        Returns:
            One result per target, after its retries.
        """
        if self._session is None:
            self._session = aiohttp.ClientSession()
        delivery_id = str(uuid.uuid4())
        body = orjson.dumps({"id": delivery_id, "type": event_type, **payload}, default=str)
        wanted = [t for t in self.targets if not t.events or event_type in t.events]
        return list(await asyncio.gather(*(self._deliver(t, delivery_id, body)
                                           for t in wanted)))

    async def _deliver(self, target: WebhookTarget, delivery_id: str,
                       body: bytes) -> WebhookResult:
        assert self._session is not None
        status: int | None = None
        for attempt in range(1, self.max_attempts + 1):
            ts = str(int(self.clock()))
            headers = {"Content-Type": "application/json", "X-Jicai-Timestamp": ts,
                       "X-Jicai-Event": delivery_id,
                       "X-Jicai-Signature": sign(target.secret, ts, body)}
            try:
                async with self._session.post(
                        target.url, data=body, headers=headers,
                        timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                    status = resp.status
                    await resp.read()
                if 200 <= status < 300:
                    return WebhookResult(target.url, delivery_id, status, attempt, True)
                if status < 500 and status != 429:
                    log.warning("webhook %s refused %s: HTTP %s", target.url, delivery_id,
                                status)
                    return WebhookResult(target.url, delivery_id, status, attempt, False)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.info("webhook %s attempt %d failed: %s", target.url, attempt, exc)
            if attempt < self.max_attempts:
                await asyncio.sleep(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        log.warning("webhook %s gave up on %s after %d attempts", target.url, delivery_id,
                    self.max_attempts)
        return WebhookResult(target.url, delivery_id, status, self.max_attempts, False)
