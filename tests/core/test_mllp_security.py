"""The MLLP listener on a hospital network: mutual TLS with sender identities, the source
allow-list, connection caps, idle and slow-frame timers — over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp.test_utils import TestServer
from helpers import (
    DATA,
    HL7,
    HOSPITAL,
    HTTP_LISTENERS,
    TIMINGS,
    MLLPClient,
    RunningGateway,
    ack_fields,
    config_dict,
    free_port,
    numbered_dispense,
    sample,
)

from canonical.errors import ConfigError
from gateway.app import METRICS, build_app
from gateway.cli.main import main as cli_main
from gateway.config import ListenerConfig, parse_config
from gateway.ingest.door import Door, source_address
from gateway.ingest.framing import END, START
from gateway.security.identity import hash_token

OTHER_HOSPITAL = "H44010600022"  # 广州市第一人民医院, MSH-4 GZSYRMYY
SERVER_NAME = "jcgw.hospital.example"


class Pki:
    """A CA, the listener's certificate and client certificates, written as PEM files."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "pki"
        self.dir.mkdir()
        self.ca = trustme.CA()
        self.ca_file = self._write("ca.pem", self.ca.cert_pem.bytes())
        server = self.ca.issue_cert(SERVER_NAME, "127.0.0.1")
        self.cert_file = self._write("server.pem", b"".join(
            p.bytes() for p in server.cert_chain_pems))
        self.key_file = self._write("server.key", server.private_key_pem.bytes())

    def _write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path

    def client(self, cn: str | None, ca: trustme.CA | None = None) -> ssl.SSLContext:
        """A client's context trusting the listener; with ``cn``, a certificate of that
        subject CN issued by ``ca`` (default: the listener's CA)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        self.ca.configure_trust(ctx)
        if cn is not None:
            (ca or self.ca).issue_cert(f"{cn}.hospital.example", common_name=cn) \
                .configure_cert(ctx)
        return ctx


def _config(tmp: Path, listener: dict[str, Any], security: dict[str, Any] | None = None,
            http_listeners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    sim = free_port()
    cfg = config_dict(tmp, mllp_port=free_port(), http_port=0, simulator_port=sim,
                      platform_url=f"http://127.0.0.1:{sim}/fsi/api/inventory")
    cfg["hospitals"].append({"code": OTHER_HOSPITAL, "name": "广州市第一人民医院",
                             "admdvs": "440100"})
    mllp = cfg["listeners"][0]
    mllp["config"]["facilities"]["GZSYRMYY"] = OTHER_HOSPITAL
    mllp.update(listener)
    cfg["listeners"] = [mllp, *(http_listeners or [])]
    if security is not None:
        cfg["security"] = security
    return cfg


@contextlib.asynccontextmanager
async def running(cfg: dict[str, Any]) -> AsyncIterator[RunningGateway]:
    """A gateway started from ``cfg`` in this event loop."""
    app = build_app(parse_config(cfg, "test.yaml"), timings=TIMINGS)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield RunningGateway(app, server, cfg["listeners"][0]["port"])
    finally:
        await server.close()


def _refused(gw: RunningGateway, reason: str) -> float:
    value = gw.app[METRICS].registry.get_sample_value(
        "jcgw_mllp_connections_refused_total", {"listener": "his-mllp", "reason": reason})
    return value or 0.0


def _open(gw: RunningGateway) -> float:
    value = gw.app[METRICS].registry.get_sample_value(
        "jcgw_mllp_connections_open", {"listener": "his-mllp"})
    return value or 0.0


async def _closed_by_gateway(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Read until the gateway closes the connection (EOF or reset); what it sent."""
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except (ConnectionError, ssl.SSLError):
        return b""


def _other_hospital_dispense() -> bytes:
    return (sample("rds_o13_dispense_utf8.hl7").replace(b"|ZJSRMYY|", b"|GZSYRMYY|", 1)
            .replace(b"RDS20261123000001", b"RDSGZ0000000001"))


# --- mutual TLS ----------------------------------------------------------------------------

