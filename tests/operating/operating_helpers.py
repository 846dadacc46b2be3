"""What the operator's tests share: the deploy files, the Prometheus binaries, and the
metric names that PromQL expressions use."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "jicai-gateway.json"

# every metric of ours starts with jcgw_, and no label, function or keyword does
_NAME = re.compile(r"\bjcgw_[a-zA-Z0-9_]+\b")
# Grafana's variable query, not PromQL
_LABEL_VALUES = re.compile(r"^label_values\((.+),\s*\w+\)$")


def require_binary(name: str) -> str:
    """The path of ``name`` (promtool, prometheus); skipped when absent, failed under
    CI=true, where .ci/run installs the Debian package ``prometheus``."""
    path = shutil.which(name)
    if path is not None:
        return path
    why = f"{name} is not installed (Debian: apt-get install prometheus)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}; CI must run the Prometheus tests")
    pytest.skip(why)


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of alerts.yml."""
    doc = yaml.safe_load(ALERTS.read_text("utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard: its panels' targets and its variables'."""
    dash = json.loads(DASHBOARD.read_text("utf-8"))
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            exprs.append(query["query"])
    return exprs


def metric_names(expr: str) -> set[str]:
    """The jcgw_ metric names an expression reads (sample names: ``_total``, ``_bucket``)."""
    return set(_NAME.findall(expr))


def exported_names(exposition: str) -> set[str]:
    """The sample names a /metrics page can carry, also for a metric that has no sample yet
    (a labelled metric before its first event shows only its HELP and TYPE)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count",
                                                                "_created"),
                "summary": ("_sum", "_count", "_created"), "gauge": ("",), "info": ("_info",),
                "untyped": ("",)}
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names


def as_instant_query(expr: str) -> str:
    """A dashboard expression with Grafana's variables filled in, for Prometheus itself
    (a variable's ``label_values(selector, label)`` is Grafana's: its selector is asked)."""
    expr = _LABEL_VALUES.sub(r"\1", expr)
    return expr.replace("$__rate_interval", "1m").replace("$instance", ".*")

