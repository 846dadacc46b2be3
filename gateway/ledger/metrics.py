"""Monitoring metrics as pure functions: completion, 序时进度, shares, online rate, demand.

Working definitions (DOMAIN.md "Monitoring metrics"; GZ 三, GZ annex 1, GZ 一):
completion = quantity received ÷ agreed volume; time progress = elapsed days ÷ days in
the cycle (today counts as elapsed, so the last day of the cycle is 100 %); a contract
lags when completion < time progress; winning share = winning quantity (or amount) ÷
all products of the generic name; online rate = amount bought on the platform ÷ all
purchases of that kind; reported demand below 80 % of last year's purchases needs an
explanation, and a hospital with history that reports nothing is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from canonical.model import EventKind
from gateway.ledger.contracts import Contract

__all__ = [
    "ContractStatus",
    "Counters",
    "DemandFlag",
    "contract_status",
    "demand_flag",
    "online_rate_ok",
    "projected_received",
    "ratio",
    "time_progress",
]

ZERO = Decimal(0)
ONE = Decimal(1)
RUN_RATE_WINDOW_DAYS = 30


def ratio(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    """numerator ÷ denominator, None when the denominator is zero."""
    return None if denominator == 0 else numerator / denominator


def time_progress(start: date, end: date, as_of: date) -> tuple[Decimal, int, int]:
    """(序时进度, days elapsed, days in cycle), today counted as elapsed, clamped to [0, 1]."""
    total = (end - start).days + 1
    elapsed = min(max((as_of - start).days + 1, 0), total)
    return Decimal(elapsed) / Decimal(total), elapsed, total


@dataclass(slots=True)
class Counters:
    """Running totals of one contract over its cycle (mutable, owned by the ledger)."""

    received_qty: Decimal = ZERO  # winning products, receipts − returns
    received_amount: Decimal = ZERO
    generic_qty: Decimal = ZERO  # every product of the generic name
    generic_amount: Decimal = ZERO
    used_winning: Decimal = ZERO  # dispensed − returned by patients
    used_all: Decimal = ZERO
    rx_winning: Decimal = ZERO  # prescribed
    rx_all: Decimal = ZERO
    nonwinning_codes: set[str] = field(default_factory=set)
    received_by_day: dict[date, Decimal] = field(default_factory=dict)
    version: int = 0  # bumped on every change, so a computed status can be reused until then

    def add(self, kind: EventKind, winning: bool, code: str, qty: Decimal,
            amount: Decimal, day: date) -> None:
        """Fold one product's quantity and amount of one event kind on ``day`` in."""
        self.version += 1
        if kind is EventKind.RECEIPT or kind is EventKind.RETURN:
            sign = 1 if kind is EventKind.RECEIPT else -1
            self.generic_qty += sign * qty
            self.generic_amount += sign * amount
            if winning:
                self.received_qty += sign * qty
                self.received_amount += sign * amount
                self.received_by_day[day] = self.received_by_day.get(day, ZERO) + sign * qty
            elif kind is EventKind.RECEIPT:
                self.nonwinning_codes.add(code)
        elif kind is EventKind.DISPENSE or kind is EventKind.DISPENSE_RETURN:
            sign = 1 if kind is EventKind.DISPENSE else -1
            self.used_all += sign * qty
            if winning:
                self.used_winning += sign * qty
        elif kind is EventKind.PRESCRIPTION:
            self.rx_all += qty
            if winning:
                self.rx_winning += qty


