"""A control id used again for another message is refused and kept, never dropped silently."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from helpers import HOSPITAL, HTTP_LISTENERS, MLLPClient, ack_fields, free_port, make_config, sample
from lxml import etree
from prometheus_client import CollectorRegistry

from gateway.app import build_app
from gateway.keys import METRICS, STORE

DATA = Path(__file__).resolve().parents[1] / "data"
CONTROL_ID = "RDS20261123000001"


def _reused_total(registry: CollectorRegistry, adapter: str) -> float:
    return registry.get_sample_value("jcgw_control_id_reused_total", {"adapter": adapter}) or 0.0


async def test_same_control_id_other_content_gets_ae_is_quarantined_and_counted(
        gateway) -> None:
    raw = sample("rds_o13_dispense_utf8.hl7")
    # the same MSH-10 on a dispense of 3 boxes instead of 2: a HIS that reuses its ids
    other = raw.replace(b"|20261123093000|2|", b"|20261123093000|3|")
    assert other != raw
    client = await MLLPClient.connect(gateway.mllp_port)
    first = ack_fields(await client.send(raw))
    again = ack_fields(await client.send(raw))
    refused = ack_fields(await client.send(other))
    await client.close()

    assert first["MSA"][1:3] == again["MSA"][1:3] == ["AA", CONTROL_ID]
    assert refused["MSA"][1:3] == ["AE", CONTROL_ID]
    err = "|".join(refused["ERR"])
    assert CONTROL_ID in err and "already used" in err and "205" in err
    await gateway.delivered(1)
    stored = await gateway.store.query("SELECT raw FROM messages")
    assert [bytes(r[0]) for r in stored] == [raw]
    kept = await gateway.store.query("SELECT adapter, reason, raw FROM quarantine")
    assert len(kept) == 1 and kept[0][0] == "hl7v2" and bytes(kept[0][2]) == other
    assert CONTROL_ID in kept[0][1]
    registry = gateway.app[METRICS].registry
    assert _reused_total(registry, "hl7v2") == 1.0
    assert registry.get_sample_value("jcgw_messages_duplicate_total",
                                     {"adapter": "hl7v2", "type": "RDS^O13"}) == 1.0


@pytest.fixture
async def http_gateway(tmp_path: Path) -> AsyncIterator[TestServer]:
    cfg = make_config(tmp_path, mllp_port=free_port(), http_port=0, simulator_port=None,
                      platform_url="http://127.0.0.1:9/fsi/api/inventory")
    listeners = [dict(lst.model_dump()) for lst in cfg.listeners] + HTTP_LISTENERS
    cfg = make_config(tmp_path, mllp_port=free_port(), http_port=0, simulator_port=None,
                      platform_url="http://127.0.0.1:9/fsi/api/inventory", listeners=listeners)
    server = TestServer(build_app(cfg), host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def _sample(folder: str, name: str) -> bytes:
    return (DATA / folder / name).read_bytes().replace(b"H33010200001", HOSPITAL.encode())


async def _quarantined(server: TestServer) -> list[tuple[str, bytes]]:
    store = server.app[STORE]
    rows = await store.query("SELECT adapter, raw FROM quarantine ORDER BY id")  # type: ignore[attr-defined]
    return [(a, bytes(r)) for a, r in rows]


async def test_fhir_and_vendor_answer_409_for_a_reused_id(http_gateway: TestServer) -> None:
    fhir = _sample("fhir-r4/valid", "medicationrequest_contained_medication.json")
    fhir_other = fhir.replace(b'"authoredOn": "2026-11-23T09:00:00+08:00"',
                              b'"authoredOn": "2026-11-23T09:40:00+08:00"')
    xml = _sample("vendor-xml/valid", "outpatient_prescription_two_drugs.xml")
    xml_other = xml.replace("<数量>2</数量>".encode(), "<数量>4</数量>".encode())
    assert fhir_other != fhir and xml_other != xml
    url = str(http_gateway.make_url("/ingest/"))
    async with ClientSession() as http:
        async with http.post(url + "his-fhir", data=fhir) as r:
            assert r.status == 201, await r.text()
        async with http.post(url + "his-fhir", data=fhir) as r:
            assert r.status == 200  # a resend
        async with http.post(url + "his-fhir", data=fhir_other) as r:
            assert r.status == 409, await r.text()
            outcome = orjson.loads(await r.read())
        async with http.post(url + "his-xml", data=xml) as r:
            assert r.status == 200, await r.text()
        async with http.post(url + "his-xml", data=xml_other) as r:
            assert r.status == 409, await r.text()
            answer = etree.fromstring(await r.read())
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "duplicate"
    assert "already used" in outcome["issue"][0]["diagnostics"]
    assert answer.findtext("返回码") == "-1"
    assert "WN20261123090012000187" in etree.tostring(answer, encoding="unicode")
    assert await _quarantined(http_gateway) == [("fhir-r4", fhir_other),
                                                ("vendor-xml", xml_other)]
    registry = http_gateway.app[METRICS].registry
    assert _reused_total(registry, "fhir-r4") == _reused_total(registry, "vendor-xml") == 1.0
