"""The dashboard imports anywhere: its queries go to the Prometheus its variable names, and
it has a panel for each thing an operator watches."""

from __future__ import annotations

import json

from operating_helpers import DASHBOARD, metric_names


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text("utf-8"))


def test_every_query_goes_to_the_datasource_variable() -> None:
    dash = _dashboard()
    [variable] = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    ref = f"${{{variable['name']}}}"
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    for panel in panels:
        assert panel["datasource"]["uid"] == ref, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == ref and target["expr"], panel["title"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert dash["uid"] and not dash.get("id")  # an id would clash with the importer's own


def test_a_panel_for_each_thing_the_operator_watches() -> None:
    read = {name for p in _dashboard()["panels"] for t in p.get("targets", [])
            for name in metric_names(t["expr"])}
    for needed in ("jcgw_messages_received_total", "jcgw_deliveries_total",
                   "jcgw_outbox_depth", "jcgw_outbox_oldest_age_seconds",
                   "jcgw_mirror_latency_seconds_bucket", "jcgw_messages_rejected_total",
                   "jcgw_internal_errors_total", "jcgw_held_events", "jcgw_dead_letters",
                   "jcgw_quarantined_total", "jcgw_circuit_state",
                   "jcgw_contract_completion_ratio", "jcgw_contract_time_progress_ratio",
                   "jcgw_event_loop_lag_seconds_bucket"):
        assert needed in read, needed
