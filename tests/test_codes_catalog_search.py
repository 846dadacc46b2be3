"""Catalog search as a pharmacist uses it, tried with rows drawn from the real catalog
sample (fixed seed), not with codes written beside the function."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from codes.catalog import CatalogEntry
from codes.catalog_files import read_catalog_csv
from codes.catalog_search import search_catalog

SAMPLE = Path(__file__).parent / "data" / "codes" / "nhsa_drug_catalog_sample.csv"
ENTRIES = list(read_catalog_csv(SAMPLE).entries.values())
PICKED = random.Random(20261204).sample(ENTRIES, 40)


@pytest.mark.parametrize("entry", PICKED, ids=lambda e: e.code)
def test_a_code_finds_its_entry_first(entry: CatalogEntry) -> None:
    hits = search_catalog(ENTRIES, entry.code.lower())
    assert hits[0].entry == entry and hits[0].reason == "国家编码一致"


@pytest.mark.parametrize("entry", [e for e in PICKED if e.standard_code][:15],
                         ids=lambda e: e.code)
def test_a_standard_code_or_approval_number_finds_the_product(entry: CatalogEntry) -> None:
    by_standard = search_catalog(ENTRIES, entry.standard_code)
    assert entry in [h.entry for h in by_standard if h.rank == by_standard[0].rank]
    if entry.approval_no:
        by_approval = search_catalog(ENTRIES, f" {entry.approval_no.lower()} ", limit=500)
        assert entry in [h.entry for h in by_approval]
        assert all(h.entry.approval_no.upper() == entry.approval_no.upper()
                   for h in by_approval if h.reason == "本位码或批准文号一致")


@pytest.mark.parametrize("entry", [e for e in PICKED if e.generic_name and e.manufacturer][:15],
                         ids=lambda e: e.code)
def test_name_and_maker_words_together_narrow_the_list(entry: CatalogEntry) -> None:
    maker = entry.manufacturer[:4]
    both = search_catalog(ENTRIES, f"{entry.generic_name} {maker}", limit=10_000)
    name_only = search_catalog(ENTRIES, entry.generic_name, limit=10_000)
    assert entry in [h.entry for h in both]
    assert len(both) <= len(name_only)
    assert {h.entry for h in both} <= {h.entry for h in name_only}


def test_results_are_bounded_and_stable() -> None:
    first = search_catalog(ENTRIES, "片", limit=25)
    assert len(first) == 25
    assert first == search_catalog(list(reversed(ENTRIES)), "片", limit=25)
    assert [h.rank for h in first] == sorted(h.rank for h in first)
    assert search_catalog(ENTRIES, "   ") == []
    assert search_catalog(ENTRIES, "不存在的药品名称甲乙丙") == []
