"""What the platform accepts: 3501–3507 bodies built from the field specifications.

Each transaction starts as a realistic message through the real adapter, is mapped with
the sample crosswalk and built by the nhsa profile; the strict simulator's check must
accept it. Then, per mandatory field, the field's source is removed and the profile must
name the field rather than send a body the platform refuses.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import msgspec
import orjson
import pytest
from helpers import HOSPITAL, ROOT, accepted_body, mapped, nhsa_profile, sample

from adapters.fhir import FhirR4Adapter
from adapters.hl7v2 import HL7v2Adapter
from canonical.errors import MessageRejected
from canonical.model import CHINA_TZ, Event, EventKind, OrderControl
from gateway.platforms.fields import SPECS, FieldMissing, build_body, check_body
from gateway.platforms.nhsa import NhsaInventoryProfile
from gateway.platforms.simulator import SimulatorState, validate_envelope
from gateway.platforms.simulator import _apply_inventory as apply_inventory
from mappings.crosswalk import load_csv, map_event

NOW = datetime(2026, 11, 23, 16, 0, tzinfo=CHINA_TZ)


def _hl7(raw: bytes) -> list[Event]:
    adapter = HL7v2Adapter({"facilities": {"ZJSRMYY": HOSPITAL}})
    return mapped(adapter.parse(raw, received_at=NOW).events, NOW.date())


def _accepted(profile: NhsaInventoryProfile, event: Event, unit: int = 0) -> dict[str, Any]:
    return accepted_body(profile, event, unit, NOW)


# a warehouse (SPD) system's documents: 入库 with invoice, 退货 against it, 盘点, 报损
_MSH = ("MSH|^~\\&|SPD|ZJSRMYY|JCGW|JCGW|20261123150000||ZWH^Z01|{cid}|P|2.5|||AL|NE"
        "||UNICODE UTF-8")
_ZWL = ("ZWL|1|Y0012345^阿那曲唑片|1mg*14片/盒|杭州中美华东制药有限公司|{qty}|盒^盒|32.90"
        "|L20260815A|20280814|国药准字H20203365|81234567890123456789||阿那曲唑片|20260815|Y")
_ZWD = {
    "RK": "ZWD|RK20261123001|RK^入库|20261123143000|S01^华东医药股份有限公司|K007^陈静"
          "|XYK^西药库|04518820|Y|033002300111|SH20261123-0087",
    "TH": "ZWD|TH20261123002|TH^退货|20261123153000|S01^华东医药股份有限公司|K007^陈静"
          "|XYK^西药库||Y|||RK20261123001",
    "PD": "ZWD|PD20261130001|PD^盘点|20261130170000||K009^周强|XYK^西药库",
    "BS": "ZWD|BS20261123003|BS^报损|20261123160000||K009^周强|XYK^西药库||||||105",
}


def _warehouse(doc: str, qty: str = "10") -> Event:
    raw = "\r".join([_MSH.format(cid=f"ZWH{doc}"), _ZWD[doc], _ZWL.format(qty=qty)]) + "\r"
    (event,) = _hl7(raw.encode())
    return event


def test_3505_a_dispense_from_hl7_is_complete() -> None:
    (event,) = _hl7(sample("rds_o13_dispense_utf8.hl7"))
    body = _accepted(nhsa_profile(), event)
    assert body["sel_retn_cnt"] == 28 and body["finl_trns_pric"] == 2.35  # numbers
    assert body["sel_retn_opter_name"] == "王芳"  # RXD-10, not the gateway
    assert body["rxno"] == body["rtal_docno"] == "CF20261123000123"
    assert body["mdtrt_sn"] == "MZ20261123001"  # a visit serial with no patient fields
    assert "psn_name" not in body and "setl_id" not in body  # absent optional: left out


def test_3505_a_split_package_is_flagged() -> None:
    raw = sample("rds_o13_dispense_utf8.hl7").replace(b"|2|\xe7\x9b\x92^", b"|0.5|\xe7\x9b\x92^")
    (event,) = _hl7(raw)
    body = _accepted(nhsa_profile(), event)
    assert (body["trdn_flag"], body["sel_retn_cnt"]) == ("1", 7)  # half a box: 7 tablets



@pytest.mark.parametrize(("quantity", "national", "package", "flag"), [
    ("15", "15", "10", "1"),  # a sender counting tablets: 15 of a box of 10 splits one
    ("20", "20", "10", "0"),  # two whole boxes
    ("0.5", "7", "7", "0"),  # the package named is the half box the hospital sells
    ("1", None, "14", "1"),  # no national quantity: the hospital's counts
    ("3", "42", "not a number", "0"),  # no usable package size: the hospital unit decides
])
def test_3505_trdn_flag_follows_the_package_size_when_the_line_names_one(
        quantity: str, national: str | None, package: str, flag: str) -> None:
    (event,) = _hl7(sample("rds_o13_dispense_utf8.hl7"))
    line = msgspec.structs.replace(
        event.lines[0], quantity=Decimal(quantity), extra=(("package_size", package),),
        national_quantity=None if national is None else Decimal(national))
    body = _accepted(nhsa_profile(), event.with_lines((line,)))
    assert body["trdn_flag"] == flag


_RETURN = {
    "resourceType": "MedicationDispense", "id": "fy20261123000123",
    "contained": [{
        "resourceType": "Medication", "id": "m1",
        "code": {"coding": [{"system": "http://hospital.zjsrmyy.cn/CodeSystem/drug",
                             "code": "Y0052001", "display": "他达拉非片"}]},
        "manufacturer": {"display": "广州朗圣药业有限公司"},
        "batch": {"lotNumber": "T20260101B", "expirationDate": "2028-12-31"},
        "extension": [
            {"url": "http://jicai-gateway.org/fhir/StructureDefinition/manufacture-date",
             "valueDate": "2026-01-01"},
            {"url": "http://jicai-gateway.org/fhir/StructureDefinition/prescription-only",
             "valueBoolean": True}]}],
    "identifier": [{"system": "http://hospital.zjsrmyy.cn/dispense",
                    "value": "TY20261123000123"}],
    "status": "cancelled",
    "medicationReference": {"reference": "#m1"},
    "subject": {"reference": "Patient/0007654321", "display": "欧阳娜娜"},
    "context": {"reference": "Encounter/MZ20261123777"},
    "performer": [{"actor": {"reference": "Practitioner/P003", "display": "孙丽"}}],
    "location": {"identifier": {"system": "http://www.nhsa.gov.cn/CodeSystem/fixmedins",
                                "value": HOSPITAL}},
    "authorizingPrescription": [{"reference": "MedicationRequest/CF20261123000777"}],
    "quantity": {"value": 1, "unit": "盒"},
    "whenHandedOver": "2026-11-23T16:10:00+08:00",
    "extension": [
        {"url": "http://jicai-gateway.org/fhir/StructureDefinition/prescriber",
         "valueReference": {"reference": "Practitioner/D022", "display": "赵磊"}},
    ] + [
        {"url": f"http://jicai-gateway.org/fhir/StructureDefinition/{k}", "valueString": v}
        for k, v in (("phar-prac-cert-no", "330106201700518"), ("hi-feesetl-type", "1"),
                     ("original-no", "CF20261123000777"))],
}


def test_3506_a_cancelled_fhir_dispense_is_complete() -> None:
    adapter = FhirR4Adapter({})
    parsed = adapter.parse(json.dumps(_RETURN).encode(), received_at=NOW)
    (event,) = mapped(parsed.events, NOW.date())
    assert event.kind is EventKind.DISPENSE_RETURN
    body = _accepted(nhsa_profile(), event)
    assert body["medins_prod_sel_no"] == "CF20261123000777"  # the sale's rtal_docno
    assert (body["sel_retn_cnt"], body["manu_date"], body["rx_flag"]) == (24, "2026-01-01", "1")


def test_3503_a_receipt_carries_invoice_receiver_and_maker() -> None:
    event = _warehouse("RK")
    body = _accepted(nhsa_profile(), event)
    assert (body["purc_invo_no"], body["purc_invo_codg"], body["dynt_no"]) == (
        "04518820", "033002300111", "SH20261123-0087")
    assert body["purc_retn_opter_name"] == "陈静"  # ZWD-5, who received the goods
    assert body["prodentp_name"] == "杭州中美华东制药有限公司"
    assert (body["manu_date"], body["purc_retn_cnt"], body["prod_geay_flag"]) == (
        "2026-08-15", 140, "0")


def test_3504_a_return_names_the_purchase_it_returns() -> None:
    body = _accepted(nhsa_profile(), _warehouse("TH", "2"))
    assert body["medins_prod_purc_no"] == "RK20261123001"  # the receipt's document


def test_3501_a_stocktake_is_complete_and_has_no_3502_fields() -> None:
    body = _accepted(nhsa_profile(), _warehouse("PD", "36"))
    assert body["invdate"] == "2026-11-30" and body["inv_cnt"] == 504
    assert not {"cnt", "inv_chg_time", "pric"} & set(body)


def test_3502_a_loss_carries_its_change_type() -> None:
    body = _accepted(nhsa_profile(), _warehouse("BS", "1"))
    assert (body["inv_chg_type"], body["cnt"], body["pric"]) == ("105", 14, 2.35)


def test_3502_change_type_from_configuration_when_the_message_has_none() -> None:
    event = _warehouse("BS", "1")
    event = msgspec.structs.replace(event, extra=())
    body = _accepted(nhsa_profile(field_defaults={"inv_chg_type": "105"}), event)
    assert body["inv_chg_type"] == "105"


def test_3507_a_change_deletes_then_uploads() -> None:
    (event,) = _hl7(sample("rds_o13_dispense_utf8.hl7"))
    change = msgspec.structs.replace(event, order_control=OrderControl.CHANGE)
    assert _accepted(nhsa_profile(), change, 0) == {"fixmedins_bchno": "CF20261123000123-1",
                                                "inv_data_type": "4"}
    assert _accepted(nhsa_profile(), change, 1)["sel_retn_cnt"] == 28


# --- per mandatory field: its source removed, the profile names it --------------------

def _complete() -> dict[str, Event]:
    (sale,) = _hl7(sample("rds_o13_dispense_utf8.hl7"))
    adapter = FhirR4Adapter({})
    (back,) = mapped(adapter.parse(json.dumps(_RETURN).encode(), received_at=NOW).events,
                     NOW.date())
    return {"3501": _warehouse("PD"), "3502": _warehouse("BS"), "3503": _warehouse("RK"),
            "3504": _warehouse("TH"), "3505": sale, "3506": back}


_EVENTS = _complete()
_EMPTY = {"line.national_code": None, "line.rx_only": None}


def _without(event: Event, source: str) -> Event:
    kind, _, rest = source.partition(".")
    if kind == "line":
        line = msgspec.structs.replace(event.lines[0], **{rest: _EMPTY.get(source, "")})
        return event.with_lines((line,))
    if kind == "event":
        return msgspec.structs.replace(event, **{rest: ""})
    if kind == "party":
        return msgspec.structs.replace(event, **{rest.partition(".")[0]: None})
    if kind == "extra":
        return msgspec.structs.replace(event, extra=tuple(
            (k, v) for k, v in event.extra if k != rest))
    if source == "derived.mdtrt_sn":
        return msgspec.structs.replace(event, patient=None)
    if source == "derived.supplier_name":
        line = msgspec.structs.replace(event.lines[0], supplier=None)
        return msgspec.structs.replace(event.with_lines((line,)), supplier=None)
    if source == "derived.rx_flag":
        return _without(event, "line.rx_only")
    raise AssertionError(f"no way to remove {source}")


# filled by the profile itself: never empty, nothing to remove
_NEVER_EMPTY = {"derived.bchno", "derived.quantity", "derived.moved_quantity",
                "derived.time", "derived.date", "derived.trdn_flag", "derived.inv_data_type"}
_CASES = [(infno, spec.name, spec.source) for infno, specs in SPECS.items() if infno != "3507"
          for spec in specs
          if spec.mandatory and spec.default is None and spec.source not in _NEVER_EMPTY]


@pytest.mark.parametrize(("infno", "name", "source"), _CASES,
                         ids=[f"{i}-{n}" for i, n, _ in _CASES])
def test_a_mandatory_field_without_its_source_is_named(infno: str, name: str,
                                                       source: str) -> None:
    event = _without(_EVENTS[infno], source)
    line = event.lines[0]
    with pytest.raises(FieldMissing) as info:
        build_body(infno, event, line, {"bchno": "B1"})
    assert name in info.value.problems, info.value.problems
    assert source in info.value.problems[name]


@pytest.mark.parametrize("infno", sorted(SPECS))
def test_the_simulator_names_the_first_missing_mandatory_field(infno: str) -> None:
    first = next(spec.name for spec in SPECS[infno] if spec.mandatory)
    assert check_body(infno, {}) == (first, "必填字段缺失")


def test_a_too_precise_decimal_and_an_impossible_date_are_refused() -> None:
    body = _accepted(nhsa_profile(), _EVENTS["3505"])
    assert check_body("3505", {**body, "finl_trns_pric": 2.3456789})[0] == "finl_trns_pric"
    assert check_body("3505", {**body, "expy_end": "2028-02-30"})[0] == "expy_end"
    assert check_body("3505", {**body, "sel_retn_cnt": "28"})[0] == "sel_retn_cnt"


def test_an_impossible_expiry_date_is_refused_at_the_door() -> None:
    raw = sample("rds_o13_dispense_utf8.hl7").replace(b"|20280814|", b"|2028-31-10|")
    with pytest.raises(MessageRejected) as info:
        _hl7(raw)
    assert info.value.location == "RXD-19"


def test_an_impossible_manufacture_date_in_a_warehouse_line_is_refused() -> None:
    raw = "\r".join([_MSH.format(cid="ZWHBAD"), _ZWD["RK"],
                     _ZWL.format(qty="1").replace("|20260815|", "|20261315|")]) + "\r"
    with pytest.raises(MessageRejected) as info:
        _hl7(raw.encode())
    assert info.value.location == "ZWL-14"


def test_decimal_values_keep_their_digits() -> None:
    event = _EVENTS["3503"]
    line = msgspec.structs.replace(event.lines[0], national_price=Decimal("2.350001"))
    body = build_body("3503", event.with_lines((line,)), line, {"bchno": "B1"})
    assert body["finl_trns_pric"] == 2.350001


def test_3503_from_a_warehouse_json_document_through_the_vendor_adapter() -> None:
    from adapters.vendor import VendorJsonAdapter

    doc = json.loads((ROOT / "tests" / "data" / "vendor-json" / "valid"
                      / "receipt_into_stock.json").read_text("utf-8"))
    doc["机构编码"] = HOSPITAL
    receipt = doc["单据列表"][0]
    receipt.update({"发票代码": "033002300111"})
    for line, made in zip(receipt["明细"], ("2025-08-01", "2026-09-12"), strict=True):
        line.update({"处方药": "是", "生产日期": made})
    crosswalk = load_csv(
        "hospital_id,item_code,national_code,item_name,hospital_unit,national_unit,factor,"
        "valid_from,valid_to\n"
        f"{HOSPITAL},Y0045201,XL02BGA045A001010104641,阿那曲唑片 1mg*14片(海正),盒,片,14,"
        "2026-01-01,\n"
        f"{HOSPITAL},Y0033107,XG01AFA222D003010104920,奥硝唑阴道栓 0.5g*5枚(方盛),盒,枚,5,"
        "2026-01-01,\n")
    parsed = VendorJsonAdapter({"profile": "warehouse-stock-json"}).parse(
        json.dumps(doc, ensure_ascii=False).encode(), received_at=NOW)
    event, unmapped = map_event(parsed.events[0], crosswalk, date(2026, 11, 26))
    assert event.kind is EventKind.RECEIPT and not unmapped
    profile = nhsa_profile()
    first, second = (_accepted(profile, event, unit) for unit in range(2))
    assert (first["purc_retn_cnt"], first["manu_date"], first["dynt_no"]) == (
        700, "2025-08-01", "PS2026112600871")
    assert (second["purc_invo_no"], second["purc_invo_codg"]) == ("04412263", "033002300111")
    assert second["purc_retn_opter_name"] == "郑强" and second["expy_end"] == "2028-09-11"


def test_3506_follows_its_3505_at_a_platform_that_checks_the_order() -> None:
    """The original sale's serial is the sale's retail document (rtal_docno): the return
    that names it is taken after its sale, and refused before it."""
    adapter = FhirR4Adapter({})
    sale_resource = {**_RETURN, "id": "fy20261123000100", "status": "completed",
                     "extension": _RETURN["extension"][:1] + [
                         e for e in _RETURN["extension"][1:]
                         if not e["url"].endswith("/original-no")]}
    (sale,) = mapped(adapter.parse(json.dumps(sale_resource).encode(),
                                   received_at=NOW).events, NOW.date())
    (ret,) = mapped(adapter.parse(json.dumps(_RETURN).encode(), received_at=NOW).events,
                    NOW.date())
    assert sale.kind is EventKind.DISPENSE and ret.kind is EventKind.DISPENSE_RETURN
    profile = nhsa_profile()

    def envelope(event: Event, n: int) -> dict[str, Any]:
        msgid = f"{HOSPITAL}2026112316000{n:05d}"
        return orjson.loads(profile.build(event, 0, msgid, NOW.timestamp()).body)

    state = SimulatorState()
    early = apply_inventory(state, envelope(ret, 1), "m1")
    assert early is not None and b"medins_prod_sel_no" in early.body
    assert apply_inventory(state, envelope(sale, 2), "m2") is None
    assert apply_inventory(state, envelope(ret, 3), "m3") is None


def _fhir_receipt() -> Event:
    """The SupplyDelivery sample as this hospital's, for a mapped item, with the facts
    3503 needs that the sample leaves out (approval number, manufacture date,
    prescription-only)."""
    doc = orjson.loads((ROOT / "tests" / "data" / "fhir-r4" / "valid"
                        / "supplydelivery_receipt.json").read_bytes())
    med = doc["contained"][0]
    med["code"]["coding"] = [{"system": "http://hospital.zjsrmyy.cn/CodeSystem/drug",
                              "code": "Y0012345", "display": "阿那曲唑片"}]
    med["manufacturer"] = {"display": "杭州中美华东制药有限公司"}
    ext = "http://jicai-gateway.org/fhir/StructureDefinition/"
    med["extension"] += [{"url": ext + "approval-number", "valueString": "国药准字H20203365"},
                         {"url": ext + "manufacture-date", "valueDate": "2026-08-15"},
                         {"url": ext + "prescription-only", "valueBoolean": True}]
    raw = orjson.dumps(doc).replace(b"H33010200001", HOSPITAL.encode())
    (event,) = mapped(FhirR4Adapter({}).parse(raw, received_at=NOW).events, NOW.date())
    return event


def test_3503_from_a_fhir_supply_delivery_is_complete() -> None:
    event = _fhir_receipt()
    assert event.kind is EventKind.RECEIPT and event.hospital_id == HOSPITAL
    body = _accepted(nhsa_profile(), event)
    assert (body["aprvno"], body["manu_date"], body["rx_flag"]) == (
        "国药准字H20203365", "2026-08-15", "1")
    assert body["spler_name"] == "华东医药股份有限公司"
    assert body["purc_retn_cnt"] == 280  # 20 boxes of 14


_SPD = {"消息ID": "SPD-20261127-000061", "系统编码": "SPD-HDYY", "机构编码": HOSPITAL}
_SPD_LINE = {"行号": 1, "药品编码": "Y0012345", "药品名称": "阿那曲唑片", "规格": "1mg*14片/盒",
             "生产企业": "杭州中美华东制药有限公司", "单位": "盒", "进价": 32.9,
             "批号": "L20260815A", "生产日期": "2026-08-15", "有效期至": "2028-08-14",
             "批准文号": "国药准字H20203365", "处方药": "是", "追溯码": []}


def _spd(kind: str, doc_no: str, qty: int, **head: str) -> Event:
    from adapters.registry import create

    doc = {**_SPD, "单据列表": [{
        "单据号": doc_no, "单据类型": kind, "业务时间": "2026-11-27 10:00:00",
        "供应商名称": "华东医药股份有限公司", "操作员工号": "K007", "操作员姓名": "陈静",
        "是否网采": "是", **head, "明细": [{**_SPD_LINE, "数量": qty}]}]}
    adapter = create("vendor-json", {"profile": "warehouse-stock-json"})
    (event,) = mapped(adapter.parse(orjson.dumps(doc), received_at=NOW).events, NOW.date())
    return event


@pytest.mark.parametrize(("kind", "infno", "qty", "head"), [
    ("采购入库", "3503", 10, {}),
    ("采购退货", "3504", 2, {"原单据号": "RK20261127001"}),
    ("盘点", "3501", 36, {}),
    ("报损", "3502", -1, {"变动类型": "104"}),
])
def test_warehouse_json_documents_are_complete(kind: str, infno: str, qty: int,
                                               head: dict[str, str]) -> None:
    event = _spd(kind, f"{kind}20261127001", qty, **head)
    request = nhsa_profile().build(event, 0, f"{HOSPITAL}20261127100000{0:04d}", NOW.timestamp())
    env = orjson.loads(request.body)
    assert env["infno"] == infno
    assert validate_envelope(env) is None, validate_envelope(env)


# --- a big event: its own fields worked out once for all its units -------------------

def _lines(event: Event, n: int) -> Event:
    """``event`` with ``n`` lines, each its own batch and quantity."""
    first = event.lines[0]
    return event.with_lines(tuple(
        msgspec.structs.replace(first, seq=i + 1, lot_no=f"L2026{i:04d}",
                                quantity=first.quantity + i) for i in range(n)))


def _plain(profile: NhsaInventoryProfile, event: Event, unit: int) -> dict[str, Any]:
    """The body as each unit's fields worked out on their own would make it."""
    from gateway.platforms.fields import build_fields
    from gateway.platforms.nhsa import DELETE_DATA_TYPE, INFNO, unit_action

    action, line = unit_action(event, unit)
    infno = "3507" if action == "delete" else INFNO[event.kind][0]
    ctx = {"bchno": profile.batch_no(event, line),
           "inv_data_type": DELETE_DATA_TYPE[event.kind]}
    return build_fields(infno, profile.specs[infno], event, line, ctx,
                        profile.dest.field_defaults)


