"""The message browser over HTTP, on SQLite and PostgreSQL: "did dispense RDS…001 reach
the platform?" answered with its attempts, held and quarantined inputs explained,
patient fields masked by role, other hospitals' messages invisible, pages bounded."""

from __future__ import annotations

import base64
import time
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from factory import HOSPITALS, dispense, incoming
from helpers import DATA, eventually
from rig import destination, make_rig, stop_rig

from adapters.registry import create as create_adapter
from canonical.model import CHINA_TZ
from gateway.browser.http import add_browser_routes
from gateway.config import parse_config
from gateway.keys import CONFIG, STORE
from gateway.platforms.simulator import SimulatorState
from gateway.security.access import access_middleware
from gateway.security.identity import Identities, hash_token, new_token
from gateway.store.base import Incoming

TOKENS = {role: new_token() for role in ("admin", "auditor", "pharmacist", "procurement",
                                         "sender")}
LIMITED = new_token()  # a pharmacist of the second hospital only
FACILITIES = {"ZJSRMYY": HOSPITALS[0]}
SAMPLE = DATA / "hl7v2" / "rds_o13_dispense_utf8.hl7"


def _config() -> Any:
    identities = [{"name": f"{r}-1", "role": r, "token_sha256": hash_token(t)}
                  for r, t in TOKENS.items()]
    identities.append({"name": "pharmacist-xh", "role": "pharmacist",
                       "token_sha256": hash_token(LIMITED), "hospitals": [HOSPITALS[1]]})
    return parse_config({
        "hospitals": [{"code": h, "name": f"测试医院{i}", "admdvs": "330100"}
                      for i, h in enumerate(HOSPITALS)],
        "listeners": [{"name": "his-mllp", "adapter": "hl7v2", "transport": "mllp",
                       "host": "127.0.0.1", "port": 2575,
                       "config": {"facilities": FACILITIES}}],
        "security": {"identities": identities},
    }, "browser-test.yaml")


async def _client(store: Any) -> TestClient[web.Request, web.Application]:
    cfg = _config()
    app = web.Application(middlewares=[access_middleware(Identities(cfg.security),
                                                         public_probes=True)])
    app[STORE] = store
    app[CONFIG] = cfg
    add_browser_routes(app)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


async def _get(client: TestClient[web.Request, web.Application], path: str,
               token: str = TOKENS["admin"], **params: Any) -> tuple[int, Any]:
    r = await client.get(path, params={k: str(v) for k, v in params.items()},
                         headers={"Authorization": f"Bearer {token}"})
    return r.status, await r.json()


def _real_dispense() -> Incoming:
    """The sample RDS^O13 as the HL7 adapter reads it; its item is not mapped: held."""
    raw = SAMPLE.read_bytes()
    adapter = create_adapter("hl7v2", {"facilities": FACILITIES})
    now = datetime.now(CHINA_TZ)
    parsed = adapter.parse(raw, received_at=now)
    return Incoming(adapter="hl7v2", sender=parsed.sender, control_id=parsed.control_id,
                    message_type=parsed.message_type, raw=raw, received_at=now,
                    events=parsed.events, held=tuple(True for _ in parsed.events),
                    peer="10.12.0.31:50112")


async def test_a_dispense_is_found_by_control_id_delivered_after_a_503(make_store) -> None:  # type: ignore[no-untyped-def]
    store = await make_store(lease_s=5.0)
    sim = SimulatorState()
    sim.faults.fail_next = 1  # the first request is answered 503, the quick retry goes in
    rig = await make_rig(store, [destination("nhsa", "{sim}/fsi/api/inventory")], {"sim": sim})
    client = await _client(store)
    try:
        await rig.send([dispense(1)])

        async def delivered() -> Any:
            _, page = await _get(client, "/api/messages", control_id="M000000001")
            return page["items"] and page["items"][0]["state"] == "delivered" and page
        page = await eventually(delivered, timeout=10, what="delivered")
        assert page["window"]["defaulted"] is False  # a control id is selective enough
        item = page["items"][0]
        assert item["hospitals"] == [HOSPITALS[0]] and item["sender"] == "HIS^WINNING"
        status, one = await _get(client, f"/api/messages/{item['id']}")
        assert status == 200
        [row] = one["outbox"]
        assert row["destination"] == "nhsa" and row["state"] == "delivered"
        assert len(row["msgid"]) == 30
        tries = row["tries"]
        assert [(t["outcome"], t["http_status"]) for t in tries] == [("retry", 503),
                                                                     ("delivered", 200)]
        assert tries[1]["code"] == "0" and tries[0]["latency_ms"] >= 0
    finally:
        await stop_rig(rig)
        await client.close()


