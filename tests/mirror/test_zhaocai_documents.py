"""What the provincial procurement platform (招采) accepts, document by document.

Each transaction's sample goes through the real adapter (HL7 v2 OMS^O05 for orders,
warehouse JSON for receipts and returns; settlements are PAYMENT events, built here)
and reaches the strict simulator, which checks every document against the same field
specification the profile builds from. Every mandatory field, taken away at its source,
holds the event with the field named — generated from the specification, so a field
added to it is covered without a new test.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from rig import destination, gateway_config

from adapters.registry import create as create_adapter
from adapters.testing import RECEIVED_AT
from canonical.model import CHINA_TZ, Event, EventKind, Line, Party
from gateway.platforms.simulator import SimulatorState, validate_document
from gateway.platforms.zhaocai import RETURN_CODES, ZhaocaiProfile
from gateway.platforms.zhaocai_fields import DOCUMENTS, LINES

DATA = Path(__file__).parent.parent / "data" / "zhaocai"
HOSPITAL = "H33010200015"
APP = {"app_code": "JCGW-HZ-001", "app_secret": "zc-secret"}
PROFILE = ZhaocaiProfile(
    gateway_config([destination("zj", "http://127.0.0.1:9/zc/api", profile="zhaocai", **APP)])
    .destinations[0], gateway_config([]))


def _hl7(name: str) -> list[Event]:
    adapter = create_adapter("hl7v2", {"facilities": {"ZJSRMYY": HOSPITAL}})
    return list(adapter.parse((DATA / name).read_bytes(), received_at=RECEIVED_AT).events)


def _json(name: str) -> list[Event]:
    adapter = create_adapter("vendor-json", {"profile": "warehouse-stock-json"})
    return list(adapter.parse((DATA / name).read_bytes(), received_at=RECEIVED_AT).events)


def settlement() -> Event:
    """A settlement statement as the payment adapter delivers it: the statement number,
    the items paid and the receipts it pays."""
    paid = (("Y0045201", "阿那曲唑片", 57, "36.80"), ("Y0033107", "奥硝唑阴道栓", 20, "24.60"))
    return Event(
        event_id="pay:JS20261210001:0", kind=EventKind.PAYMENT, hospital_id=HOSPITAL,
        source="payment:CW-HDYY",
        occurred_at=datetime(2026, 12, 10, 16, 0, tzinfo=CHINA_TZ),
        lines=tuple(Line(seq=i + 1, item_code=code, item_name=name, quantity=Decimal(qty),
                         unit="盒", price=Decimal(price))
                    for i, (code, name, qty, price) in enumerate(paid)),
        control_id="CW20261210000005", document_no="JS20261210001",
        supplier=Party("GYS0031", "华东医药股份有限公司"),
        extra=(("receipt_no", "RK20261203011|TH20261205002"),))


def documents() -> dict[str, Event]:
    """One complete event of each transaction, as the adapters deliver them."""
    (order,) = _hl7("oms_o05_order.hl7")
    (cancel,) = _hl7("oms_o05_cancel.hl7")
    (receipt,) = _json("receipt_against_shipment.json")
    (ret,) = _json("return_of_receipt.json")
    return {"order.submit": order, "order.cancel": cancel, "delivery.receive": receipt,
            "return.apply": ret, "settlement.submit": settlement()}


DOCS = documents()


async def test_each_transaction_from_the_adapters_is_accepted_by_the_strict_platform(
        sqlite_rig: Any) -> None:
    sim = SimulatorState()
    sim.apps[APP["app_code"]] = APP["app_secret"].encode()
    rig = await sqlite_rig([destination("zj", "{sim}/zc/api", profile="zhaocai", **APP)],
                           {"sim": sim})
    await rig.send(list(DOCS.values()))
    await rig.settle()
    assert sim.rejected == []
    got = {env["infno"]: env["input"]["data"] for env in (sim.accepted[m] for m in sim.order)}
    assert sorted(got) == sorted(DOCS)
    # an order before its cancellation, a receipt before its return (other documents
    # go out alongside)
    sent = list(got)
    assert sent.index("order.submit") < sent.index("order.cancel")
    assert sent.index("delivery.receive") < sent.index("return.apply")
    order = got["order.submit"]
    assert order["orderNo"] == "PO20261201007" and order["buyer"] == "钱进"
    assert [(li["hospitalItemId"], li["distributor"], li["quantity"], li["price"])
            for li in order[LINES]] == [("Y0045201", "华东医药股份有限公司", 60, 36.8),
                                        ("Y0033107", "华东医药股份有限公司", 40, 24.6)]
    assert [li["hospitalItemId"] for li in got["order.cancel"][LINES]] == ["Y0033107"]
    receipt = got["delivery.receive"]
    assert (receipt["shipmentId"], receipt["invoiceNo"], receipt["receiver"]) == (
        "PS2026120300215", "04418821", "郑强")
    first, second = receipt[LINES]
    assert first == {"orderLineId": "PO20261201007-1", "listingId": "ZJYP2025011870",
                     "hospitalItemId": "Y0045201", "itemName": "阿那曲唑片",
                     "lotNo": "H24110305", "expiryDate": "2027-11-02",
                     "manuDate": "2024-11-03", "quantity": 60, "purchasePrice": 36.8,
                     "insurancePayPrice": 36.8}
    assert "insurancePayPrice" not in second  # none sent: left out, not ""
    ret = got["return.apply"]
    assert (ret["originalNo"], ret["reason"], ret[LINES][0]["quantity"]) == (
        "RK20261203011", "外包装破损", 3)
    pay = got["settlement.submit"]
    assert pay["receiptNos"] == "RK20261203011|TH20261205002"
    assert pay["totalAmount"] == 57 * 36.8 + 20 * 24.6
    assert [li["amount"] for li in pay[LINES]] == [2097.6, 492]


@pytest.mark.parametrize("infno", list(DOCS))
def test_a_complete_document_lacks_nothing(infno: str) -> None:
    assert PROFILE.transaction(DOCS[infno]) == infno
    assert PROFILE.missing(DOCS[infno]) == {}


def _lines(ev: Event, **changes: object) -> Event:
    return ev.with_lines(tuple(msgspec.structs.replace(li, **changes) for li in ev.lines))


def _without(ev: Event, source: str) -> Event:
    """``ev`` with what ``source`` reads taken away."""
    kind, _, rest = source.partition(".")
    if kind == "line":
        return _lines(ev, **{rest: None if rest == "price" else ""})
    if kind == "line_extra":
        return ev.with_lines(tuple(msgspec.structs.replace(
            li, extra=tuple(kv for kv in li.extra if kv[0] != rest)) for li in ev.lines))
    if kind == "event":
        return msgspec.structs.replace(ev, **{rest: ""})
    if kind == "party":
        return msgspec.structs.replace(ev, **{rest.partition(".")[0]: None})
    if kind == "extra" or source == "derived.shipment_id":
        keys = {rest} if kind == "extra" else {"shipment_id", "dynt_no"}
        return msgspec.structs.replace(ev, extra=tuple(kv for kv in ev.extra
                                                       if kv[0] not in keys))
    if source == "derived.supplier_name":
        return _lines(msgspec.structs.replace(ev, supplier=None), supplier=None)
    if source in ("derived.amount", "derived.total_amount"):
        return _lines(ev, price=None)
    raise AssertionError(f"no way to take away {source}")


# sources that are never empty: the gateway's own (time), the line number, and what
# every adapter refuses a message without (hospital, item code, quantity)
_ALWAYS = {"derived.time", "line.seq", "event.hospital_id", "line.item_code", "line.quantity"}
CASES = [(infno, name, spec.source) for infno, doc in DOCUMENTS.items()
         for name, spec in doc.fields()
         if spec.mandatory and spec.source not in _ALWAYS and spec.default is None]


@pytest.mark.parametrize(("infno", "field", "source"), CASES,
                         ids=[f"{i}-{f}" for i, f, _ in CASES])
def test_each_mandatory_field_taken_away_holds_the_document_naming_it(
        infno: str, field: str, source: str) -> None:
    event = _without(DOCS[infno], source)
    missing = PROFILE.missing(event)
    assert missing.get(f"{infno} {field}") == f"has no value (source {source})", missing


def test_every_mandatory_field_is_covered_or_always_filled() -> None:
    covered = {(i, f) for i, f, _ in CASES}
    for infno, doc in DOCUMENTS.items():
        for name, spec in doc.fields():
            if spec.mandatory and (infno, name) not in covered:
                assert spec.source in _ALWAYS, (infno, name)
    assert ("delivery.receive", f"{LINES}.orderLineId") in covered
    assert ("return.apply", "originalNo") in covered
    assert ("settlement.submit", "receiptNos") in covered


def test_a_field_default_fills_a_gap_the_messages_leave() -> None:
    ret = _without(DOCS["return.apply"], "extra.return_reason")
    assert PROFILE.missing(ret) == {
        "return.apply reason": "has no value (source extra.return_reason)"}
    filled = ZhaocaiProfile(PROFILE.dest.model_copy(
        update={"field_defaults": {"reason": "质量问题"}}), gateway_config([]))
    assert filled.missing(ret) == {}
    body = orjson.loads(filled.build(ret, 0, "H33010200015202612050902000001", 0.0).body)
    assert body["input"]["data"]["reason"] == "质量问题"


def _document(infno: str) -> dict[str, Any]:
    request = PROFILE.build(DOCS[infno], 0, "H33010200015202612030000000001", 0.0)
    data: dict[str, Any] = orjson.loads(request.body)["input"]["data"]
    return data


@pytest.mark.parametrize(("infno", "change", "field"), [
    ("delivery.receive", {"invoiceNo": ""}, "invoiceNo"),
    ("delivery.receive", {"lines.1.expiryDate": "2027/11/02"}, "lines[2].expiryDate"),
    ("delivery.receive", {"lines.0.orderLineId": None}, "lines[1].orderLineId"),
    ("order.submit", {"lines.0.price": "36.80"}, "lines[1].price"),
    ("return.apply", {"originalNo": None}, "originalNo"),
    ("settlement.submit", {"receiptNos": "R" * 1001}, "receiptNos"),
])
def test_the_platform_refuses_a_bad_document_naming_the_field(
        infno: str, change: dict[str, Any], field: str) -> None:
    data = _document(infno)
    assert validate_document(infno, data) is None
    for path, value in change.items():
        *where, key = path.split(".")
        target: Any = data
        for step in where:
            target = target[int(step)] if step.isdigit() else target[step]
        if value is None:
            del target[key]
        else:
            target[key] = value
    code, message = validate_document(infno, data) or (0, "")
    assert code == RETURN_CODES["invalid"] != 0
    assert message.startswith(f"字段{field}校验失败"), message
    assert validate_document(infno, data, strict=False) is None


def test_an_unknown_transaction_is_refused() -> None:
    assert validate_document("order.delete", {LINES: [{}]}) == (
        RETURN_CODES["unknown"], "不支持的交易: 'order.delete'")


def test_amounts_are_rounded_to_the_platforms_places_not_refused() -> None:
    pay = settlement()
    odd = pay.with_lines((msgspec.structs.replace(pay.lines[0], quantity=Decimal("2.5"),
                                                  price=Decimal("36.8333")),
                          pay.lines[1]))
    data = orjson.loads(PROFILE.build(odd, 0, "H33010200015202612100000000001", 0.0)
                        .body)["input"]["data"]
    assert [li["amount"] for li in data[LINES]] == [92.0833, 492]  # 92.08325, half up
    assert data["totalAmount"] == 584.08
    assert validate_document("settlement.submit", data) is None


def test_a_suppliers_answer_is_not_sent_as_an_order():
    # from the distributor: the hospital is the receiving facility (MSH-6)
    adapter = create_adapter("hl7v2", {"facilities": {"ZJSRMYY": HOSPITAL}})
    raw = (Path(__file__).parent.parent / "data" / "hl7v2" / "ors_o06_partly_refused.hl7")
    answers = adapter.parse(raw.read_bytes(), received_at=RECEIVED_AT).events
    assert answers and all(e.kind is EventKind.PURCHASE_ORDER for e in answers)
    # the hospital's own order goes out; the distributor's answer to it does not
    assert [PROFILE.units(e) for e in answers] == [0] * len(answers)
    assert PROFILE.units(DOCS["order.submit"]) == 1
