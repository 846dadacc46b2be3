"""The ledger: contract progress, deadlines and stock, folded from committed events.

Its state lives in the deployment's store (``store.ledger``); this class keeps an
in-memory view of it that serves prescriptions and CDS hooks without a query. A fold
(:meth:`Ledger.fold`) runs in the store's fold session, one process at a time: it brings
the view up to the store's version, plans the writes for the next unfolded events from
the view (:meth:`Ledger.plan`, no I/O), and has the store execute them, mark the events
folded and log what the view must change, in one transaction. Every process applies the
logged changes in version order (:meth:`Ledger.catch_up`), so each committed event is
counted once across every replica and all views agree.

Event conventions the ledger reads:

- ``RECEIPT`` / ``RETURN``: received into / returned from stock; count towards completion,
  shares and the online rate (``Event.online``). A receipt is the acceptance that starts the
  payment deadline (ref = ``document_no``). ``online=False`` opens the filing deadline.
- ``PURCHASE_ORDER``: online, it starts the 48 h answer clock (ref = ``document_no``);
  off-platform, it opens the filing deadline. The supplier's answer (ORS^O06, with
  ``extra["order_response"]``) stops the clock of the order it answers and starts none.
- ``DISPENSE`` / ``DISPENSE_RETURN``: use; ``PRESCRIPTION``: prescribing share.
- ``STOCKTAKE`` sets stock; ``STOCK_CHANGE`` adds its (signed) quantity.
- ``PAYMENT``: closes the payment deadline of every receipt ``extra["receipt_no"]`` names
  (``|``-separated), or of ``document_no`` when it names none (see :mod:`.answers`).
- any event with ``extra["order_no"]`` (or ``based_on``) answers that order (a receipt
  against it does too);
  ``extra["filing_for"]`` closes the filing deadline of that document.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import msgspec
import msgspec.structs

from adapters.base import Issue, Severity
from canonical.breaks import take_break, with_breaks
from canonical.errors import GatewayError
from canonical.model import Event, EventKind, Line, OrderControl
from gateway.ledger.answers import is_order_answer, orders_answered, receipts_paid
from gateway.ledger.calendar import WorkCalendar, local_date
from gateway.ledger.contracts import (
    Contract,
    WinningProduct,
    generic_key,
    is_drug_code,
    read_contracts_json,
)
from gateway.ledger.deadlines import (
    DEFAULT_POLICY,
    DeadlinePolicy,
    OrderState,
    delay_list_due,
    filing_due,
    order_state,
    payment_deadline,
)
from gateway.ledger.dosage_forms import current_dosage_forms
from gateway.ledger.metrics import ContractStatus, Counters, contract_status, ratio
from gateway.ledger.names import prescribed_by_brand
from gateway.ledger.price_watch import PurchasePrices, price_facts
from gateway.ledger.prices import PriceBands, above_winning_price
from gateway.ledger.trace import trace_sales
from gateway.rules import Finding, Replacement, RuleSet, RuleSeverity, evaluate_line
from gateway.store.base import Store
from gateway.store.ledger_records import (
    DailyKey,
    DailyRow,
    DeadlineRow,
    DeadlineUpdate,
    LedgerChange,
    LedgerSession,
    LedgerSnapshot,
    LedgerWrites,
    PriceFlag,
    TraceFlag,
    TraceSale,
    UntracedSale,
)

__all__ = [
    "DeadlineStatus",
    "DraftLine",
    "Evaluation",
    "FoldFailed",
    "Ledger",
    "LedgerSettings",
    "ResolveItem",
]

log = logging.getLogger(__name__)

ResolveItem = Callable[[str, str], "str | None"]

_PURCHASE = (EventKind.RECEIPT, EventKind.RETURN)
_USE = (EventKind.DISPENSE, EventKind.DISPENSE_RETURN)
# western drugs and Chinese patent medicines carry traceability codes; consumables and
# decoction pieces are not scanned
_DRUG_PREFIXES = ("X", "Z")
_COUNTED = (*_PURCHASE, *_USE, EventKind.PRESCRIPTION)


_PLAN_IN_THREAD = 256  # lines of a fold batch planned off the event loop


class FoldFailed(GatewayError):
    """Folding these events failed; ``reason`` says why (nothing of them was folded)."""

    def __init__(self, seqs: Sequence[int], reason: str) -> None:
        super().__init__(f"cannot fold events {list(seqs)[:5]}: {reason}")
        self.seqs = tuple(seqs)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    """Thresholds and the calendar; defaults are the documents' figures."""

    calendar: WorkCalendar
    policy: DeadlinePolicy = DEFAULT_POLICY
    online_rate_drug: Decimal = Decimal("0.90")
    online_rate_consumable: Decimal = Decimal("0.80")
    # national consumable codes counted as high-value (医保医用耗材 classification prefixes)
    high_value_prefixes: tuple[str, ...] = ("C",)
    demand_threshold: Decimal = Decimal("0.80")
    prepayment_ratio: Decimal = Decimal("0.30")  # R15
    # R1: the agreed ratio "in principle" 50–80 % of the year's use (SX 三(一))
    agreed_ratio_band: tuple[Decimal, Decimal] = (Decimal("0.50"), Decimal("0.80"))
    price_bands: PriceBands = field(default_factory=PriceBands)  # R10
    price_reference: str = "median"  # R10: median or min of the hospitals' prices
    # a drug sale from this day on is flagged without traceability codes (DOMAIN: the
    # fund settles a sale only once scanned from 2025-07-01; a province may differ)
    trace_codes_mandatory_from: date = date(2025, 7, 1)

    def __post_init__(self) -> None:
        # the configuration checks these too; a settings object built in code must not
        # fail later, on a prescription
        lo, hi = self.agreed_ratio_band
        if not Decimal(0) < lo <= hi <= 1:
            raise ValueError(f"agreed_ratio_band {lo}–{hi} needs 0 < min <= max <= 1")
        if self.price_reference not in ("median", "min"):
            raise ValueError(f"price_reference {self.price_reference!r}: median or min")


