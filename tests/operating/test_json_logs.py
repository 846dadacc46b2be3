"""``log_format: json``: every line ``serve`` writes to stderr is a JSON object with time,
level, logger and message; a message's line names its control id and hospital, never its
patient."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from helpers import HOSPITAL, MLLPClient, ack_fields, eventually, free_port, sample, write_config
from serve_proc import spawn_serve, stop, wait_port


async def test_serve_logs_one_json_object_a_line(tmp_path: Path) -> None:
    mllp, http, sim = free_port(), free_port(), free_port()
    cfg = write_config(tmp_path, mllp_port=mllp, http_port=http, simulator_port=sim,
                       platform_url=f"http://127.0.0.1:{sim}/fsi/api/inventory",
                       log_format="json")
    err = tmp_path / "stderr.log"
    proc = spawn_serve(cfg, err)
    try:
        await wait_port(mllp, proc)
        raw = sample("rds_o13_unmapped_item.hl7")  # held for 对码: an INFO line names it
        assert "王^小明".encode() in raw
        client = await MLLPClient.connect(mllp)
        ack = ack_fields(await client.send(raw))
        await client.close()
        assert ack["MSA"][1] == "AA"
        await eventually(lambda: b'"outcome": "held"' in err.read_bytes(),
                         what="the held message's log line")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        stop(proc)
    lines = err.read_text("utf-8").splitlines()
    assert len(lines) > 3
    records = []
    for line in lines:
        record = json.loads(line)  # every line, not only ours: aiohttp's, asyncio's too
        assert isinstance(record, dict)
        assert {"time", "level", "logger", "message"} <= set(record), line
        assert record["time"].endswith("Z")
        records.append(record)
    held = [r for r in records if r.get("outcome") == "held"]
    assert len(held) == 1
    assert held[0]["control_id"] == "RDS20261123000888"
    assert held[0]["hospital"] == HOSPITAL
    assert held[0]["adapter"] == "hl7v2"
    assert held[0]["level"] == "INFO"
    text = err.read_text("utf-8")
    for patient in ("王^小明", "小明", "0001112223"):
        assert patient not in text
    assert any("gateway HTTP on" in r["message"] for r in records)


async def test_text_stays_the_default(tmp_path: Path) -> None:
    mllp, http = free_port(), free_port()
    cfg = write_config(tmp_path, mllp_port=mllp, http_port=http,
                       platform_url="http://127.0.0.1:9/fsi/api/inventory")
    err = tmp_path / "stderr.log"
    proc = spawn_serve(cfg, err)
    try:
        await wait_port(http, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        stop(proc)
    first = err.read_text("utf-8").splitlines()[0]
    assert not first.startswith("{") and " INFO " in first
