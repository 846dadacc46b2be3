"""Ingest benchmark: 32 MLLP connections of RDE^O11 against the gateway and a baseline.

The gateway runs as `jicai-gateway serve` with fsync-durable SQLite (WAL,
synchronous=FULL, group commit); the baseline is a bare asyncio MLLP server that
parses with python-hl7 and answers an ACK without storing anything. Both are
driven by the same client in this process.

Big messages among normal traffic: more runs, each against a fresh gateway whose platform
(the simulator, in a process of its own) answers in 150 ms, as a real one does. Normal
traffic is offered at a steady rate (200 messages a second by default, more than a large
hospital's peak; latency counts from when a message was due, so a stall is measured in
full), once alone and once while another connection sends a big dispense every 5 s,
alternately 2,000 lines (890 KB) and one line with 10,000 traceability codes. Reported:
the normal traffic's ACK p99 with them over without them (``big_msg_p99_ratio``) and the
peak RSS of the gateway and its parse workers with them minus without them
(``big_msg_rss_mb``), each the median of three pairs of runs made one after the other (on
a shared virtual machine one 30 s run's p99 moves by half from run to run).

    python bench/ingest.py [--messages 40000] [--connections 32]
                           [--mixed-rate 200] [--mixed-seconds 30] [--big-interval 5]
                           [--mixed-pairs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from mllp_load import drive, drive_paced

ROOT = Path(__file__).resolve().parent.parent
PLATFORM_LATENCY_S = 0.15  # a provincial platform answers in 100–500 ms
TEMPLATE = (ROOT / "tests" / "data" / "hl7v2" / "rde_o11_prescription_utf8.hl7").read_bytes()


def _realistic(template: bytes) -> bytes:
    """The sample prescription grown to ~1.7 KB with the segments real orders carry."""
    segs = template.rstrip(b"\r").split(b"\r")
    extra = [
        "AL1|1|DA|Y0099001^青霉素类抗生素^HOSP|SV|皮疹".encode(),
        "NTE|1||饭后服用，服药期间定期复查肝功能及血脂，出现肌痛乏力及时就诊".encode(),
        "NTE|2||患者既往高血压病史十年，规律服用降压药物，血压控制可".encode(),
        "DG1|1||C50.901^乳腺恶性肿瘤^ICD10|乳腺恶性肿瘤||F".encode(),
        "OBX|1|NM|GLU^空腹血糖^LN||5.6|mmol/L|3.9-6.1||||F|||20261120080000".encode(),
        "OBX|2|NM|ALT^丙氨酸氨基转移酶^LN||32|U/L|7-40||||F|||20261120080000".encode(),
        "OBX|3|NM|CREA^肌酐^LN||68|umol/L|41-73||||F|||20261120080000".encode(),
        "IN1|1|310^职工基本医疗保险^NHSA|330100^杭州市医疗保障局".encode(),
    ]
    out = segs[:3] + extra[:2] + [extra[-1]] + segs[3:] + extra[2:-1]
    return b"\r".join(out) + b"\r"


MESSAGE = _realistic(TEMPLATE)


def make(n: int) -> bytes:
    return (MESSAGE.replace(b"RDE20261123000042", f"RDE{n:014d}".encode())
                   .replace(b"CF20261123000456", f"CF{n:014d}".encode()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def gateway_config(tmp: Path, mllp: int, http: int, sim: int, *,
                   own_simulator: bool = True) -> Path:
    cfg = yaml.safe_load((ROOT / "config" / "gateway.yaml").read_text("utf-8"))
    cfg["data_dir"] = str(tmp)
    cfg["log_level"] = "WARNING"
    cfg["store"]["sqlite_path"] = str(tmp / "gateway.db")
    cfg["listeners"][0]["port"] = mllp
    # the warm-up's connections may still be closing when the run opens its own: the
    # per-source cap is a defence against floods, not what this measures
    cfg["listeners"][0]["max_connections_per_source"] = 1024
    cfg["http"]["port"] = http
    cfg["simulator"]["port"] = sim
    cfg["simulator"]["enabled"] = own_simulator
    cfg["destinations"][0]["url"] = f"http://127.0.0.1:{sim}/fsi/api/inventory"
    cfg["crosswalk"]["csv"] = str(ROOT / "config" / "crosswalk.sample.csv")
    if os.environ.get("BENCH_NO_LEDGER"):
        cfg["ledger"]["enabled"] = False
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
    return path


DISPENSE = (ROOT / "tests" / "data" / "hl7v2" / "rds_o13_dispense_utf8.hl7").read_bytes()


def big_dispense(n: int) -> bytes:
    """Dispense ``n``: 2,000 order groups (lines) when even, 10,000 codes on one line when odd."""
    raw = (DISPENSE.replace(b"RDS20261123000001", f"RDSBIG{n:011d}".encode())
                   .replace(b"CF20261123000123", f"CFBIG{n:011d}".encode()))
    if n % 2:
        codes = "~".join(f"8{n:05d}{i:014d}" for i in range(10_000))
        return raw.replace(b"81234567890123456789~81234567890123456790", codes.encode())
    segs = raw.rstrip(b"\r").split(b"\r")
    groups = [s for s in segs if s[:3] in (b"ORC", b"RXE", b"RXD", b"ZJC")]
    head = [s for s in segs if s[:3] not in (b"ORC", b"RXE", b"RXD", b"ZJC")]
    lines = []
    for i in range(2_000):  # each line its own traceability codes
        codes = f"8{n:05d}{i:05d}{0:09d}~8{n:05d}{i:05d}{1:09d}".encode()
        lines += [s.replace(b"81234567890123456789~81234567890123456790", codes)
                  for s in groups]
    return b"\r".join(head + lines) + b"\r"


async def send_big(port: int, stop: asyncio.Event, interval: float, count: int) -> int:
    """Send big dispenses on one connection, one every ``interval``, until ``stop`` (at
    most ``count``)."""
    # built before the run: making a 2,000-line message takes this process 4-5 ms, in
    # which the paced sender shares its loop and would count the pause as the gateway's
    frames = [b"\x0b" + big_dispense(n) + b"\x1c\r" for n in range(count)]
    r, w = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    try:
        while not stop.is_set() and n < count:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                break
            w.write(frames[n])
            await w.drain()
            ack = await r.readuntil(b"\x1c\r")
            assert b"MSA|AA|" in ack, ack[:300]
            n += 1
    finally:
        w.close()
    return n


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(stat.parent.name))
    return kids


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a process and all its descendants (the gateway's
    parse workers), in MB."""
    total = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            total += int(line.split()[1]) / 1024
    return total + sum(peak_rss_mb(kid) for kid in _children(pid))