class DraftLine(msgspec.Struct, frozen=True):
    """One drug line of a prescription being written (CDS draft order or RXE)."""

    seq: int
    national_code: str
    name: str = ""
    quantity: Decimal = Decimal(0)


class Evaluation(msgspec.Struct, frozen=True):
    """What the rules say about one prescription."""

    issues: tuple[Issue, ...]
    blocked: bool
    findings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class DeadlineStatus:
    """A deadline as of a moment: open, met, missed or an order's state."""

    hospital_id: str
    kind: str  # filing | order | payment
    ref: str
    opened_at: datetime
    due_at: datetime
    closed_at: datetime | None
    state: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    # counted on weekdays alone: the due year has no calendar file yet
    provisional: bool = False

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form."""
        d = asdict(self)
        for k in ("opened_at", "due_at", "closed_at"):
            d[k] = None if d[k] is None else d[k].isoformat()
        d["detail"] = dict(self.detail)
        return d


def _line_qty(line: Line) -> Decimal:
    return line.national_quantity if line.national_quantity is not None else line.quantity


def _line_amount(line: Line) -> Decimal:
    if line.price is not None:
        return line.quantity * line.price
    if line.national_price is not None:
        return _line_qty(line) * line.national_price
    return Decimal(0)


def _unit_price(line: Line) -> Decimal | None:
    if line.national_price is not None:
        return line.national_price
    if line.price is not None and line.national_quantity and line.quantity:
        return line.price * line.quantity / line.national_quantity
    return line.price


def _severity(f: Finding) -> Severity:
    if f.block:
        return Severity.ERROR
    return Severity.INFO if f.severity is RuleSeverity.INFO else Severity.WARNING


# stock moves per event kind (a stocktake sets the stock instead)
_STOCK_SIGN = {EventKind.RECEIPT: 1, EventKind.RETURN: -1, EventKind.DISPENSE: -1,
               EventKind.DISPENSE_RETURN: 1, EventKind.STOCK_CHANGE: 1}


class _Source(Protocol):
    """Where a view catches up from: the tables, or a fold session holding the lock."""

    async def changes_after(self, version: int) -> list[tuple[int, LedgerChange]] | None: ...

    async def snapshot(self) -> LedgerSnapshot: ...


class Ledger:
    """Contracts, their progress and deadlines: kept in the deployment's store, with an
    in-memory view that answers prescriptions and CDS hooks without a query.

    Build it with :func:`~gateway.ledger.wiring.open_ledger`, or construct it and
    ``await`` :meth:`load`.
    """

    def __init__(self, store: Store, settings: LedgerSettings, rules: RuleSet | None = None,
                 resolve_item: ResolveItem | None = None) -> None:
        self.tables = store.ledger
        self.cds = store.cds
        self.catalogs = store.catalogs  # contracts' codes are checked against them
        self.settings = settings
        self.rules = rules or RuleSet(())
        self.resolve_item = resolve_item
        self.version = 0  # the store's ledger version the view reflects
        self._contracts: dict[str, Contract] = {}
        # (hospital, generic key, dosage-form key) → contracts, by agreement year
        self._by_generic: dict[tuple[str, str, str], list[Contract]] = {}
        self._keys: dict[str, tuple[str, str] | None] = {}  # national code → product key
        # contract id → the ids its stored body is kept under (another one when an earlier
        # release keyed contracts by generic name alone, or the dosage-form groups changed)
        self._stored_as: dict[str, frozenset[str]] = {}
        self._counters: dict[str, Counters] = {}
        self._status_cache: dict[str, tuple[date, int, Contract, Counters, ContractStatus]] = {}
        # rule results for a line, reused until contracts, counters or stock change
        # (prescriptions repeat the same products all day)
        self._findings_cache: dict[tuple[Any, ...], tuple[Finding, ...]] = {}
        self._stock: dict[tuple[str, str], Decimal] = {}
        self._online: dict[tuple[str, str], list[Decimal]] = {}
        self.prices = PurchasePrices()  # R10, R11
        self._orders: dict[tuple[str, str], DeadlineRow] = {}
        self._lock = asyncio.Lock()  # one task changes the view at a time

    async def load(self) -> None:
        """Build the view from the store."""
        async with self._lock:
            self._rebuild(await self.tables.snapshot())

    # -- contracts ---------------------------------------------------------------------

    async def load_contracts(self, contracts: Iterable[Contract], now: datetime) -> int:
        """Import contracts (replacing same ids); every process sharing the store folds its
        stored totals into them. Contracts identical to the stored ones are not written
        again, unless stored under another id (then they move to their own, and what else
        that body held is stored again under its own ids). Returns how many contracts were
        given.

        Raises:
            StoreError: nothing was stored.
        """
        items = list(contracts)
        await self.catch_up()
        changed = [c for c in items if self._contracts.get(c.contract_id) != c
                   or self._stored_as.get(c.contract_id) != frozenset({c.contract_id})]
        if changed:
            # a body stored under another id than its contract's (an earlier release kept
            # every agreement year and dosage form of a generic name in one body) goes, and
            # what of it this import does not replace is stored again under its own id
            given = {c.contract_id for c in changed}
            retire = {sid for c in changed
                      for sid in self._stored_as.get(c.contract_id, frozenset()) | {c.legacy_id}
                      } - given
            kept = [c for c in self._contracts.values()
                    if c.contract_id not in given and self._stored_as.get(c.contract_id,
                                                                         frozenset()) & retire]
            await self.tables.save_contracts([(c.contract_id, _contract_rows(c))
                                              for c in [*changed, *kept]], now,
                                             retire=sorted(retire))
            await self.catch_up()
        return len(items)

    def contracts(self, hospital_id: str | None = None) -> list[Contract]:
        """The known contracts, optionally one hospital's."""
        return [c for c in self._contracts.values()
                if hospital_id is None or c.hospital_id == hospital_id]

    def _index(self, contracts: Iterable[Contract]) -> None:
        self._contracts = {c.contract_id: c for c in contracts}
        self._by_generic = _by_product(self._contracts.values())
        self._keys = {}

    def product_key(self, national_code: str) -> tuple[str, str] | None:
        """(generic key, dosage-form key) of a national code: the contracts it counts in."""
        found = self._keys.get(national_code, ())
        if found != ():
            return found  # type: ignore[return-value]
        key = product_key(national_code)
        if len(self._keys) < 200_000:
            self._keys[national_code] = key
        return key

    def contract_for(self, hospital_id: str, national_code: str, day: date) -> Contract | None:
        """The contract whose agreement year covers ``day`` for the code's generic name and
        dosage-form group."""
        key = self.product_key(national_code)
        if key is None:
            return None
        for c in self._by_generic.get((hospital_id, *key), ()):
            if c.active_on(day):
                return c
        return None

    def predecessor(self, contract: Contract) -> Contract | None:
        """The agreement year before ``contract``'s: the previous year of its cycle, or for
        the first year of a renewal (接续) the last year of the cycle it continues."""
        same = self._by_generic.get((contract.hospital_id, *contract.group_key), [])
        earlier = [c for c in same if c.period_end < contract.period_start and (
            (c.project, c.batch) == (contract.project, contract.batch)
            or (contract.renews and contract.renews in (c.batch, f"{c.project}/{c.batch}")))]
        return max(earlier, key=lambda c: c.period_start, default=None)

    # -- the view ----------------------------------------------------------------------

    def _category(self, code: str) -> str | None:
        if is_drug_code(code):
            return "drug"
        if code.startswith(self.settings.high_value_prefixes):
            return "consumable"
        return None

    def _fold(self, hospital: str, code: str, kind: EventKind, day: date, online: bool,
              qty: Decimal, amount: Decimal) -> None:
        key = self.product_key(code)
        if key is not None:
            for c in self._by_generic.get((hospital, *key), ()):
                if c.active_on(day):
                    counters = self._counters.get(c.contract_id)
                    if counters is None:  # not setdefault: a Counters() per line is costly
                        counters = self._counters[c.contract_id] = Counters()
                    counters.add(kind, code in c.winning_codes, code, qty, amount, day)
        if kind is EventKind.RECEIPT:
            self.prices.add(hospital, code, day, qty, amount)
        if kind in _PURCHASE:
            cat = self._category(code)
            if cat is not None:
                sign = 1 if kind is EventKind.RECEIPT else -1
                tot = self._online.setdefault((hospital, cat), [Decimal(0), Decimal(0)])
                tot[1] += sign * amount
                if online:
                    tot[0] += sign * amount

    def _changed(self) -> None:
        self._findings_cache = {}

    def _rebuild(self, snap: LedgerSnapshot) -> None:
        contracts, self._stored_as = _stored_contracts(snap.contracts)
        self._index(contracts)
        self._changed()
        self._counters = {cid: Counters() for cid in self._contracts}
        self._online = {}
        self.prices = PurchasePrices()
        for r in snap.daily:
            self._fold(r.hospital_id, r.national_code, EventKind(r.kind), r.day, r.online,
                       r.qty, r.amount)
        self._stock = {(h, code): qty for h, code, qty in snap.stock}
        self._orders = {(d.hospital_id, d.ref): d for d in snap.open_orders}
        self.version = snap.version

    def apply_change(self, version: int, change: LedgerChange) -> None:
        """Apply the logged change of the view's next version.

        Raises:
            ValueError: ``version`` is not the next one, or the change needs a rebuild
                (contracts changed: :meth:`catch_up` rebuilds from a snapshot).
        """
        if version != self.version + 1:
            raise ValueError(f"ledger change {version} does not follow version {self.version}")
        if change.contracts:
            raise ValueError("a change of contracts rebuilds the view from the store")
        for r in change.daily:
            self._fold(r.hospital_id, r.national_code, EventKind(r.kind), r.day, r.online,
                       r.qty, r.amount)
        for hospital, code, qty in change.stock:
            self._stock[(hospital, code)] = qty
        if change.daily or change.stock:
            self._changed()
        for row in change.orders_opened:
            self._orders[(row.hospital_id, row.ref)] = row
        for key in change.orders_closed:
            self._orders.pop(key, None)
        for u in change.orders_reminded:
            order = self._orders.get((u.hospital_id, u.ref))
            if order is not None:
                self._orders[(u.hospital_id, u.ref)] = msgspec.structs.replace(
                    order, reminded_at=u.reminded_at)
        self.version = version

    async def catch_up(self) -> int:
        """Apply what was logged after the view's version (by any process sharing the
        store); returns the version the view is at."""
        async with self._lock:
            await self._catch_up(self.tables)
        return self.version

    async def _catch_up(self, source: _Source) -> None:
        while True:
            changes = await source.changes_after(self.version)
            if changes is None:  # fell behind the oldest kept entry
                self._rebuild(await source.snapshot())
                continue
            for version, change in changes:
                if version <= self.version:
                    continue  # a rebuild already covers it
                if change.contracts:
                    self._rebuild(await source.snapshot())
                    break
                self.apply_change(version, change)
            else:
                return

    # -- folding -----------------------------------------------------------------------

    async def fold(self, limit: int = 500, known: Mapping[int, Event] | None = None
                   ) -> list[int]:
        """Fold the next unfolded events (at most ``limit``, oldest first) into the store
        and the view, in the store's fold session.

        Args:
            limit: the most events in one transaction.
            known: events already at hand by sequence number (this process's commits):
                only the others are read from the store.

        Returns:
            The sequence numbers folded, ascending (empty: nothing was left).

        Raises:
            FoldFailed: planning or writing these events failed (nothing was folded);
                the feed folds them one by one and keeps the one that fails as poison.
            StoreError: the store could not be read (nothing was folded).
        """
        if not await self.tables.pending():
            # nothing queued, so no need to take the ledger's lock; a fold catches the
            # view up, and so does this
            await self.catch_up()
            return []
        async with self._lock:
            async with self.tables.folding() as session:
                if session.version != self.version:
                    await self._catch_up(session)
                seqs = await session.unfolded(limit)
                if not seqs:
                    return []
                events = await self._events(session, seqs, known or {})
                try:
                    # a 2,000-line dispense takes ~10 ms to plan: in a thread, where the
                    # loop keeps its turns, with breaks for it and the store's writer (the
                    # view changes only under this lock)
                    lines = sum(len(ev.lines) for _, ev in events)
                    writes = (await asyncio.to_thread(with_breaks, self.plan, events)
                              if lines > _PLAN_IN_THREAD else self.plan(events))
                    version, change = await session.commit(writes)
                except Exception as exc:  # one bad event must not stop every later one
                    raise FoldFailed(seqs, f"{type(exc).__name__}: {exc}") from exc
            if version == self.version + 1:
                self.apply_change(version, change)
            else:  # not expected under the session's lock; the log says what happened
                await self._catch_up(self.tables)
            return seqs

    @staticmethod
    async def _events(session: LedgerSession, seqs: list[int], known: Mapping[int, Event]
                      ) -> list[tuple[int, Event]]:
        found: list[tuple[int, Event]] = []
        missing: list[int] = []
        for seq in seqs:
            ev = known.get(seq)
            if ev is None:
                missing.append(seq)
            else:
                found.append((seq, ev))
        if missing:
            found.extend(await session.events(missing))
            found.sort(key=lambda pair: pair[0])
        return found

    def plan(self, events: Sequence[tuple[int, Event]]) -> LedgerWrites:
        """What folding ``events`` (seq, event; ascending) writes, planned from the view.

        Pure: the view is not changed (the store's logged change does that) and nothing
        is read or written.
        """
        daily: dict[DailyKey, list[Decimal]] = {}
        stock: dict[tuple[str, str], Decimal] = {}
        deadlines: list[DeadlineRow] = []
        updates: list[DeadlineUpdate] = []
        flags: list[PriceFlag] = []
        trace: list[TraceSale] = []
        untraced: list[UntracedSale] = []
        mandatory_from = self.settings.trace_codes_mandatory_from
        for _, ev in events:
            day = local_date(ev.occurred_at)
            for line in ev.lines:
                take_break()
                code = line.national_code
                if code:
                    self._plan_line(ev, line, code, day, daily, stock, flags, trace)
                    if (ev.kind is EventKind.DISPENSE and not line.trace_codes
                            and code.startswith(_DRUG_PREFIXES) and day >= mandatory_from):
                        untraced.append(UntracedSale(ev.event_id, line.seq, ev.hospital_id,
                                                     code, day))
            self._plan_deadlines(ev, deadlines, updates)
        return LedgerWrites(
            seqs=tuple(seq for seq, _ in events),
            daily=tuple(DailyRow(h, code, kind, day, online, qty, amount)
                        for (h, code, kind, day, online), (qty, amount) in daily.items()),
            stock=tuple((h, code, qty) for (h, code), qty in stock.items()),
            deadlines=tuple(deadlines), deadline_updates=tuple(updates),
            price_flags=tuple(flags), trace_sales=tuple(trace),
            untraced_sales=tuple(untraced))

    def _plan_line(self, ev: Event, line: Line, code: str, day: date,
                   daily: dict[DailyKey, list[Decimal]], stock: dict[tuple[str, str], Decimal],
                   flags: list[PriceFlag], trace: list[TraceSale]) -> None:
        qty = _line_qty(line)
        amount = _line_amount(line)
        kind = ev.kind
        if kind is EventKind.PRESCRIPTION and ev.order_control in (
                OrderControl.CANCEL, OrderControl.DISCONTINUE):
            qty, amount = -qty, -amount
        if line.trace_codes:
            trace.extend(trace_sales(ev, line, code, day))
        if kind in _COUNTED:
            # a batch holds hundreds of events for a few products: one row per key
            key = (ev.hospital_id, code, kind.value, day, ev.online)
            total = daily.get(key)
            if total is None:
                daily[key] = [qty, amount]
            else:
                total[0] += qty
                total[1] += amount
        skey = (ev.hospital_id, code)
        current = stock.get(skey, self._stock.get(skey))
        sign = _STOCK_SIGN.get(kind)
        if kind is EventKind.STOCKTAKE:
            stock[skey] = qty
        elif sign is not None and (current is not None or kind is EventKind.RECEIPT):
            stock[skey] = (current or Decimal(0)) + sign * qty
        if kind is EventKind.RECEIPT:
            contract = self.contract_for(ev.hospital_id, code, day)
            product = contract.product(code) if contract else None
            price = _unit_price(line)
            if product is not None and price is not None and above_winning_price(
                    price, product.winning_price):
                flags.append(PriceFlag(ev.event_id, line.seq, ev.hospital_id, code, day, price,
                                       product.winning_price))

    def _plan_deadlines(self, ev: Event, opened: list[DeadlineRow],
                        updates: list[DeadlineUpdate]) -> None:
        kind = ev.kind
        h = ev.hospital_id
        ref = ev.document_no or ev.event_id
        if (kind is EventKind.RECEIPT or kind is EventKind.PURCHASE_ORDER) and not (
                is_order_answer(ev)):
            amount = str(sum((_line_amount(x) for x in ev.lines), Decimal(0)))
            supplier = ev.supplier.name if ev.supplier else ""
            if not ev.online:
                opened.append(self._filing(ev, ref, amount))
            if kind is EventKind.PURCHASE_ORDER and ev.online:
                opened.append(DeadlineRow(h, "order", ref, ev.occurred_at,
                                          ev.occurred_at + self.settings.policy.order_response,
                                          None, None, {"supplier": supplier, "amount": amount}))
            if kind is EventKind.RECEIPT:
                opened.append(DeadlineRow(
                    h, "payment", ref, ev.occurred_at,
                    payment_deadline(ev.occurred_at, self.settings.policy), None, None,
                    {"amount": amount, "supplier": supplier}))
        if not ev.extra and kind is not EventKind.PAYMENT:
            return
        for order in orders_answered(ev):
            updates.append(DeadlineUpdate(h, "order", order, closed_at=ev.occurred_at))
        if kind is EventKind.PAYMENT:
            for receipt in receipts_paid(ev):
                updates.append(DeadlineUpdate(h, "payment", receipt, closed_at=ev.occurred_at))
        filed = next((v for k, v in ev.extra if k == "filing_for"), "")
        if filed:
            updates.append(DeadlineUpdate(h, "filing", filed, closed_at=ev.occurred_at))

    def _filing(self, ev: Event, ref: str, amount: str) -> DeadlineRow:
        due, provisional = filing_due(ev.occurred_at, self.settings.calendar,
                                      emergency=ev.emergency, policy=self.settings.policy)
        if provisional:
            log.warning("filing deadline for %s is provisional: no working-day calendar for "
                        "%d", ref, due.year)
        return DeadlineRow(ev.hospital_id, "filing", ref, ev.occurred_at, due, None, None,
                           {"emergency": ev.emergency, "provisional": provisional,
                            "event_id": ev.event_id, "amount": amount})

    # -- provisional deadlines -----------------------------------------------------------

    def use_calendar(self, calendar: WorkCalendar) -> None:
        """Count working days with ``calendar`` from now on (a year's file was added)."""
        self.settings = replace(self.settings, calendar=calendar)

    async def provisional_deadlines(self) -> list[DeadlineRow]:
        """Stored deadlines counted without their year's calendar."""
        return [d for d in await self.tables.deadlines()
                if d.kind == "filing" and d.detail.get("provisional")]

    async def recount_provisional(self) -> tuple[int, int]:
        """Count each provisional deadline again with the current calendar: (how many
        now have their real due time, how many stay provisional)."""
        recounted: list[DeadlineRow] = []
        still = 0
        for d in await self.provisional_deadlines():
            due, provisional = filing_due(d.opened_at, self.settings.calendar,
                                          emergency=bool(d.detail.get("emergency")),
                                          policy=self.settings.policy)
            if provisional:
                still += 1
                continue
            detail = {**d.detail, "provisional": False,
                      "provisional_due_at": d.due_at.isoformat()}
            recounted.append(msgspec.structs.replace(d, due_at=due, detail=detail))
        if recounted:
            await self.tables.reschedule_deadlines(recounted)
            log.info("ledger: %d provisional deadline(s) counted again with the calendar",
                     len(recounted))
        return len(recounted), still

    # -- explicit deadline updates -----------------------------------------------------

    async def record_order_reminder(self, hospital_id: str, order_no: str, at: datetime
                                    ) -> bool:
        """Note that the distributor was reminded (starts the 24 h escalation clock)."""
        [ok] = await self.tables.update_deadlines(
            [DeadlineUpdate(hospital_id, "order", order_no, reminded_at=at)])
        if ok:
            await self.catch_up()
        return ok

    async def close_deadline(self, hospital_id: str, kind: str, ref: str, at: datetime) -> bool:
        """Close a filing, order or payment deadline by hand (e.g. filing done on paper)."""
        [ok] = await self.tables.update_deadlines(
            [DeadlineUpdate(hospital_id, kind, ref, closed_at=at)])
        if ok:
            await self.catch_up()
        return ok

    async def deadlines(self, hospital_id: str | None, now: datetime) -> list[DeadlineStatus]:
        """Every deadline (read from the store) with its state as of ``now``."""
        out = []
        for d in await self.tables.deadlines(hospital_id):
            if d.kind == "order":
                st = order_state(d.opened_at, now, answered_at=d.closed_at,
                                 reminded_at=d.reminded_at, policy=self.settings.policy)
                state = st.value
                detail = dict(d.detail)
                if st is OrderState.OVERDUE:
                    # counted on each read: the real date replaces the weekday count as
                    # soon as the year's calendar file is added
                    due, provisional = delay_list_due(d.due_at, self.settings.calendar,
                                                      self.settings.policy)
                    detail["delay_list_due"] = due.isoformat()
                    if provisional:
                        detail["delay_list_provisional"] = True
                out.append(DeadlineStatus(d.hospital_id, d.kind, d.ref, d.opened_at, d.due_at,
                                          d.closed_at, state, detail))
                continue
            if d.closed_at is not None:
                state = "met" if d.closed_at <= d.due_at else "late"
            else:
                state = "overdue" if now > d.due_at else "open"
            out.append(DeadlineStatus(d.hospital_id, d.kind, d.ref, d.opened_at, d.due_at,
                                      d.closed_at, state, d.detail,
                                      provisional=bool(d.detail.get("provisional"))))
        return out

    # -- reading the view --------------------------------------------------------------

    def status(self, contract: Contract, now: datetime) -> ContractStatus:
        """One contract's metrics as of ``now`` (from memory)."""
        counters = self._counters.get(contract.contract_id)
        if counters is None:
            return contract_status(contract, Counters(), local_date(now))
        day = local_date(now)
        # every prescription line reads its contract's status: compute it once per day and
        # per change of the counters, not per line
        cached = self._status_cache.get(contract.contract_id)
        if (cached is not None and cached[0] == day and cached[1] == counters.version
                and cached[2] is contract and cached[3] is counters):
            return cached[4]
        st = contract_status(contract, counters, day)
        self._status_cache[contract.contract_id] = (day, counters.version, contract, counters, st)
        return st

    def stock(self, hospital_id: str, national_code: str) -> Decimal | None:
        """Warehouse stock of a product, None if never reported."""
        return self._stock.get((hospital_id, national_code))

    def online_rate(self, hospital_id: str, category: str) -> Decimal | None:
        """To-date online purchase rate (by amount) of drugs or high-value consumables."""
        tot = self._online.get((hospital_id, category))
        return None if tot is None else ratio(tot[0], tot[1])

    def _winning_stock(self, hospital: str, products: Sequence[WinningProduct]
                       ) -> tuple[Decimal | None, bool, list[WinningProduct]]:
        total: Decimal | None = None
        all_known = True
        in_stock: list[WinningProduct] = []
        for p in products:
            s = self._stock.get((hospital, p.national_code))
            if s is None:
                all_known = False
                in_stock.append(p)  # unknown stock: still worth suggesting
                continue
            total = s if total is None else total + s
            if s > 0:
                in_stock.append(p)
        out_of_stock = all_known and bool(products) and not any(
            (self._stock.get((hospital, p.national_code)) or 0) > 0 for p in products)
        return total, out_of_stock, in_stock

    def line_facts(self, hospital_id: str, line: DraftLine, now: datetime
                   ) -> tuple[dict[str, Any], tuple[Replacement, ...]]:
        """The facts the rules read for one prescription line, and the replacements."""
        code = line.national_code
        facts: dict[str, Any] = {"hospital_id": hospital_id, "product_code": code,
                                 "product_name": line.name, "has_contract": False,
                                 "is_winning": False, "is_non_winning": False,
                                 "prescribed_by_brand": False, "winning_out_of_stock": False,
                                 "lagging": False}
        contract = self.contract_for(hospital_id, code, local_date(now))
        facts.update(price_facts(self.prices, hospital_id, code,
                                 contract.product(code) if contract else None,
                                 self.settings.price_bands, self.settings.price_reference))
        if contract is None:
            return facts, ()
        st = self.status(contract, now)
        winning = code in contract.winning_codes
        total, out_of_stock, in_stock = self._winning_stock(hospital_id, contract.products)
        suggest = [p for p in in_stock if p.national_code != code] or [
            p for p in contract.products if p.national_code != code]
        first = suggest[0] if suggest else contract.products[0]
        name = line.name.strip()
        facts.update({
            "generic_name": contract.generic_name, "has_contract": True, "is_winning": winning,
            "is_non_winning": not winning, "project": contract.project, "batch": contract.batch,
            "completion": st.completion, "time_progress": st.time_progress,
            "progress_ratio": st.progress_ratio, "lagging": st.lagging,
            "projected_completion": st.projected_completion, "days_elapsed": st.days_elapsed,
            "days_left": st.days_left, "agreed_volume": contract.agreed_volume,
            "received_qty": st.received_qty, "agreed_ratio": contract.agreed_ratio,
            "use_share": st.use_share, "winning_code": first.national_code,
            "winning_name": first.product_name, "winning_price": first.winning_price,
            "winning_stock": total, "winning_out_of_stock": out_of_stock,
            "prescribed_by_brand": prescribed_by_brand(name, contract.generic_name,
                                                       current_dosage_forms()),
        })
        repl = tuple(Replacement(p.national_code, p.product_name, p.winning_price)
                     for p in suggest)
        return facts, repl

    def evaluate_lines(self, hospital_id: str, lines: Sequence[DraftLine], now: datetime
                       ) -> tuple[Finding, ...]:
        """Run the rules over each line of a draft prescription."""
        out: list[Finding] = []
        day = local_date(now)
        cache = self._findings_cache
        for line in lines:
            key = (hospital_id, line.seq, line.national_code, line.name, day)
            found = cache.get(key)
            if found is None:
                facts, repl = self.line_facts(hospital_id, line, now)
                found = tuple(evaluate_line(self.rules, facts, line_seq=line.seq,
                                            replacements=repl))
                if len(cache) < 100_000:
                    cache[key] = found
            out.extend(found)
        return tuple(out)

    def evaluate_prescription(self, event: Event, now: datetime) -> Evaluation:
        """Warnings for a prescription event (RDE^O11): issues for the ACK, blocked for AR.

        Args:
            event: a PRESCRIPTION event; lines without a national code are looked up with
                ``resolve_item`` when one was given, else skipped.
            now: the evaluation time (time progress and stock are read as of it).

        Returns:
            The issues (warning severity; error for a blocking rule), whether a blocking rule
            fired, and the findings.
        """
        lines = []
        for line in event.lines:
            code = line.national_code
            if not code and self.resolve_item is not None:
                code = self.resolve_item(event.hospital_id, line.item_code)
            if code:
                lines.append(DraftLine(line.seq, code, line.item_name, _line_qty(line)))
        findings = self.evaluate_lines(event.hospital_id, lines, now)
        issues = tuple(Issue(_severity(f), f"{f.summary}：{f.detail} {f.action}".strip(),
                             code=f.rule_id, location="RXE-2") for f in findings)
        return Evaluation(issues, any(f.block for f in findings), findings)

    def open_orders(self) -> list[DeadlineRow]:
        """Open distributor orders (from memory)."""
        return list(self._orders.values())

    async def daily_rows(self, hospital_id: str, since: date | None, until: date | None
                         ) -> list[DailyRow]:
        """Stored daily totals for reports."""
        return await self.tables.daily(hospital_id, since=since, until=until)

    async def untraced_sales(self, hospital_id: str) -> list[UntracedSale]:
        """Drug sales without traceability codes once they were mandatory, by day."""
        return await self.tables.untraced_sales(hospital_id)

    async def price_flags(self, hospital_id: str) -> list[PriceFlag]:
        """Stored purchases of winning products above the winning price."""
        return await self.tables.price_flags(hospital_id)

    async def trace_flags(self, hospital_id: str) -> list[TraceFlag]:
        """Stored traceability codes sold more than once."""
        return await self.tables.trace_flags(hospital_id)

    def fold_rows(self, rows: Iterable[DailyRow], contracts: Iterable[Contract]
                  ) -> dict[str, Counters]:
        """Counters of ``contracts`` from daily rows (for period reports)."""
        index = _by_product(contracts)
        out: dict[str, Counters] = {}
        for r in rows:
            key = self.product_key(r.national_code)
            if key is None:
                continue
            for c in index.get((r.hospital_id, *key), ()):
                if c.active_on(r.day):
                    out.setdefault(c.contract_id, Counters()).add(
                        EventKind(r.kind), r.national_code in c.winning_codes, r.national_code,
                        r.qty, r.amount, r.day)
        return out


