"""Connecting the 集采 ledger to the store, the ingest path and the HTTP side.

The ledger follows the store: a feed task reads committed events after the ledger's
cursor and folds them in, moving the cursor in the same ledger transaction. A crash
between the store commit and the fold therefore loses nothing: on restart the feed
resumes after the cursor, and an event folded twice counts once (by event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from canonical.errors import ConfigError
from canonical.model import CHINA_TZ, Event
from gateway.cds import CdsSettings, TrustedClient
from gateway.config import GatewayConfig
from gateway.ingest.pipeline import Advice
from gateway.ledger import Evaluation, Ledger, LedgerSettings, LedgerStore, read_contracts
from gateway.ledger.calendar import load_calendar
from gateway.rules.loader import load_rules
from gateway.store.base import Store
from gateway.webhooks import WebhookSender
from mappings.crosswalk import Crosswalk

__all__ = [
    "LedgerFeed",
    "WarningPusher",
    "cds_settings",
    "make_ledger",
    "prescription_advisor",
    "warning_payload",
]

log = logging.getLogger(__name__)


CurrentCrosswalk = Callable[[], Crosswalk]


def _resolver(current: CurrentCrosswalk) -> Callable[[str, str], str | None]:
    # reads the crosswalk at call time: mappings change while the gateway runs
    def resolve(hospital_id: str, item_code: str) -> str | None:
        entry = current().lookup(hospital_id, item_code, datetime.now(CHINA_TZ).date())
        return entry.national_code if entry else None
    return resolve


def make_ledger(cfg: GatewayConfig, crosswalk: CurrentCrosswalk) -> Ledger:
    """The ledger the configuration describes, with contracts imported if configured.

    Raises:
        ConfigError: the calendar, rules or contracts file is invalid.
    """
    lc = cfg.ledger
    path = lc.path or (cfg.data_dir / "ledger.db")
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = LedgerSettings(calendar=load_calendar(lc.calendar_dir))
    ledger = Ledger(LedgerStore(path), settings, load_rules(lc.rules),
                    resolve_item=_resolver(crosswalk))
    if lc.contracts is not None:
        try:
            contracts = read_contracts(lc.contracts)
        except ValueError as exc:
            raise ConfigError([f"ledger.contracts: {exc}"]) from None
        n = ledger.load_contracts(contracts, datetime.now(CHINA_TZ))
        log.info("ledger: %d contract(s) from %s", n, lc.contracts)
    return ledger


def cds_settings(cfg: GatewayConfig, crosswalk: CurrentCrosswalk) -> CdsSettings:
    """CDS Hooks settings: trusted clients with their public keys (JWKS files or URLs).

    Raises:
        ConfigError: a JWKS file cannot be read.
    """
    clients = {}
    for i, c in enumerate(cfg.cds.clients):
        jwks: dict[str, Any] = {"keys": []}
        if c.jwks_file is not None:
            try:
                jwks = json.loads(c.jwks_file.read_text("utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError([f"cds.clients[{i}].jwks_file: cannot read {c.jwks_file}: "
                                   f"{exc}"]) from None
        clients[c.iss] = TrustedClient(c.iss, jwks, hospital_id=c.hospital_id,
                                       hospitals=frozenset(c.hospitals),
                                       jwks_url=c.jwks_url or "")
    return CdsSettings(clients=clients, public_base_url=cfg.cds.public_base_url.rstrip("/"),
                       require_auth=cfg.cds.require_auth,
                       default_hospital_id=cfg.cds.default_hospital_id,
                       resolve_item=_resolver(crosswalk))


def prescription_advisor(
    ledger: Ledger, on_warning: Callable[[Event, Evaluation], None] | None = None,
) -> Callable[[Event, datetime], Advice]:
    """The ingest path's hook that turns the rules' findings into ACK warnings."""
    def advise(event: Event, now: datetime) -> Advice:
        evaluation = ledger.evaluate_prescription(event, now)
        if evaluation.findings and on_warning is not None:
            on_warning(event, evaluation)
        return Advice(evaluation.issues, evaluation.blocked)
    return advise


def warning_payload(event: Event, evaluation: Evaluation) -> dict[str, Any]:
    """A webhook body for a prescription's warnings: who prescribed what, never the patient."""
    party = {"id": event.prescriber.id, "name": event.prescriber.name} \
        if event.prescriber else None
    dept = {"id": event.department.id, "name": event.department.name} \
        if event.department else None
    return {
        "hospital_id": event.hospital_id, "document_no": event.document_no,
        "control_id": event.control_id, "source": event.source,
        "occurred_at": event.occurred_at.isoformat(), "prescriber": party, "department": dept,
        "blocked": evaluation.blocked,
        "findings": [{"rule_id": f.rule_id, "severity": str(f.severity), "summary": f.summary,
                      "detail": f.detail, "action": f.action, "line_seq": f.line_seq,
                      "product_code": f.product_code,
                      "replacements": [r.national_code for r in f.replacements]}
                     for f in evaluation.findings],
    }


