"""Masking in every dialect the gateway reads, and the ``messages`` command."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from factory import dispense, incoming
from helpers import DATA
from test_message_browser_api import TOKENS, _client

from gateway.browser.mask import mask_event, mask_identifier, mask_name, mask_text, patient_values
from gateway.cli.main import main

VENDOR = DATA / "vendor-xml" / "valid" / "outpatient_prescription_two_drugs.xml"
# what the vendor profile reads from the sample's <患者>
VENDOR_PATIENT = {"id": "0001234567", "name": "张伟", "id_card": "330102198001010016",
                  "insurance_no": "A33010219800101", "visit_no": "MZ20261123001"}


def test_names_keep_the_first_character_and_numbers_their_ends() -> None:
    assert mask_name("张伟") == "张*" and mask_name("欧阳娜娜") == "欧***"
    assert mask_identifier("330102198001010016") == "3301**********0016"
    assert mask_identifier("13800138000") == "138****8000"
    assert mask_identifier("MZ20261123001") == "*********3001"
    assert mask_event({"patient": {"name": "李娜", "phone": "", "visit_no": "MZ1"}})[
        "patient"] == {"name": "李*", "phone": "", "visit_no": "*Z1"}


def test_vendor_xml_is_masked_by_the_values_its_events_hold() -> None:
    text = VENDOR.read_text("utf-8")
    masked = mask_text(text, patient_values([{"patient": VENDOR_PATIENT}]))
    for secret in VENDOR_PATIENT.values():
        assert secret not in masked
    assert "<姓名>张*</姓名>" in masked and "<身份证号>3301**********0016</身份证号>" in masked
    assert "<姓名>李明</姓名>" in masked  # the prescriber is no patient


def test_a_fhir_patient_resource_is_masked_even_beyond_the_events() -> None:
    bundle = {"resourceType": "Bundle", "entry": [{"resource": {
        "resourceType": "Patient", "id": "pat-1",
        "identifier": [{"system": "urn:oid:1.2.156.112606.1.1.1",
                        "value": "330102198001010016"}],
        "name": [{"text": "王芳", "family": "王", "given": ["芳"]}],
        "telecom": [{"system": "phone", "value": "13912345678"}]}}]}
    masked = json.loads(mask_text(json.dumps(bundle, ensure_ascii=False), {}))
    patient = masked["entry"][0]["resource"]
    assert patient["identifier"][0] == {"system": "urn:oid:1.2.156.112606.1.1.1",
                                        "value": "3301**********0016"}
    assert patient["name"][0]["text"] == "王*" and patient["telecom"][0]["value"] == \
        "139****5678"
    assert "芳" not in json.dumps(masked, ensure_ascii=False)


async def test_the_cli_searches_and_shows_through_the_api(make_store, capsys) -> None:  # type: ignore[no-untyped-def]
    store = await make_store()
    done = await store.commit(incoming([dispense(3)], [("nhsa", 1)],
                                       control_id="RX20261123000001"))
    client = await _client(store)
    url = str(client.make_url("/")).rstrip("/")

    def run(*argv: str) -> int:
        return main(["messages", *argv, "--url", url, "--token", TOKENS["pharmacist"]])
    try:
        assert await asyncio.to_thread(run, "search", "--control-id",
                                       "RX20261123000001") == 0
        out = capsys.readouterr().out
        assert out.startswith(f"{done.message_id}\t") and "\tpending\t" in out
        assert await asyncio.to_thread(run, "show", str(done.message_id)) == 0
        shown: dict[str, Any] = json.loads(capsys.readouterr().out)
        assert shown["masked"] is True and shown["outbox"][0]["state"] == "pending"
        assert shown["events"][0]["event"]["patient"]["name"] == "张*"
        assert await asyncio.to_thread(run, "search", "--limit", "501") == 1
        assert "HTTP 400" in capsys.readouterr().err
    finally:
        await client.close()
