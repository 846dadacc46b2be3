"""Traceability codes checked at the door: a malformed code is refused naming the line
and the code's position, for every adapter, before anything is stored or mirrored; GS1
element strings pass only with ``limits.long_trace_codes``."""

from __future__ import annotations

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
    gateway_with_http_listeners,
    post_to_listener,
    send_for_ack,
    stored_events,
)

from adapters.hl7v2 import HL7v2Adapter
from canonical.errors import MessageRejected
from canonical.model import CHINA_TZ, Event
from gateway.config import IngestLimits
from gateway.ingest.limits import DEFAULT_LIMITS, Limits, check_values
from gateway.keys import METRICS

SAMPLES = DATA / "hl7v2" / "trace_codes"
FHIR_GS1 = DATA / "fhir-r4" / "trace_codes" / "medicationdispense_gs1_datamatrix.json"
FHIR_DISPENSE = DATA / "fhir-r4" / "valid" / "medicationdispense_contained_trace_codes.json"
VENDOR_RECEIPT = DATA / "vendor-json" / "trace_codes" / "receipt_gs1_and_standard.json"

# a GS1 DataMatrix on an imported pack (阿那曲唑片 瑞宁得), as the scanner sends it: (01)
# GTIN, (17) expiry 2028-06-30, (10) lot, FNC1 (\x1d) after the variable-length lot, (21)
# serial (tests/data/hl7v2/trace_codes/rds_o13_gs1_datamatrix.hl7, line 2)
GS1_SCAN = "0105000456038454" "17280630" "10RN2408B\x1d" "217KX4P2M9Q3"
GS1_BAD_EXPIRY = GS1_SCAN.replace("17280630", "17281332")  # month 13, day 32
# the third code of line 2 in rds_o13_two_lines.hl7 (比卡鲁胺片, three boxes)
THIRD_CODE = b"83104560211704865215"

MALFORMED = [
    pytest.param("8310456021170486521", "trace code must be 20 digits, got 19 characters",
                 id="19-digits"),
    pytest.param("93104560211704865215", "position 1 of a trace code must be 8, got '9'",
                 id="20-digits-not-8"),
    pytest.param(" 83104560211704865215", "trace code has leading or trailing whitespace",
                 id="padded-with-spaces"),
    pytest.param("扫码失败#ERR", "position 1 of a trace code must be a digit, got '扫'",
                 id="garbage"),
]
# with long codes on, 20 digits not starting with 8 are a long code like any other
MALFORMED_EVEN_WITH_LONG_CODES = [p for p in MALFORMED if p.id != "20-digits-not-8"]
LONG = {"limits": {"long_trace_codes": True}}


