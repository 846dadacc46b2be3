"""Ingest benchmark: 32 MLLP connections of RDE^O11 against the gateway and a baseline.

The gateway runs as `jicai-gateway serve` with fsync-durable SQLite (WAL,
synchronous=FULL, group commit); the baseline is a bare asyncio MLLP server that
parses with python-hl7 and answers an ACK without storing anything. Both are
driven by the same client in this process.

    python bench/ingest.py [--messages 40000] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from mllp_load import drive

ROOT = Path(__file__).resolve().parent.parent
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


def gateway_config(tmp: Path, mllp: int, http: int, sim: int) -> Path:
    cfg = yaml.safe_load((ROOT / "config" / "gateway.yaml").read_text("utf-8"))
    cfg["data_dir"] = str(tmp)
    cfg["log_level"] = "WARNING"
    cfg["store"]["sqlite_path"] = str(tmp / "gateway.db")
    cfg["listeners"][0]["port"] = mllp
    cfg["http"]["port"] = http
    cfg["simulator"]["port"] = sim
    cfg["destinations"][0]["url"] = f"http://127.0.0.1:{sim}/fsi/api/inventory"
    cfg["crosswalk"]["csv"] = str(ROOT / "config" / "crosswalk.sample.csv")
    if os.environ.get("BENCH_NO_LEDGER"):
        cfg["ledger"]["enabled"] = False
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
    return path


async def run_target(cmd: list[str], port: int, total: int, connections: int,
                     warmup: int) -> dict[str, float]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await wait_port(port)
        await drive(port, lambda n: make(10_000_000 + n), warmup, connections)
        return await drive(port, make, total, connections)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=40_000)
    ap.add_argument("--baseline-messages", type=int, default=4_000)
    ap.add_argument("--connections", type=int, default=32)
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
    base_port = free_port()
    base = await run_target([sys.executable, str(ROOT / "bench" / "support" / "baseline_server.py"),
                             str(base_port)], base_port, args.baseline_messages,
                            args.connections, 200)
    for name, r in (("gateway (SQLite WAL, synchronous=FULL, group commit)", gw),
                    ("baseline (python-hl7 parse + ACK, no storage)", base)):
        print(f"{name}: {r['msgs_per_s']:.0f} msgs/s acknowledged, ACK p50 {r['p50_ms']:.2f} ms,"
              f" p99 {r['p99_ms']:.2f} ms, {int(r['naks'])} NAKs, {r['elapsed_s']:.1f} s")
    print(f"gateway rows committed: {stored} messages")
    ratio = gw["msgs_per_s"] / base["msgs_per_s"]
    print(f"RESULT msgs_per_s={gw['msgs_per_s']:.0f} p99_ms={gw['p99_ms']:.2f} "
          f"baseline_msgs_per_s={base['msgs_per_s']:.0f} ratio={ratio:.2f}")


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
