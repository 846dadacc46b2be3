"""A warehouse receipt the provincial procurement platform (招采) would refuse is held.

Through the whole gateway: the warehouse JSON arrives over HTTP, is acknowledged (the
goods were received), and a receipt without its invoice number waits, named, while a
complete one reaches the strict platform simulator.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer
from helpers import DATA, HOSPITAL, HTTP_LISTENERS, TIMINGS, eventually, free_port, make_config

from gateway.app import build_app
from gateway.platforms.simulator import SimulatorState, simulator_app

RECEIPT = DATA / "zhaocai" / "receipt_against_shipment.json"
APP = ("JCGW-HZ-001", "zc-secret")
# the receipt's items: 阿那曲唑片 and 奥硝唑阴道栓 of the makers named in it
CROSSWALK = (
    "hospital_id,item_code,national_code,item_name,hospital_unit,national_unit,factor\n"
    f"{HOSPITAL},Y0045201,XL02BGA045A001010104641,阿那曲唑片(海正),盒,片,14\n"
    f"{HOSPITAL},Y0033107,XG01AFA222D003010104920,奥硝唑阴道栓(方盛),盒,枚,5\n")


def _receipt(number: str, *, invoice: bool) -> bytes:
    doc = json.loads(RECEIPT.read_text("utf-8"))
    doc["消息ID"] = f"SPD-{number}"
    doc["单据列表"][0]["单据号"] = number
    if not invoice:
        del doc["单据列表"][0]["发票号"]
    return json.dumps(doc, ensure_ascii=False).encode()


async def test_a_receipt_without_its_invoice_is_held_naming_the_field(tmp_path: Path) -> None:
    sim = SimulatorState()
    sim.apps[APP[0]] = APP[1].encode()
    platform = TestServer(simulator_app(sim), host="127.0.0.1")
    await platform.start_server()
    crosswalk = tmp_path / "crosswalk.csv"
    crosswalk.write_text(CROSSWALK, "utf-8")
    cfg = make_config(tmp_path, mllp_port=free_port(), http_port=0,
                      platform_url="http://127.0.0.1:9/fsi/api/inventory",
                      listeners=HTTP_LISTENERS, crosswalk={"csv": str(crosswalk)},
                      destinations=[{"name": "zj", "profile": "zhaocai",
                                     "url": str(platform.make_url("/zc/api")),
                                     "app_code": APP[0], "app_secret": APP[1]}])
    server = TestServer(build_app(cfg, timings=TIMINGS), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            for number, invoice in (("RK20261203012", False), ("RK20261203013", True)):
                async with http.post(server.make_url("/ingest/spd-json"),
                                     data=_receipt(number, invoice=invoice)) as r:
                    assert r.status == 200, await r.text()
            await eventually(lambda: len(sim.order) == 1, what="the complete receipt sent")
            async with http.get(server.make_url("/api/held")) as r:
                (held,) = await r.json()
        assert held["document_no"] == "RK20261203012"
        assert held["reasons"] == [
            "zj: delivery.receive invoiceNo has no value (source extra.invoice_no)"]
        (env,) = sim.accepted.values()
        assert env["infno"] == "delivery.receive"
        assert env["input"]["data"]["receiptNo"] == "RK20261203013"
        assert sim.rejected == []
    finally:
        await server.close()
        await platform.close()