async def test_a_business_rejection_keeps_the_platforms_code_and_words(make_store) -> None:  # type: ignore[no-untyped-def]
    store = await make_store(lease_s=5.0)
    sim = SimulatorState()
    sim.faults.reject_next = 1
    rig = await make_rig(store, [destination("nhsa", "{sim}/fsi/api/inventory")], {"sim": sim})
    client = await _client(store)
    try:
        await rig.send([dispense(7, HOSPITALS[1])])
        await rig.settle()
        # the rig's message was received on the dispense's day: older than the default window
        _, page = await _get(client, "/api/messages", state="dead_letter")
        assert page["items"] == []
        _, page = await _get(client, "/api/messages", state="dead_letter",
                             since="2026-11-01T00:00:00+08:00")
        [item] = page["items"]
        _, one = await _get(client, f"/api/messages/{item['id']}")
        [attempt] = one["outbox"][0]["tries"]
        assert attempt["outcome"] == "rejected" and attempt["http_status"] == 200
        assert attempt["code"] == "-1" and attempt["message"]
        assert one["outbox"][0]["state"] == "dead"
    finally:
        await stop_rig(rig)
        await client.close()


async def test_a_held_message_says_which_item_is_unmapped_and_patients_are_masked(
        make_store) -> None:  # type: ignore[no-untyped-def]
    store = await make_store()
    committed = await store.commit(_real_dispense())
    client = await _client(store)
    try:
        _, page = await _get(client, "/api/messages", state="held", hospital=HOSPITALS[0])
        assert [i["id"] for i in page["items"]] == [str(committed.message_id)]
        assert page["window"]["defaulted"] is True  # no since: the last 24 hours
        path = f"/api/messages/{committed.message_id}"

        status, clear = await _get(client, path)
        assert status == 200 and clear["masked"] is False
        assert base64.b64decode(clear["raw_base64"]) == SAMPLE.read_bytes()
        assert clear["charset"] == "utf-8" and "张^伟" in clear["text"]
        assert clear["events"][0]["event"]["patient"]["name"] == "张伟"
        held = clear["events"][0]
        assert held["held"] and "Y0012345" in held["held_reason"]
        assert HOSPITALS[0] in held["held_reason"]
        assert clear["answer"]["rebuilt"] and "MSA|AA|RDS20261123000001" in \
            clear["answer"]["text"]

        for role in ("pharmacist", "auditor", "procurement"):
            status, masked = await _get(client, path, TOKENS[role])
            assert status == 200 and masked["masked"] is True, role
            assert "raw_base64" not in masked
            text = masked["text"]
            for secret in ("张^伟", "330102198001010016", "13800138000", "0001234567",
                           "MZ20261123001"):
                assert secret not in text, (role, secret)
            assert "张^*" in text and "3301**********0016" in text and "138****8000" in text
            patient = masked["events"][0]["event"]["patient"]
            assert patient["name"] == "张*" and patient["id_card"] == "3301**********0016"
            assert "330102198001010016" not in str(masked)
            # what is not about the patient stays readable
            assert "阿那曲唑片" in text and "李^明" in text
        status, _ = await _get(client, path, TOKENS["sender"])
        assert status == 403
    finally:
        await client.close()


