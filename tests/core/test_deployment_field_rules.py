"""A province's own field rules, and values of the wrong form held at ingest.

A deployment makes optional interface fields mandatory (``destinations[].mandatory``) and
adds fields of its own (``extra_fields``); the profile builds, holds and ``check-config``
reports with them exactly as with the shipped rows. A value the platform would refuse for
its form (a 36-character lot number, a document number that makes the batch number too
long) holds the event naming the field at ingest instead of making a dead letter later.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import orjson
import pytest
import yaml
from helpers import (
    HOSPITAL,
    RunningGateway,
    mapped,
    nhsa_profile,
    sample,
    send_for_ack,
    write_config,
)

from adapters.hl7v2 import HL7v2Adapter
from canonical.errors import ConfigError
from canonical.model import CHINA_TZ, Event
from gateway.config import DestinationConfig, GatewayConfig, parse_config
from gateway.platforms.coverage import config_gaps
from gateway.platforms.fields import check_body
from gateway.platforms.nhsa import NhsaInventoryProfile
from gateway.platforms.zhaocai import ZhaocaiProfile

NOW = datetime(2026, 11, 23, 16, 0, tzinfo=CHINA_TZ)
URL = "http://127.0.0.1:9/fsi/api"
DEPT_FIELD = {"name": "hosp_dept_codg", "source": "party.department.id", "length": 30,
              "mandatory": True}


def _dest(**fields: Any) -> DestinationConfig:
    return DestinationConfig.model_validate({"name": "nhsa", "url": URL, **fields})


def _dispense(name: str = "rds_o13_dispense_utf8.hl7") -> Event:
    adapter = HL7v2Adapter({"facilities": {"ZJSRMYY": HOSPITAL}})
    (event,) = mapped(adapter.parse(sample(name), received_at=NOW).events, NOW.date())
    return event


def _body(profile: NhsaInventoryProfile, event: Event) -> dict[str, Any]:
    request = profile.build(event, 0, f"{HOSPITAL}202611231600000001", NOW.timestamp())
    body: dict[str, Any] = orjson.loads(request.body)["input"]["selinfo"]
    assert check_body("3505", body) is None  # the interface's own rows still accept it
    return body


def test_an_optional_field_made_mandatory_holds_a_dispense_that_lacks_it() -> None:
    event = _dispense()  # the HIS sends no settlement id
    assert nhsa_profile().missing(event) == {}  # optional in the national interface
    strict = nhsa_profile(mandatory={"3505": ["setl_id"]})
    assert strict.missing(event) == {"3505 setl_id": "has no value (source extra.setl_id)"}
    settled = msgspec.structs.replace(event, extra=(*event.extra, ("setl_id", "330100S0001")))
    assert strict.missing(settled) == {}
    assert _body(strict, settled)["setl_id"] == "330100S0001"


def test_a_provinces_own_field_is_filled_typed_and_held_when_empty() -> None:
    profile = nhsa_profile(extra_fields={"3505": [
        DEPT_FIELD,
        {"name": "dise_codg", "source": "extra.dise_codg", "length": 20},
        {"name": "pay_amt", "source": "extra.pay_amt", "type": "decimal", "scale": 2}]})
    event = _dispense()
    body = _body(profile, event)
    assert body["hosp_dept_codg"] == "ZLK"  # PV1-3, the dispensing department
    assert "dise_codg" not in body  # optional and empty: left out, not ""
    no_dept = msgspec.structs.replace(event, department=None)
    assert profile.missing(no_dept) == {
        "3505 hosp_dept_codg": "has no value (source party.department.id)"}
    paid = msgspec.structs.replace(event, extra=(*event.extra, ("pay_amt", "65.8")))
    assert _body(profile, paid)["pay_amt"] == 65.8  # a number, as the interface types it
    bad = msgspec.structs.replace(event, extra=(*event.extra, ("pay_amt", "六十五"),
                                                ("dise_codg", "C50.9" * 5)))
    problems = profile.missing(bad)
    assert "not a number" in problems["3505 pay_amt"]
    assert "长度25超过20" in problems["3505 dise_codg"]


def test_a_value_of_the_wrong_form_is_named_before_anything_is_sent() -> None:
    event = _dispense()
    line = event.lines[0]
    long_lot = event.with_lines((msgspec.structs.replace(line, lot_no="L20260815A" * 4),))
    assert nhsa_profile().missing(long_lot) == {
        "3505 manu_lotnum": "长度40超过30 (source line.lot_no)"}
    # the batch number is the document number and the line's: a 35-character
    # prescription number makes it 37
    long_doc = msgspec.structs.replace(event, document_no="CF" + "2026112300" * 3 + "123")
    (why,) = nhsa_profile().missing(long_doc).values()
    assert "fixmedins_bchno" in next(iter(nhsa_profile().missing(long_doc))) and "超过30" in why
    too_precise = event.with_lines((msgspec.structs.replace(
        line, national_price=Decimal("2.3500001")),))
    assert "N(16,6)" in nhsa_profile().missing(too_precise)["3505 finl_trns_pric"]


@pytest.mark.parametrize(("fields", "named"), [
    ({"mandatory": {"3509": ["setl_id"]}}, "unknown transaction '3509'"),
    ({"mandatory": {"3505": ["setl_idd"]}}, "mandatory.3505: setl_idd not fields of 3505"),
    ({"extra_fields": {"3505": [{"name": "setl_id", "source": "extra.setl_id"}]}},
     "already has this field"),
    ({"extra_fields": {"3505": [{"name": "x_code", "source": "patient.id_card"}]}},
     "source 'patient.id_card' names no value"),
    ({"extra_fields": {"3505": [{"name": "lines.x", "source": "extra.x"}]}},
     "names a 招采 line field"),
    ({"field_defaults": {"hi_feesetl_typ": "11"}},
     "field_defaults: hi_feesetl_typ not fields of any nhsa-inventory transaction"),
    # a default is not checked again when an event takes it: its form is checked at load
    ({"field_defaults": {"hi_feesetl_type": "职工医保普通门诊"}},
     "field_defaults.hi_feesetl_type: 长度8超过6"),
    ({"field_defaults": {"rx_circ_flag": "Y"}}, "field_defaults.rx_circ_flag: 取值应为 0/1"),
    ({"extra_fields": {"3505": [{"name": "pay_day", "source": "extra.pay_day",
                                 "type": "date"}]},
      "field_defaults": {"pay_day": "2026-02-30"}},
     "field_defaults.pay_day: 不是有效日期"),
])
def test_a_rule_that_names_nothing_is_refused_at_load(fields: dict[str, Any],
                                                      named: str) -> None:
    with pytest.raises(ValueError) as caught:
        _dest(**fields)
    assert named in str(caught.value)


def test_a_field_made_mandatory_that_no_adapter_fills_is_reported_by_check_config(
        tmp_path: Path) -> None:
    path = write_config(tmp_path, mllp_port=2575, http_port=8080, platform_url=URL)
    data = yaml.safe_load(path.read_text("utf-8"))
    data["destinations"][0]["mandatory"] = {"3505": ["stoout_no"]}
    gaps, _ = config_gaps(parse_config(data, "gw.yaml"))
    assert ("3505", "stoout_no") in {(g.transaction, g.field) for g in gaps}
    data["destinations"][0]["extra_fields"] = {"3505": [DEPT_FIELD]}
    data["destinations"][0]["mandatory"] = {}
    gaps, _ = config_gaps(parse_config(data, "gw.yaml"))
    # the HL7 v2 listener fills the department (PV1-3): no gap for it
    assert ("3505", "hosp_dept_codg") not in {(g.transaction, g.field) for g in gaps}
    data["destinations"][0]["extra_fields"] = {"3505": [{**DEPT_FIELD, "source":
                                                         "extra.hosp_dept_codg"}]}
    gaps, _ = config_gaps(parse_config(data, "gw.yaml"))
    assert ("3505", "hosp_dept_codg") in {(g.transaction, g.field) for g in gaps}
    with pytest.raises(ConfigError, match="not fields of 3505"):
        data["destinations"][0]["mandatory"] = {"3505": ["no_such_field"]}
        parse_config(data, "gw.yaml")


def test_a_zhaocai_line_field_made_mandatory_holds_the_document() -> None:
    gw = GatewayConfig.model_validate({
        "hospitals": [{"code": HOSPITAL, "name": "浙江省人民医院", "admdvs": "330100"}]})
    dest = DestinationConfig.model_validate({
        "name": "zj", "profile": "zhaocai", "url": "http://127.0.0.1:9/zc", "app_code": "A1",
        "app_secret": "s", "mandatory": {"order.submit": ["lines.specification"]}})
    adapter = HL7v2Adapter({"facilities": {"ZJSRMYY": HOSPITAL}})
    (order,) = adapter.parse(sample("oms_o05_order_to_answer.hl7"), received_at=NOW).events
    profile = ZhaocaiProfile(dest, gw)
    assert profile.missing(order) == {  # ORC/RXO carry no 规格
        "order.submit lines.specification": "has no value (source line.specification)"}
    specified = order.with_lines(tuple(msgspec.structs.replace(li, specification="1mg*14片")
                                       for li in order.lines))
    assert profile.missing(specified) == {}


async def test_a_dispense_with_a_lot_number_too_long_is_held_naming_it(
        gateway: RunningGateway) -> None:
    """Acknowledged (the hospital did dispense), held with the field and its limit, and
    never sent to be refused."""
    ack = await send_for_ack(gateway, sample("rds_o13_dispense_long_lot.hl7"))
    assert ack["MSA"][1] == "AA"
    async with aiohttp.ClientSession() as s, s.get(gateway.url("/api/held")) as r:
        (held,) = await r.json()
    assert any("3505 manu_lotnum" in why and "超过30" in why and "line.lot_no" in why
               for why in held["reasons"]), held["reasons"]
    counts = gateway.simulator.counts()
    assert counts["accepted"] == 0 and counts["rejected"] == 0
