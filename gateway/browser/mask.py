"""Patient data masked for the roles that need to see a message but not whose it is.

Names keep their first character (张伟 → 张*), identifiers their ends (an ID card
3301**********1234, a phone 138****8000), so an operator can still match a message to
a telephone call from the pharmacy without the browser handing out identities.

Masking works three ways, so that no format slips through: the canonical events'
``patient`` fields; in the decoded text, every value those fields hold (whatever the
dialect: HL7, FHIR, vendor XML or JSON); and, structurally, HL7 PID / PV1 fields and
FHIR Patient resources, which may hold more than the events kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import orjson

__all__ = ["mask_event", "mask_identifier", "mask_name", "mask_text", "patient_values"]

_NAME_FIELDS = frozenset({"name"})
_PATIENT_FIELDS = ("id", "name", "id_card", "phone", "insurance_no", "visit_no")


def mask_name(value: str) -> str:
    """张伟 → 张*, 欧阳娜娜 → 欧***: the surname's first character stays."""
    value = value.strip()
    return value[:1] + "*" * (len(value) - 1) if value else value


def mask_identifier(value: str) -> str:
    """An ID card keeps 4 + 4 (3301**********1234), a phone 3 + 4 (138****8000),
    shorter numbers their last 2 or 4 characters."""
    n = len(value)
    if n >= 15:
        return value[:4] + "*" * (n - 8) + value[-4:]
    if n == 11 and value.isdigit():
        return value[:3] + "****" + value[-4:]
    if n >= 8:
        return "*" * (n - 4) + value[-4:]
    return "*" * max(0, n - 2) + value[-2:] if n > 2 else "*" * n


def _mask_field(name: str, value: str) -> str:
    return mask_name(value) if name in _NAME_FIELDS else mask_identifier(value)


def mask_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event's JSON form with its patient's fields masked."""
    patient = event.get("patient")
    if not isinstance(patient, dict):
        return event
    masked = {k: _mask_field(k, v) if isinstance(v, str) and v else v
              for k, v in patient.items()}
    return {**event, "patient": masked}


def patient_values(events: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Each patient value the events hold, with its masked form."""
    found: dict[str, str] = {}
    for event in events:
        patient = event.get("patient")
        if not isinstance(patient, dict):
            continue
        for key in _PATIENT_FIELDS:
            value = patient.get(key)
            # a short id ("12") would mask unrelated text; a name of two characters is real
            if isinstance(value, str) and len(value.strip()) >= (2 if key == "name" else 4):
                found[value] = _mask_field(key, value)
    return found


# HL7 v2: PID-2/3/4 identifiers, 5 name, 6 mother's maiden name, 11 address, 13/14
# phones, 18 account, 19 SSN, 20 driver's licence; PV1-19 visit number, 50 alternate visit
_HL7_NAMES = {"PID": frozenset({5, 6, 9}), "NK1": frozenset({2})}
_HL7_IDS = {"PID": frozenset({2, 3, 4, 11, 13, 14, 18, 19, 20}), "PV1": frozenset({19, 50}),
            "NK1": frozenset({4, 5, 6})}


def _mask_components(value: str, seps: str, mask: Callable[[str], str]) -> str:
    """Mask each component of an HL7 field, keeping its separators (and escapes whole)."""
    return re.sub(f"[^{re.escape(seps)}]+", lambda m: mask(m.group(0)), value)


def _mask_segment(segment: str, field_sep: str, seps: str) -> str:
    seg_id = segment[:3]
    names, ids = _HL7_NAMES.get(seg_id, frozenset()), _HL7_IDS.get(seg_id, frozenset())
    if not names and not ids:
        return segment
    fields = segment.split(field_sep)
    for i in range(1, len(fields)):
        if i in names:  # 张^伟: the family name's first character only, not each part's
            fields[i] = fields[i][:1] + re.sub(f"[^{re.escape(seps)}]", "*", fields[i][1:])
        elif i in ids:
            fields[i] = _mask_components(fields[i], seps, mask_identifier)
    return field_sep.join(fields)


def _mask_hl7(text: str) -> str:
    if not text.startswith("MSH") or len(text) < 8:
        return text
    field_sep, encoding = text[3], text[4:8]
    seps = "".join(dict.fromkeys(c for c in encoding + "\\" if c != field_sep))
    lines = re.split(r"(\r\n|\r|\n)", text)
    return "".join(_mask_segment(s, field_sep, seps) if i % 2 == 0 else s
                   for i, s in enumerate(lines))


_FHIR_ID_KEYS = frozenset({"identifier", "telecom", "address"})


def _mask_fhir_patient(resource: dict[str, Any]) -> dict[str, Any]:
    out = dict(resource)
    for key in _FHIR_ID_KEYS & set(resource):
        out[key] = _mask_values(resource[key], mask_identifier, keep={"system", "use", "type"})
    names = resource.get("name")
    if isinstance(names, list):
        out["name"] = [_mask_human_name(n) if isinstance(n, dict) else n for n in names]
    return out


def _mask_human_name(name: dict[str, Any]) -> dict[str, Any]:
    """A HumanName: the family name's first character stays, given names go whole (a
    one-character given name would otherwise survive as its own "first character")."""
    out = dict(name)
    for key in ("text", "family"):
        if isinstance(name.get(key), str):
            out[key] = mask_name(name[key])
    if isinstance(name.get("given"), list):
        out["given"] = ["*" * len(g) if isinstance(g, str) else g for g in name["given"]]
    return out


def _mask_values(node: Any, mask: Callable[[str], str], keep: set[str]) -> Any:
    if isinstance(node, str):
        return mask(node)
    if isinstance(node, list):
        return [_mask_values(v, mask, keep) for v in node]
    if isinstance(node, dict):
        return {k: v if k in keep else _mask_values(v, mask, keep) for k, v in node.items()}
    return node


def _mask_fhir(node: Any) -> Any:
    if isinstance(node, list):
        return [_mask_fhir(v) for v in node]
    if not isinstance(node, dict):
        return node
    if node.get("resourceType") == "Patient":
        node = _mask_fhir_patient(node)
    return {k: _mask_fhir(v) for k, v in node.items()}


def _mask_json(text: str) -> str:
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return text
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if '"Patient"' not in text:
        return text
    return orjson.dumps(_mask_fhir(doc), option=orjson.OPT_INDENT_2).decode()


def mask_text(text: str, values: dict[str, str]) -> str:
    """``text`` with the patient's values (longest first) and HL7 PID/PV1 fields and FHIR
    Patient resources masked."""
    text = _mask_json(_mask_hl7(text))
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, values[value])
    return text