@pytest.mark.parametrize("infno", sorted(_EVENTS))
def test_a_big_events_bodies_are_those_of_its_units_built_alone(infno: str) -> None:
    profile = nhsa_profile(field_defaults={"inv_chg_type": "105"})
    event = _lines(_EVENTS[infno], 12)
    change = msgspec.structs.replace(event, order_control=OrderControl.CHANGE)
    for ev in (event, change):
        for unit in range(profile.units(ev)):
            _, _, body = profile.body(ev, unit)
            plain = _plain(profile, ev, unit)
            assert body == plain and list(body) == list(plain)  # same fields, same order
            _accepted(profile, ev, unit)  # and the strict simulator takes each


def test_a_big_event_after_another_carries_its_own_event_fields() -> None:
    from canonical.model import Party

    profile = nhsa_profile()
    first = _lines(_EVENTS["3505"], 10)
    second = msgspec.structs.replace(first, pharmacist=Party("Y0042", "赵敏"),
                                     document_no="CF20261123009999")
    for unit in range(10):
        assert profile.body(first, unit)[2]["sel_retn_opter_name"] == "王芳"
        body = profile.body(second, unit)[2]
        assert (body["sel_retn_opter_name"], body["rxno"]) == ("赵敏", "CF20261123009999")


@pytest.mark.parametrize("source", ["party.pharmacist.name", "extra.phar_prac_cert_no",
                                    "derived.mdtrt_sn", "event.document_no"])
def test_a_big_event_missing_an_event_field_names_it_for_every_unit(source: str) -> None:
    profile = nhsa_profile()
    event = _lines(_without(_EVENTS["3505"], source), 10)
    expected = {n for n, s in ((s.name, s.source) for s in SPECS["3505"])
                if s == source}
    for unit in (0, 5, 9):
        with pytest.raises(FieldMissing) as err:
            profile.body(event, unit)
        assert expected and expected <= set(err.value.problems)
        assert all(source in err.value.problems[name] for name in expected)
