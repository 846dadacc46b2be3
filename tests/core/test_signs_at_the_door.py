"""Negative prices and quantities at the door: a dispense of -2 is refused naming the line,
for every adapter, instead of being acknowledged and then refused by the platform. A stock
change keeps its sign (a loss may be sent negative) and a stock-take may count zero."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from helpers import (
    DATA,
    HOSPITAL,
    RunningGateway,
    gateway_with_http_listeners,
    post_to_listener,
    send_for_ack,
    stored_events,
)

from adapters.hl7v2 import HL7v2Adapter
from canonical.errors import MessageRejected
from canonical.model import CHINA_TZ, Event, EventKind, OrderControl
from gateway.ingest.limits import check_values

TWO_LINES = DATA / "hl7v2" / "trace_codes" / "rds_o13_two_lines.hl7"
STOCKTAKE = DATA / "hl7v2" / "valid" / "zwh_z01_stocktake.hl7"
FHIR_DISPENSE = DATA / "fhir-r4" / "valid" / "medicationdispense_contained_trace_codes.json"
VENDOR_RECEIPT = DATA / "vendor-json" / "valid" / "receipt_into_stock.json"


def _dispense() -> Event:
    adapter = HL7v2Adapter(HL7v2Adapter.config_model(facilities={"ZJSRMYY": HOSPITAL}))
    [ev] = adapter.parse(TWO_LINES.read_bytes(), received_at=datetime.now(CHINA_TZ)).events
    return ev


def _as(kind: EventKind, quantity: str = "2", price: str | None = "32.90",
        event_control: OrderControl | None = None, **line: Any) -> Event:
    ev = _dispense()
    first = msgspec.structs.replace(
        ev.lines[0], quantity=Decimal(quantity),
        price=None if price is None else Decimal(price), **line)
    return msgspec.structs.replace(ev.with_lines((first, *ev.lines[1:])), kind=kind,
                                   order_control=event_control)


POSITIVE_KINDS = [EventKind.DISPENSE, EventKind.DISPENSE_RETURN, EventKind.RECEIPT,
                  EventKind.RETURN, EventKind.PURCHASE_ORDER, EventKind.PRESCRIPTION,
                  EventKind.PAYMENT]


@pytest.mark.parametrize("kind", POSITIVE_KINDS)
@pytest.mark.parametrize("quantity", ["-2", "0", "-0.5"])
def test_a_quantity_not_above_zero_is_refused_naming_the_line(kind: EventKind,
                                                              quantity: str) -> None:
    with pytest.raises(MessageRejected) as caught:
        check_values([_as(kind, quantity)])
    exc = caught.value
    assert (exc.location, exc.code, exc.reject) == ("line 1 quantity", "102", True)
    assert f"{quantity} is not positive in CF20261124000318" in exc.reason


@pytest.mark.parametrize("kind", POSITIVE_KINDS)
def test_a_positive_quantity_passes(kind: EventKind) -> None:
    check_values([_as(kind, "0.5")])


def test_a_negative_national_quantity_is_refused_too() -> None:
    with pytest.raises(MessageRejected) as caught:
        check_values([_as(EventKind.DISPENSE, national_quantity=Decimal(-28))])
    assert caught.value.location == "line 1 national_quantity"


@pytest.mark.parametrize("kind", list(EventKind))
@pytest.mark.parametrize("field", ["price", "national_price"])
def test_a_negative_price_is_refused_on_any_line(kind: EventKind, field: str) -> None:
    event = (_as(kind, price="-32.90") if field == "price"
             else _as(kind, national_price=Decimal("-2.35")))
    with pytest.raises(MessageRejected) as caught:
        check_values([event])
    assert caught.value.location == f"line 1 {field}"
    assert "is negative in CF20261124000318" in caught.value.reason


def test_a_free_line_has_price_zero_and_passes() -> None:
    check_values([_as(EventKind.RECEIPT, price="0")])


@pytest.mark.parametrize("quantity", ["-3", "0", "5"])
def test_a_stock_change_keeps_its_sign(quantity: str) -> None:
    check_values([_as(EventKind.STOCK_CHANGE, quantity)])


def test_a_stocktake_may_count_zero_but_not_below() -> None:
    check_values([_as(EventKind.STOCKTAKE, "0")])
    with pytest.raises(MessageRejected) as caught:
        check_values([_as(EventKind.STOCKTAKE, "-1")])
    assert caught.value.location == "line 1 quantity"
    assert "a count is never below zero" in caught.value.reason


@pytest.mark.parametrize("control", [OrderControl.CANCEL, OrderControl.DISCONTINUE])
def test_a_withdrawn_order_line_needs_no_quantity(control: OrderControl) -> None:
    check_values([_as(EventKind.PRESCRIPTION, "0", event_control=control)])
    check_values([_as(EventKind.PRESCRIPTION, "0", order_control=control)])
    with pytest.raises(MessageRejected):
        check_values([_as(EventKind.PRESCRIPTION, "0", order_control=OrderControl.CHANGE)])


# ------------------------------------------------------------------ HL7 v2 over MLLP


_send = send_for_ack


_stored = stored_events


async def test_hl7_a_dispense_of_minus_two_gets_ar_naming_the_line(
        gateway: RunningGateway) -> None:
    raw = TWO_LINES.read_bytes().replace(b"|20261124101500|3|", b"|20261124101500|-2|")
    assert raw != TWO_LINES.read_bytes()
    ack = await _send(gateway, raw)
    assert ack["MSA"][1] == "AR", ack
    assert ack["MSA"][3].startswith("line 2 quantity: -2 is not positive")
    assert ack["ERR"][3].startswith("102^") and "(line 2 quantity)" in ack["ERR"][8]
    assert await _stored(gateway) == 0


async def test_hl7_a_negative_price_gets_ar(gateway: RunningGateway) -> None:
    raw = TWO_LINES.read_bytes().replace(b"|45.20|", b"|-45.20|")
    ack = await _send(gateway, raw)
    assert ack["MSA"][1] == "AR", ack
    assert ack["MSA"][3].startswith("line 2 price: -45.20 is negative")
    assert await _stored(gateway) == 0


async def test_hl7_a_stocktake_counting_zero_is_accepted(gateway: RunningGateway) -> None:
    raw = STOCKTAKE.read_bytes().replace(b"|118|", b"|0|")
    assert raw != STOCKTAKE.read_bytes()
    ack = await _send(gateway, raw)
    assert ack["MSA"][1] == "AA", ack


async def test_hl7_a_loss_sent_negative_is_accepted(gateway: RunningGateway) -> None:
    raw = STOCKTAKE.read_bytes().replace(b"|PD20261130001|PD|", b"|BS20261130001|BS|")
    raw = raw.replace(b"|118|", b"|-2|")
    ack = await _send(gateway, raw)
    assert ack["MSA"][1] == "AA", ack


# ------------------------------------------------------------------ FHIR and vendor JSON


@pytest.fixture
async def http_gateway(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    """The ``gateway`` fixture with the FHIR and vendor HTTP listeners as well."""
    async with gateway_with_http_listeners(tmp_path) as gw:
        yield gw


_post = post_to_listener


def _fhir_dispense(quantity: float) -> bytes:
    resource = orjson.loads(FHIR_DISPENSE.read_bytes())
    resource["location"]["identifier"]["value"] = HOSPITAL
    resource["quantity"]["value"] = quantity
    return orjson.dumps(resource)


async def test_fhir_a_dispense_of_minus_two_gets_400_naming_the_quantity(
        http_gateway: RunningGateway) -> None:
    status, outcome = await _post(http_gateway, "his-fhir", _fhir_dispense(-2))
    assert status == 400, outcome
    [issue] = outcome["issue"]
    assert issue["expression"] == ["line 1 quantity"]
    assert "-2 is not positive" in issue["diagnostics"]
    assert await _stored(http_gateway) == 0
    status, created = await _post(http_gateway, "his-fhir", _fhir_dispense(1))
    assert status == 201, created


def _vendor_receipt() -> dict[str, Any]:
    doc = VENDOR_RECEIPT.read_bytes().replace(b"H33010200001", HOSPITAL.encode())
    parsed: dict[str, Any] = orjson.loads(doc)
    return parsed


@pytest.mark.parametrize(("field", "value", "path", "words"), [
    ("数量", 0, "line 1 quantity", "0 is not positive"),
    ("数量", -50, "line 1 quantity", "-50 is not positive"),
    ("进价", "-36.80", "line 1 price", "-36.80 is negative"),
])
async def test_vendor_json_a_receipt_below_zero_is_refused_naming_the_field(
        http_gateway: RunningGateway, field: str, value: Any, path: str, words: str) -> None:
    doc = _vendor_receipt()
    doc["单据列表"][0]["明细"][0][field] = value
    status, answer = await _post(http_gateway, "spd-json", orjson.dumps(doc))
    assert status == 400, answer
    assert answer["resultCode"] == "1"
    [error] = answer["errors"]
    assert error["path"] == path and words in error["resultMsg"]
    assert await _stored(http_gateway) == 0


async def test_vendor_json_a_loss_sent_negative_is_accepted(
        http_gateway: RunningGateway) -> None:
    doc = _vendor_receipt()
    document = doc["单据列表"][0]
    document["单据类型"] = "报损"
    document["明细"][0]["数量"] = -2
    status, answer = await _post(http_gateway, "spd-json", orjson.dumps(doc))
    assert status == 200 and answer["resultCode"] == "0", answer
