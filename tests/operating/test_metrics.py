"""The operator's metrics, read from /metrics of a running gateway as Prometheus reads it."""

from __future__ import annotations

from datetime import datetime

import aiohttp
from helpers import MLLPClient, ack_fields, eventually, numbered_dispense, sample
from prometheus_client.parser import text_string_to_metric_families

from canonical.model import CHINA_TZ
from gateway.app import LEDGER, METRICS, MIRROR


async def _samples(gateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as http, http.get(gateway.url("/metrics")) as resp:
        assert resp.status == 200
        text = await resp.text()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_ingest_latencies_warnings_and_gauges_are_exported(gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    for n in range(3):
        assert ack_fields(await client.send(numbered_dispense(n)))["MSA"][1] == "AA"
    # the sample prescription names a non-winning product of a lagging contract
    ack = ack_fields(await client.send(sample("rde_o11_prescription_utf8.hl7")))
    await client.close()
    assert ack["MSA"][1] == "AA" and ack["ERR"][4] == "W"
    await gateway.delivered(3)

    async def exported():
        s = await _samples(gateway)
        return s if _value(s, "jcgw_store_size_bytes") else None
    s = await eventually(exported, what="store size exported")
    assert _value(s, "jcgw_parse_duration_seconds_count", adapter="hl7v2") == 4
    assert _value(s, "jcgw_commit_duration_seconds_count") == 4
    assert _value(s, "jcgw_store_commit_batch_size_count")
    assert _value(s, "jcgw_deliveries_total", destination="nhsa", outcome="delivered") == 3
    assert _value(s, "jcgw_circuit_state", destination="nhsa") == 0
    fired = {dict(k[1])["rule"]: v for k, v in s.items()
             if k[0] == "jcgw_warnings_fired_total" and dict(k[1])["channel"] == "ack"}
    assert fired and all(v >= 1 for v in fired.values())
    assert _value(s, "jcgw_store_wal_size_bytes") is not None
    [build] = [dict(k[1]) for k in s if k[0] == "jcgw_build_info"]
    assert build["native"] in ("compiled", "pure") and build["version"]


async def test_contract_progress_gauges_follow_the_ledger(gateway) -> None:
    contracts = gateway.app[LEDGER].contracts()

    async def progress():
        s = await _samples(gateway)
        return {dict(k[1])["contract"]: v for k, v in s.items()
                if k[0] == "jcgw_contract_time_progress_ratio"}
    exported = await eventually(progress, what="contract time progress exported")
    today = datetime.now(CHINA_TZ).date()
    current = {c.contract_id for c in contracts if c.active_on(today)}
    assert set(exported) == current
    assert all(0 <= v <= 1 for v in exported.values())


async def test_an_open_circuit_is_exported_as_2(gateway) -> None:
    breaker = gateway.app[MIRROR].breakers["nhsa"]
    for _ in range(breaker.threshold):
        breaker.failure(gateway.app[MIRROR].clock())

    async def state():
        return _value(await _samples(gateway), "jcgw_circuit_state", destination="nhsa") == 2
    await eventually(state, what="circuit state 2 (open)")
    assert gateway.app[METRICS].circuit_state.labels("nhsa")._value.get() == 2
