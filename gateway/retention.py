"""Raw messages and quarantined bytes are kept no longer than the configuration says.

A raw HL7 message names its patient; once every event made from it is delivered, the
events carry what the platforms and the ledger need and the raw bytes are only a
liability. They are dropped after ``store.raw_retention_days`` (the message row and its
digest stay, so a late resend is still recognised); bytes of held, pending or
dead-lettered events stay as long as those do. Quarantine rows go after
``store.quarantine_retention_days``. Every replica may run the pass: it is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gateway.config import StoreConfig
from gateway.metrics import Metrics
from gateway.store.base import Purged, Store

__all__ = ["DAY_S", "cutoffs", "purge_once", "run_retention"]

log = logging.getLogger(__name__)

DAY_S = 86_400.0


def cutoffs(cfg: StoreConfig, now: float) -> tuple[float | None, float | None]:
    """(raw bytes received before, quarantine received before) to purge; None: keep."""
    raw = now - cfg.raw_retention_days * DAY_S if cfg.raw_retention_days else None
    kept = (now - cfg.quarantine_retention_days * DAY_S
            if cfg.quarantine_retention_days else None)
    return raw, kept


async def purge_once(store: Store, cfg: StoreConfig, metrics: Metrics, now: float) -> Purged:
    """One retention pass, counted in ``jcgw_retention_purged_total``.

    Raises:
        StoreError: the store failed (what was purged before stays purged).
    """
    raw_before, quarantine_before = cutoffs(cfg, now)
    purged = await store.purge(raw_before=raw_before, quarantine_before=quarantine_before,
                               now=now)
    metrics.retention_purged.labels("raw_message").inc(purged.raw_messages)
    metrics.retention_purged.labels("quarantine").inc(purged.quarantined)
    if purged.raw_messages or purged.quarantined:
        log.info("retention: raw bytes of %d message(s) and %d quarantined message(s) purged",
                 purged.raw_messages, purged.quarantined)
    return purged


async def run_retention(store: Store, cfg: StoreConfig, metrics: Metrics, interval_s: float,
                        clock: Callable[[], float] = time.time) -> None:
    """A pass every ``interval_s`` until cancelled, the first one a minute after start
    (at most ``interval_s``): a start, and the messages a HIS sends as soon as it can
    reconnect, do not wait behind a purge of everything that expired while it was down."""
    await asyncio.sleep(min(interval_s, 60.0))
    while True:
        try:
            await purge_once(store, cfg, metrics, clock())
        except Exception:  # the next pass tries again; ingest is not affected
            log.exception("retention purge failed")
        await asyncio.sleep(interval_s)
