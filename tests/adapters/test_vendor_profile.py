"""Vendor profiles: a bad profile is refused at start with a message naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from pydantic import ValidationError

from adapters.testing import RECEIVED_AT
from adapters.vendor import VendorXmlAdapter, load_profile, shipped_profiles
from canonical.errors import MessageRejected

SAMPLE = Path(__file__).parent.parent / "data" / "vendor-xml" / "valid" / \
    "outpatient_prescription_two_drugs.xml"

BASE: dict[str, Any] = {
    "name": "his-min",
    "format": "xml",
    "documents": "/处方信息/处方",
    "header": {"hospital_id": "/处方信息/消息头/机构编码",
               "control_id": "/处方信息/消息头/消息ID"},
    "event": {"kind": {"value": "prescription"}, "document_no": "处方号"},
    "lines": {"path": "药品明细/药品",
              "fields": {"item_code": "院内编码", "quantity": "数量"}},
}


def _with(section: str, name: str, spec: Any) -> dict[str, Any]:
    profile = copy.deepcopy(BASE)
    target = profile["lines"]["fields"] if section == "lines" else profile.setdefault(section, {})
    target[name] = spec
    return profile


def test_shipped_profiles_load() -> None:
    names = {load_profile(p).name for p in shipped_profiles()}
    assert names == {"finance-payment", "his-prescription", "warehouse-stock"}


@pytest.mark.parametrize("section, name, spec, message", [
    ("event", "quantity", "数量", "unknown event fields ['quantity']"),
    ("lines", "批号", "批号", "unknown line fields ['批号']"),
    ("lines", "quantity", {"path": "数量", "type": "str"},
     "lines.fields.quantity: is read as decimal, not str"),
    ("event", "occurred_at", {"path": "开方时间", "type": "date"},
     "event.occurred_at: is read as datetime, not date"),
    ("lines", "item_name", {"path": "药品名称", "type": "list"},
     "lines.fields.item_name: is read as str, not list"),
    ("event", "document_no", {"path": "处方号", "value": "x"}, "exactly one of 'path' and 'value'"),
    ("event", "kind", {"value": "sale"}, "event kinds are"),
])
def test_bad_profiles_are_refused_naming_the_field(section: str, name: str, spec: Any,
                                                   message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_profile(_with(section, name, spec))


def test_type_reads_extra_fields() -> None:
    profile = _with("extra", "amount", {"path": "药品明细/药品/金额", "type": "decimal"})
    profile["extra"]["urgent"] = {"path": "是否急诊", "type": "bool"}
    event = VendorXmlAdapter({"profile": profile}).parse(
        SAMPLE.read_bytes(), received_at=RECEIVED_AT).events[0]
    assert dict(event.extra) == {"amount": "73.60", "urgent": "False"}


def test_line_extra_fields_are_kept_per_line() -> None:
    profile = copy.deepcopy(BASE)
    # a plain child path (read by the walk) and an XPath (compiled), typed and not
    profile["lines"]["extra"] = {"line_no": "序号", "amount": {"path": "金额",
                                                               "type": "decimal"},
                                 "form": "./剂型[1]"}
    event = VendorXmlAdapter({"profile": profile}).parse(
        SAMPLE.read_bytes(), received_at=RECEIVED_AT).events[0]
    first, second = (dict(line.extra) for line in event.lines)
    assert first == {"line_no": "1", "amount": "73.60", "form": "片剂"}
    assert second["line_no"] == "2"
    assert event.extra == ()  # line facts stay on their line


def test_a_line_without_item_code_is_rejected_even_when_not_marked_required() -> None:
    raw = SAMPLE.read_bytes().replace("<院内编码>Y0033107</院内编码>".encode(), b"")
    with pytest.raises(MessageRejected) as exc:
        VendorXmlAdapter({"profile": BASE}).parse(raw, received_at=RECEIVED_AT)
    assert exc.value.code == "101"
    assert exc.value.location == "/处方信息/处方/药品明细/药品[2]/院内编码"


def test_a_path_that_is_not_xpath_fails_at_start() -> None:
    profile = copy.deepcopy(BASE)
    profile["documents"] = "/处方信息/处方,药品"
    with pytest.raises(etree.XPathSyntaxError):
        VendorXmlAdapter({"profile": profile})


def test_a_loss_document_carries_its_stock_change_type() -> None:
    """报损 with 变动类型: 3502's inv_chg_type comes from the document, not a default."""
    import json as _json

    from adapters.registry import create as _create

    doc = {"消息ID": "SPD-20261127-000051", "系统编码": "SPD-HDYY", "机构编码": "H33010200001",
           "单据列表": [{"单据号": "BS20261127001", "单据类型": "报损", "变动类型": "104",
                        "业务时间": "2026-11-27 16:20:00", "操作员工号": "K009",
                        "操作员姓名": "周强", "明细": [{
                            "药品编码": "Y0033107", "药品名称": "奥硝唑阴道栓", "数量": -1,
                            "单位": "盒", "批号": "2026-0630A", "有效期至": "2028-06-29"}]}]}
    adapter = _create("vendor-json", {"profile": "warehouse-stock-json"})
    (event,) = adapter.parse(_json.dumps(doc, ensure_ascii=False).encode(),
                             received_at=RECEIVED_AT).events
    assert event.kind.value == "stock_change"
    assert dict(event.extra)["inv_chg_type"] == "104"
