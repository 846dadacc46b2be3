"""A real Prometheus scrapes a running gateway: what it stores is what happened, the alert
rules load and evaluate, and every expression of the dashboard and the rules parses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from helpers import MLLPClient, RunningGateway, ack_fields, eventually, free_port, numbered_dispense
from operating_helpers import ALERTS, alert_rules, as_instant_query, dashboard_exprs, require_binary

DISPENSES = 5


@dataclass
class Prometheus:
    """A Prometheus server on loopback and an HTTP session to ask it."""

    url: str
    http: aiohttp.ClientSession

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        async with self.http.get(self.url + path, params=params) as resp:
            return resp.status, await resp.json(content_type=None)

    async def value(self, query: str) -> float | None:
        """The single value of an instant query, None while it has none."""
        status, body = await self.get("/api/v1/query", query=query)
        assert status == 200, body
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None


def _config(tmp: Path, target: str) -> Path:
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "jicai-gateway",
                            "static_configs": [{"targets": [target]}]}],
    }), "utf-8")
    return path


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def prometheus(tmp_path: Path, gateway: RunningGateway) -> AsyncIterator[Prometheus]:
    binary = require_binary("prometheus")
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        binary, f"--config.file={_config(tmp_path, f'127.0.0.1:{gateway.server.port}')}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn", stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=log)
    try:
        async with aiohttp.ClientSession() as http:
            prom = Prometheus(f"http://127.0.0.1:{port}", http)

            async def ready() -> bool:
                if proc.returncode is not None:
                    raise AssertionError("prometheus exited: "
                                         + (tmp_path / "prometheus.log").read_text())
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(prom.url + "/-/ready") as resp:
                        return resp.status == 200
                return False
            await eventually(ready, timeout=20, interval=0.1, what="prometheus ready")
            yield prom
    finally:
        await _stop(proc)
        log.close()


async def test_prometheus_counts_every_delivered_dispense(gateway, prometheus) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    for n in range(DISPENSES):
        assert ack_fields(await client.send(numbered_dispense(n)))["MSA"][1] == "AA"
    await client.close()
    await gateway.delivered(DISPENSES)

    async def delivered() -> bool:
        value = await prometheus.value('sum(jcgw_deliveries_total{outcome="delivered"})')
        return value == DISPENSES
    await eventually(delivered, timeout=20, interval=0.2,
                     what=f"Prometheus to see {DISPENSES} delivered events")
    assert await prometheus.value('up{job="jicai-gateway"}') == 1


async def test_the_rules_load_and_evaluate_and_every_expression_parses(prometheus) -> None:
    async def evaluated() -> list[dict[str, Any]] | None:
        _, body = await prometheus.get("/api/v1/rules")
        rules = [r for g in body["data"]["groups"] for r in g["rules"]]
        # a rule not yet evaluated reports the zero time
        done = rules and not any(r["lastEvaluation"].startswith("0001") for r in rules)
        return rules if done else None
    rules = await eventually(evaluated, timeout=20, interval=0.2, what="rules evaluated")
    assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
    assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
    for expr in dashboard_exprs():
        status, body = await prometheus.get("/api/v1/query", query=as_instant_query(expr))
        assert status == 200 and body["status"] == "success", (expr, body)