async def run_target(cmd: list[str], port: int, total: int, connections: int,
                     warmup: int) -> dict[str, float]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await wait_port(port)
        await drive(port, lambda n: make(10_000_000 + n), warmup, connections)
        return await drive(port, make, total, connections)
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


async def run_mixed(big: bool, rate: float, seconds: float, interval: float,
                    connections: int) -> dict[str, float]:
    """Normal traffic offered at ``rate`` for ``seconds``, with or without a big dispense
    every ``interval``, against a fresh gateway whose platform answers in 150 ms."""
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        mllp, http, sim = free_port(), free_port(), free_port()
        cfg = gateway_config(tmp, mllp, http, sim, own_simulator=False)
        platform = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "simulate-platform", "--port", str(sim),
             "--faults", json.dumps({"latency_s": PLATFORM_LATENCY_S})],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        gateway = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "-c", str(cfg)],
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await wait_port(mllp)
            await wait_port(sim)
            await drive(mllp, lambda n: make(10_000_000 + n), 2000, connections)
            stop = asyncio.Event()
            count = int(seconds / interval) + 1
            sender = asyncio.create_task(send_big(mllp, stop, interval, count)) if big else None
            try:
                figures = await drive_paced(mllp, make, rate, seconds, connections)
            finally:
                stop.set()
            figures["big_messages"] = await sender if sender is not None else 0
            figures["peak_rss_mb"] = peak_rss_mb(gateway.pid)
            return figures
        finally:
            stop_process(gateway)
            stop_process(platform)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=40_000)
    ap.add_argument("--baseline-messages", type=int, default=4_000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--mixed-rate", type=float, default=200,
                    help="normal messages offered a second in the big-message runs")
    ap.add_argument("--mixed-seconds", type=float, default=30)
    ap.add_argument("--mixed-pairs", type=int, default=3,
                    help="alone / with big messages pairs; the median pair is reported")
    ap.add_argument("--big-interval", type=float, default=5,
                    help="seconds between big dispenses")
    args = ap.parse_args()
    print(f"message: RDE^O11, {len(MESSAGE)} bytes; {args.connections} connections; "
          f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        mllp, http, sim = free_port(), free_port(), free_port()
        cfg = gateway_config(tmp, mllp, http, sim)
        gw = await run_target([sys.executable, "-m", "gateway.cli", "serve", "-c", str(cfg)],
                              mllp, args.messages, args.connections, 2000)
        import sqlite3
        stored = sqlite3.connect(tmp / "gateway.db").execute(
            "SELECT count(*) FROM messages").fetchone()[0]
    # pairs run alternately, each ratio within its pair: on a shared virtual machine one
    # 30 s run's p99 moves by half from run to run, as much as the ratio itself
    pairs = []
    for _ in range(args.mixed_pairs):
        pairs.append({big: await run_mixed(big, args.mixed_rate, args.mixed_seconds,
                                           args.big_interval, args.connections)
                      for big in (False, True)})
    base_port = free_port()
    base = await run_target([sys.executable, str(ROOT / "bench" / "support" / "baseline_server.py"),
                             str(base_port)], base_port, args.baseline_messages,
                            args.connections, 200)
    for name, r in (("gateway (SQLite WAL, synchronous=FULL, group commit)", gw),
                    ("baseline (python-hl7 parse + ACK, no storage)", base)):
        print(f"{name}: {r['msgs_per_s']:.0f} msgs/s acknowledged, ACK p50 {r['p50_ms']:.2f} ms,"
              f" p99 {r['p99_ms']:.2f} ms, {int(r['naks'])} NAKs, {r['elapsed_s']:.1f} s")
    print(f"gateway rows committed: {stored} messages")
    for n, mixed in enumerate(pairs, 1):
        alone, crowded = mixed[False], mixed[True]
        print(f"pair {n}: normal traffic at {args.mixed_rate:.0f} msgs/s alone: ACK p50 "
              f"{alone['p50_ms']:.1f} ms, p99 {alone['p99_ms']:.1f} ms, max "
              f"{alone['max_ms']:.0f} ms, peak RSS {alone['peak_rss_mb']:.0f} MB")
        print(f"pair {n}: the same with {int(crowded['big_messages'])} big dispenses among it"
              f" (2,000 lines / 10,000 codes, one every {args.big_interval:g} s): ACK p50 "
              f"{crowded['p50_ms']:.1f} ms, p99 {crowded['p99_ms']:.1f} ms, max "
              f"{crowded['max_ms']:.0f} ms, {int(crowded['naks'])} NAKs, peak RSS "
              f"{crowded['peak_rss_mb']:.0f} MB; p99 ratio "
              f"{crowded['p99_ms'] / alone['p99_ms']:.2f}")
    ratio = gw["msgs_per_s"] / base["msgs_per_s"]
    # the median pair's figures
    p99_ratio = statistics.median(p[True]["p99_ms"] / p[False]["p99_ms"] for p in pairs)
    rss = statistics.median(p[True]["peak_rss_mb"] - p[False]["peak_rss_mb"] for p in pairs)
    print(f"RESULT msgs_per_s={gw['msgs_per_s']:.0f} p99_ms={gw['p99_ms']:.2f} "
          f"baseline_msgs_per_s={base['msgs_per_s']:.0f} ratio={ratio:.2f} "
          f"big_msg_p99_ratio={p99_ratio:.2f} big_msg_rss_mb={rss:.0f}")


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
