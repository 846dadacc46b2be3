"""The gauges read rather than counted: contracts capped and dropped when they end,
store files sized, breakers mapped to 0/1/2."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from canonical.model import CHINA_TZ
from gateway.gauges import refresh_circuits, refresh_contracts, refresh_store_files
from gateway.metrics import Metrics
from gateway.mirror.breaker import CircuitBreaker


@dataclass
class _Contract:
    hospital_id: str
    contract_id: str
    start: date
    end: date

    def active_on(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass
class _Status:
    completion: Decimal | None
    time_progress: Decimal


class _Ledger:
    def __init__(self, contracts: list[_Contract]) -> None:
        self.list = contracts

    def contracts(self) -> list[_Contract]:
        return self.list

    def status(self, contract: _Contract, now: datetime) -> _Status:
        return _Status(None if contract.contract_id.endswith("novolume") else Decimal("0.25"),
                       Decimal("0.5"))


def _exported(m: Metrics, name: str) -> dict[str, float]:
    return {s.labels["contract"]: s.value for f in m.registry.collect() for s in f.samples
            if s.name == name}


NOW = datetime(2026, 7, 2, 10, tzinfo=CHINA_TZ)
YEAR = (date(2026, 1, 1), date(2026, 12, 31))


def test_contracts_are_capped_and_those_that_ended_drop_out() -> None:
    m = Metrics()
    ledger: Any = _Ledger([_Contract("H2", f"H2/c{i:03d}", *YEAR) for i in range(5)]
                          + [_Contract("H1", "H1/ended", date(2025, 1, 1), date(2025, 12, 31)),
                             _Contract("H1", "H1/novolume", *YEAR)])
    refresh_contracts(m, ledger, NOW, cap=4)
    progress = _exported(m, "jcgw_contract_time_progress_ratio")
    # sorted by hospital, then id: H1's current contract first, the ended one never
    assert sorted(progress) == ["H1/novolume", "H2/c000", "H2/c001", "H2/c002"]
    assert set(progress.values()) == {0.5}
    # no agreed volume, no completion (rather than a 0 that would look like lagging)
    assert sorted(_exported(m, "jcgw_contract_completion_ratio")) == [
        "H2/c000", "H2/c001", "H2/c002"]
    ledger.list = ledger.list[:1]
    refresh_contracts(m, ledger, NOW, cap=4)
    assert list(_exported(m, "jcgw_contract_time_progress_ratio")) == ["H2/c000"]
    assert list(_exported(m, "jcgw_contract_completion_ratio")) == ["H2/c000"]


def test_store_files_are_sized_and_a_missing_wal_is_zero(tmp_path: Path) -> None:
    m = Metrics()
    db = tmp_path / "gateway.db"
    db.write_bytes(b"x" * 4096)
    refresh_store_files(m, db)
    assert m.registry.get_sample_value("jcgw_store_size_bytes") == 4096
    assert m.registry.get_sample_value("jcgw_store_wal_size_bytes") == 0
    (tmp_path / "gateway.db-wal").write_bytes(b"w" * 100)
    refresh_store_files(m, db)
    assert m.registry.get_sample_value("jcgw_store_wal_size_bytes") == 100


def test_breaker_states_are_0_1_2() -> None:
    m = Metrics()
    closed, opened = CircuitBreaker(failures=1, cooldown_s=10), CircuitBreaker(failures=1,
                                                                              cooldown_s=10)
    opened.failure(100.0)
    refresh_circuits(m, {"a": closed, "b": opened}, 105.0)
    value = m.registry.get_sample_value
    assert value("jcgw_circuit_state", {"destination": "a"}) == 0
    assert value("jcgw_circuit_state", {"destination": "b"}) == 2
    refresh_circuits(m, {"b": opened}, 111.0)  # cool-down over: the next call probes
    assert value("jcgw_circuit_state", {"destination": "b"}) == 1