@dataclass(frozen=True, slots=True)
class ContractStatus:
    """A contract's standing on one day: what reports show and rules read."""

    contract: Contract
    as_of: date
    received_qty: Decimal
    received_amount: Decimal
    completion: Decimal | None
    time_progress: Decimal
    days_elapsed: int
    days_total: int
    lagging: bool
    projected_completion: Decimal | None
    qty_share: Decimal | None
    amount_share: Decimal | None
    nonwinning_qty: Decimal
    nonwinning_amount: Decimal
    nonwinning_codes: tuple[str, ...]
    use_share: Decimal | None
    prescribing_share: Decimal | None

    @property
    def progress_ratio(self) -> Decimal | None:
        """completion ÷ time progress (1 when no time has passed)."""
        if self.completion is None:
            return None
        return self.completion / self.time_progress if self.time_progress else ONE

    @property
    def over_purchased(self) -> bool:
        """More received than agreed (still supplied at the winning price, R2)."""
        return self.received_qty > self.contract.agreed_volume

    @property
    def zero_purchase(self) -> bool:
        """Nothing of the winning products received yet."""
        return self.received_qty <= 0

    @property
    def at_risk(self) -> bool:
        """The run rate does not reach the agreed volume by the cycle's end."""
        return self.projected_completion is not None and self.projected_completion < 1

    @property
    def days_left(self) -> int:
        """Days of the cycle after ``as_of``."""
        return self.days_total - self.days_elapsed


def projected_received(c: Counters, as_of: date, elapsed: int, total: int,
                       window: int = RUN_RATE_WINDOW_DAYS) -> Decimal:
    """Quantity expected by the cycle's end: received so far plus the recent daily run
    rate (the last ``window`` days, fewer early in the cycle) times the days left."""
    days = min(window, elapsed)
    if days <= 0:
        return c.received_qty
    recent = sum((c.received_by_day.get(as_of - timedelta(days=i), ZERO) for i in range(days)),
                 ZERO)
    return c.received_qty + recent / Decimal(days) * Decimal(total - elapsed)


def contract_status(contract: Contract, c: Counters, as_of: date) -> ContractStatus:
    """Compute a contract's metrics from its counters on ``as_of``."""
    progress, elapsed, total = time_progress(contract.period_start, contract.period_end, as_of)
    completion = ratio(c.received_qty, contract.agreed_volume)
    projected = None
    if completion is not None and elapsed > 0:
        projected = projected_received(c, as_of, elapsed, total) / contract.agreed_volume
    return ContractStatus(
        contract=contract, as_of=as_of, received_qty=c.received_qty,
        received_amount=c.received_amount, completion=completion, time_progress=progress,
        days_elapsed=elapsed, days_total=total,
        lagging=completion is not None and completion < progress,
        projected_completion=projected,
        qty_share=ratio(c.received_qty, c.generic_qty),
        amount_share=ratio(c.received_amount, c.generic_amount),
        nonwinning_qty=c.generic_qty - c.received_qty,
        nonwinning_amount=c.generic_amount - c.received_amount,
        nonwinning_codes=tuple(sorted(c.nonwinning_codes)),
        use_share=ratio(c.used_winning, c.used_all),
        prescribing_share=ratio(c.rx_winning, c.rx_all),
    )


class DemandFlag(StrEnum):
    """Reported demand (报量) against last year's purchases [GZ 一]."""

    OK = "ok"
    NO_HISTORY = "no_history"
    BELOW_THRESHOLD = "below_threshold"  # needs an explanation
    NOT_REPORTED = "not_reported"  # history but no report: to be watched


def demand_flag(reported: Decimal | None, last_year: Decimal | None,
                threshold: Decimal = Decimal("0.80")) -> DemandFlag:
    """Classify a hospital's reported demand; exactly 80 % of last year is enough."""
    if last_year is None or last_year <= 0:
        return DemandFlag.NO_HISTORY
    if reported is None or reported <= 0:
        return DemandFlag.NOT_REPORTED
    if reported < threshold * last_year:
        return DemandFlag.BELOW_THRESHOLD
    return DemandFlag.OK


def online_rate_ok(rate: Decimal | None, threshold: Decimal) -> bool:
    """Whether an online purchase rate meets its threshold (no purchases counts as met)."""
    return rate is None or rate >= threshold
