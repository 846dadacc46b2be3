"""Rule evaluation: pure functions of a rule set and the facts of one line."""

from __future__ import annotations

import string
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from gateway.rules.model import (
    All,
    Any_,
    Clause,
    Condition,
    Finding,
    Not,
    Replacement,
    Rule,
    RuleSet,
)

__all__ = ["evaluate_line", "holds", "render"]


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "is_none":
        return left is None
    if op == "not_none":
        return left is not None
    if left is None:
        return False  # an unknown fact satisfies no comparison
    if op == "in":
        return str(left) in right
    if op == "not_in":
        return str(left) not in right
    if right is None:
        return False
    if isinstance(left, bool) or isinstance(right, bool):
        if op == "eq":
            return bool(left) == bool(right)
        if op == "ne":
            return bool(left) != bool(right)
        return False
    if isinstance(left, int | Decimal) and isinstance(right, int | Decimal):
        a, b = Decimal(left), Decimal(right)
    else:
        a, b = str(left), str(right)  # type: ignore[assignment]
    if op == "eq":
        return a == b
    if op == "ne":
        return a != b
    if op == "lt":
        return a < b
    if op == "le":
        return a <= b
    if op == "gt":
        return a > b
    if op == "ge":
        return a >= b
    raise ValueError(f"unknown op {op!r}")


def holds(cond: Condition, facts: Mapping[str, Any]) -> bool:
    """Whether ``cond`` holds over ``facts``."""
    if isinstance(cond, Clause):
        right = facts.get(cond.ref) if cond.ref is not None else cond.value
        return _compare(cond.op, facts.get(cond.fact), right)
    if isinstance(cond, All):
        return all(holds(p, facts) for p in cond.parts)
    if isinstance(cond, Any_):
        return any(holds(p, facts) for p in cond.parts)
    if isinstance(cond, Not):
        return not holds(cond.part, facts)
    raise TypeError(f"not a condition: {cond!r}")


def render(template: str, facts: Mapping[str, Any]) -> str:
    """Fill ``{fact}`` / ``{fact:spec}`` placeholders; an unknown fact shows as "—"."""
    parts: list[str] = []
    for literal, name, spec, _conv in string.Formatter().parse(template):
        parts.append(literal)
        if name is None:
            continue
        value = facts.get(name)
        if value is None:
            parts.append("—")
            continue
        try:
            parts.append(format(value, spec or ""))
        except (ValueError, TypeError):
            parts.append(str(value))
    return "".join(parts)


def evaluate_line(
    ruleset: RuleSet,
    facts: Mapping[str, Any],
    *,
    line_seq: int = 1,
    replacements: tuple[Replacement, ...] = (),
) -> tuple[Finding, ...]:
    """The findings of every enabled rule that holds for one line.

    Args:
        ruleset: the rules.
        facts: the line's facts (names in ``gateway.rules.model.FACTS``).
        line_seq: the line's number, carried into the findings.
        replacements: the winning products a suggesting rule may offer.

    Returns:
        One finding per rule that fired, in rule order.
    """
    out: list[Finding] = []
    rule: Rule
    for rule in ruleset.rules:
        if not rule.enabled or not holds(rule.when, facts):
            continue
        out.append(Finding(
            rule.id, rule.severity, render(rule.title, facts)[:140], render(rule.message, facts),
            render(rule.action, facts), rule.block, line_seq, str(facts.get("product_code", "")),
            rule.override_reasons, replacements if rule.suggest_winning else ()))
    return tuple(out)