def product_key(national_code: str) -> tuple[str, str] | None:
    """(generic key, dosage-form key) of a national code, None for other codes."""
    gkey = generic_key(national_code)
    if gkey is None:
        return None
    return gkey, current_dosage_forms().code_group(national_code)


def _by_product(contracts: Iterable[Contract]) -> dict[tuple[str, str, str], list[Contract]]:
    index: dict[tuple[str, str, str], list[Contract]] = {}
    for c in contracts:
        index.setdefault((c.hospital_id, *c.group_key), []).append(c)
    for lst in index.values():
        lst.sort(key=lambda c: c.period_start)
    return index


def _stored_contracts(bodies: Iterable[Mapping[str, Any]]
                      ) -> tuple[list[Contract], dict[str, frozenset[str]]]:
    """The contracts of stored bodies, and the ids each is stored under.

    A body is read on its own: one of an earlier release holds every dosage form and
    agreement year of a generic name (stored under :attr:`Contract.legacy_id`, without an
    ``id``). When two bodies give the same contract, the one stored under its own id wins.
    """
    found: dict[str, Contract] = {}
    stored_as: dict[str, set[str]] = {}
    for body in bodies:
        rows = body.get("rows") or []
        if not rows:
            continue
        for c in read_contracts_json(rows, source="store"):
            sid = str(body.get("id") or c.legacy_id)
            stored_as.setdefault(c.contract_id, set()).add(sid)
            if c.contract_id not in found or sid == c.contract_id:
                found[c.contract_id] = c
    return list(found.values()), {k: frozenset(v) for k, v in stored_as.items()}


