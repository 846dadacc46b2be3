"""CDS Hooks request parsing and card building: pure functions over JSON values."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from canonical.errors import GatewayError
from gateway.ledger.ledger import DraftLine
from gateway.rules import Finding, RuleSet

__all__ = [
    "NATIONAL_DRUG_SYSTEM",
    "IssuedCard",
    "RequestError",
    "build_cards",
    "department_of",
    "draft_lines",
]

NATIONAL_DRUG_SYSTEM = "http://www.nhsa.gov.cn/CodeSystem/drug"
NATIONAL_SYSTEMS = frozenset({
    NATIONAL_DRUG_SYSTEM,
    "http://www.nhsa.gov.cn/CodeSystem/consumable",
})


class RequestError(GatewayError, ValueError):
    """The hook request is malformed (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class IssuedCard:
    """What the service remembers of a card for the feedback report."""

    uuid: str
    rule_id: str
    national_code: str
    suggestion_ids: tuple[str, ...]


def _orders(context: Mapping[str, Any], hook: str) -> list[dict[str, Any]]:
    bundle = context.get("draftOrders")
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        raise RequestError("context.draftOrders must be a FHIR Bundle")
    resources = [e.get("resource") for e in _list(bundle.get("entry"), "context.draftOrders.entry")
                 if isinstance(e, Mapping)]
    orders = [r for r in resources if isinstance(r, dict)
              and r.get("resourceType") == "MedicationRequest"]
    if hook == "order-select":
        selections = context.get("selections")
        if not isinstance(selections, list):
            raise RequestError("context.selections must be a list for order-select")
        wanted = {str(s) for s in selections}
        orders = [r for r in orders if f"MedicationRequest/{r.get('id')}" in wanted]
    return orders


def _object(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, ``{}`` when absent or null."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RequestError(f"{where} must be an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestError(f"{where} must be an array")
    return value


def _resources(value: Any, where: str) -> list[Mapping[str, Any]]:
    """A resource, or a Bundle's resources (prefetch values hold either)."""
    if not isinstance(value, Mapping):
        return []
    if value.get("resourceType") == "Bundle":
        return [e["resource"] for e in _list(value.get("entry"), f"{where}.entry")
                if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)]
    return [value]


def _referenced(mr: Mapping[str, Any], where: str, ref: str,
                known: Sequence[Mapping[str, Any]],
                full_urls: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The Medication a MedicationRequest's ``medicationReference`` points at: contained
    (``#id``), in the draft orders' Bundle (by ``fullUrl``) or in the prefetch
    (``Medication/id``)."""
    if ref.startswith("#"):
        for r in _list(mr.get("contained"), f"{where}.contained"):
            if isinstance(r, Mapping) and r.get("resourceType") == "Medication" \
                    and r.get("id") == ref[1:]:
                return r
        return None
    if ref in full_urls:
        return full_urls[ref]
    type_, _, rid = ref.rstrip("/").rpartition("/")
    if not type_.endswith("Medication"):
        return None
    for r in known:
        if r.get("resourceType") == "Medication" and r.get("id") == rid:
            return r
    return None


def _concept(mr: Mapping[str, Any], where: str, known: Sequence[Mapping[str, Any]],
             full_urls: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    """The order's medication as a CodeableConcept: its own, or the code of the Medication
    it references ({} when neither is there)."""
    concept = _object(mr.get("medicationCodeableConcept"), f"{where}.medicationCodeableConcept")
    if concept:
        return concept
    ref = _object(mr.get("medicationReference"), f"{where}.medicationReference")
    target = ref.get("reference")
    if not isinstance(target, str) or not target:
        return {}
    med = _referenced(mr, where, target, known, full_urls)
    if med is None:
        return {}
    code = _object(med.get("code"), f"Medication {target}.code")
    if code and not code.get("text") and isinstance(ref.get("display"), str):
        return {**code, "text": ref["display"]}
    return code


def draft_lines(
    context: Mapping[str, Any],
    hook: str,
    hospital_id: str,
    resolve_item: Callable[[str, str], str | None] | None,
    national_systems: frozenset[str] = NATIONAL_SYSTEMS,
    prefetch: Mapping[str, Any] | None = None,
) -> tuple[list[DraftLine], dict[int, dict[str, Any]]]:
    """The drug lines of the draft orders (selected ones for order-select).

    The medication is the order's ``medicationCodeableConcept`` or the code of the
    Medication its ``medicationReference`` names (contained, in the draft orders' Bundle or
    in ``prefetch``). A coding in a national system is taken as is; any other coding is
    looked up with ``resolve_item(hospital_id, code)``; an order with neither is skipped
    (no warning can be given for a drug the gateway cannot identify).

    Returns:
        The lines, and each line's MedicationRequest by line number.

    Raises:
        RequestError: the draft orders are not a Bundle, or a field the service reads has
            the wrong JSON type (named in the message).
    """
    lines: list[DraftLine] = []
    resources: dict[int, dict[str, Any]] = {}
    bundle = context.get("draftOrders")
    given = _list(bundle.get("entry"), "context.draftOrders.entry") \
        if isinstance(bundle, Mapping) else []
    entries = [e for e in given
               if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)]
    full_urls = {str(e["fullUrl"]): e["resource"] for e in entries if e.get("fullUrl")}
    known = [e["resource"] for e in entries]
    for key, value in (prefetch or {}).items():
        known.extend(_resources(value, f"prefetch.{key}"))
    for n, mr in enumerate(_orders(context, hook), start=1):
        where = f"MedicationRequest/{mr.get('id', n)}"
        concept = _concept(mr, where, known, full_urls)
        codings = [c for c in _list(concept.get("coding"), f"{where} medication coding")
                   if isinstance(c, Mapping)]
        code = next((str(c["code"]) for c in codings
                     if c.get("system") in national_systems and c.get("code")), None)
        if code is None and resolve_item is not None:
            for c in codings:
                if c.get("code"):
                    code = resolve_item(hospital_id, str(c["code"]))
                    if code:
                        break
        if not code:
            continue
        name = str(concept.get("text") or next(
            (c.get("display") for c in codings if c.get("display")), ""))
        qty = Decimal(0)
        dispense = _object(mr.get("dispenseRequest"), f"{where}.dispenseRequest")
        value = _object(dispense.get("quantity"), f"{where}.dispenseRequest.quantity").get("value")
        if value is not None:
            try:
                qty = Decimal(str(value))
            except InvalidOperation:
                qty = Decimal(0)
        lines.append(DraftLine(n, code.upper(), name, qty))
        resources[n] = mr
    return lines, resources


def _get(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]…`` where each step is an object, else None: a department is
    statistics, so an odd Encounter gives none rather than an error."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def department_of(encounter: Any) -> str:
    """The department (科室) named by an Encounter, or "" (also for a null prefetch)."""
    if not isinstance(encounter, Mapping):
        return ""
    for found in (_get(encounter, "serviceProvider", "display"),
                  _get(encounter, "serviceProvider", "identifier", "value")):
        if found:
            return str(found)
    locations = encounter.get("location")
    for loc in locations if isinstance(locations, list) else []:
        display = _get(loc, "location", "display")
        if display:
            return str(display)
    codings = _get(encounter, "serviceType", "coding")
    for c in codings if isinstance(codings, list) else []:
        if isinstance(c, Mapping) and (c.get("display") or c.get("code")):
            return str(c.get("display") or c.get("code"))
    return ""


def _replaced(mr: Mapping[str, Any], code: str, name: str) -> dict[str, Any]:
    new = copy.deepcopy(dict(mr))
    new.pop("medicationReference", None)  # the product is named by code from now on
    concept = dict(new.get("medicationCodeableConcept") or {})
    concept["coding"] = [{"system": NATIONAL_DRUG_SYSTEM, "code": code, "display": name}]
    concept["text"] = name
    new["medicationCodeableConcept"] = concept
    return new


def build_cards(findings: Sequence[Finding], resources: Mapping[int, Mapping[str, Any]],
                ruleset: RuleSet, new_id: Callable[[], str] = lambda: str(uuid.uuid4())
                ) -> tuple[list[dict[str, Any]], list[IssuedCard]]:
    """CDS Hooks cards for the findings, and what to remember of each.

    A suggesting finding gets one suggestion per winning product, each an ``update`` of the
    draft MedicationRequest with the product replaced; a blocking finding is ``critical``.
    """
    cards: list[dict[str, Any]] = []
    issued: list[IssuedCard] = []
    source: dict[str, Any] = {"label": ruleset.source_label}
    if ruleset.source_url:
        source["url"] = ruleset.source_url
    for f in findings:
        card_id = new_id()
        detail = f.detail if not f.action else f"{f.detail}\n\n**建议**：{f.action}"
        card: dict[str, Any] = {
            "uuid": card_id,
            "summary": f.summary,
            "indicator": "critical" if f.block else f.severity.value,
            "detail": detail,
            "source": {**source, "topic": {"system": ruleset.reason_system.replace(
                "override-reason", "rule"), "code": f.rule_id, "display": f.summary}},
        }
        suggestion_ids: list[str] = []
        mr = resources.get(f.line_seq)
        if f.replacements and mr is not None:
            suggestions = []
            for i, r in enumerate(f.replacements):
                sid = new_id()
                suggestion_ids.append(sid)
                price = "" if r.price is None else f"（中选价{r.price}元）"
                ref = f"MedicationRequest/{mr.get('id')}" if mr.get("id") else "处方"
                suggestions.append({
                    "label": f"改用中选产品：{r.name}{price}", "uuid": sid,
                    "isRecommended": i == 0,
                    "actions": [{"type": "update",
                                 "description": f"将{ref}的药品替换为中选产品{r.name}"
                                                f"（{r.national_code}）",
                                 "resource": _replaced(mr, r.national_code, r.name)}],
                })
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "at-most-one"
        if f.override_reasons:
            card["overrideReasons"] = [{"system": ruleset.reason_system, "code": r.code,
                                        "display": r.display} for r in f.override_reasons]
        cards.append(card)
        issued.append(IssuedCard(card_id, f.rule_id, f.product_code, tuple(suggestion_ids)))
    return cards, issued
