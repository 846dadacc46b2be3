"""Drug traceability codes (药品追溯码).

In practice a trace code is 20 digits starting with 8. The national interface
field (``drug_trac_codg``) is 100 characters wide and some packs carry GS1 or
other longer codes, so those are accepted when the deployment allows them. No
check digit is enforced: none is published for the 20-digit form, and a false
rejection would block a sale at the counter.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from typing import Final

from codes.national import CodeError

__all__ = [
    "GS1_SEPARATOR",
    "LONG_TRACE_MAX",
    "STANDARD_TRACE_LENGTH",
    "Gs1Parts",
    "TraceCode",
    "gs1_parts",
    "gtin_check_digit",
    "is_gs1_shaped",
    "parse_gs1",
    "parse_trace_code",
    "validate_trace_code",
]

STANDARD_TRACE_LENGTH: Final = 20
LONG_TRACE_MAX: Final = 100

_STANDARD: Final = re.compile(r"8\d{19}", re.ASCII)
# GS1 element strings use printable ASCII; parentheses around application
# identifiers are kept because scanners in human-readable mode send them.
_LONG_CHARS: Final = frozenset(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz()-./:_+*%&#"
)
_LONG: Final = re.compile(r"[0-9A-Za-z()\-./:_+*%&#]{20,100}", re.ASCII)


GS1_SEPARATOR: Final = "\x1d"  # FNC1 as a scanner sends it: ends a variable-length element
# the application identifiers a drug pack carries (GS1 General Specifications):
# AI → (fixed length or 0, maximum length)
_GS1_AI: Final = {"01": (14, 14), "17": (6, 6), "11": (6, 6), "10": (0, 20), "21": (0, 20)}
_GS1_PAREN: Final = re.compile(r"\((\d{2})\)([^()]*)", re.ASCII)
# symbology identifiers a scanner may put first (ISO/IEC 15424): GS1-128, GS1 DataMatrix,
# GS1 QR Code, GS1 DataBar; they say "GS1 data follows" and are not part of it
_SYMBOLOGY: Final = ("]C1", "]d2", "]Q3", "]e0")
# the scanned form without separators or parentheses: (01) and 14 digits, then the
# next AI or the end; no other trace-code format starts like that
_GS1_BARE: Final = re.compile(r"01\d{14}(?:1[017]|21|\x1d|$)", re.ASCII)


def gtin_check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit of a GTIN without its last digit."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def _gs1_date(value: str) -> bool:
    if len(value) != 6 or not value.isdigit():
        return False
    month, day = int(value[2:4]), int(value[4:6])
    # day 00 means "end of the month" in GS1 dates
    return 1 <= month <= 12 and 0 <= day <= 31


def _gs1_check(elements: dict[str, str]) -> str | None:
    if "01" not in elements:
        return "GS1 element string without (01) GTIN"
    for ai, value in elements.items():
        fixed, most = _GS1_AI[ai]
        if (fixed and len(value) != fixed) or not 0 < len(value) <= most:
            return f"GS1 ({ai}) has {len(value)} characters"
        if ai in ("01", "17", "11") and not value.isdigit():
            return f"GS1 ({ai}) must be digits: {value!r}"
        if ai == "01" and gtin_check_digit(value[:-1]) != int(value[-1]):
            # a misread digit: the pack would be reported as another product
            return (f"GS1 (01) GTIN {value} has check digit {value[-1]}, expected "
                    f"{gtin_check_digit(value[:-1])}")
        if ai in ("17", "11") and not _gs1_date(value):
            return f"GS1 ({ai}) is not a date YYMMDD: {value!r}"
    return None


def _repeated(ai: str) -> str:
    # two values for one AI: whichever were kept, the pack's GTIN, lot or expiry as
    # reported would be a guess
    return f"GS1 application identifier ({ai}) repeated"


def _gs1_raw(code: str) -> dict[str, str] | str:
    out: dict[str, str] = {}
    rest = code.lstrip(GS1_SEPARATOR)
    while rest:
        ai = rest[:2]
        if ai not in _GS1_AI:
            return f"unknown GS1 application identifier {ai!r}"
        fixed, _ = _GS1_AI[ai]
        if fixed:
            value, rest = rest[2:2 + fixed], rest[2 + fixed:]
        else:
            value, _, rest = rest[2:].partition(GS1_SEPARATOR)
        if ai in out:
            return _repeated(ai)
        out[ai] = value
        rest = rest.lstrip(GS1_SEPARATOR)
    return out


def _unprefixed(code: str) -> str:
    return code[3:] if code.startswith(_SYMBOLOGY) else code


def is_gs1_shaped(code: str) -> bool:
    """Whether ``code`` has the shape of a GS1 element string (and is read as one)."""
    code = _unprefixed(code)
    return (code.startswith(("(", GS1_SEPARATOR))
            or (code.startswith("01") and GS1_SEPARATOR in code)
            or _GS1_BARE.match(code) is not None)


def parse_gs1(code: str) -> dict[str, str] | str:
    """The elements of a GS1 element string ((01) GTIN, (17) expiry, (10) lot, (21)
    serial …), or why it is not one. Takes the human-readable form with parentheses
    and the scanned form: AI digits without parentheses, FNC1 group separators
    (``\\x1d``) after variable-length fields, a symbology identifier (``]d2``) first
    or not. The GTIN's check digit is verified; a code longer than the interface field
    (``LONG_TRACE_MAX``) or naming one AI twice is refused."""
    if len(code) > LONG_TRACE_MAX:
        # the platform's drug_trac_codg is 100 wide: longer, it is cut or refused there
        return (f"GS1 element string of {len(code)} characters, more than "
                f"{LONG_TRACE_MAX}")
    code = _unprefixed(code)
    if code.startswith("("):
        matched = _GS1_PAREN.findall(code)
        if "".join(f"({a}){v}" for a, v in matched) != code:
            return "GS1 element string with text outside (AI)value pairs"
        unknown = [a for a, _ in matched if a not in _GS1_AI]
        if unknown:
            return f"unknown GS1 application identifier {unknown[0]!r}"
        seen: set[str] = set()
        for ai, _ in matched:
            if ai in seen:
                return _repeated(ai)
            seen.add(ai)
        elements: dict[str, str] | str = dict(matched)
    elif code.startswith("01") or code.startswith(GS1_SEPARATOR):
        elements = _gs1_raw(code)
    else:
        return "not a GS1 element string"
    if isinstance(elements, str):
        return elements
    return _gs1_check(elements) or elements


@dataclass(frozen=True, slots=True)
class Gs1Parts:
    """What a GS1 code on a pack says: GTIN-14, dates as ISO (``2028-08-31``), lot, serial."""

    gtin: str
    expiry: str = ""  # (17)
    production: str = ""  # (11)
    lot: str = ""  # (10)
    serial: str = ""  # (21)


def _iso(yymmdd: str) -> str:
    if not yymmdd:
        return ""
    year, month, day = 2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:])
    # day 00: the last day of the month (GS1 General Specifications 3.4.2); drug dates
    # fall in this century, where the GS1 sliding window gives 20YY until 2050
    day = day or calendar.monthrange(year, month)[1]
    return date(year, month, day).isoformat()


def gs1_parts(code: str) -> Gs1Parts | str:
    """The parts of a GS1 element string, or why it is not one (see :func:`parse_gs1`)."""
    elements = parse_gs1(code)
    if isinstance(elements, str):
        return elements
    try:
        return Gs1Parts(gtin=elements["01"], expiry=_iso(elements.get("17", "")),
                        production=_iso(elements.get("11", "")), lot=elements.get("10", ""),
                        serial=elements.get("21", ""))
    except ValueError as exc:  # 31 February: a YYMMDD that is no day
        return f"GS1 date is not a day: {exc}"


@dataclass(frozen=True, slots=True)
class TraceCode:
    """A drug traceability code; ``standard`` is True for the 20-digit ``8…`` form."""

    code: str
    standard: bool

    @property
    def gs1(self) -> dict[str, str]:
        """The GS1 elements of a long code ({"01": GTIN, "17": expiry …}), else {}."""
        if self.standard:
            return {}
        parsed = parse_gs1(self.code)
        return parsed if isinstance(parsed, dict) else {}

    @property
    def parts(self) -> Gs1Parts | None:
        """GTIN, expiry, lot and serial of a GS1 code; None for other codes."""
        if self.standard:
            return None
        parts = gs1_parts(self.code)
        return parts if isinstance(parts, Gs1Parts) else None

    @property
    def drug_identifier(self) -> str | None:
        """The first 7 digits of a standard code (药品标识码, product and pack), else None."""
        return self.code[:7] if self.standard else None


def validate_trace_code(code: str, *, allow_long: bool = False) -> str | None:
    """Return why ``code`` is not an acceptable trace code, or None.

    Args:
        code: the scanned code exactly as received.
        allow_long: also accept 20-100 character codes of other shapes (GS1 …).

    Returns:
        None when acceptable, else a one-line reason.
    """
    if not isinstance(code, str):
        return f"trace code must be a string, got {type(code).__name__}"
    if _STANDARD.fullmatch(code):
        return None
    if allow_long and (GS1_SEPARATOR in code or is_gs1_shaped(code)):
        # a GS1 element string is read, not just measured: a misread AI, a wrong GTIN
        # check digit or an impossible expiry is refused here rather than by the platform
        gs1 = gs1_parts(code)
        return gs1 if isinstance(gs1, str) else None
    if allow_long and _LONG.fullmatch(code):
        return None
    if not code:
        return "trace code is empty"
    if code != code.strip():
        return "trace code has leading or trailing whitespace"
    if allow_long:
        if len(code) > LONG_TRACE_MAX:
            return f"trace code must be at most {LONG_TRACE_MAX} characters, got {len(code)}"
        if len(code) < STANDARD_TRACE_LENGTH:
            return (
                f"trace code must be at least {STANDARD_TRACE_LENGTH} characters, got {len(code)}"
            )
        bad = next(ch for ch in code if ch not in _LONG_CHARS)
        return f"trace code contains {bad!r}, which no trace-code format uses"
    for i, ch in enumerate(code[:STANDARD_TRACE_LENGTH]):
        if not ("0" <= ch <= "9"):
            return f"position {i + 1} of a trace code must be a digit, got {ch!r}"
    if code[0] != "8":
        return f"position 1 of a trace code must be 8, got {code[0]!r}"
    return (
        f"trace code must be {STANDARD_TRACE_LENGTH} digits, got {len(code)} characters"
        " (longer codes are accepted only when long trace codes are enabled)"
    )


def parse_trace_code(code: str, *, allow_long: bool = False) -> TraceCode:
    """Check a drug traceability code and wrap it.

    Args:
        code: the scanned code exactly as received.
        allow_long: also accept 20-100 character codes of other shapes (GS1 …).

    Returns:
        A :class:`TraceCode`.

    Raises:
        CodeError: the code is not acceptable; ``reason`` says why.
    """
    reason = validate_trace_code(code, allow_long=allow_long)
    if reason is not None:
        raise CodeError(str(code), reason)
    return TraceCode(code=code, standard=_STANDARD.fullmatch(code) is not None)
