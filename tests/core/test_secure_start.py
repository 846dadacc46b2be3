"""``serve`` refuses to open the gateway to the network without authentication; HTTPS
with tokens works end to end; demo mode says so; ``token new`` makes usable entries."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
import yaml
from aiohttp.test_utils import TestServer
from helpers import ROOT, config_dict, free_port

from gateway.app import build_app
from gateway.config import parse_config
from gateway.security.exposure import exposure_problems, is_loopback_host
from gateway.security.identity import hash_token


def _cfg(tmp: Path, **extra: Any) -> dict[str, Any]:
    sim = free_port()
    return config_dict(tmp, mllp_port=free_port(), http_port=free_port(), simulator_port=sim,
                       platform_url=f"http://127.0.0.1:{sim}/fsi/api/inventory", **extra)


def _serve(tmp: Path, cfg: dict[str, Any], timeout: float = 20) -> subprocess.CompletedProcess[str]:
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
    return subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "-c", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_loopback_names_are_recognised() -> None:
    assert all(map(is_loopback_host, ("127.0.0.1", "::1", "localhost", "127.8.0.1")))
    assert not any(map(is_loopback_host, ("0.0.0.0", "::", "", "10.20.1.5", "his-gw.local")))


def test_the_sample_configuration_is_safe_to_start(tmp_path: Path) -> None:
    assert exposure_problems(parse_config(_cfg(tmp_path), "t.yaml")) == []


def test_each_open_door_is_named_with_its_setting(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    cfg["http"]["host"] = "0.0.0.0"
    cfg["listeners"][0]["host"] = "0.0.0.0"
    problems = exposure_problems(parse_config(cfg, "t.yaml"))
    text = "\n".join(problems)
    assert "security.identities" in text          # no one authenticates over HTTP
    assert "http.tls" in text                      # and it would be plain text
    assert "listeners[0].tls.client_ca_file" in text and "allow_from" in text
    assert "security.demo" in text                 # purchases would go to the simulator
    # configured properly, nothing is left
    cfg["security"] = {"identities": [{"name": "his", "role": "sender",
                                       "token_sha256": hash_token("x" * 40)}], "demo": True}
    cfg["http"]["allow_plaintext"] = True
    cfg["listeners"][0]["allow_from"] = ["10.20.0.0/16"]
    assert exposure_problems(parse_config(cfg, "t.yaml")) == []


def test_serve_refuses_a_network_bind_without_authentication(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    cfg["http"]["host"] = "0.0.0.0"
    done = _serve(tmp_path, cfg)
    assert done.returncode == 2
    assert "refusing to start" in done.stderr
    assert "http.host is '0.0.0.0'" in done.stderr and "security.identities" in done.stderr
    assert not (tmp_path / "var" / "gateway.db").exists()  # it stopped before anything


async def _until_up(url: str, ctx: ssl.SSLContext, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise AssertionError(f"the gateway exited with {proc.returncode}")
        try:
            async with aiohttp.ClientSession() as s, s.get(url, ssl=ctx) as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the gateway did not come up")


@pytest.mark.timeout(60)
async def test_https_with_a_token_end_to_end(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "gw.pem"))
    token = "jcgw_" + "t0ken" * 8
    cfg = _cfg(tmp_path)
    cfg["http"]["tls"] = {"cert_file": str(tmp_path / "gw.pem"),
                          "key_file": str(tmp_path / "gw.pem")}
    cfg["security"] = {"identities": [{"name": "药剂科-李娜", "role": "pharmacist",
                                       "token_sha256": hash_token(token)}]}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "-c", str(path)],
                            cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    base = f"https://127.0.0.1:{cfg['http']['port']}"
    try:
        await _until_up(base + "/healthz", ctx, proc)
        async with aiohttp.ClientSession() as s:
            async with s.get(base + "/api/unmapped", ssl=ctx) as r:
                assert r.status == 401
            async with s.get(base + "/api/unmapped", ssl=ctx,
                             headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientError):  # no plain HTTP on the TLS port
                async with s.get(f"http://127.0.0.1:{cfg['http']['port']}/healthz") as r:
                    await r.read()
    finally:
        proc.terminate()
        proc.wait(20)
    assert "gateway HTTP on https://" in log.read_text("utf-8")


async def test_demo_mode_says_so_in_readyz(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, security={"demo": True})
    server = TestServer(build_app(parse_config(cfg, "t.yaml")), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as s, s.get(server.make_url("/readyz")) as r:
            body = await r.json()
        assert "demo mode" in body["demo"]
    finally:
        await server.close()


def test_token_new_prints_an_entry_the_configuration_takes(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "gateway.cli", "token", "new", "--name",
                           "yjk-lina", "--role", "pharmacist", "--hospital", "H33010200015"],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    token = done.stderr.split("only its hash is kept): ")[1].split()[0]
    entries = yaml.safe_load(done.stdout)
    assert entries[0]["token_sha256"] == hash_token(token)
    cfg = parse_config(_cfg(tmp_path, security={"identities": entries}), "t.yaml")
    assert cfg.security.identities[0].hospitals == ("H33010200015",)
    hashed = subprocess.run([sys.executable, "-m", "gateway.cli", "token", "hash"],
                            input=token + "\n", cwd=ROOT, capture_output=True, text=True,
                            timeout=30)
    assert hashed.stdout.strip() == hash_token(token)


def _container_env(tmp: Path, **env: str) -> dict[str, str]:
    ca = trustme.CA()
    cert = ca.issue_cert("jcgw.zjsrmyy.local")
    cert.cert_chain_pems[0].write_to_path(str(tmp / "http.crt"))
    cert.private_key_pem.write_to_path(str(tmp / "http.key"))
    (tmp / "identities.yaml").write_text(
        "- {name: his-winning, role: sender, token_sha256: "
        f"{hash_token('jcgw_' + 'a' * 40)}}}\n", "utf-8")
    return {"JCGW_SECRETS": str(tmp), "JCGW_MLLP_ALLOW_FROM": "10.20.1.15, 10.20.8.0/24",
            **env}


def _container_config(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    from gateway.config import load_config

    for name in ("JCGW_PLATFORM_URL", "JCGW_DEMO", "JCGW_MLLP_ALLOW_FROM", "JCGW_SECRETS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(ROOT)
    return load_config(ROOT / "config" / "container.yaml")


def test_the_container_configuration_needs_the_platform_and_mirrors_nowhere_else(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from canonical.errors import ConfigError

    with pytest.raises(ConfigError, match="JCGW_PLATFORM_URL"):
        _container_config(monkeypatch, _container_env(tmp_path))
    cfg = _container_config(monkeypatch, _container_env(
        tmp_path, JCGW_PLATFORM_URL="https://fsi.zj.hsip.gov.cn/fsi/api/inventory"))
    assert exposure_problems(cfg) == []
    assert not cfg.simulator.enabled and not cfg.security.demo
    assert cfg.listeners[0].allow_from == ("10.20.1.15", "10.20.8.0/24")
    assert cfg.http.tls is not None


def test_the_container_demo_mode_is_explicit(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _container_config(monkeypatch, _container_env(
        tmp_path, JCGW_DEMO="true",
        JCGW_PLATFORM_URL="http://127.0.0.1:8090/fsi/api/inventory"))
    assert cfg.simulator.enabled and cfg.security.demo
    assert exposure_problems(cfg) == []
    # the simulator as the platform, without saying demo, is refused
    undeclared = cfg.model_copy(update={"security": cfg.security.model_copy(
        update={"demo": False})})
    assert any("security.demo" in p for p in exposure_problems(undeclared))


@pytest.mark.timeout(60)
async def test_serve_closes_a_connection_whose_headers_trickle_in(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    cfg["http"]["read_timeout_s"] = 1
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "-c", str(path)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = cfg["http"]["port"]
    try:
        for _ in range(200):
            try:
                async with aiohttp.ClientSession() as s, \
                        s.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = asyncio.get_running_loop().time()
        header = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 60
        for byte in header:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break
            if reader.at_eof():
                break
            try:
                if await asyncio.wait_for(reader.read(1), 0.2) == b"":
                    break
            except TimeoutError:
                pass
        closed_after = asyncio.get_running_loop().time() - started
        writer.close()
        assert closed_after < 5, "a trickling client kept its connection"
    finally:
        proc.terminate()
        proc.wait(20)


async def test_an_https_client_certificate_proves_an_identity(tmp_path: Path) -> None:
    from gateway.config import TlsConfig
    from gateway.security.tls import server_context

    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "gw.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cfg = _cfg(tmp_path, security={"identities": [
        {"name": "spd-warehouse", "role": "pharmacist", "certificate_cn": "spd.zjsrmyy"}]})
    server_ctx = server_context(TlsConfig(cert_file=tmp_path / "gw.pem",
                                          key_file=tmp_path / "gw.pem",
                                          client_ca_file=tmp_path / "ca.pem"))
    server = TestServer(build_app(parse_config(cfg, "t.yaml")), host="127.0.0.1")
    await server.start_server(ssl=server_ctx)

    def client(cn: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        if cn is not None:
            ca.issue_cert(f"{cn}.example", common_name=cn).configure_cert(ctx)
        return ctx

    try:
        async with aiohttp.ClientSession() as s:
            url = server.make_url("/api/unmapped")
            async with s.get(url, ssl=client("spd.zjsrmyy")) as r:
                assert r.status == 200
            async with s.post(server.make_url("/api/replay"), json={"ids": [1]},
                              ssl=client("spd.zjsrmyy")) as r:
                assert r.status == 403  # a pharmacist, not an admin
            async with s.get(url, ssl=client("someone-else")) as r:
                assert r.status == 401  # a valid certificate, but nobody we know
            with pytest.raises(aiohttp.ClientError):  # no certificate: no TLS session
                async with s.get(url, ssl=client(None)) as r:
                    await r.read()
    finally:
        await server.close()
