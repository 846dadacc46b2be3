"""An event a platform would refuse for a missing mandatory field is held, not sent.

The dispensing pharmacist's practising-licence number (``phar_prac_cert_no``, ZJC-9) is
mandatory in 3505. A HIS that does not send it gets its dispense acknowledged (the
hospital did dispense), the event is held with the field named, nothing reaches the
platform, and once the deployment supplies the value (``field_defaults``) the event goes.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer
from helpers import TIMINGS, MLLPClient, ack_fields, eventually, free_port, make_config, sample

from gateway.app import build_app

NO_LICENCE = "rds_o13_dispense_no_licence.hl7"
FIELD = "3505 phar_prac_cert_no"


async def _start(tmp: Path, mllp: int, sim: int, **dest: object) -> TestServer:
    cfg = make_config(tmp, mllp_port=mllp, http_port=0, simulator_port=sim,
                      platform_url=f"http://127.0.0.1:{sim}/fsi/api/inventory")
    if dest:
        d = cfg.destinations[0].model_copy(update=dest)
        cfg = cfg.model_copy(update={"destinations": (d,)})
    server = TestServer(build_app(cfg, timings=TIMINGS), host="127.0.0.1")
    await server.start_server()
    return server


async def test_a_dispense_without_the_licence_number_is_held_then_sent_once_supplied(
        tmp_path: Path) -> None:
    mllp, sim = free_port(), free_port()
    server = await _start(tmp_path, mllp, sim)
    try:
        client = await MLLPClient.connect(mllp)
        ack = ack_fields(await client.send(sample(NO_LICENCE)))
        await client.close()
        assert ack["MSA"][1] == "AA"  # stored: the hospital did dispense
        async with aiohttp.ClientSession() as s:
            async with s.get(server.make_url("/api/held")) as r:
                assert r.status == 200
                (held,) = await r.json()
            async with s.post(server.make_url("/api/held/release"), json={}) as r:
                assert (await r.json()) == {"released": 0}  # still nothing to fill it
            async with s.get(server.make_url("/metrics")) as r:
                text = await r.text()
        assert held["document_no"] == "CF20261123000977"
        assert any(FIELD in reason and "extra.phar_prac_cert_no" in reason
                   for reason in held["reasons"]), held["reasons"]
        assert (f'jcgw_events_incomplete_total{{destination="nhsa",field="{FIELD}"}} 1.0'
                in text)
        sent = await _sim_counts(sim)
        assert sent["accepted"] == 0 and sent["rejected"] == 0  # never sent to be refused
    finally:
        await server.close()
    # the deployment supplies the value; at the next start the event goes
    server = await _start(tmp_path, mllp, sim,
                          field_defaults={"phar_prac_cert_no": "330102201500231"})
    try:
        async def accepted() -> bool:
            return (await _sim_counts(sim))["accepted"] == 1
        await eventually(accepted, timeout=10, what="the held dispense delivered")
        async with aiohttp.ClientSession() as s:
            async with s.get(server.make_url("/api/held")) as r:
                assert await r.json() == []
            async with s.get(f"http://127.0.0.1:{sim}/_sim/received?infno=3505") as r:
                (env,) = await r.json()
        assert env["input"]["selinfo"]["phar_prac_cert_no"] == "330102201500231"
        assert env["input"]["selinfo"]["rtal_docno"] == "CF20261123000977"
    finally:
        await server.close()


async def _sim_counts(port: int) -> dict[str, int]:
    async with aiohttp.ClientSession() as s, \
            s.get(f"http://127.0.0.1:{port}/_sim/counts") as r:
        counts: dict[str, int] = await r.json()
        return counts
