"""The ledger: contract progress, deadlines and stock, folded from committed events.

The gateway calls :meth:`Ledger.apply` after each commit. Every event is applied once
(its ``event_id`` is recorded in the same SQLite transaction as its effects), so a
replay after a crash counts nothing twice. An in-memory view mirrors the tables and
serves prescriptions without a query.

Event conventions the ledger reads:

- ``RECEIPT`` / ``RETURN``: received into / returned from stock; count towards completion,
  shares and the online rate (``Event.online``). A receipt is the acceptance that starts the
  payment deadline (ref = ``document_no``). ``online=False`` opens the filing deadline.
- ``PURCHASE_ORDER``: online, it starts the 48 h answer clock (ref = ``document_no``);
  off-platform, it opens the filing deadline.
- ``DISPENSE`` / ``DISPENSE_RETURN``: use; ``PRESCRIPTION``: prescribing share.
- ``STOCKTAKE`` sets stock; ``STOCK_CHANGE`` adds its (signed) quantity.
- ``PAYMENT``: closes the payment deadline named by ``extra["receipt_no"]`` or ``document_no``.
- any event with ``extra["order_no"]`` answers that order (a receipt against it does too);
  ``extra["filing_for"]`` closes the filing deadline of that document.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from adapters.base import Issue, Severity
from canonical.model import Event, EventKind, Line, OrderControl
from gateway.ledger.calendar import CalendarGapError, WorkCalendar, end_of_day, local_date
from gateway.ledger.contracts import Contract, WinningProduct, generic_key, is_drug_code
from gateway.ledger.deadlines import (
    DEFAULT_POLICY,
    DeadlinePolicy,
    OrderState,
    filing_deadline,
    order_state,
    payment_deadline,
)
from gateway.ledger.metrics import ContractStatus, Counters, contract_status, ratio
from gateway.ledger.prices import above_winning_price
from gateway.ledger.store import DailyRow, DeadlineRow, LedgerStore
from gateway.rules import Finding, Replacement, RuleSet, RuleSeverity, evaluate_line

__all__ = [
    "DeadlineStatus",
    "DraftLine",
    "Evaluation",
    "Ledger",
    "LedgerSettings",
    "ResolveItem",
]

log = logging.getLogger(__name__)

ResolveItem = Callable[[str, str], "str | None"]

_PURCHASE = (EventKind.RECEIPT, EventKind.RETURN)
_USE = (EventKind.DISPENSE, EventKind.DISPENSE_RETURN)
_COUNTED = (*_PURCHASE, *_USE, EventKind.PRESCRIPTION)


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


class Ledger:
    """Contracts, their progress and deadlines, in SQLite and mirrored in memory."""

    def __init__(self, store: LedgerStore, settings: LedgerSettings, rules: RuleSet | None = None,
                 resolve_item: ResolveItem | None = None) -> None:
        self.store = store
        self.settings = settings
        self.rules = rules or RuleSet(())
        self.resolve_item = resolve_item
        self._contracts: dict[str, Contract] = {}
        self._by_generic: dict[tuple[str, str], list[Contract]] = {}
        self._counters: dict[str, Counters] = {}
        self._status_cache: dict[str, tuple[date, int, Contract, Counters, ContractStatus]] = {}
        # bumped whenever contracts, counters or stock change; rule results for a line are
        # reused while it stands (prescriptions repeat the same products all day)
        self._view_version = 0
        self._findings_cache: dict[tuple[Any, ...], tuple[Finding, ...]] = {}
        self._stock: dict[tuple[str, str], Decimal] = {}
        self._online: dict[tuple[str, str], list[Decimal]] = {}
        self._orders: dict[tuple[str, str], DeadlineRow] = {}
        from gateway.ledger.contracts import read_contracts_json

        stored = [row for body in self.store.load_contracts() for row in body["rows"]]
        if stored:
            self._index(read_contracts_json(stored, source=store.path))
        self._rebuild()

    # -- contracts ---------------------------------------------------------------------

    def load_contracts(self, contracts: Iterable[Contract], now: datetime) -> int:
        """Import contracts (replacing same ids) and refold the stored totals into them."""
        items = list(contracts)
        self.store.save_contracts(((c.contract_id, _contract_rows(c)) for c in items), now)
        merged = {**self._contracts, **{c.contract_id: c for c in items}}
        self._index(list(merged.values()))
        self._rebuild()
        return len(items)

    def contracts(self, hospital_id: str | None = None) -> list[Contract]:
        """The known contracts, optionally one hospital's."""
        return [c for c in self._contracts.values()
                if hospital_id is None or c.hospital_id == hospital_id]

    def _index(self, contracts: Iterable[Contract]) -> None:
        self._contracts = {c.contract_id: c for c in contracts}
        by_generic: dict[tuple[str, str], list[Contract]] = {}
        for c in self._contracts.values():
            by_generic.setdefault((c.hospital_id, c.generic_key), []).append(c)
        for lst in by_generic.values():
            lst.sort(key=lambda c: c.cycle_start)
        self._by_generic = by_generic

    def contract_for(self, hospital_id: str, national_code: str, day: date) -> Contract | None:
        """The contract whose cycle covers ``day`` for the code's generic name."""
        key = generic_key(national_code)
        if key is None:
            return None
        for c in self._by_generic.get((hospital_id, key), ()):
            if c.active_on(day):
                return c
        return None

    # -- folding -----------------------------------------------------------------------

    def _category(self, code: str) -> str | None:
        if is_drug_code(code):
            return "drug"
        if code.startswith(self.settings.high_value_prefixes):
            return "consumable"
        return None

    def _fold(self, hospital: str, code: str, kind: EventKind, day: date, online: bool,
              qty: Decimal, amount: Decimal) -> None:
        key = generic_key(code)
        if key is not None:
            for c in self._by_generic.get((hospital, key), ()):
                if c.active_on(day):
                    counters = self._counters.get(c.contract_id)
                    if counters is None:  # not setdefault: a Counters() per line is costly
                        counters = self._counters[c.contract_id] = Counters()
                    counters.add(kind, code in c.winning_codes, code, qty, amount, day)
        if kind in _PURCHASE:
            cat = self._category(code)
            if cat is not None:
                sign = 1 if kind is EventKind.RECEIPT else -1
                tot = self._online.setdefault((hospital, cat), [Decimal(0), Decimal(0)])
                tot[1] += sign * amount
                if online:
                    tot[0] += sign * amount

    def _changed(self) -> None:
        self._view_version += 1
        self._findings_cache = {}

    def _rebuild(self) -> None:
        self._changed()
        self._counters = {cid: Counters() for cid in self._contracts}
        self._online = {}
        for r in self.store.daily():
            self._fold(r.hospital_id, r.national_code, EventKind(r.kind), r.day, r.online,
                       r.qty, r.amount)
        self._stock = self.store.stock()
        self._orders = {(d.hospital_id, d.ref): d
                        for d in self.store.deadlines(open_only=True) if d.kind == "order"}

    def apply(self, events: Sequence[Event], cursor: int | None = None) -> None:
        """Fold committed events in; an event already applied is skipped.

        Args:
            events: canonical events, in commit order.
            cursor: the store sequence number of the last event, recorded in the same
                transaction so that a restart resumes exactly after it.
        """
        folds: list[tuple[str, str, EventKind, date, bool, Decimal, Decimal]] = []
        stock: dict[tuple[str, str], Decimal] = {}
        opened_orders: list[DeadlineRow] = []
        closed_orders: list[tuple[str, str]] = []
        # a feed batch holds hundreds of events for a few products: sum the daily totals
        # and write each once, rather than one upsert per line
        daily: dict[tuple[str, str, str, date, bool], list[Decimal]] = {}
        with self.store.transaction() as db:
            if cursor is not None:
                self.store.set_cursor(db, cursor)
            fresh = self.store.mark_applied_many(db, [ev.event_id for ev in events])
            for ev in events:
                if ev.event_id not in fresh:
                    continue
                fresh.discard(ev.event_id)  # the same event twice in one batch counts once
                day = local_date(ev.occurred_at)
                for line in ev.lines:
                    code = line.national_code
                    if not code:
                        continue
                    self._apply_line(db, ev, line, code, day, folds, stock, daily)
                opened, closed = self._apply_deadlines(db, ev)
                opened_orders.extend(opened)
                closed_orders.extend(closed)
            self.store.add_daily_many(db, daily)
            for (hospital_id, code), qty in stock.items():
                self.store.set_stock(db, hospital_id, code, qty)
        # memory changes only after the transaction committed
        for f in folds:
            self._fold(*f)
        self._stock.update(stock)
        if folds or stock:
            self._changed()
        for row in opened_orders:
            self._orders[(row.hospital_id, row.ref)] = row
        for key in closed_orders:
            self._orders.pop(key, None)

    def _apply_line(self, db: Any, ev: Event, line: Line, code: str, day: date,
                    folds: list[tuple[str, str, EventKind, date, bool, Decimal, Decimal]],
                    stock: dict[tuple[str, str], Decimal],
                    daily: dict[tuple[str, str, str, date, bool], list[Decimal]]) -> None:
        qty = _line_qty(line)
        amount = _line_amount(line)
        kind = ev.kind
        if kind is EventKind.PRESCRIPTION and ev.order_control in (
                OrderControl.CANCEL, OrderControl.DISCONTINUE):
            qty, amount = -qty, -amount
        if kind is EventKind.DISPENSE:
            for trace in line.trace_codes:
                if not self.store.record_sale_trace(db, ev.hospital_id, trace, ev.event_id,
                                                    code, day):
                    log.warning("traceability code %s sold again (event %s)", trace,
                                ev.event_id)
        if kind in _COUNTED:
            total = daily.setdefault((ev.hospital_id, code, kind.value, day, ev.online),
                                     [Decimal(0), Decimal(0)])
            total[0] += qty
            total[1] += amount
            folds.append((ev.hospital_id, code, kind, day, ev.online, qty, amount))
        skey = (ev.hospital_id, code)
        current = stock.get(skey, self._stock.get(skey))
        delta = {EventKind.RECEIPT: qty, EventKind.RETURN: -qty, EventKind.DISPENSE: -qty,
                 EventKind.DISPENSE_RETURN: qty, EventKind.STOCK_CHANGE: qty}.get(kind)
        new: Decimal | None = None
        if kind is EventKind.STOCKTAKE:
            new = qty
        elif delta is not None and (current is not None or kind is EventKind.RECEIPT):
            new = (current or Decimal(0)) + delta
        if new is not None:
            stock[skey] = new
        if kind is EventKind.RECEIPT:
            contract = self.contract_for(ev.hospital_id, code, day)
            product = contract.product(code) if contract else None
            price = _unit_price(line)
            if product is not None and price is not None and above_winning_price(
                    price, product.winning_price):
                self.store.add_price_flag(db, ev.event_id, line.seq, ev.hospital_id, code, day,
                                          price, product.winning_price)

    def _apply_deadlines(self, db: Any, ev: Event
                         ) -> tuple[list[DeadlineRow], list[tuple[str, str]]]:
        extra = dict(ev.extra)
        ref = ev.document_no or ev.event_id
        h = ev.hospital_id
        opened: list[DeadlineRow] = []
        closed: list[tuple[str, str]] = []
        amount = sum((_line_amount(x) for x in ev.lines), Decimal(0))
        if ev.kind in (EventKind.RECEIPT, EventKind.PURCHASE_ORDER) and not ev.online:
            provisional = False
            try:
                due = filing_deadline(ev.occurred_at, self.settings.calendar,
                                      emergency=ev.emergency, policy=self.settings.policy)
            except CalendarGapError as exc:
                # weekends only, marked provisional, until the operator adds the year's file
                log.warning("filing deadline for %s is provisional: %s", ref, exc)
                provisional = True
                n = (self.settings.policy.filing_working_days_emergency if ev.emergency
                     else self.settings.policy.filing_working_days)
                due = end_of_day(_add_weekdays(local_date(ev.occurred_at), n))
            self.store.open_deadline(db, DeadlineRow(
                h, "filing", ref, ev.occurred_at, due, None, None,
                {"emergency": ev.emergency, "provisional": provisional, "event_id": ev.event_id,
                 "amount": str(amount)}))
        if ev.kind is EventKind.PURCHASE_ORDER and ev.online:
            row = DeadlineRow(h, "order", ref, ev.occurred_at,
                              ev.occurred_at + self.settings.policy.order_response, None, None,
                              {"supplier": ev.supplier.name if ev.supplier else "",
                               "amount": str(amount)})
            if self.store.open_deadline(db, row):
                opened.append(row)
        if ev.kind is EventKind.RECEIPT:
            self.store.open_deadline(db, DeadlineRow(
                h, "payment", ref, ev.occurred_at, payment_deadline(ev.occurred_at,
                                                                    self.settings.policy),
                None, None, {"amount": str(amount),
                             "supplier": ev.supplier.name if ev.supplier else ""}))
        answered = extra.get("order_no")
        if answered and self.store.update_deadline(db, h, "order", answered,
                                                   closed_at=ev.occurred_at):
            closed.append((h, answered))
        if ev.kind is EventKind.PAYMENT:
            self.store.update_deadline(db, h, "payment", extra.get("receipt_no", ref),
                                       closed_at=ev.occurred_at)
        if extra.get("filing_for"):
            self.store.update_deadline(db, h, "filing", extra["filing_for"],
                                       closed_at=ev.occurred_at)
        return opened, closed

    # -- explicit deadline updates -----------------------------------------------------

    def record_order_reminder(self, hospital_id: str, order_no: str, at: datetime) -> bool:
        """Note that the distributor was reminded (starts the 24 h escalation clock)."""
        with self.store.transaction() as db:
            ok = self.store.update_deadline(db, hospital_id, "order", order_no, reminded_at=at)
        if ok:
            self._orders = {(d.hospital_id, d.ref): d
                            for d in self.store.deadlines(open_only=True) if d.kind == "order"}
        return ok

    def close_deadline(self, hospital_id: str, kind: str, ref: str, at: datetime) -> bool:
        """Close a filing, order or payment deadline by hand (e.g. filing done on paper)."""
        with self.store.transaction() as db:
            ok = self.store.update_deadline(db, hospital_id, kind, ref, closed_at=at)
        if ok and kind == "order":
            self._orders.pop((hospital_id, ref), None)
        return ok

    def deadlines(self, hospital_id: str | None, now: datetime) -> list[DeadlineStatus]:
        """Every deadline with its state as of ``now``."""
        out = []
        for d in self.store.deadlines(hospital_id):
            if d.kind == "order":
                st = order_state(d.opened_at, now, answered_at=d.closed_at,
                                 reminded_at=d.reminded_at, policy=self.settings.policy)
                state = st.value
                detail = dict(d.detail)
                if st is OrderState.OVERDUE:
                    with contextlib.suppress(CalendarGapError):
                        detail["delay_list_due"] = end_of_day(self.settings.calendar
                            .add_working_days(local_date(d.due_at),
                                              self.settings.policy.delay_list_working_days)
                        ).isoformat()
                out.append(DeadlineStatus(d.hospital_id, d.kind, d.ref, d.opened_at, d.due_at,
                                          d.closed_at, state, detail))
                continue
            if d.closed_at is not None:
                state = "met" if d.closed_at <= d.due_at else "late"
            else:
                state = "overdue" if now > d.due_at else "open"
            out.append(DeadlineStatus(d.hospital_id, d.kind, d.ref, d.opened_at, d.due_at,
                                      d.closed_at, state, d.detail))
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
            "prescribed_by_brand": bool(name) and contract.generic_name not in name,
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

    def daily_rows(self, hospital_id: str, since: date | None, until: date | None
                   ) -> list[DailyRow]:
        """Stored daily totals for reports."""
        return self.store.daily(hospital_id, since=since, until=until)

    def fold_rows(self, rows: Iterable[DailyRow], contracts: Iterable[Contract]
                  ) -> dict[str, Counters]:
        """Counters of ``contracts`` from daily rows (for period reports)."""
        index: dict[tuple[str, str], list[Contract]] = {}
        for c in contracts:
            index.setdefault((c.hospital_id, c.generic_key), []).append(c)
        out: dict[str, Counters] = {}
        for r in rows:
            key = generic_key(r.national_code)
            for c in index.get((r.hospital_id, key or ""), ()):
                if c.active_on(r.day):
                    out.setdefault(c.contract_id, Counters()).add(
                        EventKind(r.kind), r.national_code in c.winning_codes, r.national_code,
                        r.qty, r.amount, r.day)
        return out


def _add_weekdays(start: date, n: int) -> date:
    day = start
    while n > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def _contract_rows(c: Contract) -> dict[str, Any]:
    # stored in the same row shape the importers read, so one parser serves both
    return {"rows": [{
        "hospital_id": c.hospital_id, "project": c.project, "batch": c.batch,
        "generic_name": c.generic_name, "national_code": p.national_code,
        "product_name": p.product_name, "winning_price": str(p.winning_price),
        "supplier": p.supplier, "cycle_start": c.cycle_start.isoformat(),
        "cycle_end": c.cycle_end.isoformat(), "agreed_volume": str(c.agreed_volume),
        "agreed_ratio": str(c.agreed_ratio), "category": c.category, "unit": c.unit,
        "reported_demand": "" if c.reported_demand is None else str(c.reported_demand),
        "last_year_purchases": "" if c.last_year_purchases is None
        else str(c.last_year_purchases)} for p in c.products]}
