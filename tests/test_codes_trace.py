"""Drug traceability codes: the 20-digit standard form and configurable long codes."""

from __future__ import annotations

import pytest

from codes import CodeError, CodeKind, TraceCode, kind_of, parse_trace_code, validate_trace_code

STANDARD = "81234560012345678901"
GS1 = "(01)06901234567892(17)270630(10)B2405(21)0012345678"


def test_standard_trace_code() -> None:
    trace = parse_trace_code(STANDARD)
    assert trace == TraceCode(code=STANDARD, standard=True)
    assert trace.drug_identifier == "8123456"
    assert kind_of(STANDARD) is CodeKind.TRACE


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("91234560012345678901", "position 1 of a trace code must be 8, got '9'"),
        ("8123456001234567890", "trace code must be 20 digits, got 19 characters"),
        ("812345600123456789012", "got 21 characters (longer codes are accepted only when"),
        ("81234560O12345678901", "position 9 of a trace code must be a digit, got 'O'"),
        ("", "trace code is empty"),
        (STANDARD + " ", "leading or trailing whitespace"),
        (GS1, "position 1 of a trace code must be a digit, got '('"),
    ],
)
def test_rejections_by_default(code: str, reason: str) -> None:
    got = validate_trace_code(code)
    assert got is not None and reason in got
    with pytest.raises(CodeError) as info:
        parse_trace_code(code)
    assert info.value.reason == got


def test_long_codes_only_when_allowed() -> None:
    trace = parse_trace_code(GS1, allow_long=True)
    assert trace.standard is False
    assert trace.drug_identifier is None
    assert parse_trace_code("1" * 100, allow_long=True).code == "1" * 100
    assert parse_trace_code(STANDARD, allow_long=True).standard is True
    assert kind_of(GS1) is None


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("1" * 101, "trace code must be at most 100 characters, got 101"),
        ("1234567890", "trace code must be at least 20 characters, got 10"),
        ("8123456001234567890 12345", "trace code contains ' '"),
        ("8123456001234567890１2345", "trace code contains '１'"),
    ],
)
def test_long_code_rejections(code: str, reason: str) -> None:
    got = validate_trace_code(code, allow_long=True)
    assert got is not None and reason in got


def test_no_check_digit_is_enforced() -> None:
    # Any final digit is accepted: a false rejection would block dispensing.
    accepted = {parse_trace_code(STANDARD[:-1] + str(d)).code[-1] for d in range(10)}
    assert accepted == set("0123456789")


# a GS1 DataMatrix on an imported pack: GTIN, expiry 2028-08-14, lot, serial
_GS1_HUMAN = "(01)06901234567892(17)280814(10)L2026A(21)SN000123"
_GS1_SCANNED = "0106901234567892" "17280814" "10L2026A\x1d" "21SN000123"
_GS1_ELEMENTS = {"01": "06901234567892", "17": "280814", "10": "L2026A", "21": "SN000123"}


@pytest.mark.parametrize("code", [_GS1_HUMAN, _GS1_SCANNED])
def test_gs1_element_strings_are_parsed_when_long_codes_are_enabled(code: str) -> None:
    from codes.trace import parse_gs1

    assert parse_gs1(code) == _GS1_ELEMENTS
    assert validate_trace_code(code, allow_long=True) is None
    assert validate_trace_code(code) is not None  # only when long codes are enabled
    assert parse_trace_code(code, allow_long=True).gs1 == _GS1_ELEMENTS


@pytest.mark.parametrize(("code", "words"), [
    ("(01)06901234567892(17)281314(10)L2026A", "(17) is not a date"),
    ("(01)0690123456789(17)280814", "(01) has 13 characters"),
    ("(17)280814(10)L2026A(21)SN000123", "without (01)"),
    ("0106901234567892" "99ABC\x1d21SN1", "unknown GS1 application identifier '99'"),
])
def test_a_malformed_gs1_element_string_is_refused_with_its_reason(code: str,
                                                                   words: str) -> None:
    why = validate_trace_code(code, allow_long=True)
    assert why is not None and words in why, why


# as a scanner in GS1 mode sends a DataMatrix: AI digits without parentheses, FNC1 as
# the group separator after the variable-length lot, often the symbology identifier first
_SCAN_NO_PARENS = "0106901234567892" "17280131" "10LOT123" "\x1d" "21SN0001"


