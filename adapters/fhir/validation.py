"""FHIR R4 (4.0.1) validation of the resources the gateway takes, with FHIRPath locations.

fhir.resources' default models are R5, which reject R4 JSON (R5 renamed
``medication[x]`` to a CodeableReference, among others). Its R4B models are
wire-compatible with R4 for MedicationRequest, MedicationDispense,
SupplyRequest, SupplyDelivery, Medication and Bundle, so R4 payloads are
validated with them. fhir.resources does not check required value-set bindings,
so the codes whose binding is *required* in R4 (status, intent, Bundle.type) are
checked here against the R4 value sets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from adapters.base import Issue, Severity

__all__ = ["EVENT_TYPES", "SUPPORTED_TYPES", "validate_resource"]

# resource types that become events
EVENT_TYPES = frozenset({"MedicationRequest", "MedicationDispense", "SupplyRequest",
                         "SupplyDelivery"})
# Medication is taken inside a Bundle so that medicationReference can point at it
SUPPORTED_TYPES = EVENT_TYPES | {"Medication"}

_MODULES = {
    "MedicationRequest": "medicationrequest",
    "MedicationDispense": "medicationdispense",
    "SupplyRequest": "supplyrequest",
    "SupplyDelivery": "supplydelivery",
    "Medication": "medication",
    "Bundle": "bundle",
}

# R4 (4.0.1) required bindings
_REQUIRED_CODES: dict[str, dict[str, frozenset[str]]] = {
    "MedicationRequest": {
        "status": frozenset({"active", "on-hold", "cancelled", "completed", "entered-in-error",
                             "stopped", "draft", "unknown"}),
        "intent": frozenset({"proposal", "plan", "order", "original-order", "reflex-order",
                             "filler-order", "instance-order", "option"}),
    },
    "MedicationDispense": {
        "status": frozenset({"preparation", "in-progress", "cancelled", "on-hold", "completed",
                             "entered-in-error", "stopped", "declined", "unknown"}),
    },
    "SupplyRequest": {
        "status": frozenset({"draft", "active", "suspended", "cancelled", "completed",
                             "entered-in-error", "unknown"}),
    },
    "SupplyDelivery": {
        "status": frozenset({"in-progress", "completed", "abandoned", "entered-in-error"}),
    },
    "Medication": {"status": frozenset({"active", "inactive", "entered-in-error"})},
}

_CHOICE = re.compile(r"\[([^\]]*)\]")


@cache
def model_class(resource_type: str) -> type[BaseModel]:
    """The fhir.resources R4B model class for a resource type (imported on first use)."""
    import importlib

    module = importlib.import_module(f"fhir.resources.R4B.{_MODULES[resource_type]}")
    cls: type[BaseModel] = getattr(module, resource_type)
    return cls


def _path(base: str, loc: tuple[int | str, ...]) -> str:
    out = base
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}"
    return out


def _common_prefix(names: list[str]) -> str:
    """``medication`` for medicationCodeableConcept / medicationReference (a choice [x])."""
    if not names:
        return ""
    first, last = min(names), max(names)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def _issue(base: str, err: Mapping[str, Any], resource_type: str) -> Issue:
    loc = tuple(err.get("loc", ()))
    kind = str(err.get("type", ""))
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        where = _path(base, loc)
        return Issue(Severity.ERROR,
                     f"{where}: unknown element (not part of FHIR R4 {resource_type}; "
                     "an R5 or misspelt element?)", "100", where)
    if kind in ("missing", "model_field_validation.missing"):
        where = _path(base, loc)
        return Issue(Severity.ERROR, f"{where}: required element is missing", "101", where)
    if "one field value" in msg or "field value from this list" in msg:
        names = re.findall(r"'(\w+)'", msg)
        prefix = _common_prefix(names)
        where = _path(base, (*loc, f"{prefix}[x]")) if prefix else _path(base, loc)
        return Issue(Severity.ERROR, f"{where}: {msg}", "102", where)
    where = _path(base, loc)
    return Issue(Severity.ERROR, f"{where}: {msg}", "102", where)


def _check_codes(resource: Mapping[str, Any], resource_type: str, base: str) -> list[Issue]:
    issues = []
    for element, allowed in _REQUIRED_CODES.get(resource_type, {}).items():
        value = resource.get(element)
        # a code is a string: a list or an object there (["completed"]) is as wrong as an
        # unknown code, and is not hashable for the membership test
        if value is not None and (not isinstance(value, str) or value not in allowed):
            where = f"{base}.{element}"
            issues.append(Issue(
                Severity.ERROR,
                f"{where}: {value!r} is not in the required R4 value set "
                f"({', '.join(sorted(allowed))})", "103", where))
    return issues


def _unknown_nested_type(resource: Mapping[str, Any], base: str, exc: KeyError) -> Issue:
    key = str(exc.args[0]) if exc.args else ""
    name = key.split(".", 1)[-1].removesuffix("Type")
    where = base
    for i, item in enumerate(resource.get("contained") or ()):
        if isinstance(item, Mapping) and item.get("resourceType") == name:
            where = f"{base}.contained[{i}].resourceType"
            break
    return Issue(Severity.ERROR, f"{where}: resourceType {name!r} is not a FHIR R4 resource",
                 "102", where)


def validate_resource(resource: Mapping[str, Any], base: str) -> list[Issue]:
    """Every problem of one R4 resource, each located by a FHIRPath starting at ``base``.

    Args:
        resource: the decoded JSON object; its ``resourceType`` must be supported.
        base: the path of the resource, e.g. ``MedicationRequest`` or
            ``Bundle.entry[2].resource``.

    Returns:
        The issues found; empty when the resource is valid R4.
    """
    resource_type = str(resource.get("resourceType", ""))
    issues = _check_codes(resource, resource_type, base)
    try:
        model_class(resource_type).model_validate(resource)
    except ValidationError as exc:
        issues.extend(_issue(base, err, resource_type) for err in exc.errors())
    except (TypeError, ValueError) as exc:  # a validator that raised outside pydantic
        issues.append(Issue(Severity.ERROR, f"{base}: {exc}", "102", base))
    except KeyError as exc:  # fhir.resources looks nested resources up by resourceType
        issues.append(_unknown_nested_type(resource, base, exc))
    return issues
