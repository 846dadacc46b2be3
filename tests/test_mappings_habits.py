"""A hospital's accepted mappings steer suggestions toward the makers and packs it buys."""

from __future__ import annotations

from pathlib import Path

import pytest

from mappings.suggest import (
    HospitalItem,
    SuggestionIndex,
    build_index,
    learn_habits,
    read_catalog_entries,
)

DATA = Path(__file__).parent / "data" / "mappings"
# 益母草颗粒 15g × 10 sachets is made by dozens of makers; the item names none
VAGUE = HospitalItem("YP9", "益母草颗粒", "15g*10袋")


@pytest.fixture(scope="module")
def index() -> SuggestionIndex:
    return build_index(read_catalog_entries(DATA / "nhsa_drug_catalog_sample.csv"))


def test_habits_count_makers_and_their_packs(index: SuggestionIndex) -> None:
    accepted = [e for e in index.entries if e.code.endswith("00716")][:3]
    habits = learn_habits(accepted)
    assert habits.makers == {"00716": 3}
    assert sum(habits.packs.values()) <= 3
    assert all(enterprise == "00716" for enterprise, _ in habits.packs)


def test_a_maker_the_hospital_already_buys_from_comes_first(index: SuggestionIndex) -> None:
    before = [s.national_code for s in index.suggest(VAGUE, limit=10)]
    other = next(c for c in before[1:] if c.endswith("00716"))
    # the hospital mapped other products of that maker, never this one
    accepted = [e for e in index.entries
                if e.code.endswith("00716") and e.generic_name != "益母草颗粒"][:2]
    assert accepted

    best = index.suggest(VAGUE, habits=learn_habits(accepted))[0]

    assert best.national_code == other
    assert any("本院已对码该厂家 2 条" in r for r in best.reasons)


def test_habits_never_outweigh_what_the_item_says(index: SuggestionIndex) -> None:
    item = HospitalItem("YP10", "益母草颗粒", "15g*8袋", "葵花药业", "国药准字Z42020075")
    accepted = [e for e in index.entries
                if e.code.endswith("00716") and e.generic_name != "益母草颗粒"][:5]
    best = index.suggest(item, habits=learn_habits(accepted))[0]
    assert best.national_code == "ZD01BAY0318010101951"


def test_no_habits_change_nothing(index: SuggestionIndex) -> None:
    assert index.suggest(VAGUE) == index.suggest(VAGUE, habits=learn_habits([]))