@pytest.mark.parametrize("code", [
    _SCAN_NO_PARENS,
    "]d2" + _SCAN_NO_PARENS,  # the symbology identifier of a GS1 DataMatrix
    "(01)06901234567892(17)280131(10)LOT123(21)SN0001",
])
def test_a_scanned_gs1_code_is_parsed_into_gtin_expiry_lot_and_serial(code: str) -> None:
    from codes.trace import Gs1Parts, gs1_parts

    parts = Gs1Parts(gtin="06901234567892", expiry="2028-01-31", lot="LOT123",
                     serial="SN0001")
    assert gs1_parts(code) == parts
    assert parse_trace_code(code, allow_long=True).parts == parts
    assert validate_trace_code(code) is not None  # only with long trace codes enabled


def test_a_gs1_code_ending_in_its_last_variable_field_needs_no_separator() -> None:
    from codes.trace import gs1_parts, is_gs1_shaped

    code = "0106901234567892" "17280800" "10B2405"  # day 00: the end of the month
    assert is_gs1_shaped(code)
    parts = gs1_parts(code)
    assert not isinstance(parts, str)
    assert (parts.expiry, parts.lot, parts.serial) == ("2028-08-31", "B2405", "")
    assert parse_trace_code(code, allow_long=True).parts == parts


@pytest.mark.parametrize(("digits", "check"), [
    ("0690123456789", 2), ("0500045603845", 4), ("0400638133393", 1), ("0000000000000", 0)])
def test_gtin_check_digit(digits: str, check: int) -> None:
    from codes.trace import gtin_check_digit

    assert gtin_check_digit(digits) == check


@pytest.mark.parametrize(("code", "words"), [
    # one digit misread: the pack would be reported as another product
    ("0106901234567893" "17280131" "10LOT123", "check digit 3, expected 2"),
    ("0106901234567892" "17280230" "10LOT123", "not a day"),  # 30 February
    ("]d2" "0106901234567892" "17281301", "(17) is not a date"),
])
def test_a_misread_scan_is_refused_with_its_reason(code: str, words: str) -> None:
    why = validate_trace_code(code, allow_long=True)
    assert why is not None and words in why, why


def test_long_codes_of_other_shapes_are_not_read_as_gs1() -> None:
    from codes.trace import is_gs1_shaped

    other = "0123456789ABCDEFGHIJ"  # starts with 01, but no 14 digits follow
    assert not is_gs1_shaped(other)
    assert parse_trace_code(other, allow_long=True).parts is None
    assert parse_trace_code(STANDARD, allow_long=True).parts is None


@pytest.mark.parametrize(("code", "ai"), [
    ("(01)06901234567892(10)LOT1(10)LOT2", "10"),
    ("(01)06901234567892(17)280131(01)06901234567892", "01"),
    ("0106901234567892" "10LOT1" "\x1d" "10LOT2", "10"),
    ("]d2" "0106901234567892" "17280131" "17290131", "17"),
])
def test_a_gs1_code_naming_one_ai_twice_is_refused(code: str, ai: str) -> None:
    # two lots or two GTINs on one pack: whichever were kept, the report would guess
    from codes.trace import gs1_parts

    why = validate_trace_code(code, allow_long=True)
    assert why == f"GS1 application identifier ({ai}) repeated", why
    assert gs1_parts(code) == why


@pytest.mark.parametrize("code", [
    "(01)06901234567892(10)" + "L" * 20 + "(21)" + "S" * 20 + "\x1d" * 40,
    "0106901234567892" + "\x1d" * 90 + "10LOT1",
])
def test_a_gs1_code_longer_than_the_interface_field_is_refused(code: str) -> None:
    from codes.trace import LONG_TRACE_MAX

    assert len(code) > LONG_TRACE_MAX
    why = validate_trace_code(code, allow_long=True)
    assert why == f"GS1 element string of {len(code)} characters, more than 100", why


def test_a_gs1_code_of_exactly_the_interface_width_passes() -> None:
    from codes.trace import LONG_TRACE_MAX

    code = "0106901234567892" "10LOT1" + "\x1d" * (LONG_TRACE_MAX - 22)
    assert len(code) == LONG_TRACE_MAX
    assert validate_trace_code(code, allow_long=True) is None
