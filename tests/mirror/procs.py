"""Gateway processes for the crash and multi-replica tests (real ``serve`` processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from factory import HOSPITALS
from helpers import ROOT, free_port

EXTRA_HOSPITALS = tuple(f"H3301{n:07d}" for n in range(8))


def write_gateway_config(tmp: Path, name: str, store: dict[str, Any], platform_url: str,
                         **dest: Any) -> Path:
    """A gateway with no listeners: it only mirrors what is in the store."""
    cfg = {
        "data_dir": str(tmp / "var"),
        "log_level": "WARNING",
        "hospitals": [{"code": h, "name": f"医院{i}"}
                      for i, h in enumerate(HOSPITALS + EXTRA_HOSPITALS)],
        "store": store,
        "http": {"host": "127.0.0.1", "port": free_port()},
        "destinations": [{"name": "nhsa", "url": platform_url, "timeout_s": 2,
                          "backoff_initial_s": 0.05, "backoff_max_s": 0.5,
                          "idle_poll_s": 0.1, "batch_size": 200, **dest}],
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), "utf-8")
    return path


def backend_store(backend: str, tmp: Path, schema: str,
                  lease_s: float) -> tuple[Any, dict[str, Any]]:
    """A store of ``backend`` (not started: the test fills it first) and the ``store``
    configuration of a gateway process on the same data."""
    from pg import PG_DSN

    from gateway.store.postgres import PostgresStore
    from gateway.store.sqlite import SqliteStore

    if backend == "postgres":
        return PostgresStore(PG_DSN, schema=schema), {
            "backend": "postgres", "postgres_dsn": PG_DSN, "postgres_schema": schema,
            "lease_s": lease_s}
    return SqliteStore(tmp / "gw.db"), {"backend": "sqlite", "sqlite_path": str(tmp / "gw.db")}


def spawn_gateway(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``jicai-gateway serve`` in its own process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "-c", str(config)],
                            cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL: no cleanup, no flush, leases left behind."""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
