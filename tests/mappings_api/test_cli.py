"""The mappings and catalog commands drive a running gateway through its HTTP API."""

from __future__ import annotations

import asyncio
import json

import pytest
from api_helpers import held_dispense
from helpers import DATA, HOSPITAL

from gateway.cli.main import main

CATALOG = DATA / "codes" / "nhsa_drug_catalog_sample.csv"


async def _cli(gw, *argv: str) -> int:
    base = str(gw.server.make_url("/")).rstrip("/")
    command = [*argv[:2], "--url", base, *argv[2:]]
    return await asyncio.to_thread(main, command)


async def test_cli_imports_a_catalog_and_accepts_a_suggestion(gateway, capsys, monkeypatch,
                                                              tmp_path) -> None:
    monkeypatch.delenv("JCGW_USER", raising=False)
    assert await _cli(gateway, "catalog", "import", str(CATALOG), "--version", "2025-first") == 0
    assert "drug catalog version 2025-first: drug catalog: 7703 codes kept" in \
        capsys.readouterr().out
    await gateway.send(held_dispense(0), held_dispense(1))

    assert await _cli(gateway, "mappings", "unmapped") == 0
    out = capsys.readouterr().out
    assert f"{HOSPITAL}/Y9990001" in out and "×2" in out
    assert "1. XL02BGA045A001010104641" in out and "[factor 14]" in out

    # no --user needed: the change is the authenticated caller's (here the loopback one)
    assert await _cli(gateway, "mappings", "accept", HOSPITAL, "Y9990001", "--rank", "1") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["released"] == 2
    assert answer["audit"][0]["user"] == "local"
    await gateway.delivered(2)
    assert {s["med_list_codg"] for s in gateway.received()} == {"XL02BGA045A001010104641"}

    assert await _cli(gateway, "mappings", "list", "-q", "Y9990001") == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["total"] == 1 and listed["entries"][0]["factor"] == "14"
    target = tmp_path / "对码.xlsx"
    assert await _cli(gateway, "mappings", "export", str(target)) == 0
    assert target.read_bytes()[:2] == b"PK"


async def test_cli_reports_refused_changes_with_every_problem(gateway, capsys,
                                                              tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("院内编码,国家医保编码,换算系数\nY1,XL02,abc\nY2,,14\n", "utf-8")
    code = await _cli(gateway, "mappings", "import", str(bad), "--hospital", HOSPITAL,
                      "--user", "信息科 王强")
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("HTTP 400")
    assert "row 2" in err and "row 3" in err


async def test_cli_sends_the_api_token_of_a_protected_gateway(launcher, capsys,
                                                              monkeypatch) -> None:
    gw = await launcher.start(http={"host": "127.0.0.1", "port": 0, "api_token": "t0ken-Ab9"})
    monkeypatch.delenv("JCGW_API_TOKEN", raising=False)
    assert await _cli(gw, "mappings", "list") == 1
    assert "HTTP 401" in capsys.readouterr().err
    monkeypatch.setenv("JCGW_API_TOKEN", "t0ken-Ab9")
    assert await _cli(gw, "mappings", "add", HOSPITAL, "Y0077001", "XL02BBB085A001010100665",
                      "--factor", "28", "--user", "信息科 王强") == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["entry"]["factor"] == "28"
    # the author is the identity the token proves; --user (sent percent-encoded) is a note
    assert answer["audit"][0]["user"] == "api-token"
    assert answer["audit"][0]["note"] == "(stated by the caller: 信息科 王强)"


def test_cli_says_when_the_gateway_is_not_running(capsys) -> None:
    from helpers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    assert main(["catalog", "list", "--url", url, "--timeout", "2"]) == 2
    assert "cannot reach the gateway" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["mappings", "--help"], ["catalog", "--help"]])
def test_help_lists_the_commands(argv, capsys) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    assert "import" in capsys.readouterr().out
