"""集采 warning rules: YAML rule sets, pure evaluation over a line's facts."""

from gateway.rules.evaluate import evaluate_line, holds, render
from gateway.rules.loader import load_rules, rules_from_mapping
from gateway.rules.model import (
    FACTS,
    Finding,
    OverrideReason,
    Replacement,
    Rule,
    RuleSet,
    RuleSeverity,
)

__all__ = [
    "FACTS",
    "Finding",
    "OverrideReason",
    "Replacement",
    "Rule",
    "RuleSet",
    "RuleSeverity",
    "evaluate_line",
    "holds",
    "load_rules",
    "render",
    "rules_from_mapping",
]
