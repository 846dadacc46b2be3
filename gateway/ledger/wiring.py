"""Connecting the 集采 ledger to the store, the ingest path and the HTTP side.

The ledger lives in the deployment's store (:func:`open_ledger`). A feed
(:class:`LedgerFeed`) folds committed events into it: the store marks each event folded
in the transaction that writes its effects, so a crash between a commit and its fold
loses nothing (the event is still unfolded at the next start) and an event is never
counted twice, whichever replica folds it. The feed also keeps the in-memory view in
step with what other replicas log (contracts imported, folds, deadlines), told at once
by the store's change notices and polling as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from canonical.errors import ConfigError
from canonical.model import CHINA_TZ, Event
from gateway.cds import CdsSettings, TrustedClient
from gateway.config import GatewayConfig
from gateway.ingest.pipeline import Advice
from gateway.ledger import Evaluation, Ledger, read_contracts
from gateway.ledger.calendar import load_calendar
from gateway.ledger.contract_import import checked_import
from gateway.ledger.dosage_forms import configure_dosage_forms, load_dosage_forms
from gateway.ledger.ledger import FoldFailed, ResolveItem
from gateway.ledger.legacy import import_legacy_ledger
from gateway.ledger.settings import ledger_settings
from gateway.rules.loader import load_rules
from gateway.store.base import Store, Topic
from gateway.store.ledger_rows import complete
from gateway.webhooks import WebhookSender
from mappings.crosswalk import Crosswalk

__all__ = [
    "LedgerFeed",
    "WarningPusher",
    "cds_settings",
    "item_resolver",
    "legacy_ledger_path",
    "open_ledger",
    "prescription_advisor",
    "warning_payload",
]

log = logging.getLogger(__name__)


CurrentCrosswalk = Callable[[], Crosswalk]


def item_resolver(current: CurrentCrosswalk) -> ResolveItem:
    """Hospital item code → national code, with the crosswalk current at each call."""
    # reads the crosswalk at call time: mappings change while the gateway runs
    def resolve(hospital_id: str, item_code: str) -> str | None:
        entry = current().lookup(hospital_id, item_code, datetime.now(CHINA_TZ).date())
        return entry.national_code if entry else None
    return resolve


def legacy_ledger_path(cfg: GatewayConfig) -> Path:
    """Where an earlier release kept its ledger file (``ledger.path``)."""
    return cfg.ledger.path or (cfg.data_dir / "ledger.db")


async def open_ledger(cfg: GatewayConfig, store: Store, resolve_item: ResolveItem) -> Ledger:
    """The ledger the configuration describes, on a started store: an old ledger file
    taken over if there is one, the view built, configured contracts imported.

    Raises:
        ConfigError: the calendar, rules or contracts file is invalid, or an old ledger
            file cannot be read.
        StoreError: the store failed.
    """
    lc = cfg.ledger
    # before any contract is read: the groups decide which contract a product is in
    configure_dosage_forms(load_dosage_forms(lc.dosage_forms))
    settings = ledger_settings(lc.thresholds, load_calendar(lc.calendar_dir))
    rules = load_rules(lc.rules)
    legacy = legacy_ledger_path(cfg)
    try:
        await import_legacy_ledger(legacy, store)
    except sqlite3.Error as exc:
        raise ConfigError([f"ledger.path: the earlier release's ledger file {legacy} cannot"
                           f" be imported ({exc}); move it away to start without it"]) from None
    ledger = Ledger(store, settings, rules, resolve_item=resolve_item)
    await ledger.load()
    if lc.contracts is not None:
        path = lc.contracts
        try:
            _, n, warnings = await checked_import(
                ledger, lambda check: read_contracts(path, check), datetime.now(CHINA_TZ))
        except ValueError as exc:
            raise ConfigError([f"ledger.contracts: {exc}"]) from None
        for w in warnings:
            log.warning("ledger.contracts %s: %s", path, w)
        log.info("ledger: %d contract(s) from %s", n, path)
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
                                       jwks_url=c.jwks_url or "",
                                       fhir_servers=c.fhir_servers)
    return CdsSettings(clients=clients, public_base_url=cfg.cds.public_base_url.rstrip("/"),
                       require_auth=cfg.cds.require_auth,
                       default_hospital_id=cfg.cds.default_hospital_id,
                       resolve_item=item_resolver(crosswalk))


def prescription_advisor(
    ledger: Ledger, on_warning: Callable[[Event, Evaluation], None] | None = None,
    on_committed: Callable[[Event, Evaluation], None] | None = None,
) -> Callable[[Event, datetime], Advice]:
    """The ingest path's hook that turns the rules' findings into ACK warnings.

    ``on_warning`` hears every evaluation with findings at once (counting);
    ``on_committed`` (webhooks) only once the message is committed and was not a
    duplicate: other systems must not hear of a prescription the gateway did not take, nor
    twice of one it took.
    """
    def advise(event: Event, now: datetime) -> Advice:
        evaluation = ledger.evaluate_prescription(event, now)
        if not evaluation.findings:
            return Advice(evaluation.issues, evaluation.blocked)
        if on_warning is not None:
            on_warning(event, evaluation)
        notices = () if on_committed is None else (partial(on_committed, event, evaluation),)
        return Advice(evaluation.issues, evaluation.blocked, notices)
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

    async def check_deadlines(self, now: datetime) -> int:
        """Push each overdue deadline once across every replica sharing the store (the
        store records who pushed it first); returns how many this process pushed."""
        n = 0
        for d in await self.ledger.deadlines(None, now):
            key = (d.hospital_id, d.kind, d.ref, d.state)
            if d.state not in _ALERT_STATES or key in self._told:
                continue
            self._told.add(key)
            if not await self.ledger.tables.claim_notice("deadline.overdue", "|".join(key),
                                                         now.timestamp()):
                continue  # another replica (or this one before a restart) sent it
            self._spawn("deadline.overdue", d.to_json())
            n += 1
        return n

    async def run(self) -> None:
        """Check deadlines every ``interval_s`` until cancelled."""
        while True:
            try:
                await self.check_deadlines(datetime.now(CHINA_TZ))
            except Exception:
                log.exception("deadline check failed")
            await asyncio.sleep(self.interval_s)

    async def close(self) -> None:
        """Let deliveries in flight finish (each has bounded retries), then close."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
        await self.sender.close()



