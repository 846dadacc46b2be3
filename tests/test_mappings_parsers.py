"""The parsers under the suggestions: packaging, specifications, makers, 本位码, approval numbers.

The strings are written as hospital dictionaries and the published catalog write them.
"""

from __future__ import annotations

import pytest

from mappings.makers import MakerMatchKind, compare_makers, maker_core
from mappings.normalize import manufacturer_core, parse_item_name, parse_spec
from mappings.packaging import pack_quantity
from mappings.suggest import item_approval_key, item_standard_code


@pytest.mark.parametrize(("text", "quantity"), [
    ("12粒/板*2板/袋*1袋/盒", 24),
    ("6粒/板*4板/袋*1袋/盒", 24),
    ("3袋/板*2板/袋*3袋/盒", 18),
    ("10ml*5支", 5),
    ("10mL*6支", 6),
    ("100MLx1", 1),
    ("0.25g*24片", 24),
    ("0.02gx7", 7),
    ("20mg×7s", 7),
    ("24片/盒", 24),
    ("48S", 48),
    ("x10", 10),
    ("每盒9袋", 9),
    ("每盒装12片", 12),
    ("2g/袋*每盒9袋", 9),
    ("5克*3袋×4板", 12),
    ("0.6g*6粒/排*6排/盒", 36),
    ("10毫升*4支*3排", 12),
    ("每枚含2500mg*2枚/袋*2袋/盒", 4),
    ("9克,3丸×2排", 6),
    ("20mg/片 7片/盒", 7),
    ("每片含0.25g 12片/板*2板/盒", 24),
    ("200mg*60", 60),
    ("10", 10),  # a shifted catalog cell holding the count alone
])
def test_pack_quantity_multiplies_the_packaging_expression(text: str, quantity: int) -> None:
    assert pack_quantity(text) == quantity


@pytest.mark.parametrize("text", [
    "0.25g", "每袋装15g", "5ml:0.1g", "10万U", "0.3g(相当于饮片0.68g)", "每30丸重7.5g每100丸",
    "铝塑板第2702页，共", "", "盒",
])
def test_pack_quantity_is_none_when_no_count_is_written(text: str) -> None:
    assert pack_quantity(text) is None


@pytest.mark.parametrize(("text", "doses", "count"), [
    ("0.25g*24片", {"250mg"}, 24),
    ("250mg*24片", {"250mg"}, 24),
    ("250MG 12粒/板*2板/盒", {"250mg"}, 24),
    ("每片含0.25g", {"250mg"}, None),
    ("每袋装15g 2袋/板*5板/袋*1袋/盒", {"15000mg"}, 10),
    ("10mL*6支", {"10ml"}, 6),
    ("0.1L", {"100ml"}, None),
    ("100MLx1", {"100ml"}, 1),
    ("80万U", {"800000u"}, None),
    ("800000IU", {"800000u"}, None),
    ("80万单位", {"800000u"}, None),
    ("500μg×30片", {"0.5mg"}, 30),
    ("500mcg*30", {"0.5mg"}, 30),
])
def test_spec_spellings_normalise_to_the_same_key(text: str, doses: set[str],
                                                  count: int | None) -> None:
    spec = parse_spec(text)
    assert (set(spec.doses), spec.count) == (doses, count)


@pytest.mark.parametrize(("name", "generic"), [
    ("*头孢呋辛酯片", "头孢呋辛酯片"),
    ("★益母草颗粒", "益母草颗粒"),
    ("阿莫西林胶囊(甲)", "阿莫西林胶囊"),
    ("▲妇炎康复片0.35g(甲)", "妇炎康复片"),
    ("#男宝胶囊300mg", "男宝胶囊"),
    ("☆复方小儿退热栓(国基)", "复方小儿退热栓"),
])
def test_restricted_and_insurance_markers_leave_the_generic_name(name: str,
                                                                 generic: str) -> None:
    assert parse_item_name(name).generic == generic


@pytest.mark.parametrize(("written", "catalog", "kind"), [
    ("扬子江药业集团有限公司", "扬子江药业集团有限公司", MakerMatchKind.SAME),
    ("扬子江药业", "扬子江药业集团有限公司", MakerMatchKind.SAME),
    ("扬子江", "扬子江药业集团有限公司", MakerMatchKind.SAME),
    ("江苏恒瑞医药股份有限公司", "江苏恒瑞医药股份有限公司", MakerMatchKind.SAME),
    ("恒瑞医药", "江苏恒瑞医药股份有限公司", MakerMatchKind.SAME),
    ("有限公司葵花药业集团(襄阳)", "葵花药业集团(襄阳)有限公司", MakerMatchKind.SAME),
    ("皇象", "上海皇象铁力蓝天制药有限公司", MakerMatchKind.ABBREVIATION),
    ("君现代中药有限公司", "陕西利君现代中药有限公司", MakerMatchKind.GARBLED),
    ("业有限公司贵州益佰制药股份", "贵州益佰制药股份有限公司", MakerMatchKind.GARBLED),
    ("有限公司江西地康药业有限", "江西地康药业有限公司", MakerMatchKind.SAME),
    ("扬子江", "四川禾泰药业有限公司", MakerMatchKind.DIFFERENT),
])
def test_makers_match_by_abbreviation_and_garbled_forms(written: str, catalog: str,
                                                        kind: MakerMatchKind) -> None:
    match = compare_makers(maker_core(written), manufacturer_core(catalog))
    assert match.kind is kind
    assert (match.score >= 85) == (kind in (MakerMatchKind.SAME, MakerMatchKind.ABBREVIATION,
                                            MakerMatchKind.GARBLED))


def test_a_one_character_core_is_not_taken_for_an_abbreviation() -> None:
    # "马药业有限公司" is 金马药业 cut at the start: one character proves nothing
    match = compare_makers(maker_core("马药业有限公司"),
                           manufacturer_core("商丘市金马药业有限公司"))
    assert match.kind is not MakerMatchKind.ABBREVIATION and match.score < 85


def test_a_blank_maker_has_no_core() -> None:
    assert maker_core("  ") == ""
    assert compare_makers("", "扬子江").kind is MakerMatchKind.DIFFERENT


@pytest.mark.parametrize(("written", "digits"), [
    ("86900166000077", "86900166000077"),
    ("86900166000077 ", "86900166000077"),
    (" 86900166000077-1", "86900166000077"),
    ("86900166000077-01", "86900166000077"),
    ("86900166000077#", "86900166000077"),
    ("86900166000077甲", "86900166000077"),
    ("86900166000077/1", "86900166000077"),
    ("86900166000077\t", "86900166000077"),
    ("869001660000", ""),  # cut: not a 本位码
    ("", ""),
])
def test_standard_code_is_read_through_trailing_junk(written: str, digits: str) -> None:
    assert item_standard_code(written) == digits


@pytest.mark.parametrize("written", [
    "国药准字H20051055", "H20051055", "国药准字 H20051055", "国药准字h20051055",
    "国药准字:H20051055", "国药准字H20051055 ", "国药准字Ｈ２００５１０５５",
])
def test_approval_number_spellings_give_the_catalog_key(written: str) -> None:
    assert item_approval_key(written) == "国药准字H20051055"
