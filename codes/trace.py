"""Drug traceability codes (药品追溯码).

In practice a trace code is 20 digits starting with 8. The national interface
field (``drug_trac_codg``) is 100 characters wide and some packs carry GS1 or
other longer codes, so those are accepted when the deployment allows them. No
check digit is enforced: none is published for the 20-digit form, and a false
rejection would block a sale at the counter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from codes.national import CodeError

__all__ = [
    "LONG_TRACE_MAX",
    "STANDARD_TRACE_LENGTH",
    "TraceCode",
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


@dataclass(frozen=True, slots=True)
class TraceCode:
    """A drug traceability code; ``standard`` is True for the 20-digit ``8…`` form."""

    code: str
    standard: bool

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
