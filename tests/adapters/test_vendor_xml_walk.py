"""The vendor XML field walk: documented path semantics, compiled and pure-Python alike.

The compiled walk (``adapters/vendor/_xml_walk.pyx``) reads libxml2's nodes
directly; the pure-Python one (``xml_plan.py``) serves where no compiler was
available. Every test here runs on both, and a property test checks that they
agree on random trees.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from adapters.testing import RECEIVED_AT
from adapters.vendor import VendorXmlAdapter, safe_xml, xml_plan, xml_walk
from adapters.vendor.xml_plan import PlanBuilder, element_steps
from adapters.vendor.xml_walk import PURE, XmlWalk
from canonical.errors import MessageRejected

DATA = Path(__file__).parent.parent / "data" / "vendor-xml"
SAMPLE = DATA / "walk" / "spd_receipt_attributes.xml"



def _compiled() -> XmlWalk:
    if xml_walk.COMPILED is None:
        if os.environ.get("CI") == "true" and not os.environ.get("JCGW_PURE_PYTHON"):
            pytest.fail("the compiled vendor XML walk is not built in CI")
        pytest.skip("the compiled vendor XML walk is not installed (no C compiler at "
                    "install, or JCGW_PURE_PYTHON)")
    return xml_walk.COMPILED


def test_ci_uses_the_compiled_walk() -> None:
    if os.environ.get("CI") != "true" or os.environ.get("JCGW_PURE_PYTHON"):
        pytest.skip("only CI guarantees a C compiler at install time")
    assert xml_walk.IMPLEMENTATION is _compiled()
    assert VendorXmlAdapter({"profile": "his-prescription-xml"})._reader._walker.name \
        == "compiled"


def test_the_compiled_walk_refuses_another_lxml() -> None:
    _compiled()
    from adapters.vendor import _xml_walk  # type: ignore[attr-defined]

    assert _xml_walk.compatible(etree.LXML_VERSION)
    major, minor, patch = etree.LXML_VERSION[:3]
    assert not _xml_walk.compatible((major, minor, patch + 1, 0))
    assert not _xml_walk.compatible((major - 1, minor, patch, 0))


def test_the_compiled_walk_refuses_what_would_crash_it() -> None:
    impl = _compiled()
    root = etree.fromstring(SAMPLE.read_bytes())
    with pytest.raises(TypeError):
        impl.walk_children(None, impl.prepare(PlanBuilder().build()), [], {})
    with pytest.raises(TypeError):
        impl.prepare((("not a tuple",), (), {}))
    with pytest.raises(TypeError):
        impl.prepare(((), ((b"a", "a", (0,), ()),), {}))  # an entry of the wrong length
    with pytest.raises(ValueError):
        impl.select(root, (True, (), ()))
    with pytest.raises(TypeError):
        impl.select(root, (False, ("明细",), ("明细",)))  # str where bytes belong
    assert impl.exceeds_depth(root, 0) is PURE.exceeds_depth(root, 0) is True


@pytest.fixture(params=["compiled", "pure"])
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> XmlWalk:
    """One implementation, in use by the adapters the test creates."""
    impl = _compiled() if request.param == "compiled" else PURE
    monkeypatch.setattr(xml_walk, "IMPLEMENTATION", impl)
    return impl


RECEIPT_PROFILE: dict[str, Any] = {
    "name": "spd-receipt",
    "format": "xml",
    "documents": "/入库单",
    "header": {"control_id": {"path": "/入库单/单据头/单据号", "required": True}},
    "event": {
        "kind": {"path": "单据头/@类型", "map": {"采购入库": "receipt", "退货": "return"}},
        "document_no": "单据头/单据号",
        "hospital_id": "单据头/机构编码",
        "department.id": "单据头/库房/编码",
        "department.name": "单据头/库房/名称",
    },
    "extra": {"schema_version": "@版本"},
    "lines": {
        "path": "明细/药品",
        "fields": {
            "item_code": {"path": "院内编码", "required": True},
            "item_name": "名称",
            "specification": "规格",
            "manufacturer": "生产厂家",
            "quantity": "数量",
            "unit": {"path": "@单位", "default": "支"},
            "lot_no": "批号",
            "trace_codes": "追溯码",
            "supplier.id": "@行号",
        },
    },
}


def _receipt() -> Any:
    return VendorXmlAdapter({"profile": RECEIPT_PROFILE}).parse(
        SAMPLE.read_bytes(), received_at=RECEIVED_AT).events[0]


def test_header_attributes_and_first_intermediate_element(walk: XmlWalk) -> None:
    event = _receipt()
    # text is stripped; the second 单据头 is not entered for 单据头/单据号
    assert event.control_id == "RK20261123000017"
    assert event.document_no == "RK20261123000017"
    assert event.kind.value == "receipt"  # 单据头/@类型 of the first header, translated
    assert event.hospital_id == "H33010200001"
    assert (event.department.id, event.department.name) == ("YK01", "药库")
    assert dict(event.extra) == {"schema_version": "2.1"}


def test_lines_across_containers_with_cdata_entities_and_repeats(walk: XmlWalk) -> None:
    lines = _receipt().lines
    # 明细/药品 selects every 药品 of every 明细, as XPath does
    assert [line.item_code for line in lines] == ["Y0045201", "Y0033107", "Y0031542"]
    first = lines[0]
    assert first.item_name == "阿那曲唑片 <进口分装>"  # CDATA, kept verbatim
    assert first.specification == "1mg×14片/盒"  # character reference
    assert first.manufacturer == "浙江海正药业股份有限公司 & 分厂"  # predefined entity
    assert first.quantity == Decimal("20")
    # every repeat, in order, across a comment; the namespaced 院内编码 is another name
    assert first.trace_codes == ("81234560000000000011", "81234560000000000012",
                                 "81234560000000000013")
    assert first.unit == "盒" and lines[1].unit == "支"  # attribute, then the default
    assert first.lot_no == "" and lines[1].lot_no == "B2026110801"  # empty is absent
    assert [line.supplier.id for line in lines if line.supplier] == ["1", "2", "3"]


def test_a_missing_required_value_names_its_line(walk: XmlWalk) -> None:
    raw = SAMPLE.read_bytes().replace("<院内编码>Y0033107</院内编码>".encode(), b"")
    with pytest.raises(MessageRejected) as exc:
        VendorXmlAdapter({"profile": RECEIPT_PROFILE}).parse(raw, received_at=RECEIVED_AT)
    assert exc.value.location == "/入库单/明细/药品[2]/院内编码"
    assert exc.value.code == "101"


def test_every_shipped_sample_reads_the_same_with_both_walks(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    compiled = _compiled()
    samples = sorted((DATA / "valid").glob("*.xml")) + sorted((DATA / "invalid").glob("*.xml"))

    def outcome(impl: XmlWalk, raw: bytes) -> Any:
        monkeypatch.setattr(xml_walk, "IMPLEMENTATION", impl)
        xml = VendorXmlAdapter({"profile": "his-prescription-xml"})
        try:
            return xml.parse(raw, received_at=RECEIVED_AT).events
        except MessageRejected as exc:
            return exc.code, exc.location, exc.reason

    for path in samples:
        raw = path.read_bytes()
        assert outcome(compiled, raw) == outcome(PURE, raw), path.name


@pytest.mark.parametrize("levels, deeper", [(32, False), (33, True)])
def test_depth_limit(walk: XmlWalk, levels: int, deeper: bool) -> None:
    raw = ("<a>" * levels + "x" + "</a>" * levels).encode()
    root = etree.fromstring(raw)
    assert walk.exceeds_depth(root, 32) is deeper
    if deeper:
        with pytest.raises(MessageRejected, match="deeper than 32"):
            safe_xml.parse_xml(raw, max_bytes=1 << 20, max_depth=32)
    else:
        assert safe_xml.parse_xml(raw, max_bytes=1 << 20, max_depth=32) is not None


def test_select_matches_xpath(walk: XmlWalk) -> None:
    root = etree.fromstring(SAMPLE.read_bytes())
    for path in ("/入库单", "/入库单/明细/药品", "明细/药品", "明细", "/入库单/无", "/其他/明细",
                 "单据头/库房/编码"):
        steps = element_steps(path)
        assert steps is not None
        assert walk.select(root, steps) == root.xpath(path), path
        if path.startswith("/"):  # absolute paths start at the root from any element
            assert walk.select(root[1], steps) == root.xpath(path), path


def test_not_plain_paths_stay_xpath() -> None:
    for path in ("药品[1]/名称", "//药品", "../名称", "a/text()", "*", "x:名称", "@*",
                 "a | b", "concat(a, b)", "a/@b/c", "a,b", "1a", "a\x00b", "a\n", "", "/",
                 "a//b", "a/"):
        assert not xml_plan.is_plain(path), path
    for path in ("名称", "a/b", "/a/b", "@行号", "a/@b", "/a/@b"):
        assert xml_plan.is_plain(path), path


def test_too_many_entered_elements_is_a_clear_profile_error() -> None:
    builder = PlanBuilder()
    for i in range(xml_plan.MAX_ENTERED + 1):
        builder.add(f"g{i}/v")
    with pytest.raises(ValueError, match="more than 64"):
        builder.build()


# --- the two walks agree on random trees

TAGS = st.sampled_from(["药品", "名称", "a", "b", "追溯码", "明细"])
# str.strip()'s whitespace, ASCII and not, beside characters that only look like it
TEXT = st.text(st.sampled_from(list("ab中文&<> \t\n\r\x85\xa0\u1680\u2000\u200a\u200b"
                                    "\u2028\u2029\u202f\u205f\u3000\u2030\ufeff")),
               max_size=6)


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    """An element as XML text: attributes, and text, CDATA, comments, namespaced and
    plain children in any order (so text next to CDATA, and blank text, occur)."""
    tag = draw(TAGS)
    attrs = "".join(f' {name}="{_escaped(draw(TEXT)).replace(chr(34), "&quot;")}"'
                    for name in draw(st.lists(st.sampled_from(["行号", "id"]), max_size=2,
                                              unique=True)))
    parts = []
    kinds = ["text", "cdata", "comment", "namespaced"] + (["element"] * 2 if depth < 3 else [])
    for kind in draw(st.lists(st.sampled_from(kinds), max_size=5)):
        if kind == "text":
            parts.append(_escaped(draw(TEXT)))
        elif kind == "cdata":
            parts.append(f"<![CDATA[{draw(TEXT)}]]>")
        elif kind == "comment":
            parts.append("<!-- 注释 -->")
        elif kind == "namespaced":
            name = draw(TAGS)
            parts.append(f'<x:{name} xmlns:x="urn:x">{_escaped(draw(TEXT))}</x:{name}>')
        else:
            parts.append(draw(documents(depth + 1)))
    return f"<{tag}{attrs}>{''.join(parts)}</{tag}>"


PATHS = st.lists(
    st.builds(lambda steps, attr: "/".join(steps) + (f"/@{attr}" if attr else ""),
              st.lists(TAGS, min_size=1, max_size=3),
              st.none() | st.sampled_from(["行号", "id"])),
    min_size=1, max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents(), paths=PATHS,
       plain_keys=st.lists(st.booleans(), min_size=8, max_size=8))
def test_compiled_and_pure_walks_agree(document: str, paths: list[str],
                                       plain_keys: list[bool]) -> None:
    compiled = _compiled()
    # parsed as the adapter parses: comments and blank text dropped, CDATA merged into text
    root = etree.fromstring(document.encode(), safe_xml._PARSER)
    relative, absolute = PlanBuilder(), PlanBuilder()
    for i, path in enumerate(paths):
        relative.add(path, key=f"k{i}" if plain_keys[i] else None)
        absolute.add(f"/{path}", key=f"k{i}" if plain_keys[i] else None)
    results = []
    for impl in (compiled, PURE):
        out: list[list[str] | None] = [None] * relative.size
        plain: dict[str, str] = {}
        impl.walk_children(root, impl.prepare(relative.build()), out, plain)
        out_abs: list[list[str] | None] = [None] * absolute.size
        plain_abs: dict[str, str] = {}
        impl.walk_root(root, impl.prepare(absolute.build()), out_abs, plain_abs)
        selected = [impl.select(root, element_steps(p)) for p in paths if "@" not in p]
        results.append((out, plain, out_abs, plain_abs, selected))
    assert results[0] == results[1]