def _contract_rows(c: Contract) -> dict[str, Any]:
    # stored in the same row shape the importers read, so one parser serves both; the id
    # says which key the body is under, should the contract's id change
    return {"id": c.contract_id, "rows": [{
        "hospital_id": c.hospital_id, "project": c.project, "batch": c.batch,
        "generic_name": c.generic_name, "national_code": p.national_code,
        "product_name": p.product_name, "winning_price": str(p.winning_price),
        "supplier": p.supplier, "cycle_start": c.cycle_start.isoformat(),
        "cycle_end": c.cycle_end.isoformat(), "agreed_volume": str(c.agreed_volume),
        "agreed_ratio": str(c.agreed_ratio), "category": c.category, "unit": c.unit,
        "reported_demand": "" if c.reported_demand is None else str(c.reported_demand),
        "last_year_purchases": "" if c.last_year_purchases is None
        else str(c.last_year_purchases), "dosage_form": c.dosage_form,
        "year_start": "" if c.year_start is None else c.year_start.isoformat(),
        "year_end": "" if c.year_end is None else c.year_end.isoformat(),
        "renews": c.renews, **_product_terms_row(p)} for p in c.products]}


def _product_terms_row(p: WinningProduct) -> dict[str, str]:
    return {col: "" if v is None else str(v) for col, v in (
        ("reference_price", p.reference_price), ("product_agreed_volume", p.agreed_volume),
        ("prepayment_received", p.prepayment_received))}
