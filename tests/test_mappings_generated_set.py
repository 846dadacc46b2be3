"""Suggestion accuracy on the generated development set of hospital dictionary items.

The set (tests/data/mappings/hospital_items_generated.csv) is written by
generate_hospital_items.py with a fixed seed; the held-out set beside it is reported
by bench/mapping.py only. The thresholds sit a little below what the matcher reaches,
so that a regression fails here.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from mappings.suggest import HospitalItem, SuggestionIndex, build_index, read_catalog_entries

DATA = Path(__file__).parent / "data" / "mappings"
KINDS = ("bwm", "approval", "name")


@pytest.fixture(scope="module")
def index() -> SuggestionIndex:
    return build_index(read_catalog_entries(DATA / "nhsa_drug_catalog_sample.csv"))


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with (DATA / "hospital_items_generated.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def hit_rates(index: SuggestionIndex, rows: list[dict[str, str]]) -> tuple[float, float]:
    top1 = top5 = 0
    for r in rows:
        item = HospitalItem(r["item_code"], r["item_name"], r["specification"],
                            r["manufacturer"], r["approval_no"], r["standard_code"])
        codes = [s.national_code for s in index.suggest(item, limit=5)]
        top1 += codes[:1] == [r["expected_national_code"]]
        top5 += r["expected_national_code"] in codes
    return top1 / len(rows), top5 / len(rows)


def test_the_set_is_large_and_covers_every_evidence_kind(index: SuggestionIndex,
                                                        rows: list[dict[str, str]]) -> None:
    assert len(rows) >= 500
    kinds = Counter(r["evidence"] for r in rows)
    assert set(kinds) == set(KINDS) and min(kinds.values()) >= 100
    known = {e.code for e in index.entries}
    assert all(r["expected_national_code"] in known for r in rows)
    # the evidence column says what the row carries
    for r in rows:
        assert bool(r["standard_code"]) == (r["evidence"] == "bwm")
        assert bool(r["approval_no"]) == (r["evidence"] == "approval")


def test_overall_accuracy(index: SuggestionIndex, rows: list[dict[str, str]]) -> None:
    top1, top5 = hit_rates(index, rows)
    assert top1 >= 0.97
    assert top5 >= 0.99


@pytest.mark.parametrize("kind", KINDS)
def test_accuracy_per_evidence_kind(index: SuggestionIndex, rows: list[dict[str, str]],
                                    kind: str) -> None:
    top1, top5 = hit_rates(index, [r for r in rows if r["evidence"] == kind])
    assert top1 >= 0.95
    assert top5 >= 0.98


def test_the_generator_reproduces_the_committed_sets() -> None:
    done = subprocess.run([sys.executable, str(DATA / "generate_hospital_items.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
