"""Every metric the dashboard and the alerts read is one the gateway exports: a renamed
metric would otherwise leave an empty panel and an alert that can never fire."""

from __future__ import annotations

import re

import aiohttp
from operating_helpers import ROOT, alert_rules, dashboard_exprs, exported_names, metric_names

from gateway.loop_lag import LoopLag
from gateway.metrics import Metrics


async def _exposition(gateway) -> str:
    async with aiohttp.ClientSession() as http, http.get(gateway.url("/metrics")) as resp:
        assert resp.status == 200
        return await resp.text()


def test_names_are_read_out_of_promql() -> None:
    expr = ('histogram_quantile(0.99, sum by (destination, le) '
            '(rate(jcgw_mirror_latency_seconds_bucket{instance=~"$instance"}[5m])))'
            ' / on (destination) max by (destination) (jcgw_outbox_depth)')
    assert metric_names(expr) == {"jcgw_mirror_latency_seconds_bucket", "jcgw_outbox_depth"}


async def test_every_metric_of_the_dashboard_is_exported(gateway) -> None:
    exported = exported_names(await _exposition(gateway))
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    assert len(used) > 20  # the dashboard reads most of the metric set
    assert not used - exported, f"the dashboard reads metrics nobody exports: {used - exported}"


async def test_every_metric_of_the_alerts_is_exported(gateway) -> None:
    exported = exported_names(await _exposition(gateway))
    rules = alert_rules()
    used = set().union(*(metric_names(r["expr"]) for r in rules))
    # every alert but the one on Prometheus's own `up` reads a metric of ours
    assert all(metric_names(r["expr"]) or "up{" in r["expr"] for r in rules)
    assert not used - exported, f"alerts read metrics nobody exports: {used - exported}"


def _documented() -> dict[str, str]:
    """README "Operating" → "Metrics": metric name → type."""
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("\n### Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(jcgw_\w+)` \| (\w+) \|", section, flags=re.M)
    return dict(rows)


def test_the_readme_documents_every_metric_and_no_other() -> None:
    registry = Metrics().registry
    LoopLag(registry)  # the loop-lag histogram registers itself with the app's registry
    exported = {}
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        exported[name] = family.type
    documented = _documented()
    assert documented == exported, (
        f"undocumented: {sorted(set(exported) - set(documented))}; documented but not "
        f"exported: {sorted(set(documented) - set(exported))}; types differ: "
        f"{sorted(n for n in set(exported) & set(documented) if exported[n] != documented[n])}")