class LedgerFeed:
    """Folds committed events into the ledger and keeps the view in step, off the
    acknowledgement path.

    The store hands it each group commit of this process (:meth:`committed`): those
    events are kept, so a fold reads only the bodies of events other replicas committed
    or that changed since (held events, rewritten when released). It folds after a
    commit (gathering ``coalesce_s`` of them), when told of events committed elsewhere
    or of ledger changes (:meth:`on_change`), and every ``poll_s`` anyway.
    """

    max_kept = 100_000  # events kept for the fold; beyond that they are read back instead

    def __init__(self, store: Store, ledger: Ledger, batch: int = 500,
                 coalesce_s: float = 0.1, poll_s: float = 5.0,
                 on_poison: Callable[[int, str], None] | None = None) -> None:
        self.store = store
        self.ledger = ledger
        self.on_poison = on_poison  # told of each event kept as poison (metrics)
        self.batch = batch
        self.coalesce_s = coalesce_s
        self.poll_s = poll_s
        self.wake = asyncio.Event()
        self.folded = 0  # events folded by this process
        self._events: dict[int, Event] = {}
        self._top = 0  # the highest sequence number kept
        self._fold_wanted = True
        self._catch_up_wanted = False
        self._stopping = False

    def committed(self, events: list[tuple[int, Event]]) -> None:
        """Store listener: events of one group commit of this process, in commit order."""
        kept = self._events
        if len(kept) >= self.max_kept:
            kept.clear()
        for seq, ev in events:
            if complete(ev):
                kept[seq] = ev
                if seq > self._top:
                    self._top = seq
        self._fold_wanted = True
        self.wake.set()

    def on_change(self, topic: Topic) -> None:
        """Store listener: events committed (or released) anywhere, or the ledger changed."""
        if topic is Topic.LEDGER:
            self._catch_up_wanted = True
            self.wake.set()
        elif topic is Topic.OUTBOX:
            self._fold_wanted = True
            self.wake.set()

    async def fold_once(self) -> int:
        """Fold the next batch of unfolded events; returns how many were folded (or set
        aside as poison)."""
        top = self._top
        try:
            seqs = await self.ledger.fold(self.batch, self._events)
        except FoldFailed as failed:
            return await self._fold_apart(failed)
        self.folded += len(seqs)
        # every event committed before the fold began that it did not return was folded
        # already or is held: forget what the fold has settled
        cutoff = seqs[-1] if seqs else 0
        if len(seqs) < self.batch:
            cutoff = max(cutoff, top)
        if cutoff and self._events:
            self._events = {s: e for s, e in self._events.items() if s > cutoff}
        return len(seqs)

    async def _fold_apart(self, failed: FoldFailed) -> int:
        """A batch failed: fold its events one by one and set aside the one that fails, so
        one bad event never stops the ledger for every event after it."""
        done = 0
        for _ in failed.seqs:
            try:
                done += len(await self.ledger.fold(1, self._events))
            except FoldFailed as one:
                if not await self.store.writable():
                    raise  # the store is down, not the event bad: try again later
                [seq] = one.seqs
                if await self.ledger.tables.poison(seq, one.reason, time.time()):
                    log.error("ledger: event %d cannot be folded and is set aside (%s); "
                              "`jicai-gateway ledger-poison` lists it, `--refold` folds it "
                              "again after a fix", seq, one.reason)
                    if self.on_poison is not None:
                        self.on_poison(seq, one.reason)
                done += 1
        return done

    async def fold_pending(self) -> int:
        """Fold until no unfolded event is left; returns how many were folded."""
        total = 0
        while True:
            n = await self.fold_once()
            total += n
            if n < self.batch or self._stopping:
                return total

    async def _step(self) -> None:
        fold, self._fold_wanted = self._fold_wanted, False
        catch_up, self._catch_up_wanted = self._catch_up_wanted, False
        if fold:
            await self.fold_pending()  # a fold catches the view up first
        elif catch_up:
            await self.ledger.catch_up()

    async def stop(self, task: asyncio.Task[None], timeout: float = 10.0) -> None:
        """End :meth:`run` (running as ``task``) after the fold in progress: a fold cut
        off inside its commit leaves its connection in a state only the server can clear,
        and the store's pool waits for it. Cancelled after ``timeout``."""
        self._stopping = True
        self.wake.set()
        await asyncio.wait({task}, timeout=timeout)
        task.cancel()  # a no-op once it has ended
        await asyncio.gather(task, return_exceptions=True)

    async def run(self) -> None:
        """Fold and follow until cancelled or :meth:`stop`-ped."""
        while not self._stopping:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ledger feed failed; trying again")
                self._fold_wanted = True
                await asyncio.sleep(1.0)
            if not (self._fold_wanted or self._catch_up_wanted):
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=self.poll_s)
                except TimeoutError:  # a notice may have been missed: look anyway
                    self._fold_wanted = True
            if self._stopping:
                return
            if self._fold_wanted and len(self._events) < self.batch:
                if self._catch_up_wanted:  # another replica's change: not held back
                    self._catch_up_wanted = False
                    with contextlib.suppress(Exception):  # the fold catches up anyway
                        await self.ledger.catch_up()
                # gather a few group commits per fold: one ledger transaction per tenth of
                # a second instead of one per group commit
                await asyncio.sleep(self.coalesce_s)
