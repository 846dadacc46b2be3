"""Signed webhooks: prescription warnings and overdue deadlines reach other systems."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer
from helpers import HOSPITAL, MLLPClient, ack_fields, eventually, free_port, make_config, sample

from canonical.model import CHINA_TZ, Event, EventKind, Line
from gateway.app import LEDGER_FEED, PUSHER, STORE, build_app
from gateway.store.base import Incoming
from gateway.webhooks import verify

SECRET = "hook-s3cret"


async def test_warning_and_overdue_filing_are_pushed_signed_without_patient_data(
        tmp_path: Path) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = TestServer(receiver_app, host="127.0.0.1")
    await receiver.start_server()
    mllp, sim = free_port(), free_port()
    cfg = make_config(tmp_path, mllp_port=mllp, http_port=0, simulator_port=sim,
                      platform_url=f"http://127.0.0.1:{sim}/fsi/api/x",
                      webhooks=[{"url": str(receiver.make_url("/hook")), "secret": SECRET}])
    app = build_app(cfg)
    gw = TestServer(app, host="127.0.0.1")
    await gw.start_server()
    try:
        client = await MLLPClient.connect(mllp)
        ack = ack_fields(await client.send(sample("rde_o11_prescription_utf8.hl7")))
        await client.close()
        assert ack["MSA"][1] == "AA"
        await eventually(lambda: received, what="the prescription warning pushed")
        headers, body = received[0]
        assert verify(SECRET.encode(), headers["X-Jicai-Timestamp"], body,
                      headers["X-Jicai-Signature"], now=time.time())
        warning = orjson.loads(body)
        assert warning["type"] == "prescription.warning"
        assert warning["document_no"] == "CF20261123000456"
        assert warning["findings"][0]["rule_id"] == "nonwinning-while-lagging"
        assert "XL02BGA045A001010104520" in warning["findings"][0]["replacements"]
        for secret in (b"\\u9648\\u79c0\\u82f1", "陈秀英".encode(), b"330102196505120021",
                       b"13905710000"):
            assert secret not in body  # the patient stays in the hospital

        # an off-platform purchase 10 working days ago is past its 7-day filing deadline
        bought = datetime.now(CHINA_TZ) - timedelta(days=20)
        await app[STORE].commit(Incoming(
            adapter="test", sender="test", control_id="offline-1", message_type="TEST",
            raw=b"", received_at=bought, held=(False,), events=(Event(
                "offline-1", EventKind.RECEIPT, HOSPITAL, "test", bought,
                (Line(1, "Y0012345", "阿那曲唑片", quantity=Decimal(10), price=Decimal(30),
                      national_code="XL02BGA045A001010104520",
                      national_quantity=Decimal(140)),),
                document_no="RK-OFF-001", online=False),)))
        await app[LEDGER_FEED].fold_pending()
        pushed = await app[PUSHER].check_deadlines(datetime.now(CHINA_TZ))
        assert pushed == 1
        assert await app[PUSHER].check_deadlines(datetime.now(CHINA_TZ)) == 0  # told once
        await eventually(lambda: len(received) >= 2, what="the deadline alert pushed")
        alert = orjson.loads(received[1][1])
        assert alert["type"] == "deadline.overdue"
        assert alert["kind"] == "filing" and alert["state"] == "overdue"
    finally:
        await gw.close()
        await receiver.close()
