"""`jicai-gateway send`: the by-hand client answers with the ACK and an exit status."""

from __future__ import annotations

import asyncio

import pytest
from helpers import HL7, free_port

from gateway.cli.main import main

FHIR_DISPENSE = "medicationdispense_contained_trace_codes.json"


async def test_send_prints_acks_and_exits_by_their_code(
        gateway, capsys: pytest.CaptureFixture[str]) -> None:
    target = f"127.0.0.1:{gateway.mllp_port}"
    good = [str(HL7 / "rds_o13_dispense_utf8.hl7"), str(HL7 / "rds_o13_dispense_gb18030.hl7")]
    assert await asyncio.to_thread(main, ["send", "--mllp", target, *good]) == 0
    out = capsys.readouterr().out
    assert "MSA|AA|RDS20261123000001" in out
    assert "MSA|AA|RDS20261123000777" in out
    bad = str(HL7 / "bad_unknown_type_adt.hl7")
    assert await asyncio.to_thread(main, ["send", "--mllp", target, bad]) == 1
    assert "MSA|AR|" in capsys.readouterr().out


async def test_send_to_nothing_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code = await asyncio.to_thread(
        main, ["send", "--mllp", f"127.0.0.1:{port}", str(HL7 / "rds_o13_dispense_utf8.hl7")])
    assert code == 2
    assert f"cannot connect to MLLP listener 127.0.0.1:{port}" in capsys.readouterr().err


async def test_send_over_http_carries_the_sender_token(
        tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from aiohttp.test_utils import TestServer
    from helpers import HTTP_LISTENERS, ROOT, config_dict

    from gateway.app import build_app
    from gateway.config import parse_config
    from gateway.security.identity import hash_token, new_token

    token = new_token()
    sim = free_port()
    cfg = config_dict(tmp_path, mllp_port=free_port(), http_port=0, simulator_port=sim,
                      platform_url=f"http://127.0.0.1:{sim}/fsi/api/inventory",
                      security={"identities": [{"name": "emr-winning", "role": "sender",
                                                "token_sha256": hash_token(token)}]})
    cfg["listeners"] = [*cfg["listeners"], *HTTP_LISTENERS]
    # the FHIR sample names this hospital; one not configured is refused at the door
    cfg["hospitals"].append({"code": "H33010200001", "name": "浙江省人民医院(朝晖院区)",
                             "admdvs": "330100"})
    server = TestServer(build_app(parse_config(cfg, "t.yaml")), host="127.0.0.1")
    await server.start_server()
    dispense = str(ROOT / "tests" / "data" / "fhir-r4" / "valid" / FHIR_DISPENSE)
    try:
        url = str(server.make_url("/fhir"))
        assert await asyncio.to_thread(main, ["send", "--http", url, dispense]) == 1
        assert "401" in capsys.readouterr().out
        assert await asyncio.to_thread(
            main, ["send", "--http", url, "--token", token, dispense]) == 0
        assert "HTTP 20" in capsys.readouterr().out
    finally:
        await server.close()
