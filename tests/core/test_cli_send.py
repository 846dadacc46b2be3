"""`jicai-gateway send`: the by-hand client answers with the ACK and an exit status."""

from __future__ import annotations

import asyncio

import pytest
from helpers import HL7, free_port

from gateway.cli.main import main


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