@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def _mtls(pki: Pki) -> dict[str, Any]:
    return {"tls": {"cert_file": str(pki.cert_file), "key_file": str(pki.key_file),
                    "client_ca_file": str(pki.ca_file)}}


SECURITY = {"identities": [
    {"name": "his-zj", "role": "sender", "certificate_cn": "his-zj", "hospitals": [HOSPITAL]},
    {"name": "pharmacist-zj", "role": "pharmacist", "certificate_cn": "pharmacist-zj"},
]}


async def _tls_client(gw: RunningGateway, ctx: ssl.SSLContext) -> MLLPClient:
    r, w = await asyncio.open_connection("127.0.0.1", gw.mllp_port, ssl=ctx,
                                         server_hostname=SERVER_NAME)
    return MLLPClient(r, w)


async def _no_answer(gw: RunningGateway, ctx: ssl.SSLContext) -> None:
    """The connection is refused: during the handshake, or right after it (TLS 1.3 checks
    the client's certificate after the client considers the handshake done)."""
    try:
        client = await _tls_client(gw, ctx)
    except (ConnectionError, ssl.SSLError):
        return
    try:
        client.writer.write(START + numbered_dispense(1) + END)
        assert await _closed_by_gateway(client.reader, 5) == b""
    finally:
        await client.close()


async def test_mtls_refuses_clients_without_a_valid_certificate_and_acks_a_sender(
        tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "gateway.ingest.door")
    async with running(_config(tmp_path, _mtls(pki), SECURITY)) as gw:
        await _no_answer(gw, pki.client(None))  # no certificate
        await _no_answer(gw, pki.client("his-zj", ca=trustme.CA()))  # same CN, another CA
        assert _refused(gw, "tls_handshake") == 2
        await _no_answer(gw, pki.client("his-unknown"))  # valid, but no identity has it
        assert _refused(gw, "unknown_certificate") == 1
        await _no_answer(gw, pki.client("pharmacist-zj"))  # an identity, not a sender
        assert _refused(gw, "role") == 1

        client = await _tls_client(gw, pki.client("his-zj"))
        try:
            for n in range(3):
                ack = ack_fields(await client.send(numbered_dispense(n)))
                assert ack["MSA"][1:3] == ["AA", f"RDS{n:012d}"]
        finally:
            await client.close()
        assert await gw.store.query("SELECT count(*) FROM messages") == [(3,)]
    said = caplog.text
    assert "pharmacist-zj" in said and "'pharmacist'" in said  # who, and why
    assert "his-unknown" in said


async def test_a_sender_limited_to_one_hospital_gets_ar_for_another(
        tmp_path: Path, pki: Pki) -> None:
    async with running(_config(tmp_path, _mtls(pki), SECURITY)) as gw:
        client = await _tls_client(gw, pki.client("his-zj"))
        try:
            raw = _other_hospital_dispense()
            nak = ack_fields(await client.send(raw))
            assert nak["MSA"][1:3] == ["AR", "RDSGZ0000000001"]
            assert OTHER_HOSPITAL in nak["MSA"][3] and "his-zj" in nak["MSA"][3]
            # its own hospital on the same connection still goes through
            assert ack_fields(await client.send(numbered_dispense(7)))["MSA"][1] == "AA"
        finally:
            await client.close()
        assert await gw.store.query("SELECT count(*) FROM messages") == [(1,)]
        assert await gw.store.query(
            "SELECT count(*) FROM events WHERE hospital_id = ?", (OTHER_HOSPITAL,)) == [(0,)]
        [(reason, kept)] = await gw.store.query("SELECT reason, raw FROM quarantine")
        assert kept == raw and OTHER_HOSPITAL in reason and "his-zj" in reason