def _hl7(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


# ------------------------------------------------------------------ check_values itself


def _events(name: str) -> tuple[Event, ...]:
    adapter = HL7v2Adapter(HL7v2Adapter.config_model(facilities={"ZJSRMYY": HOSPITAL}))
    return adapter.parse(_hl7(name), received_at=datetime.now(CHINA_TZ)).events


def _with_codes(events: tuple[Event, ...], line: int, codes: tuple[str, ...]) -> list[Event]:
    ev = events[0]
    lines = list(ev.lines)
    lines[line - 1] = msgspec.structs.replace(lines[line - 1], trace_codes=codes)
    return [ev.with_lines(tuple(lines))]


def test_long_trace_codes_are_off_unless_configured() -> None:
    assert DEFAULT_LIMITS.long_trace_codes is False
    assert IngestLimits().long_trace_codes is False
    assert IngestLimits.model_fields["long_trace_codes"].description


@pytest.mark.parametrize("limits", [Limits(), Limits(long_trace_codes=True)])
def test_standard_codes_pass_whatever_the_setting(limits: Limits) -> None:
    check_values(_events("rds_o13_two_lines.hl7"), limits)
    many = tuple(f"8{i:019d}" for i in range(10_000))
    check_values(_with_codes(_events("rds_o13_two_lines.hl7"), 2, many), limits)


@pytest.mark.parametrize(("long_codes", "code", "words"), [
    *[pytest.param(False, *p.values, id=f"{p.id}-long-off") for p in MALFORMED],
    *[pytest.param(True, *p.values, id=f"{p.id}-long-on")
      for p in MALFORMED_EVEN_WITH_LONG_CODES]])
def test_a_malformed_code_is_refused_naming_its_line_and_position(
        long_codes: bool, code: str, words: str) -> None:
    codes = ("83104560211704865213", "83104560211704865214", code)
    events = _with_codes(_events("rds_o13_two_lines.hl7"), 2, codes)
    with pytest.raises(MessageRejected) as caught:
        check_values(events, Limits(long_trace_codes=long_codes))
    exc = caught.value
    assert (exc.location, exc.code, exc.reject) == ("line 2 trace_codes[3]", "102", True)
    assert exc.reason.startswith(f"line 2 trace_codes[3]: trace code {code!r} in "
                                 "CF20261124000318 refused: ")
    if not long_codes:
        assert words in exc.reason


def test_with_long_codes_20_digits_not_starting_with_8_pass() -> None:
    codes = ("93104560211704865215",)
    events = _with_codes(_events("rds_o13_two_lines.hl7"), 2, codes)
    check_values(events, Limits(long_trace_codes=True))


def test_the_first_bad_code_is_the_one_named() -> None:
    codes = ("83104560211704865213", "8310456021170486521", "ABC")
    events = _with_codes(_events("rds_o13_two_lines.hl7"), 2, codes)
    with pytest.raises(MessageRejected) as caught:
        check_values(events)
    assert caught.value.location == "line 2 trace_codes[2]"


def test_codes_run_together_on_one_line_cannot_pass_as_several() -> None:
    # the fast path joins a line's codes with "\n": a code holding "\n" must not pass
    two_in_one = "83104560211704865213\n83104560211704865214"
    for codes in ((two_in_one,), (two_in_one, "83104560211704865215"),
                  ("83104560211704865215", two_in_one)):
        with pytest.raises(MessageRejected):
            check_values(_with_codes(_events("rds_o13_two_lines.hl7"), 2, codes))


def test_a_gs1_scan_needs_long_codes_and_the_refusal_names_the_setting() -> None:
    events = _events("rds_o13_gs1_datamatrix.hl7")
    assert events[0].lines[1].trace_codes == (GS1_SCAN,)
    with pytest.raises(MessageRejected) as caught:
        check_values(events)
    assert caught.value.location == "line 2 trace_codes[1]"
    assert caught.value.reason == (
        "line 2 trace_codes[1]: trace code "
        "'01050004560384541728063010RN2408B\\x1d217KX4P2M9Q3' in CF20261124000319 refused: "
        "a GS1 element string ((01) GTIN 05000456038454), accepted only with long trace "
        "codes: set limits.long_trace_codes: true")
    check_values(events, Limits(long_trace_codes=True))


@pytest.mark.parametrize("long_codes", [False, True])
def test_a_gs1_scan_with_an_impossible_expiry_is_refused_naming_17(long_codes: bool) -> None:
    events = _events("rds_o13_gs1_bad_expiry.hl7")
    assert events[0].lines[1].trace_codes == (GS1_BAD_EXPIRY,)
    with pytest.raises(MessageRejected) as caught:
        check_values(events, Limits(long_trace_codes=long_codes))
    assert caught.value.location == "line 2 trace_codes[1]"
    assert "GS1 (17) is not a date YYMMDD: '281332'" in caught.value.reason
    assert ("limits.long_trace_codes" in caught.value.reason) is not long_codes


def test_a_longer_code_of_another_format_names_the_setting_a_mistyped_one_does_not(
        ) -> None:
    events = _events("rds_o13_two_lines.hl7")
    longer = "8310456021170486521500"  # 22 digits: another format, the setting takes it
    with pytest.raises(MessageRejected) as caught:
        check_values(_with_codes(events, 1, (longer,)))
    assert "but a code of 22 characters" in caught.value.reason
    assert "set limits.long_trace_codes: true" in caught.value.reason
    check_values(_with_codes(events, 1, (longer,)), Limits(long_trace_codes=True))
    with pytest.raises(MessageRejected) as caught:  # 20 digits, first one wrong: a misread
        check_values(_with_codes(events, 1, ("93104560211704865215",)))
    assert "limits.long_trace_codes" not in caught.value.reason


def test_a_hostile_code_is_quoted_back_shortened() -> None:
    events = _with_codes(_events("rds_o13_two_lines.hl7"), 1, ("8" * 70_000,))
    with pytest.raises(MessageRejected) as caught:
        check_values(events, Limits(long_trace_codes=True))
    assert "… (70000 characters)" in caught.value.reason
    assert len(caught.value.reason) < 400


# ------------------------------------------------------------------ HL7 v2 over MLLP


async def _quarantined(gateway: RunningGateway) -> list[tuple[str, bytes]]:
    return [(r[0], r[1]) for r in
            await gateway.store.query("SELECT reason, raw FROM quarantine ORDER BY id")]


_stored = stored_events


_send = send_for_ack


async def _nothing_mirrored(gateway: RunningGateway) -> None:
    """A good dispense sent after the refused message is the only one the platform gets."""
    assert (await _send(gateway, _hl7("rds_o13_two_lines.hl7")))["MSA"][1] == "AA"
    await gateway.delivered(2)  # its two lines
    sold = [gateway.simulator.accepted[m]["input"]["selinfo"] for m in gateway.simulator.order]
    assert {s["rxno"] for s in sold} == {"CF20261124000318"}


@pytest.mark.parametrize(("code", "words"), MALFORMED)
async def test_hl7_a_malformed_code_gets_ar_naming_line_and_position(
        gateway: RunningGateway, code: str, words: str) -> None:
    raw = _hl7("rds_o13_two_lines.hl7").replace(
        b"RDS20261124000318", b"RDS20261124000399").replace(
        b"CF20261124000318", b"CF20261124000399").replace(THIRD_CODE, code.encode())
    ack = await _send(gateway, raw)
    assert ack["MSA"][1] == "AR"
    assert ack["MSA"][3].startswith("line 2 trace_codes[3]: trace code ")
    assert words in ack["MSA"][3]
    err = ack["ERR"]
    assert "(line 2 trace_codes[3])" in err[8] and words in err[8]
    assert err[3].startswith("102^") and err[4] == "E"
    assert await _stored(gateway) == 0
    [(reason, kept)] = await _quarantined(gateway)
    assert kept == raw and "line 2 trace_codes[3]" in reason
    await _nothing_mirrored(gateway)


async def test_hl7_a_gs1_scan_is_refused_with_long_codes_off_naming_the_setting(
        gateway: RunningGateway) -> None:
    ack = await _send(gateway, _hl7("rds_o13_gs1_datamatrix.hl7"))
    assert ack["MSA"][1] == "AR"
    assert "line 2 trace_codes[1]" in ack["MSA"][3]
    assert "set limits.long_trace_codes: true" in ack["MSA"][3]
    assert "(line 2 trace_codes[1])" in ack["ERR"][8]
    assert await _stored(gateway) == 0
    await _nothing_mirrored(gateway)


@pytest.mark.parametrize("gateway", [LONG], indirect=True)
async def test_hl7_a_gs1_scan_with_long_codes_on_reaches_3505_unchanged(
        gateway: RunningGateway) -> None:
    ack = await _send(gateway, _hl7("rds_o13_gs1_datamatrix.hl7"))
    assert ack["MSA"][1] == "AA", ack
    await gateway.delivered(2)
    sold = {s["med_list_codg"]: s for s in
            (gateway.simulator.accepted[m]["input"]["selinfo"] for m in gateway.simulator.order)}
    imported = sold["XL02BGA045A001010101359"]  # 阿那曲唑片 瑞宁得
    assert imported["drugtracinfo"] == [{"drug_trac_codg": GS1_SCAN}]
    assert [t["drug_trac_codg"] for t in sold["XL02BGA045A001010104520"]["drugtracinfo"]] == [
        "81234567890123457001", "81234567890123457002"]


@pytest.mark.parametrize("gateway", [LONG], indirect=True)
async def test_hl7_a_gs1_scan_with_an_impossible_expiry_is_refused_even_with_long_codes(
        gateway: RunningGateway) -> None:
    raw = _hl7("rds_o13_gs1_bad_expiry.hl7")
    ack = await _send(gateway, raw)
    assert ack["MSA"][1] == "AR"
    assert "line 2 trace_codes[1]" in ack["MSA"][3]
    assert "GS1 (17) is not a date YYMMDD: '281332'" in ack["MSA"][3]
    assert "limits.long_trace_codes" not in ack["MSA"][3]
    assert await _stored(gateway) == 0
    [(_, kept)] = await _quarantined(gateway)
    assert kept == raw
    await _nothing_mirrored(gateway)


@pytest.mark.parametrize("gateway", [{"limits": {"long_trace_codes": True,
                                                 "parse_offload_bytes": 1024}}],
                         indirect=True)
async def test_a_message_parsed_in_a_worker_gets_the_same_answers(
        gateway: RunningGateway) -> None:
    good, bad = _hl7("rds_o13_gs1_datamatrix.hl7"), _hl7("rds_o13_gs1_bad_expiry.hl7")
    assert len(good) >= 1024 and len(bad) >= 1024
    assert (await _send(gateway, good))["MSA"][1] == "AA"
    ack = await _send(gateway, bad)
    assert ack["MSA"][1] == "AR" and "GS1 (17) is not a date" in ack["MSA"][3]
    assert "line 2 trace_codes[1]" in ack["MSA"][3]
    assert gateway.app[METRICS].registry.get_sample_value(
        "jcgw_parsed_in_worker_total", {"adapter": "hl7v2"}) == 2
    await gateway.delivered(2)
    assert await _stored(gateway) == 1


# ------------------------------------------------------------------ FHIR and vendor JSON


@pytest.fixture
async def http_gateway(tmp_path: Path,
                       request: pytest.FixtureRequest) -> AsyncIterator[RunningGateway]:
    """The ``gateway`` fixture with the FHIR and vendor HTTP listeners as well."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    async with gateway_with_http_listeners(tmp_path, **overrides) as gw:
        yield gw


_post = post_to_listener


def _fhir_dispense_with(code: str) -> bytes:
    """The two-code FHIR dispense sample for this gateway's hospital, its second code
    replaced."""
    resource = orjson.loads(FHIR_DISPENSE.read_bytes())
    resource["location"]["identifier"]["value"] = HOSPITAL
    [_, second] = [e for e in resource["extension"] if e["url"].endswith("/trace-code")]
    second["valueString"] = code
    return orjson.dumps(resource)


@pytest.mark.parametrize(("code", "words"), MALFORMED)
async def test_fhir_a_malformed_code_gets_400_naming_line_and_position(
        http_gateway: RunningGateway, code: str, words: str) -> None:
    status, outcome = await _post(http_gateway, "his-fhir", _fhir_dispense_with(code))
    assert status == 400, outcome
    [issue] = outcome["issue"]
    assert outcome["resourceType"] == "OperationOutcome" and issue["severity"] == "error"
    assert issue["expression"] == ["line 1 trace_codes[2]"]
    assert words in issue["diagnostics"]
    assert await _stored(http_gateway) == 0
    assert len(await _quarantined(http_gateway)) == 1


async def test_fhir_a_gs1_scan_is_refused_with_long_codes_off_naming_the_setting(
        http_gateway: RunningGateway) -> None:
    status, outcome = await _post(http_gateway, "his-fhir", FHIR_GS1.read_bytes())
    assert status == 400, outcome
    [issue] = outcome["issue"]
    assert issue["expression"] == ["line 1 trace_codes[1]"]
    assert "set limits.long_trace_codes: true" in issue["diagnostics"]
    assert await _stored(http_gateway) == 0


@pytest.mark.parametrize("http_gateway", [LONG], indirect=True)
async def test_fhir_a_gs1_scan_with_long_codes_on_reaches_3505_unchanged(
        http_gateway: RunningGateway) -> None:
    status, created = await _post(http_gateway, "his-fhir", FHIR_GS1.read_bytes())
    assert status == 201, created
    [msgid] = await http_gateway.delivered(1)
    sale = http_gateway.simulator.accepted[msgid]
    assert sale["infno"] == "3505"
    assert [t["drug_trac_codg"] for t in sale["input"]["selinfo"]["drugtracinfo"]] == [
        GS1_SCAN, GS1_SCAN[:-1] + "4"]


async def test_vendor_json_a_malformed_code_is_refused_naming_line_and_position(
        http_gateway: RunningGateway) -> None:
    # the warehouse receipt sample (standard codes), for this gateway's hospital
    doc = (DATA / "vendor-json" / "valid" / "receipt_into_stock.json").read_bytes()
    doc = doc.replace(b"H33010200001", HOSPITAL.encode())
    bad = doc.replace(b"81234567890123460002", b"8123456789012346000")
    status, answer = await _post(http_gateway, "spd-json", bad)
    assert status == 400, answer
    assert answer["resultCode"] == "1"
    [error] = answer["errors"]
    assert error["path"] == "line 1 trace_codes[2]"
    assert "trace code must be 20 digits, got 19 characters" in error["resultMsg"]
    # GS1 element strings from the SPD system: refused while long codes are off
    status, answer = await _post(http_gateway, "spd-json", VENDOR_RECEIPT.read_bytes())
    assert status == 400, answer
    [error] = answer["errors"]
    assert error["path"] == "line 1 trace_codes[1]"
    assert "set limits.long_trace_codes: true" in error["resultMsg"]
    assert await _stored(http_gateway) == 0
    assert len(await _quarantined(http_gateway)) == 2


@pytest.mark.parametrize("http_gateway", [LONG], indirect=True)
async def test_vendor_json_gs1_codes_pass_with_long_codes_and_a_short_one_still_not(
        http_gateway: RunningGateway) -> None:
    doc = VENDOR_RECEIPT.read_bytes()
    bad = doc.replace(b"83104560211704865214", b"8310456021170486521")
    status, answer = await _post(http_gateway, "spd-json", bad)
    assert status == 400, answer
    [error] = answer["errors"]
    assert error["path"] == "line 2 trace_codes[2]"
    assert "at least 20 characters, got 19" in error["resultMsg"]
    status, answer = await _post(http_gateway, "spd-json", doc)
    assert status == 200 and answer["resultCode"] == "0", answer
    [(body,)] = await http_gateway.store.query("SELECT body FROM events")
    text = body.decode() if isinstance(body, bytes) else str(body)
    assert "(01)05000456038454(17)280630(10)RN2408B(21)7KX4P2M9Q3" in text
