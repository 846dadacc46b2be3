"""National medical-insurance code formats and national catalogs.

Pure parsing and validation; no imports from the gateway core or the mappings.
"""

from codes.national import (
    CodeError,
    CodeKind,
    ConsumableCode,
    DrugCode,
    HerbalCode,
    NationalCode,
    is_valid,
    kind_of,
    parse_national_code,
    validate,
)
from codes.standard_code import enterprise_from_standard_code, split_standard_code
from codes.trace import TraceCode, parse_trace_code, validate_trace_code

__all__ = [
    "CodeError",
    "CodeKind",
    "ConsumableCode",
    "DrugCode",
    "HerbalCode",
    "NationalCode",
    "TraceCode",
    "enterprise_from_standard_code",
    "is_valid",
    "kind_of",
    "parse_national_code",
    "parse_trace_code",
    "split_standard_code",
    "validate",
    "validate_trace_code",
]
