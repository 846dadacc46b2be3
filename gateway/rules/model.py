"""Rules as data: frozen models of a rule set and of what evaluation finds."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Union

__all__ = [
    "FACTS",
    "All",
    "Any_",
    "Clause",
    "Condition",
    "Finding",
    "Not",
    "OverrideReason",
    "Replacement",
    "Rule",
    "RuleSet",
    "RuleSeverity",
]

# The facts a condition or message may name, computed per prescription line from the
# line and the ledger (see gateway.ledger.facts). Ratios are Decimals between 0 and 1.
FACTS: dict[str, str] = {
    "hospital_id": "定点医药机构编号",
    "product_code": "national code of the prescribed product",
    "product_name": "name as prescribed",
    "generic_name": "通用名 of the contract",
    "has_contract": "a 集采 contract of this generic name is active for the hospital",
    "is_winning": "the prescribed product is a winning product of that contract",
    "is_non_winning": "has_contract and not is_winning",
    "project": "采购项目", "batch": "批次",
    "completion": "agreed-volume completion: received ÷ agreed volume",
    "time_progress": "序时进度: elapsed days ÷ days in the cycle",
    "progress_ratio": "completion ÷ time_progress (1 when no time has passed)",
    "lagging": "completion < time_progress",
    "projected_completion": "expected completion at cycle end: received + 30-day rate × days left",
    "days_elapsed": "days of the cycle passed, today included",
    "days_left": "days of the cycle still to come",
    "agreed_volume": "约定采购量", "received_qty": "winning quantity received so far",
    "agreed_ratio": "约定采购比例",
    "use_share": "winning share of the generic name's dispensed quantity (None if none)",
    "winning_code": "national code of the suggested winning product",
    "winning_name": "name of the suggested winning product",
    "winning_price": "winning price per national unit",
    "winning_stock": "warehouse stock of the winning products (None if unknown)",
    "winning_out_of_stock": "stock of every winning product is known and none is left",
    "prescribed_by_brand": "the prescribed name does not contain the generic name",
    # R10, R11 (gateway.ledger.price_watch); prices per national unit
    "purchase_price": "the hospital's latest purchase price of the product (None if never)",
    "reference_price": "R10: median (or lowest) of the deployment's hospitals' latest prices "
                       "of the product (None for a winning product or one never bought)",
    "price_ratio": "R10: purchase_price ÷ reference_price",
    "price_band": "R10: blue, yellow or red (ledger.thresholds.price_*_max); None if unbanded",
    "price_hospitals": "R10: how many hospitals' prices the reference is taken from",
    "product_winning_price": "the prescribed product's winning price (None if not winning)",
    "above_winning_price": "R11: a winning product last bought above its winning price",
    "below_winning_price": "R11: a winning product last bought below it (renegotiated)",
}


class RuleSeverity(StrEnum):
    """CDS Hooks card indicator."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Clause:
    """``fact op value``; ``ref`` names a fact to compare with instead of ``value``."""

    fact: str
    op: str
    value: Union[bool, Decimal, str, tuple[str, ...], None] = None  # noqa: UP007
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class All:
    """Every part holds."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Any_:
    """At least one part holds."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The part does not hold."""

    part: Condition


Condition = Union[Clause, All, Any_, Not]  # noqa: UP007


@dataclass(frozen=True, slots=True)
class OverrideReason:
    """A reason the prescriber may give for going on (CDS Hooks Coding)."""

    code: str
    display: str


@dataclass(frozen=True, slots=True)
class Rule:
    """One warning rule."""

    id: str
    title: str  # the card summary template (≤ 140 characters once filled in)
    when: Condition
    severity: RuleSeverity
    message: str  # detail template, Chinese, {fact} placeholders
    action: str  # suggested action, shown with the detail
    block: bool = False
    suggest_winning: bool = False
    override_reasons: tuple[OverrideReason, ...] = ()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules of one file, with the card source and the override-reason code system."""

    rules: tuple[Rule, ...]
    source_label: str = "院内集采预警"
    source_url: str = ""
    reason_system: str = "urn:jicai-gateway:override-reason"
    path: str = ""


@dataclass(frozen=True, slots=True)
class Replacement:
    """A winning product to suggest instead of the prescribed one."""

    national_code: str
    name: str
    price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that fired on one line."""

    rule_id: str
    severity: RuleSeverity
    summary: str
    detail: str
    action: str
    block: bool
    line_seq: int
    product_code: str
    override_reasons: tuple[OverrideReason, ...] = ()
    replacements: tuple[Replacement, ...] = ()
