"""Benchmark of the persisted crosswalk: first-start import, restart load, one audited change.

Run from the repository root: ``python bench/crosswalk_store.py [--entries N]``.

The baseline is what the gateway did before the crosswalk was persisted: read the
configured CSV at every start. The crosswalk lives in the store (here the SQLite store,
WAL, ``synchronous=FULL``: each change is one fsynced transaction with its audit
record, then applied through the process's crosswalk holder); the figures show what a
start and an edit cost with it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from mapping import write_crosswalk  # noqa: E402

from codes import is_valid  # noqa: E402
from gateway.crosswalk.holder import CrosswalkHolder  # noqa: E402
from gateway.crosswalk.service import MappingService  # noqa: E402
from gateway.store.sqlite import SqliteStore  # noqa: E402
from mappings.crosswalk import load_csv  # noqa: E402
from mappings.entry import CrosswalkEntry  # noqa: E402


def _codes() -> list[str]:
    import csv

    path = ROOT / "tests" / "data" / "codes" / "nhsa_drug_codes.csv"
    with path.open(encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    return [r[0] for r in rows[1:] if r and is_valid(r[0])]


async def _changes(service: MappingService, codes: list[str], n: int) -> list[float]:
    took = []
    for i in range(n):
        entry = CrosswalkEntry("310100009999", f"BENCH{i:05d}", codes[i % len(codes)],
                               hospital_unit="盒", national_unit="片", factor=Decimal(24))
        start = time.perf_counter()
        await service.create(entry, user="bench")
        took.append(time.perf_counter() - start)
    return took


async def _open(path: Path, seed: Path) -> tuple[SqliteStore, MappingService, float]:
    """Open the store and the crosswalk as the gateway does at start; the seconds it took."""
    start = time.perf_counter()
    store = SqliteStore(path)
    await store.start()
    holder = CrosswalkHolder(store.crosswalk)
    await holder.load()
    service = MappingService(store, holder)
    await service.seed(seed)
    return store, service, time.perf_counter() - start


async def _run(tmp: Path, csv_path: Path, expected: int, changes: int, codes: list[str]
               ) -> tuple[float, float, list[float]]:
    store, service, seed_s = await _open(tmp / "var" / "gateway.db", csv_path)
    assert len(service.crosswalk) == expected
    await store.close()
    store, service, load_s = await _open(tmp / "var" / "gateway.db", csv_path)
    assert len(service.crosswalk) == expected
    took = await _changes(service, codes, changes)
    await store.close()
    return seed_s, load_s, took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args()
    codes = _codes()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "crosswalk.csv"
        write_crosswalk(csv_path, codes, args.entries)

        start = time.perf_counter()
        baseline = load_csv(csv_path)
        csv_s = time.perf_counter() - start

        seed_s, load_s, took = asyncio.run(_run(Path(tmp), csv_path, len(baseline),
                                                args.changes, codes))
    change_ms = statistics.median(took) * 1000
    print(f"{args.entries} entries: CSV read {csv_s:.2f}s (baseline start), first start with "
          f"import {seed_s:.2f}s, restart from the store {load_s:.2f}s, one audited "
          f"change median {change_ms:.1f} ms (max {max(took) * 1000:.1f} ms)")
    print(f"RESULT entries={args.entries} csv_start_s={csv_s:.2f} seed_start_s={seed_s:.2f} "
          f"db_start_s={load_s:.2f} change_median_ms={change_ms:.1f}")


if __name__ == "__main__":
    main()