async def test_a_quarantined_input_shows_its_bytes_and_reason(make_store) -> None:  # type: ignore[no-untyped-def]
    store = await make_store()
    raw = "MSH|^~\\&|HIS|ZJSRMYY|JCGW|JCGW|20261123093015||RDS^O13|RX20261123000001|P|2.5\r" \
          "PID|1||0001234567||王^芳\rRXD|1|Y0012345^阿那曲唑片|数量|两盒".encode()
    qid = await store.quarantine(raw, peer="10.12.0.31:50113", adapter="hl7v2",
                                 reason="RXD-4: quantity 数量 is not a number",
                                 received_at=datetime.now(CHINA_TZ))
    client = await _client(store)
    try:
        _, page = await _get(client, "/api/messages", state="quarantined",
                             control_id="RX20261123000001")
        [item] = page["items"]
        assert item["id"] == f"q{qid}" and "RXD-4" in item["reason"]
        status, admin = await _get(client, f"/api/messages/q{qid}")
        assert status == 200 and base64.b64decode(admin["raw_base64"]) == raw
        assert "王^芳" in admin["text"] and admin["reason"].startswith("RXD-4")
        status, masked = await _get(client, f"/api/messages/q{qid}", TOKENS["auditor"])
        assert status == 200 and "raw_base64" not in masked
        assert "王^*" in masked["text"] and "王^芳" not in masked["text"]
        # bytes that never became a message name no hospital: not for a limited identity
        assert (await _get(client, f"/api/messages/q{qid}", LIMITED))[0] == 404
        assert (await _get(client, "/api/messages", LIMITED, state="quarantined"))[1][
            "items"] == []
        status, err = await _get(client, "/api/messages", state="quarantined",
                                 item="Y0012345")
        assert status == 400 and "item" in err["error"]
    finally:
        await client.close()


async def test_a_hospital_limited_identity_sees_only_its_hospital(make_store) -> None:  # type: ignore[no-untyped-def]
    store = await make_store()
    mine = await store.commit(incoming([dispense(1, HOSPITALS[1])], [("nhsa", 1)]))
    other = await store.commit(incoming([dispense(2, HOSPITALS[0])], [("nhsa", 1)]))
    client = await _client(store)
    try:
        _, page = await _get(client, "/api/messages", LIMITED)
        assert [i["id"] for i in page["items"]] == [str(mine.message_id)]
        assert (await _get(client, f"/api/messages/{mine.message_id}", LIMITED))[0] == 200
        assert (await _get(client, f"/api/messages/{other.message_id}", LIMITED))[0] == 404
        assert (await _get(client, "/api/messages", LIMITED, hospital=HOSPITALS[0]))[0] == 403
        _, everything = await _get(client, "/api/messages", TOKENS["auditor"])
        assert len(everything["items"]) == 2
    finally:
        await client.close()


async def test_pages_follow_the_cursor_and_limits_are_enforced(make_store) -> None:  # type: ignore[no-untyped-def]
    store = await make_store()
    ids = [(await store.commit(incoming([dispense(n)], [("nhsa", 1)]))).message_id
           for n in range(1, 8)]
    other_item = await store.commit(incoming([dispense(9, item="Y0099999", code="XG04BET"
                                                        "001A001010207360")], [("nhsa", 1)]))
    client = await _client(store)
    try:
        seen: list[str] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 3, "item": "Y0012345"}
            if after:
                params["after_id"] = after
            _, page = await _get(client, "/api/messages", **params)
            seen += [i["id"] for i in page["items"]]
            after = page["next_after_id"]
            if after is None:
                break
        assert seen == [str(i) for i in reversed(ids)]  # newest first, each once
        _, by_code = await _get(client, "/api/messages", item="XG04BET001A001010207360")
        assert [i["id"] for i in by_code["items"]] == [str(other_item.message_id)]
        for bad in ({"limit": 501}, {"limit": 0}, {"state": "lost"}, {"since": "yesterday"},
                    {"after_id": "-1"}, {"colour": "red"}):
            status, err = await _get(client, "/api/messages", **bad)
            assert status == 400 and err["error"], bad
        _, old = await _get(client, "/api/messages", until=time.time() - 2 * 86400)
        assert old["items"] == [] and old["window"]["defaulted"] is True
        assert (await _get(client, "/api/messages/abc"))[0] == 400
        assert (await _get(client, "/api/messages/99999"))[0] == 404
    finally:
        await client.close()


@pytest.mark.parametrize("name", ["rds_o13_dispense_gb18030.hl7"])
def test_gb18030_text_is_decoded_as_msh18_says(name: str) -> None:
    from gateway.browser.service import decode_text
    text, charset = decode_text((DATA / "hl7v2" / name).read_bytes())
    assert charset == "gb18030" and "他达拉非片" in text


async def test_the_browser_needs_an_identity(make_store) -> None:  # type: ignore[no-untyped-def]
    store = await make_store()
    client = await _client(store)
    try:
        async with aiohttp.ClientSession() as s, s.get(
                client.make_url("/api/messages")) as r:
            assert r.status == 401
    finally:
        await client.close()