# deadline states worth telling other systems about: filing / payment past due, an order
# unanswered after 48 h (overdue) and again 24 h after the reminder (escalate)
_ALERT_STATES = frozenset({"overdue", "escalate"})


class WarningPusher:
    """Sends signed webhooks for prescription warnings and overdue deadlines, off the
    acknowledgement path (a slow receiver never delays an ACK)."""

    def __init__(self, sender: WebhookSender, ledger: Ledger, interval_s: float = 60.0) -> None:
        self.sender = sender
        self.ledger = ledger
        self.interval_s = interval_s
        self._tasks: set[asyncio.Task[Any]] = set()
        self._told: set[tuple[str, str, str, str]] = set()

    def _spawn(self, event_type: str, payload: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self.sender.send(event_type, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def prescription_warning(self, event: Event, evaluation: Evaluation) -> None:
        """Advisor hook: push the findings of one prescription."""
        self._spawn("prescription.warning", warning_payload(event, evaluation))

    def check_deadlines(self, now: datetime) -> int:
        """Push each overdue deadline once; returns how many were pushed."""
        n = 0
        for d in self.ledger.deadlines(None, now):
            key = (d.hospital_id, d.kind, d.ref, d.state)
            if d.state not in _ALERT_STATES or key in self._told:
                continue
            self._told.add(key)
            self._spawn("deadline.overdue", d.to_json())
            n += 1
        return n

    async def run(self) -> None:
        """Check deadlines every ``interval_s`` until cancelled."""
        while True:
            try:
                self.check_deadlines(datetime.now(CHINA_TZ))
            except Exception:
                log.exception("deadline check failed")
            await asyncio.sleep(self.interval_s)

    async def close(self) -> None:
        """Let deliveries in flight finish (each has bounded retries), then close."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self.sender.close()


class LedgerFeed:
    """Folds committed events into the ledger, off the acknowledgement path.

    At start it catches up from the store after its cursor; from then on the store hands
    it each group commit's events in commit order (:meth:`committed`), so the hot path
    never reads events back.
    """

    def __init__(self, store: Store, ledger: Ledger, batch: int = 500,
                 coalesce_s: float = 0.1) -> None:
        self.store = store
        self.ledger = ledger
        self.batch = batch
        self.coalesce_s = coalesce_s
        self.wake = asyncio.Event()
        self._live: list[tuple[int, Event]] = []
        self.slice = 64
        self.cursor = ledger.store.cursor()

    def committed(self, events: list[tuple[int, Event]]) -> None:
        """Store listener: events of one group commit, in commit order."""
        self._live.extend(events)
        self.wake.set()

    async def _apply(self, rows: list[tuple[int, Event]]) -> None:
        rows = [r for r in rows if r[0] > self.cursor]
        if not rows:
            return
        # folded on the event loop in small slices: a worker thread would only add GIL
        # hand-offs to this Python-bound work, and small slices keep ACK latency flat
        for i in range(0, len(rows), self.slice):
            chunk = rows[i:i + self.slice]
            self.ledger.apply([e for _, e in chunk], cursor=chunk[-1][0])
            self.cursor = chunk[-1][0]
            await asyncio.sleep(0)

    async def run_once(self) -> int:
        """Fold the next batch read from the store; returns how many events it read."""
        rows = await self.store.events_after(self.cursor, self.batch)
        await self._apply(rows)
        return len(rows)

    async def catch_up(self) -> None:
        """Fold everything the store committed after the cursor (at start, after a crash)."""
        while await self.run_once() == self.batch:
            pass

    async def run(self) -> None:
        """Catch up, then follow the commits until cancelled."""
        await self.catch_up()
        while True:
            self.wake.clear()
            rows, self._live = self._live, []
            try:
                for i in range(0, len(rows), self.batch):
                    await self._apply(rows[i:i + self.batch])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ledger feed failed; catching up from the store")
                await asyncio.sleep(1.0)
                await self.catch_up()
            if not self._live:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=1.0)
            if len(self._live) < self.batch:
                # gather a few group commits per fold: one ledger transaction per tenth of a
                # second instead of one per group commit
                await asyncio.sleep(self.coalesce_s)
