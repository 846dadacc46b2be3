"""Match suggestions against the real catalog sample, and the normalisation under them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mappings.normalize import manufacturer_core, parse_item_name, parse_spec
from mappings.suggest import HospitalItem, SuggestionIndex, build_index, read_catalog_entries

DATA = Path(__file__).parent / "data" / "mappings"


@pytest.fixture(scope="module")
def index() -> SuggestionIndex:
    return build_index(read_catalog_entries(DATA / "nhsa_drug_catalog_sample.csv"))


def test_top1_and_top5_on_the_hospital_test_set(index: SuggestionIndex) -> None:
    with (DATA / "hospital_items.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= 200
    top1 = top5 = 0
    for r in rows:
        item = HospitalItem(r["item_code"], r["item_name"], r["specification"],
                            r["manufacturer"], r["approval_no"], r["standard_code"])
        codes = [s.national_code for s in index.suggest(item, limit=5)]
        top1 += codes[:1] == [r["expected_national_code"]]
        top5 += r["expected_national_code"] in codes
    assert top1 / len(rows) >= 0.80
    assert top5 / len(rows) >= 0.95


def test_suggestion_explains_itself(index: SuggestionIndex) -> None:
    item = HospitalItem("YP1", "比卡鲁胺片(康士得)", "50mg*28片", "阿斯利康")
    best = index.suggest(item)[0]
    assert best.national_code == "XL02BBB085A001010101359"
    text = " ".join(best.reasons)
    assert "比卡鲁胺片" in text and "50mg" in text and "康士得" in text
    assert 0 < best.score <= 1


def test_homophone_typo_still_finds_the_drug(index: SuggestionIndex) -> None:
    # 唑→坐 as a pinyin IME types it
    got = index.suggest(HospitalItem("YP2", "克霉坐阴道片", "0.5g*1片", "拜耳"))
    assert got and all("克霉唑阴道片" in s.reasons[0] for s in got)


def test_approval_number_wins_over_a_vague_name(index: SuggestionIndex) -> None:
    got = index.suggest(HospitalItem("YP3", "益母草颗粒", "15g*8袋", "", "国药准字 Z42020075"))
    assert got[0].national_code == "ZD01BAY0318010101951"
    assert any("批准文号" in r for r in got[0].reasons)


def test_nothing_alike_gives_no_suggestion(index: SuggestionIndex) -> None:
    assert index.suggest(HospitalItem("YP4", "一次性使用无菌注射器", "5ml")) == []


@pytest.mark.parametrize(("text", "doses", "count"), [
    ("20mg*7片", {"20mg"}, 7),
    ("20mg×7s", {"20mg"}, 7),
    ("0.02g", {"20mg"}, None),
    ("每袋装15g", {"15000mg"}, None),
    ("5ml:0.1g", {"5ml", "100mg"}, None),
    ("20mg/片 7片/盒", {"20mg"}, 7),
    ("每支装10毫升", {"10ml"}, None),
    ("10万U", {"100000u"}, None),
])
def test_spec_spellings_normalise(text: str, doses: set[str], count: int | None) -> None:
    spec = parse_spec(text)
    assert (set(spec.doses), spec.count) == (doses, count)


def test_item_name_brand_tag_and_inline_spec() -> None:
    p = parse_item_name("【集采】头孢呋辛酯片0.25g(西力欣)")
    assert (p.generic, p.spec) == ("头孢呋辛酯片", "0.25g")
    assert "西力欣" in p.extras


@pytest.mark.parametrize(("name", "core"), [
    ("扬子江药业集团有限公司", "扬子江"),
    ("辉瑞制药有限公司", "辉瑞"),
    ("AstraZeneca Limited", "阿斯利康"),
    ("黑龙江葵花药业股份有限公司", "葵花"),
])
def test_manufacturer_core(name: str, core: str) -> None:
    assert manufacturer_core(name) == core
