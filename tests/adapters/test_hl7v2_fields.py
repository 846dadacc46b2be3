"""HL7 v2 field decoding and per-hospital Z-segment layouts."""

from datetime import UTC, datetime

import pytest

from adapters.base import Issue, Outcome, OutcomeStatus, Severity
from adapters.hl7v2 import HL7v2Adapter, decode_message
from canonical.errors import MessageRejected

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def _msh(charset: str = "UNICODE UTF-8", version: str = "2.5") -> str:
    return (f"MSH|^~\\&|HIS|ZJSRMYY|JCGW|JCGW|20261123090012||RDE^O11^RDE_O11|C1|P|{version}"
            f"|||AL|NE||{charset}")


@pytest.mark.parametrize(
    ("escaped", "text"),
    [
        ("A\\F\\B", "A|B"),
        ("A\\S\\B", "A^B"),
        ("A\\T\\B", "A&B"),
        ("A\\R\\B", "A~B"),
        ("A\\E\\B", "A\\B"),
        ("\\XE998BFE68998\\唑", "阿托唑"),  # UTF-8 bytes of 阿托 as hex
        ("第一行\\.br\\第二行", "第一行\n第二行"),
        ("A\\H\\B\\N\\C", "ABC"),  # highlighting carries no text
        ("lone \\ kept", "lone \\ kept"),
    ],
)
def test_escape_sequences_decode_in_utf8(escaped: str, text: str) -> None:
    msg = decode_message(f"{_msh()}\rZJC|{escaped}\r".encode())
    assert msg.segments[1].get(1) == text


def test_hex_escape_decodes_in_the_declared_gb18030() -> None:
    raw = f"{_msh('GB18030')}\rZJC|\\XB0A2CDD0\\片|北京\\T\\上海\r".encode("gb18030")
    seg = decode_message(raw).segments[1]
    assert seg.get(1) == "阿托片"
    assert seg.get(2) == "北京&上海"


def test_escaped_delimiters_do_not_split_components() -> None:
    msg = decode_message(f"{_msh()}\rRXE|1|Y001^甲\\S\\乙^HOSP\r".encode())
    assert msg.segments[1].get(2, 2) == "甲^乙"
    assert msg.segments[1].get(2, 3) == "HOSP"


def test_gb18030_without_msh18_is_detected() -> None:
    raw = f"{_msh('')}\rZJC|阿那曲唑片\r".encode("gb18030")
    assert decode_message(raw).segments[1].get(1) == "阿那曲唑片"


_RDE = (
    "ORC|NW|CF1|||||||20261123090000\r"
    "RXE|1^QD|Y0045201^阿那曲唑片^HOSP|1||mg|A001^片剂||||2|盒^盒\r"
)


def test_each_facility_has_its_own_z_layout() -> None:
    adapter = HL7v2Adapter({
        "facilities": {"ZJSRMYY": "H33010200001", "HZSDYYY": "H33010600017"},
        "z_by_facility": {"HZSDYYY": {"segment": "ZYP", "price": 1, "manufacturer": 3,
                                      "specification": None, "trace_codes": 2}},
    })
    default = f"{_msh()}\r{_RDE}ZJC|1mg*14片|海正|36.80|8123~8124\r"
    other = (f"{_msh().replace('ZJSRMYY', 'HZSDYYY')}\r{_RDE}"
             "ZJC|ignored|ignored|99\rZYP|36.80|8123~8124|海正\r")
    a = adapter.parse(default.encode(), received_at=NOW).events[0].lines[0]
    b = adapter.parse(other.encode(), received_at=NOW).events[0].lines[0]
    assert (a.price, a.manufacturer, a.trace_codes) == (b.price, b.manufacturer, b.trace_codes)
    assert a.specification == "1mg*14片"
    assert b.specification == ""  # ZYP has no specification field; RXE-25 is empty


def test_z_layout_rejects_a_bad_segment_name() -> None:
    with pytest.raises(ValueError, match="z_by_facility"):
        HL7v2Adapter({"z_by_facility": {"X": {"segment": "ABC"}}})


@pytest.mark.parametrize("version", ["2.3.1", "2.4", "2.5", "2.5.1"])
def test_nak_names_the_location_in_every_version(version: str) -> None:
    adapter = HL7v2Adapter({"facilities": {"ZJSRMYY": "H33010200001"}})
    raw = f"{_msh(version=version)}\rORC|NW|CF1\rRXE|1|Y1^甲|1||mg|||||两盒\r".encode()
    with pytest.raises(MessageRejected) as info:
        adapter.parse(raw, received_at=NOW)
    issue = Issue(Severity.ERROR, info.value.reason, info.value.code, info.value.location)
    reply = adapter.reply(None, raw, Outcome(OutcomeStatus.REJECTED, (issue,)), now=NOW)
    summary = adapter.read_reply(reply)
    assert not summary.accepted
    assert summary.control_id == "C1"
    assert summary.locations == ("RXE-10",)


def test_repeated_fields_are_read_in_time_linear_in_the_repetitions() -> None:
    """45,000 traceability codes in ZJC-4 took over a minute: each repetition re-split the
    whole field. Reading 10× the codes must cost about 10× the time, not 100×."""
    import time

    from adapters.hl7v2.message import decode_message

    def seconds(n: int) -> float:
        codes = "~".join(f"812345678901{i:08d}" for i in range(n))
        raw = f"MSH|^~\\&|HIS|ZJSRMYY|JCGW|JCGW|20261123093015||RDS^O13|X1|P|2.5\rZJC|||1|{codes}\r"
        seg = decode_message(raw.encode()).segments[1]
        start = time.perf_counter()
        assert len(seg.all(4)) == n
        return time.perf_counter() - start

    seconds(2_000)  # warm up
    small = min(seconds(2_000) for _ in range(3))
    large = min(seconds(20_000) for _ in range(3))
    assert large < small * 30, (small, large)
