"""FHIR R4 and vendor XML/JSON through the gateway's HTTP ingest: answers after commit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from helpers import HOSPITAL, HTTP_LISTENERS, free_port, make_config
from lxml import etree

from gateway.app import build_app

DATA = Path(__file__).parent.parent / "data"



def _sample(folder: str, name: str) -> bytes:
    # the samples name hospital H33010200001; the test gateway serves HOSPITAL
    return (DATA / folder / name).read_bytes().replace(b"H33010200001", HOSPITAL.encode())


@pytest.fixture
async def http_gateway(tmp_path: Path) -> AsyncIterator[str]:
    mllp_port = free_port()
    cfg = make_config(tmp_path, mllp_port=mllp_port, http_port=0, simulator_port=None,
                      platform_url="http://127.0.0.1:9/fsi/api/inventory")
    base_listeners = [dict(lst.model_dump()) for lst in cfg.listeners]
    cfg = make_config(tmp_path, mllp_port=mllp_port, http_port=0, simulator_port=None,
                      platform_url="http://127.0.0.1:9/fsi/api/inventory",
                      listeners=base_listeners + HTTP_LISTENERS)
    server = TestServer(build_app(cfg), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/ingest/"))
    finally:
        await server.close()


async def test_fhir_create_then_duplicate_then_invalid(http_gateway: str) -> None:
    body = _sample("fhir-r4/valid", "medicationrequest_contained_medication.json")
    async with ClientSession() as http:
        async with http.post(http_gateway + "his-fhir", data=body,
                             headers={"Content-Type": "application/fhir+json"}) as r:
            assert r.status == 201, await r.text()
            created = orjson.loads(await r.read())
            assert created["resourceType"] == "MedicationRequest"
        async with http.post(http_gateway + "his-fhir", data=body) as r:
            assert r.status == 200  # the same prescription again: committed once
        bad = _sample("fhir-r4/invalid", "quantity_not_a_number.json")
        async with http.post(http_gateway + "his-fhir", data=bad) as r:
            assert r.status == 400
            outcome = orjson.loads(await r.read())
            assert outcome["resourceType"] == "OperationOutcome"
            assert outcome["issue"][0]["expression"] == [
                "MedicationRequest.dispenseRequest.quantity.value"]


async def test_vendor_xml_and_json(http_gateway: str) -> None:
    xml = _sample("vendor-xml/valid", "outpatient_prescription_two_drugs.xml")
    doc = _sample("vendor-json/valid", "receipt_into_stock.json")
    async with ClientSession() as http:
        async with http.post(http_gateway + "his-xml", data=xml) as r:
            assert r.status == 200, await r.text()
            answer = etree.fromstring(await r.read())
            assert answer.findtext("返回码") == "0"
            assert answer.findtext("消息ID") == "WN20261123090012000187"
        async with http.post(http_gateway + "spd-json", data=doc) as r:
            assert r.status == 200, await r.text()
            assert orjson.loads(await r.read())["resultCode"] == "0"
        xxe = (DATA / "vendor-xml" / "invalid" / "xxe_external_entity.xml").read_bytes()
        async with http.post(http_gateway + "his-xml", data=xxe) as r:
            assert r.status == 400
            assert etree.fromstring(await r.read()).findtext("返回码") == "-1"


async def test_fhir_rest_routes_and_capability_statement(http_gateway: str) -> None:
    base = http_gateway.removesuffix("/ingest/")
    body = _sample("fhir-r4/valid", "medicationrequest_contained_medication.json")
    async with ClientSession() as http:
        async with http.post(base + "/fhir/MedicationRequest", data=body,
                             headers={"Content-Type": "application/fhir+json"}) as r:
            assert r.status == 201, await r.text()
            assert "MedicationRequest/" in r.headers["Location"]
        async with http.post(base + "/fhir/MedicationDispense", data=body) as r:
            assert r.status == 400
            outcome = orjson.loads(await r.read())
            assert outcome["issue"][0]["expression"] == ["resourceType"]
        async with http.get(base + "/fhir/metadata") as r:
            assert r.status == 200
            cap = orjson.loads(await r.read())
    assert cap["resourceType"] == "CapabilityStatement"
    assert cap["fhirVersion"] == "4.0.1"
    types = {res["type"] for rest in cap["rest"] for res in rest["resource"]}
    assert {"MedicationRequest", "MedicationDispense", "SupplyRequest",
            "SupplyDelivery"} <= types


async def test_oversized_body_is_refused_with_413_and_the_listener_keeps_serving(
        tmp_path: Path) -> None:
    mllp_port = free_port()
    base = make_config(tmp_path, mllp_port=mllp_port, http_port=0, simulator_port=None,
                       platform_url="http://127.0.0.1:9/fsi/api/inventory")
    cfg = make_config(tmp_path, mllp_port=mllp_port, http_port=0, simulator_port=None,
                      platform_url="http://127.0.0.1:9/fsi/api/inventory",
                      listeners=[dict(lst.model_dump()) for lst in base.listeners] + HTTP_LISTENERS,
                      http={"host": "127.0.0.1", "port": 0, "max_body_bytes": 65536})
    server = TestServer(build_app(cfg), host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as http:
            huge = b'{"resourceType": "Bundle", "x": "' + b"x" * 200_000 + b'"}'
            async with http.post(server.make_url("/ingest/his-fhir"), data=huge) as r:
                assert r.status == 413
                assert "max_body_bytes" in (await r.json())["error"]
            body = _sample("fhir-r4/valid", "medicationrequest_contained_medication.json")
            async with http.post(server.make_url("/ingest/his-fhir"), data=body) as r:
                assert r.status == 201
    finally:
        await server.close()


def _spd(change) -> bytes:  # type: ignore[no-untyped-def]
    doc = orjson.loads(_sample("vendor-json/valid", "receipt_into_stock.json"))
    change(doc)
    return orjson.dumps(doc)


def _drop_message_id(xml: bytes) -> bytes:
    root = etree.fromstring(xml)
    for el in root.iter("消息ID"):
        el.getparent().remove(el)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True)


def _status_as_list(body: bytes) -> bytes:
    doc = orjson.loads(body)
    doc["status"] = [doc["status"]]
    return orjson.dumps(doc)


@pytest.mark.parametrize(("listener", "body", "where"), [
    # found by fuzzing: each was answered 500, which tells the sender to retry forever
    ("his-xml", lambda: _drop_message_id(
        _sample("vendor-xml/valid", "outpatient_prescription_two_drugs.xml")), "消息ID"),
    ("spd-json", lambda: _spd(lambda d: d["单据列表"][0].pop("单据号")), "单据号"),
    ("spd-json", lambda: _spd(lambda d: d["单据列表"][0]["明细"][0].update({"数量": "abc"})),
     "数量"),
    ("his-fhir", lambda: _status_as_list(
        _sample("fhir-r4/valid", "medicationrequest_contained_medication.json")), "status"),
])
async def test_a_client_error_is_a_4xx_naming_the_field_never_a_500(
        http_gateway: str, listener: str, body, where: str) -> None:  # type: ignore[no-untyped-def]
    async with ClientSession() as http, http.post(http_gateway + listener, data=body()) as r:
        text = await r.text()
        assert 400 <= r.status < 500, (r.status, text)
        assert where in text


@pytest.mark.parametrize(("listener", "folder", "name"), [
    ("his-fhir", "fhir-r4/valid", "medicationrequest_contained_medication.json"),
    ("spd-json", "vendor-json/valid", "receipt_into_stock.json"),
    ("his-xml", "vendor-xml/valid", sorted(p.name for p in (DATA / "vendor-xml" / "valid")
                                           .glob("*.xml"))[0]),
])
async def test_a_message_for_a_hospital_not_configured_is_refused(
        http_gateway: str, listener: str, folder: str, name: str) -> None:
    """HL7 v2 answers AE for an unknown MSH-4; FHIR and vendor bodies name their hospital
    inside, and one not configured is refused the same way, naming the field and key."""
    body = _sample(folder, name).replace(HOSPITAL.encode(), b"H33019999999")
    async with ClientSession() as http, http.post(http_gateway + listener, data=body) as r:
        text = await r.text()
        assert 400 <= r.status < 500, (r.status, text)
        assert "hospital_id" in text and "hospitals[].code" in text, text
