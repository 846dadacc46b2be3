"""外配处方 (``rx_circ_flag``), 赠品 (``prod_geay_flag``) and the settlement id
(``setl_id``) from every adapter that produces sales or receipts.

Each sample message goes through its real adapter, is mapped with the sample crosswalk and
built by the nhsa profile; the strict simulator's check must accept the body and the
value the message gave must be in it. A value that is not yes/no is refused at the door
naming the field: HL7 v2 ``AE`` with the segment field in ERR, HTTP 400 with the path.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from helpers import (
    DATA,
    HOSPITAL,
    RunningGateway,
    accepted_body,
    gateway_with_http_listeners,
    mapped,
    nhsa_profile,
    post_to_listener,
    sample,
    send_for_ack,
    stored_events,
)

from adapters.fhir import FhirR4Adapter
from adapters.fhir.outputs import outputs as fhir_outputs
from adapters.hl7v2 import HL7v2Adapter
from adapters.hl7v2.config import HL7v2Config
from adapters.hl7v2.outputs import outputs as hl7_outputs
from adapters.registry import create
from adapters.vendor.outputs import outputs as vendor_outputs
from adapters.vendor.profile import load_profile
from canonical.errors import MessageRejected
from canonical.model import CHINA_TZ, Event, EventKind
from gateway.platforms.coverage import inputs_of
from gateway.platforms.fields import build_body

NOW = datetime(2026, 11, 27, 16, 0, tzinfo=CHINA_TZ)
HL7_CIRCULATED = DATA / "hl7v2" / "valid" / "rds_o13_circulated_prescription.hl7"
HL7_FREE_GOODS = DATA / "hl7v2" / "valid" / "zwh_z01_receipt_with_free_goods.hl7"
FHIR_CIRCULATED = DATA / "fhir-r4" / "valid" / "medicationdispense_circulated_prescription.json"
FHIR_FREE_GOODS = DATA / "fhir-r4" / "valid" / "supplydelivery_free_goods.json"
JSON_FREE_GOODS = DATA / "vendor-json" / "valid" / "receipt_with_free_goods.json"
SETL_ID = "330100G0020261124000015"
EXT = "http://jicai-gateway.org/fhir/StructureDefinition/"


def _mapped(events: tuple[Event, ...]) -> list[Event]:
    return mapped(events, NOW.date())


def _body(event: Event, unit: int = 0) -> dict[str, Any]:
    """The body the platform gets for one unit of ``event``, checked as it checks it."""
    return accepted_body(nhsa_profile(), event, unit, NOW)


def _hl7(raw: bytes, **config: Any) -> list[Event]:
    adapter = HL7v2Adapter({"facilities": {"ZJSRMYY": HOSPITAL}, **config})
    return _mapped(adapter.parse(raw, received_at=NOW).events)


def _fhir(resource: dict[str, Any]) -> list[Event]:
    raw = orjson.dumps(resource).replace(b"H33010200001", HOSPITAL.encode())
    return _mapped(FhirR4Adapter({}).parse(raw, received_at=NOW).events)


def _json(doc: bytes, profile: Any = "warehouse-stock-json") -> list[Event]:
    adapter = create("vendor-json", {"profile": profile})
    return _mapped(adapter.parse(doc, received_at=NOW).events)


# ------------------------------------------------------------------ HL7 v2


def test_hl7_a_circulated_prescription_reaches_3505_with_its_settlement() -> None:
    (sale,) = _hl7(HL7_CIRCULATED.read_bytes())
    body = _body(sale)
    assert (body["rx_circ_flag"], body["setl_id"]) == ("1", SETL_ID)  # ZJC-10, ZJC-11
    assert body["rtal_docno"] == "WP20261124000031"
    assert body["prsc_dr_name"] == "陈建国"  # the community health centre's doctor


def test_hl7_a_dispense_that_says_nothing_is_not_circulated_and_has_no_settlement() -> None:
    (sale,) = _hl7(sample("rds_o13_dispense_utf8.hl7"))
    body = _body(sale)
    assert body["rx_circ_flag"] == "0" and "setl_id" not in body


@pytest.mark.parametrize(("sent", "flag"), [
    ("Y", "1"), ("N", "0"), ("1", "1"), ("0", "0"), ("是", "1"), ("否", "0"),
    ("true", "1"), ("F", "0"),
])
def test_hl7_rx_circ_flag_spellings(sent: str, flag: str) -> None:
    raw = HL7_CIRCULATED.read_bytes().replace(
        f"|Y|{SETL_ID}".encode(), f"|{sent}|{SETL_ID}".encode())
    (sale,) = _hl7(raw)
    assert dict(sale.extra)["rx_circ_flag"] == flag
    assert _body(sale)["rx_circ_flag"] == flag


def test_hl7_a_hospital_layout_places_them_where_it_says() -> None:
    layout = {"segment": "ZYP", "specification": 1, "manufacturer": 2, "price": 3,
              "trace_codes": None, "approval_no": None, "generic_name": None,
              "manu_date": 4, "rx_only": 5, "phar_prac_cert_no": 6, "rx_circ_flag": 7,
              "setl_id": 8}
    zyp = ("ZYP|1mg*14片/盒|杭州中美华东制药有限公司|32.90|20260815|Y|330102201800123"
           f"|是|{SETL_ID}")
    raw = b"\r".join(line if not line.startswith(b"ZJC|") else zyp.encode()
                     for line in HL7_CIRCULATED.read_bytes().split(b"\r"))
    (sale,) = _hl7(raw, z_by_facility={"ZJSRMYY": layout})
    extra = dict(sale.extra)
    assert (extra["rx_circ_flag"], extra["setl_id"]) == ("1", SETL_ID)


def test_a_zjc_position_the_layout_gives_another_fact_stays_that_facts() -> None:
    """A hospital that put its 本位码 at ZJC-10 before ZJC-10 was the 外配处方 flag keeps
    its 本位码 there; the flag is not read (nor refused) from it."""
    raw = HL7_CIRCULATED.read_bytes().replace(
        f"|Y|{SETL_ID}".encode(), f"|86904641003065|{SETL_ID}".encode())
    (sale,) = _hl7(raw, z_fields={"standard_code": 10})
    assert sale.lines[0].standard_code == "86904641003065"
    extra = dict(sale.extra)
    assert "rx_circ_flag" not in extra and extra["setl_id"] == SETL_ID


def test_hl7_a_bad_flag_in_a_later_order_group_is_refused_too() -> None:
    lines = HL7_CIRCULATED.read_bytes().split(b"\r")
    orc, rxd, zjc = (next(x for x in lines if x.startswith(s)) for s in (b"ORC", b"RXD", b"ZJC"))
    raw = b"\r".join([*[x for x in lines if x], orc, rxd.replace(b"RXD|1|", b"RXD|2|"),
                      zjc.replace(f"|Y|{SETL_ID}".encode(), b"|?|")]) + b"\r"
    with pytest.raises(MessageRejected) as info:
        _hl7(raw)
    assert (info.value.location, info.value.code) == ("ZJC-10", "102")
    assert "rx_circ_flag" in info.value.reason


def test_hl7_free_goods_reach_3503_per_line_and_per_document() -> None:
    bought_and_given, given = _hl7(HL7_FREE_GOODS.read_bytes())
    assert [_body(bought_and_given, u)["prod_geay_flag"] for u in range(2)] == ["0", "1"]
    assert _body(given)["prod_geay_flag"] == "1"  # ZWD-15


def test_hl7_a_return_of_free_goods_says_so_in_3504() -> None:
    raw = HL7_FREE_GOODS.read_bytes().replace(
        b"ZWD|RK20261127005|RK^", b"ZWD|TH20261128001|TH^").replace(
        b"|Y||PS2026112700456|||||Y", b"|Y||PS2026112700456|RK20261127005||||Y")
    _, returned = _hl7(raw)
    assert returned.kind is EventKind.RETURN
    body = _body(returned)
    assert (body["prod_geay_flag"], body["medins_prod_purc_no"]) == ("1", "RK20261127005")


def test_hl7_declares_what_its_layouts_carry() -> None:
    default = hl7_outputs(HL7v2Config())
    assert {"extra.rx_circ_flag", "extra.setl_id"} <= default[EventKind.DISPENSE]
    assert {"extra.prod_geay_flag", "line_extra.prod_geay_flag"} <= default[EventKind.RECEIPT]
    # a hospital whose own segment has no such field: not every message can carry them
    mixed = hl7_outputs(HL7v2Config.model_validate(
        {"z_by_facility": {"HZSDYYY": {"segment": "ZYP", "price": 4}}}))
    assert not {"extra.rx_circ_flag", "extra.setl_id"} & mixed[EventKind.DISPENSE]


# ------------------------------------------------------------------ FHIR R4


def _circulated(flag: dict[str, Any] | None) -> dict[str, Any]:
    resource: dict[str, Any] = orjson.loads(FHIR_CIRCULATED.read_bytes())
    resource["extension"] = [e for e in resource["extension"]
                             if not e["url"].endswith("/rx-circ-flag")]
    if flag is not None:
        resource["extension"].append({"url": EXT + "rx-circ-flag", **flag})
    return resource


def test_fhir_a_circulated_prescription_reaches_3505_with_its_settlement() -> None:
    (sale,) = _fhir(orjson.loads(FHIR_CIRCULATED.read_bytes()))
    body = _body(sale)
    assert (body["rx_circ_flag"], body["setl_id"]) == ("1", SETL_ID)
    assert body["rtal_docno"] == "WP20261124000031"  # authorizingPrescription.identifier


@pytest.mark.parametrize(("flag", "sent"), [
    ({"valueBoolean": False}, "0"), ({"valueString": "是"}, "1"), ({"valueCode": "N"}, "0"),
    ({"valueInteger": 1}, "1"), ({"valueString": "true"}, "1"), (None, "0"),
])
def test_fhir_rx_circ_flag_spellings(flag: dict[str, Any] | None, sent: str) -> None:
    (sale,) = _fhir(_circulated(flag))
    assert _body(sale)["rx_circ_flag"] == sent


@pytest.mark.parametrize("flag", [{"valueString": "外配"}, {"valueInteger": 2},
                                  {"valueDecimal": 1.0}])
def test_fhir_a_bad_rx_circ_flag_is_refused_naming_the_extension(
        flag: dict[str, Any]) -> None:
    with pytest.raises(MessageRejected) as info:
        _fhir(_circulated(flag))
    assert info.value.location == "MedicationDispense.extension('rx-circ-flag')"
    assert info.value.code == "102"


def _free_goods(where: str, flag: dict[str, Any]) -> dict[str, Any]:
    """The free-goods SupplyDelivery for a mapped item, the flag on ``where``."""
    doc: dict[str, Any] = orjson.loads(FHIR_FREE_GOODS.read_bytes())
    med = doc["contained"][0]
    med["code"]["coding"] = [{"system": "http://hospital.zjsrmyy.cn/CodeSystem/drug",
                              "code": "Y0012345", "display": "阿那曲唑片"}]
    med["manufacturer"] = {"display": "杭州中美华东制药有限公司"}
    med["extension"] += [{"url": EXT + "approval-number", "valueString": "国药准字H20203365"},
                         {"url": EXT + "manufacture-date", "valueDate": "2026-08-15"},
                         {"url": EXT + "prescription-only", "valueBoolean": True}]
    item = doc["suppliedItem"]
    item["extension"] = [e for e in item["extension"] if not e["url"].endswith("geay-flag")]
    target = doc if where == "resource" else item
    target.setdefault("extension", []).append({"url": EXT + "prod-geay-flag", **flag})
    return doc


@pytest.mark.parametrize("where", ["resource", "suppliedItem"])
def test_fhir_free_goods_reach_3503(where: str) -> None:
    (receipt,) = _fhir(_free_goods(where, {"valueBoolean": True}))
    assert receipt.kind is EventKind.RECEIPT
    assert _body(receipt)["prod_geay_flag"] == "1"


def test_fhir_a_bad_free_goods_flag_is_refused_naming_where_it_is() -> None:
    with pytest.raises(MessageRejected) as info:
        _fhir(_free_goods("suppliedItem", {"valueString": "赠"}))
    assert info.value.location == "SupplyDelivery.suppliedItem.extension('prod-geay-flag')"


def test_fhir_declares_the_flags() -> None:
    out = fhir_outputs()
    assert {"extra.rx_circ_flag", "extra.setl_id"} <= out[EventKind.DISPENSE]
    assert "extra.prod_geay_flag" in out[EventKind.RECEIPT]


# ------------------------------------------------------------------ vendor JSON / XML


def test_json_free_goods_reach_3503_per_line_and_per_document() -> None:
    bought_and_given, given = _json(JSON_FREE_GOODS.read_bytes())
    assert [_body(bought_and_given, u)["prod_geay_flag"] for u in range(2)] == ["0", "1"]
    assert _body(given)["prod_geay_flag"] == "1"  # the document's 赠品标志


@pytest.mark.parametrize(("sent", "flag"), [
    ("是", "1"), ("否", "0"), ("Y", "1"), ("n", "0"), (1, "1"), (0, "0"), (True, "1"),
    (False, "0"), ("true", "1"),
])
def test_json_free_goods_spellings(sent: Any, flag: str) -> None:
    doc = orjson.loads(JSON_FREE_GOODS.read_bytes())
    doc["单据列表"][0]["明细"][1]["赠品标志"] = sent
    bought_and_given, _ = _json(orjson.dumps(doc))
    assert _body(bought_and_given, 1)["prod_geay_flag"] == flag


def test_json_a_bad_free_goods_flag_is_refused_naming_the_field() -> None:
    doc = orjson.loads(JSON_FREE_GOODS.read_bytes())
    doc["单据列表"][1]["赠品标志"] = "部分"
    with pytest.raises(MessageRejected) as info:
        _json(orjson.dumps(doc))
    assert (info.value.location, info.value.code) == ("/单据列表/1/赠品标志", "102")
    assert "prod_geay_flag" in info.value.reason and "部分" in info.value.reason


# a retail pharmacy system's sale export, as a site would map it: no shipped profile sends
# sales, so the profile language must carry 外配处方标志 and 结算ID for whoever writes one
_SALES_PROFILE: dict[str, Any] = {
    "name": "pharmacy-sale", "format": "json", "documents": "/销售单列表",
    "header": {"control_id": {"path": "/消息ID", "required": True}, "hospital_id": "/机构编码"},
    "event": {
        "kind": {"value": "dispense"}, "document_no": "/处方号", "occurred_at": "/销售时间",
        "prescriber.name": "/开方医生", "pharmacist.id": "/药师工号",
        "pharmacist.name": "/药师姓名", "patient.visit_no": "/就诊流水号"},
    "extra": {"rx_circ_flag": {"path": "/外配处方标志", "type": "flag"},
              "setl_id": "/结算ID", "phar_prac_cert_no": "/药师执业证书编号",
              "hi_feesetl_type": "/结算类型"},
    "lines": {"path": "/明细", "fields": {
        "item_code": {"path": "/药品编码", "required": True}, "item_name": "/药品名称",
        "quantity": {"path": "/数量", "required": True}, "unit": "/单位", "price": "/单价",
        "lot_no": "/批号", "expiry": "/有效期至", "manu_date": "/生产日期", "rx_only": "/处方药",
        "manufacturer": "/生产企业", "trace_codes": {"path": "/追溯码", "type": "list"}}},
}
_SALE = {
    "消息ID": "YF-20261127-000311", "机构编码": HOSPITAL,
    "销售单列表": [{
        "处方号": "WP20261127000088", "销售时间": "2026-11-27 15:40:00", "开方医生": "陈建国",
        "药师工号": "P002", "药师姓名": "孙丽", "药师执业证书编号": "330102201800123",
        "就诊流水号": "MZ20261127044", "结算类型": "1", "外配处方标志": "是",
        "结算ID": SETL_ID,
        "明细": [{"药品编码": "Y0012345", "药品名称": "阿那曲唑片", "数量": 1, "单位": "盒",
                  "单价": "32.90", "批号": "L20260815A", "有效期至": "2028-08-14",
                  "生产日期": "2026-08-15", "处方药": "是", "生产企业": "杭州中美华东制药有限公司",
                  "追溯码": ["81234567890123456831"]}]}],
}


def test_a_vendor_sales_profile_carries_both_into_3505() -> None:
    (sale,) = _json(orjson.dumps(_SALE), profile=_SALES_PROFILE)
    body = _body(sale)
    assert (body["rx_circ_flag"], body["setl_id"]) == ("1", SETL_ID)
    assert {"extra.rx_circ_flag", "extra.setl_id"} <= vendor_outputs(
        load_profile(_SALES_PROFILE))[EventKind.DISPENSE]


def test_a_vendor_xml_profile_reads_a_flag_the_same_way() -> None:
    profile = copy.deepcopy(load_profile("his-prescription-xml").model_dump(exclude_none=True))
    profile["extra"]["rx_circ_flag"] = {"path": "外配处方标志", "type": "flag"}
    raw = (DATA / "vendor-xml" / "valid" / "outpatient_prescription_two_drugs.xml").read_bytes()
    text = raw.decode("utf-8")
    marked = text.replace("<处方号>", "<外配处方标志>是</外配处方标志><处方号>", 1).encode()
    adapter = create("vendor-xml", {"profile": profile})
    assert dict(adapter.parse(marked, received_at=NOW).events[0].extra)["rx_circ_flag"] == "1"
    bad = text.replace("<处方号>", "<外配处方标志>外院</外配处方标志><处方号>", 1).encode()
    with pytest.raises(MessageRejected) as info:
        adapter.parse(bad, received_at=NOW)
    assert info.value.location.endswith("/外配处方标志") and "rx_circ_flag" in info.value.reason


def test_the_shipped_warehouse_profile_declares_free_goods() -> None:
    out = vendor_outputs(load_profile("warehouse-stock-json"))
    assert {"extra.prod_geay_flag", "line_extra.prod_geay_flag"} <= out[EventKind.RECEIPT]


# ------------------------------------------------------------------ the field specification


def test_a_lines_own_flag_wins_over_the_documents() -> None:
    (given,) = _hl7(HL7_FREE_GOODS.read_bytes())[1:]
    line = given.lines[0]
    bought = msgspec.structs.replace(line, extra=(("prod_geay_flag", "0"),))
    body = build_body("3503", given.with_lines((bought,)), bought, {"bchno": "B1"})
    assert body["prod_geay_flag"] == "0"  # the document says 1 (ZWD-15)
    unflagged = msgspec.structs.replace(given, extra=())
    plain = msgspec.structs.replace(line, extra=())
    assert build_body("3503", unflagged.with_lines((plain,)), plain,
                      {"bchno": "B1"})["prod_geay_flag"] == "0"  # the default
    assert inputs_of("derived.prod_geay_flag") == ("line_extra.prod_geay_flag",
                                                   "extra.prod_geay_flag")


# ------------------------------------------------------------------ at the door


@pytest.fixture
async def http_gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with gateway_with_http_listeners(tmp_path) as gw:
        yield gw


async def test_the_flags_reach_the_platform_and_bad_ones_are_refused_naming_them(
        http_gateway: RunningGateway) -> None:
    gw = http_gateway
    # HL7 v2: AE, the field in MSA-3 and ERR-2 / ERR-8; nothing stored
    bad = (DATA / "hl7v2" / "invalid" / "rds_bad_rx_circ_flag.hl7").read_bytes()
    ack = await send_for_ack(gw, bad)
    assert ack["MSA"][1] == "AE"
    assert ack["MSA"][3].startswith("ZJC-10 (rx_circ_flag 外配处方标志) is '外配'")
    assert ack["ERR"][2] == "ZJC^1^10" and ack["ERR"][3].startswith("102^")
    ack = await send_for_ack(gw, (DATA / "hl7v2" / "invalid" / "zwh_bad_free_goods_flag.hl7")
                             .read_bytes())
    assert ack["MSA"][1] == "AE" and "prod_geay_flag" in ack["MSA"][3]
    assert ack["ERR"][2] == "ZWL^1^16"
    # FHIR: 400, the extension in the OperationOutcome's expression
    resource = orjson.loads((DATA / "fhir-r4" / "invalid"
                             / "medicationdispense_bad_rx_circ_flag.json").read_bytes())
    resource["location"]["identifier"]["value"] = HOSPITAL
    status, outcome = await post_to_listener(gw, "his-fhir", orjson.dumps(resource))
    assert status == 400, outcome
    [issue] = outcome["issue"]
    assert issue["expression"] == ["MedicationDispense.extension('rx-circ-flag')"]
    # vendor JSON: 400, the document path in errors, the canonical name in the message
    status, answer = await post_to_listener(
        gw, "spd-json", (DATA / "vendor-json" / "invalid" / "bad_free_goods_flag.json")
        .read_bytes())
    assert status == 400, answer
    [error] = answer["errors"]
    assert error["path"] == "/单据列表/0/明细/1/赠品标志"
    assert "prod_geay_flag" in answer["resultMsg"]
    assert await stored_events(gw) == 0
    [(kept,)] = await gw.store.query("SELECT count(*) FROM quarantine")
    assert kept == 4

    # the good ones: a circulated dispense (HL7 v2 and FHIR) and a delivery with a gift
    assert (await send_for_ack(gw, HL7_CIRCULATED.read_bytes()))["MSA"][1] == "AA"
    fhir = orjson.loads(FHIR_CIRCULATED.read_bytes())
    fhir["location"]["identifier"]["value"] = HOSPITAL
    fhir["authorizingPrescription"][0]["identifier"]["value"] = "WP20261124000032"
    status, created = await post_to_listener(gw, "his-fhir", orjson.dumps(fhir))
    assert status == 201, created
    status, answer = await post_to_listener(gw, "spd-json", JSON_FREE_GOODS.read_bytes())
    assert status == 200, answer
    await gw.delivered(5)
    sent = [gw.simulator.accepted[m]["input"] for m in gw.simulator.order]
    sales = {s["rtal_docno"]: s for s in (x["selinfo"] for x in sent if "selinfo" in x)}
    assert {k: (s["rx_circ_flag"], s["setl_id"]) for k, s in sales.items()} == {
        "WP20261124000031": ("1", SETL_ID), "WP20261124000032": ("1", SETL_ID)}
    purchases = sorted((p["fixmedins_bchno"], p["prod_geay_flag"])
                       for p in (x["purcinfo"] for x in sent if "purcinfo" in x))
    assert [flag for _, flag in purchases] == ["0", "1", "1"]