async def test_jicai_gateway_send_speaks_mutual_tls_to_the_listener(
        tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    client_pem = pki.dir / "his-zj.pem"
    pki.ca.issue_cert("his-zj.hospital.example", common_name="his-zj") \
        .private_key_and_cert_chain_pem.write_to_path(str(client_pem))
    async with running(_config(tmp_path, _mtls(pki), SECURITY)) as gw:
        args = ["send", "--mllp", f"127.0.0.1:{gw.mllp_port}", "--ca", str(pki.ca_file),
                "--cert", str(client_pem), str(HL7 / "rds_o13_dispense_utf8.hl7")]
        assert await asyncio.to_thread(cli_main, args) == 0
        assert "MSA|AA|RDS20261123000001" in capsys.readouterr().out
        # without a certificate: refused, said plainly, a non-zero exit and no traceback
        refused = [a for a in args if a not in ("--cert", str(client_pem))]
        assert await asyncio.to_thread(cli_main, refused) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"127.0.0.1:{gw.mllp_port}" in err


async def test_tls_without_client_ca_takes_any_client(tmp_path: Path, pki: Pki) -> None:
    tls = {"tls": {"cert_file": str(pki.cert_file), "key_file": str(pki.key_file)}}
    async with running(_config(tmp_path, tls)) as gw:
        client = await _tls_client(gw, pki.client(None))
        try:
            assert ack_fields(await client.send(numbered_dispense(1)))["MSA"][1] == "AA"
        finally:
            await client.close()
        # plain MLLP on a TLS port gets no answer
        plain = await MLLPClient.connect(gw.mllp_port)
        plain.writer.write(START + numbered_dispense(2) + END)
        assert await _closed_by_gateway(plain.reader, 5) == b""
        await plain.close()


async def test_a_tls_handshake_has_the_frame_deadline(tmp_path: Path, pki: Pki) -> None:
    """A client that connects to a TLS port and never says hello."""
    listener = {**_mtls(pki), "frame_deadline_s": 1.0}
    async with running(_config(tmp_path, listener, SECURITY)) as gw:
        r, w = await asyncio.open_connection("127.0.0.1", gw.mllp_port)
        started = time.monotonic()
        assert await _closed_by_gateway(r, 5) == b""
        w.close()
        assert 0.9 < time.monotonic() - started < 2.0
        assert _refused(gw, "tls_handshake") == 1
        assert _open(gw) == 0


async def test_http_ingest_for_a_hospital_the_sender_may_not_act_for_is_403(
        tmp_path: Path) -> None:
    token = "jcgw_test-sender-of-the-other-hospital"
    security = {"identities": [{"name": "spd-gz", "role": "sender",
                                "token_sha256": hash_token(token),
                                "hospitals": [OTHER_HOSPITAL]}]}
    body = (DATA / "vendor-json" / "valid" / "receipt_into_stock.json").read_bytes()
    async with running(_config(tmp_path, {}, security, HTTP_LISTENERS)) as gw, \
            aiohttp.ClientSession() as s:
        async with s.post(gw.url("/ingest/spd-json"), data=body,
                          headers={"Authorization": f"Bearer {token}",
                                   "Content-Type": "application/json"}) as r:
            assert r.status == 403, await r.text()
            text = await r.text()
        # the warehouse sample is for H33010200001
        assert "'spd-gz' may not send for hospital H33010200001" in text, text
        assert await gw.store.query("SELECT count(*) FROM messages") == [(0,)]
        assert len(await gw.store.query("SELECT id FROM quarantine")) == 1


# --- the source allow-list -------------------------------------------------------------------

async def test_allow_list_refuses_a_source_it_does_not_name(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "gateway.ingest.door")
    listener = {"allow_from": ["10.20.8.0/24", "fd00::/8", "127.0.0.2"]}
    async with running(_config(tmp_path, listener)) as gw:
        for _ in range(5):
            r, w = await asyncio.open_connection("127.0.0.1", gw.mllp_port)
            w.write(START + numbered_dispense(1) + END)
            assert await _closed_by_gateway(r, 5) == b""
            w.close()
        assert _refused(gw, "not_allowed") == 5
        # a source it names is served
        r, w = await asyncio.open_connection("127.0.0.1", gw.mllp_port,
                                             local_addr=("127.0.0.2", 0))
        client = MLLPClient(r, w)
        assert ack_fields(await client.send(numbered_dispense(2)))["MSA"][1] == "AA"
        await client.close()
        assert await gw.store.query("SELECT count(*) FROM messages") == [(1,)]
    # five refusals of one source, one log line: a flood does not flood the log
    assert caplog.text.count("refused a connection from 127.0.0.1") == 1


async def test_allow_list_naming_loopback_accepts_it(tmp_path: Path) -> None:
    async with running(_config(tmp_path, {"allow_from": ["127.0.0.0/8", "::1"]})) as gw:
        client = await MLLPClient.connect(gw.mllp_port)
        assert ack_fields(await client.send(numbered_dispense(1)))["MSA"][1] == "AA"
        await client.close()
        assert _refused(gw, "not_allowed") == 0


def test_allow_list_matches_ipv4_and_ipv6_addresses_and_networks() -> None:
    door = Door(ListenerConfig(name="x", adapter="hl7v2", port=1,
                               allow_from=("10.20.8.0/24", "10.1.2.3", "fd00::/8", "::1")))
    for ok in ("10.20.8.1", "10.20.8.255", "10.1.2.3", "fd00::1", "fd12:3456::9", "::1"):
        assert door.allowed(ok), ok
    for no in ("10.20.9.1", "10.1.2.4", "127.0.0.1", "fe80::1", "::2", "not an address"):
        assert not door.allowed(no), no
    assert door.allowed(source_address(("::ffff:10.20.8.7", 5000, 0, 0)))
    assert source_address(("fe80::1%eth0", 5000, 0, 2)) == "fe80::1"


def test_a_bad_allow_list_entry_stops_the_start_naming_it() -> None:
    with pytest.raises(ConfigError, match=re.escape("'10.20.300.0/24' is not an address")):
        Door(ListenerConfig(name="x", adapter="hl7v2", port=1, allow_from=("10.20.300.0/24",)))


# --- slow and idle senders ----------------------------------------------------------------------

async def test_a_frame_sent_a_byte_a_second_is_cut_off_at_the_frame_deadline(
        tmp_path: Path) -> None:
    async with running(_config(tmp_path, {"frame_deadline_s": 1.5})) as gw:
        r, w = await asyncio.open_connection("127.0.0.1", gw.mllp_port)
        raw = START + numbered_dispense(1)
        started = time.monotonic()

        async def trickle() -> None:
            for b in raw:
                w.write(bytes([b]))
                await asyncio.sleep(1.0)

        sender = asyncio.create_task(trickle())
        try:
            assert await _closed_by_gateway(r, 5) == b""
        finally:
            sender.cancel()
            w.close()
        took = time.monotonic() - started
        assert 1.4 < took < 2.5, took
        assert _refused(gw, "frame_deadline") == 1
        # meanwhile others are served; the cut-off frame is quarantined as such
        client = await MLLPClient.connect(gw.mllp_port)
        assert ack_fields(await client.send(numbered_dispense(2)))["MSA"][1] == "AA"
        await client.close()
        [(reason,)] = await gw.store.query("SELECT reason FROM quarantine")
        assert "cut off" in reason


async def test_an_idle_connection_is_closed_after_idle_timeout(tmp_path: Path) -> None:
    async with running(_config(tmp_path, {"idle_timeout_s": 1.0})) as gw:
        client = await MLLPClient.connect(gw.mllp_port)
        assert ack_fields(await client.send(numbered_dispense(1)))["MSA"][1] == "AA"
        answered = time.monotonic()
        assert await _closed_by_gateway(client.reader, 5) == b""
        took = time.monotonic() - answered
        await client.close()
        assert 0.9 < took < 2.0, took
        assert _refused(gw, "idle") == 1
        assert _open(gw) == 0


async def test_a_connection_owed_an_answer_is_not_idle(tmp_path: Path) -> None:
    """A commit slower than idle_timeout_s: the answer is written, then the clock runs."""
    async with running(_config(tmp_path, {"idle_timeout_s": 0.5})) as gw:
        store = gw.store
        real = store.commit_then

        def slow(incoming: Any, done: Any) -> None:
            real(incoming, lambda result: asyncio.get_running_loop().call_later(
                1.2, done, result))

        store.commit_then = slow  # type: ignore[method-assign]
        client = await MLLPClient.connect(gw.mllp_port)
        try:
            t0 = time.monotonic()
            assert ack_fields(await client.send(numbered_dispense(1)))["MSA"][1] == "AA"
            assert time.monotonic() - t0 > 1.1
            assert await _closed_by_gateway(client.reader, 5) == b""
        finally:
            await client.close()
        assert _refused(gw, "idle") == 1


async def test_a_busy_connection_is_not_idle(tmp_path: Path) -> None:
    async with running(_config(tmp_path, {"idle_timeout_s": 0.6})) as gw:
        client = await MLLPClient.connect(gw.mllp_port)
        try:
            for n in range(8):  # 1.6 s in all, never 0.6 s silent
                assert ack_fields(await client.send(numbered_dispense(n)))["MSA"][1] == "AA"
                await asyncio.sleep(0.2)
        finally:
            await client.close()
        assert _refused(gw, "idle") == 0


# --- connection caps ---------------------------------------------------------------------------

async def _latencies(client: MLLPClient, first: int, count: int) -> list[float]:
    out = []
    for n in range(first, first + count):
        t0 = time.perf_counter()
        ack = ack_fields(await client.send(numbered_dispense(n)))
        out.append(time.perf_counter() - t0)
        assert ack["MSA"][1] == "AA"
    return out


async def _refused_burst(port: int, count: int, source: str = "127.0.0.1",
                         batch: int = 50) -> int:
    """Open ``count`` connections from ``source``, ``batch`` at a time; how many the
    gateway closed at once without a byte."""
    async def one() -> bool:
        r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        try:
            return await _closed_by_gateway(r, 5) == b""
        finally:
            w.close()

    closed = 0
    for start in range(0, count, batch):
        closed += sum(await asyncio.gather(*(one() for _ in range(min(batch, count - start)))))
    return closed


async def _idle(port: int, count: int, source: str = "127.0.0.1") -> list[asyncio.StreamWriter]:
    out = []
    for _ in range(count):
        _, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        out.append(w)
    return out


async def _assert_latency_kept(client: MLLPClient, flood: Any) -> None:
    before = statistics.median(await _latencies(client, 100, 40))
    burst = asyncio.create_task(flood)
    during: list[float] = []
    n = 200
    while not burst.done() or len(during) < 20:
        during += await _latencies(client, n, 5)
        n += 5
    await burst
    assert statistics.median(during) <= 5 * before + 0.05, (before, during)


async def test_connections_beyond_max_connections_are_refused_and_a_sender_keeps_its_pace(
        tmp_path: Path) -> None:
    async with running(_config(tmp_path, {"max_connections": 20,
                                          "max_connections_per_source": 100})) as gw:
        client = await MLLPClient.connect(gw.mllp_port)
        idle = await _idle(gw.mllp_port, 19)
        try:
            await _assert_latency_kept(client, _refused_burst(gw.mllp_port, 500))
            assert _refused(gw, "max_connections") == 500
            assert _open(gw) == 20
        finally:
            for w in idle:
                w.close()
            await client.close()


async def test_connections_beyond_max_per_source_are_refused_others_still_connect(
        tmp_path: Path) -> None:
    async with running(_config(tmp_path, {"max_connections_per_source": 5})) as gw:
        r, w = await asyncio.open_connection("127.0.0.1", gw.mllp_port,
                                             local_addr=("127.0.0.2", 0))
        client = MLLPClient(r, w)
        idle = await _idle(gw.mllp_port, 5)
        try:
            await _assert_latency_kept(client, _refused_burst(gw.mllp_port, 300))
            assert _refused(gw, "max_per_source") == 300
            # another source may still open connections, up to its own cap
            more = await _idle(gw.mllp_port, 4, source="127.0.0.2")
            for extra in more:
                extra.close()
        finally:
            for x in idle:
                x.close()
            await client.close()
        assert _refused(gw, "max_connections") == 0
