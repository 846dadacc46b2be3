"""The operator's gauges that are read, not counted: circuit states, 集采 contract
progress, the store's file sizes and the build.

They are set from the statistics task (``gateway.app``), never at scrape time: a scrape
must not wait on the ledger or the file system, and one failing source must not keep the
others stale (each refresh stands alone).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from importlib import metadata

from prometheus_client import Gauge

from gateway.ledger import Ledger
from gateway.metrics import Metrics
from gateway.mirror.breaker import BreakerState, CircuitBreaker
from gateway.native import native_status

__all__ = ["MAX_CONTRACTS", "refresh_circuits", "refresh_contracts", "refresh_store_files",
           "set_build_info"]

# contracts are configuration, so their labels are bounded; the cap keeps a province-wide
# import from turning one scrape into megabytes
MAX_CONTRACTS = 500
_CIRCUIT_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


def set_build_info(m: Metrics) -> None:
    """``jcgw_build_info{version,native} 1``."""
    try:
        version = metadata.version("jicai-gateway")
    except metadata.PackageNotFoundError:  # run from a source tree that was not installed
        version = "unknown"
    native = "compiled" if native_status().compiled else "pure"
    m.build_info.labels(version, native).set(1)


def refresh_circuits(m: Metrics, breakers: Mapping[str, CircuitBreaker], now: float) -> None:
    """Each destination's breaker as 0 closed, 1 half-open, 2 open."""
    for name, breaker in breakers.items():
        m.circuit_state.labels(name).set(_CIRCUIT_VALUE[breaker.state(now)])


def refresh_contracts(m: Metrics, ledger: Ledger, now: datetime,
                      cap: int = MAX_CONTRACTS) -> None:
    """Completion and time progress of the contracts whose agreement year includes today
    (the first ``cap`` by hospital and id); a contract that ended or was replaced drops
    out."""
    today = now.date()
    current = sorted((c for c in ledger.contracts() if c.active_on(today)),
                     key=lambda c: (c.hospital_id, c.contract_id))[:cap]
    seen: set[tuple[str, str]] = set()
    for contract in current:
        status = ledger.status(contract, now)
        labels = (contract.hospital_id, contract.contract_id)
        seen.add(labels)
        m.contract_time_progress.labels(*labels).set(float(status.time_progress))
        # a contract without an agreed volume has no completion: left out, not 0
        if status.completion is not None:
            m.contract_completion.labels(*labels).set(float(status.completion))
    _drop_others(m, seen)


def _drop_others(m: Metrics, keep: set[tuple[str, str]]) -> None:
    for gauge in (m.contract_completion, m.contract_time_progress):
        for labels in _label_sets(gauge):
            if labels not in keep:
                gauge.remove(*labels)


def _label_sets(gauge: Gauge) -> Iterable[tuple[str, str]]:
    """The label values a gauge exports now (prometheus-client keeps its children private)."""
    return [(s.labels["hospital"], s.labels["contract"])
            for family in gauge.collect() for s in family.samples]


def refresh_store_files(m: Metrics, sqlite_path: str | os.PathLike[str] | None) -> None:
    """The SQLite database and WAL file sizes (nothing for PostgreSQL); a missing WAL (after
    a clean close, or before the first write) is 0 bytes."""
    if sqlite_path is None:
        return
    path = os.fspath(sqlite_path)
    m.store_size.set(_size(path))
    m.store_wal_size.set(_size(path + "-wal"))


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
