"""Loading a rule set from YAML, with every problem named by file and key."""

from __future__ import annotations

import string
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from canonical.errors import ConfigError
from gateway.rules.model import (
    FACTS,
    All,
    Any_,
    Clause,
    Condition,
    Not,
    OverrideReason,
    Rule,
    RuleSet,
    RuleSeverity,
)

__all__ = ["OPS", "load_rules", "rules_from_mapping"]

OPS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "is_none", "not_none"})
_RULE_KEYS = frozenset({"id", "title", "when", "severity", "message", "action", "block",
                        "suggest", "override_reasons", "enabled", "description"})


def _literal(value: Any, where: str, problems: list[str]) -> bool | Decimal | str | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        try:
            return Decimal(str(value))
        except InvalidOperation:  # pragma: no cover - str of a number is always valid
            problems.append(f"{where}: {value!r} is not a number")
            return None
    if isinstance(value, str):
        return value
    problems.append(f"{where}: {value!r} must be a number, true/false, text or a $fact")
    return None


def _condition(node: Any, where: str, problems: list[str]) -> Condition | None:
    if not isinstance(node, dict) or not node:
        problems.append(f"{where}: must be a mapping: all:, any:, not: or fact:/op:/value:")
        return None
    if "all" in node or "any" in node:
        key = "all" if "all" in node else "any"
        items = node[key]
        if not isinstance(items, list) or not items:
            problems.append(f"{where}.{key}: must be a non-empty list of conditions")
            return None
        parts = [_condition(x, f"{where}.{key}[{i}]", problems) for i, x in enumerate(items)]
        good = tuple(p for p in parts if p is not None)
        if len(good) != len(parts):
            return None
        return All(good) if key == "all" else Any_(good)
    if "not" in node:
        part = _condition(node["not"], f"{where}.not", problems)
        return None if part is None else Not(part)
    fact = node.get("fact")
    op = node.get("op", "eq")
    if fact not in FACTS:
        problems.append(f"{where}.fact: {fact!r} is not a known fact "
                        f"(known: {', '.join(sorted(FACTS))})")
        return None
    if op not in OPS:
        problems.append(f"{where}.op: {op!r} is not one of {', '.join(sorted(OPS))}")
        return None
    raw = node.get("value")
    if isinstance(raw, str) and raw.startswith("$"):
        ref = raw[1:]
        if ref not in FACTS:
            problems.append(f"{where}.value: {raw!r} names no known fact")
            return None
        return Clause(fact, op, None, ref)
    if op in ("in", "not_in"):
        if not isinstance(raw, list):
            problems.append(f"{where}.value: op {op} needs a list")
            return None
        return Clause(fact, op, tuple(str(x) for x in raw))
    if op in ("is_none", "not_none"):
        return Clause(fact, op)
    if "value" not in node:
        problems.append(f"{where}.value: missing (a number, true/false, text or $fact)")
        return None
    return Clause(fact, op, _literal(raw, f"{where}.value", problems))


def _template(text: Any, where: str, problems: list[str]) -> str:
    if not isinstance(text, str) or not text.strip():
        problems.append(f"{where}: must be non-empty text")
        return ""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        problems.append(f"{where}: bad placeholder syntax: {exc}")
        return text
    for name in names:
        if name not in FACTS:
            problems.append(f"{where}: placeholder {{{name}}} is not a known fact")
    return text


def rules_from_mapping(data: Any, name: str) -> RuleSet:
    """Build a rule set from decoded YAML.

    Raises:
        ConfigError: listing every problem as ``file: key: message``.
    """
    problems: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ConfigError([f"{name}: top level must be a mapping with a rules: list"])
    source = data.get("source") or {}
    reason_system = str(data.get("override_reason_system", "urn:jicai-gateway:override-reason"))
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, node in enumerate(data["rules"]):
        where = f"{name}: rules[{i}]"
        if not isinstance(node, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        rid = node.get("id")
        if not isinstance(rid, str) or not rid:
            problems.append(f"{where}.id: missing")
            continue
        where = f"{name}: rules[{i}] ({rid})"
        if rid in seen:
            problems.append(f"{where}.id: duplicate id")
        seen.add(rid)
        unknown = set(node) - _RULE_KEYS
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)} "
                            f"(allowed: {', '.join(sorted(_RULE_KEYS))})")
        before = len(problems)
        cond = _condition(node.get("when"), f"{where}.when", problems)
        try:
            severity = RuleSeverity(str(node.get("severity")))
        except ValueError:
            problems.append(f"{where}.severity: {node.get('severity')!r} must be info, "
                            "warning or critical")
            severity = RuleSeverity.INFO
        title = _template(node.get("title"), f"{where}.title", problems)
        message = _template(node.get("message"), f"{where}.message", problems)
        action = node.get("action") or ""
        if action:
            action = _template(action, f"{where}.action", problems)
        suggest = node.get("suggest", "none")
        if suggest not in ("none", "winning_product"):
            problems.append(f"{where}.suggest: {suggest!r} must be none or winning_product")
        block = node.get("block", False)
        if not isinstance(block, bool):
            problems.append(f"{where}.block: must be true or false")
        reasons: list[OverrideReason] = []
        for j, r in enumerate(node.get("override_reasons") or []):
            if not isinstance(r, dict) or not r.get("code") or not r.get("display"):
                problems.append(f"{where}.override_reasons[{j}]: needs code: and display:")
                continue
            reasons.append(OverrideReason(str(r["code"]), str(r["display"])))
        if len(problems) != before or cond is None:
            continue
        rules.append(Rule(rid, title, cond, severity, message, action, bool(block),
                          suggest == "winning_product", tuple(reasons),
                          bool(node.get("enabled", True))))
    if problems:
        raise ConfigError(problems)
    return RuleSet(tuple(rules), str(source.get("label", "院内集采预警")),
                   str(source.get("url", "")), reason_system, name)


def load_rules(path: Path) -> RuleSet:
    """Read a rule set file (``config/rules.yaml``).

    Raises:
        ConfigError: unreadable file or bad rules; each problem names file and key.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: cannot read rules: {exc}"]) from exc
    return rules_from_mapping(data, str(path))
