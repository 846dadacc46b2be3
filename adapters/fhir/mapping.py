"""Validated FHIR R4 resources (as JSON objects) to canonical events.

* MedicationRequest → PRESCRIPTION: medication[x], dispenseRequest.quantity;
  document = identifier / groupIdentifier; status → order control.
* MedicationDispense → DISPENSE (DISPENSE_RETURN when cancelled or
  entered-in-error): medication[x], quantity; document = authorizingPrescription.
* SupplyRequest → PURCHASE_ORDER: item[x], quantity, supplier; document = identifier.
* SupplyDelivery → RECEIPT: suppliedItem.item[x], suppliedItem.quantity;
  document = identifier / basedOn.

A medication concept's codings are read as: the hospital's own coding (its
system configured, or any system that is not a national one) gives the item
code; without it, the national medical-insurance code does, and the crosswalk
decides. A 14-digit 药品本位码 coding fills ``standard_code``.

What R4 has no element for comes in the gateway's extensions (``extension_base``/name):
on a line's resource or Medication ``specification``, ``unit-price``, ``trace-code``,
``approval-number``, ``generic-name``, ``manufacture-date``, ``prescription-only``; on a
MedicationDispense ``prescriber``, ``phar-prac-cert-no``, ``hi-feesetl-type``,
``setl-id``, ``original-no`` and the flag ``rx-circ-flag`` (外配处方); on a
SupplyDelivery or its suppliedItem the flag ``prod-geay-flag`` (赠品). A flag is a
valueBoolean, or 1/0, Y/N, true/false, 是/否 as valueCode / valueString / valueInteger;
anything else is refused naming the extension.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from canonical.errors import MessageRejected
from canonical.model import Event, EventKind, Line, OrderControl, Party, Patient

__all__ = ["MappingSettings", "ResourceRef", "event_from_resource", "find_hospital"]

_STANDARD_CODE = re.compile(r"^86\d{12}$")
_R4_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")

Json = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class MappingSettings:
    """The configuration facts mapping needs (see :class:`adapters.fhir.FhirR4Config`)."""

    hospital_identifier_system: str
    organizations: Mapping[str, str]
    default_hospital: str | None
    hospital_code_systems: frozenset[str]
    national_code_systems: frozenset[str]
    standard_code_system: str
    extension_base: str


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """One resource of a message and where it sits (for locations and the reply)."""

    resource_type: str
    resource: Json
    path: str  # FHIRPath of the resource, e.g. "Bundle.entry[1].resource"
    full_url: str = ""


def _walk(value: Any) -> Iterator[Json]:
    # decoded JSON: dict and list (an abstract Mapping check costs twice the walk)
    if isinstance(value, dict):
        yield value
        for key, v in value.items():
            if key != "contained":
                yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def find_hospital(resource: Json, settings: MappingSettings, path: str) -> str:
    """The 定点医药机构编号 a resource belongs to.

    Looked up, in order: any identifier with the configured hospital system, any
    reference listed under ``organizations``, the configured default.

    Raises:
        MessageRejected: none of them names the hospital.
    """
    system = settings.hospital_identifier_system
    orgs = settings.organizations
    for node in _walk(resource):
        if node.get("system") == system and isinstance(node.get("value"), str):
            return str(node["value"])
        ref = node.get("reference")
        if isinstance(ref, str) and ref in orgs:
            return orgs[ref]
    if settings.default_hospital:
        return settings.default_hospital
    raise MessageRejected(
        f"{path}: no hospital identifier: send the 定点医药机构编号 as an identifier with "
        f"system {system!r} (e.g. in performer or requester), or list the organization "
        "reference under the adapter's 'organizations'", code="204", location=path)


def _ext_map(elements: Sequence[Json | None], base: str) -> dict[str, list[Any]]:
    """Every gateway extension's values by name (``unit-price`` …), scopes in order: one
    walk over the extensions instead of one per name (a line reads seven of them)."""
    prefix = f"{base}/"
    cut = len(prefix)
    out: dict[str, list[Any]] = {}
    seen: set[int] = set()
    for element in elements:
        if not element or id(element) in seen:
            continue
        seen.add(id(element))
        for ext in element.get("extension", ()) or ():
            url = ext.get("url")
            if isinstance(url, str) and url.startswith(prefix):
                values = out.setdefault(url[cut:], [])
                values.extend(v for k, v in ext.items() if k.startswith("value"))
    return out


def _ref_id(ref: Json | None) -> str:
    if not ref:
        return ""
    ident = ref.get("identifier")
    if isinstance(ident, Mapping) and ident.get("value"):
        return str(ident["value"])
    reference = str(ref.get("reference", ""))
    return reference.rsplit("/", 1)[-1].lstrip("#") if reference else ""


def _party(ref: Json | None) -> Party | None:
    if not ref:
        return None
    pid, name = _ref_id(ref), str(ref.get("display", ""))
    return Party(pid, name) if (pid or name) else None


def _time(value: Any, path: str, fallback: datetime) -> datetime:
    if not value:
        return fallback
    text = str(value)
    if _R4_DATE.match(text):  # a date without time: midnight China time
        text = (text + "-01-01")[:10] + "T00:00:00+08:00"
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MessageRejected(f"{path}: not a FHIR dateTime: {value!r}", code="102",
                              location=path) from None
    if parsed.tzinfo is None:
        raise MessageRejected(f"{path}: a dateTime with a time needs a time zone",
                              code="102", location=path)
    return parsed


def _decimal(value: Any, path: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise MessageRejected(f"{path}: not a number: {value!r}", code="102",
                              location=path) from None
    if not d.is_finite():
        raise MessageRejected(f"{path}: not a finite number", code="102", location=path)
    return d


@dataclass(frozen=True, slots=True)
class _Product:
    code: str
    name: str
    standard_code: str
    medication: Json | None  # the Medication resource, when one was referenced


def _concept_codes(concept: Json, settings: MappingSettings, path: str) -> _Product:
    hospital = national = standard = ""
    name = str(concept.get("text", ""))
    hospital_name = ""
    for coding in concept.get("coding", ()) or ():
        system, code = str(coding.get("system", "")), str(coding.get("code", ""))
        if not code:
            continue
        if _STANDARD_CODE.match(code) and (system == settings.standard_code_system
                                           or system not in settings.national_code_systems):
            standard = standard or code
        elif system in settings.national_code_systems:
            national = national or code
        elif (not settings.hospital_code_systems or system in settings.hospital_code_systems) \
                and not hospital:
            hospital, hospital_name = code, str(coding.get("display", ""))
    code = hospital or national
    if not code:
        raise MessageRejected(
            f"{path}: no hospital or national medical-insurance coding to identify the item",
            code="101", location=f"{path}.coding")
    return _Product(code, hospital_name or name, standard, None)


def _product(owner: Json, prefix: str, path: str, settings: MappingSettings,
             medications: Mapping[str, Json]) -> _Product:
    """The item of ``{prefix}CodeableConcept`` or ``{prefix}Reference`` of ``owner``."""
    concept = owner.get(f"{prefix}CodeableConcept")
    if isinstance(concept, Mapping):
        return _concept_codes(concept, settings, f"{path}.{prefix}CodeableConcept")
    ref = owner.get(f"{prefix}Reference")
    ref_path = f"{path}.{prefix}Reference"
    if not isinstance(ref, Mapping):
        raise MessageRejected(f"{path}.{prefix}[x]: the item is missing", code="101",
                              location=f"{path}.{prefix}[x]")
    target = medications.get(str(ref.get("reference", "")))
    if target is not None and isinstance(target.get("code"), Mapping):
        product = _concept_codes(target["code"], settings, f"{ref_path}.resolve().code")
        return _Product(product.code, product.name, product.standard_code, target)
    ident = ref.get("identifier")
    if isinstance(ident, Mapping) and ident.get("value"):
        return _Product(str(ident["value"]), str(ref.get("display", "")), "", None)
    raise MessageRejected(
        f"{ref_path}: the item cannot be identified: reference a contained or bundled "
        "Medication with a code, or give the reference an identifier", code="101",
        location=ref_path)


def _quantity(q: Any, path: str) -> tuple[Decimal, str]:
    if not isinstance(q, Mapping) or q.get("value") is None:
        raise MessageRejected(f"{path}: the quantity is required to count the item",
                              code="101", location=path)
    return _decimal(q["value"], f"{path}.value"), str(q.get("unit") or q.get("code") or "")


def _line(owner: Json, item_prefix: str, qty: Any, qty_path: str, ref: ResourceRef,
          settings: MappingSettings, medications: Mapping[str, Json],
          oc: OrderControl | None, supplier: Party | None = None,
          item_path: str | None = None) -> Line:
    product = _product(owner, item_prefix, item_path or ref.path, settings, medications)
    quantity, unit = _quantity(qty, qty_path)
    med = product.medication or {}
    scopes: list[Json | None] = [ref.resource, owner, med]
    base = settings.extension_base
    exts = _ext_map(scopes, base)
    price_values = exts.get("unit-price")
    price = None
    if price_values:
        raw = price_values[0]
        value = raw.get("value") if isinstance(raw, Mapping) else raw
        price = _decimal(value, f"{ref.path}.extension('unit-price')")
    batch = med.get("batch") or {}
    form = med.get("form") or {}
    form_name = str(form.get("text", "")) or next(
        (str(c.get("display", "")) for c in form.get("coding", ()) or () if c.get("display")), "")
    spec = exts.get("specification")
    approval = exts.get("approval-number")
    generic = exts.get("generic-name")
    maker = med.get("manufacturer") or {}
    return Line(
        seq=1,
        item_code=product.code,
        item_name=product.name,
        specification=str(spec[0]) if spec else "",
        manufacturer=str(maker.get("display", "")),
        quantity=quantity,
        unit=unit,
        price=price,
        generic_name=str(generic[0]) if generic else "",
        dosage_form=form_name,
        approval_no=str(approval[0]) if approval else "",
        standard_code=product.standard_code,
        lot_no=str(batch.get("lotNumber", "")),
        expiry=str(batch.get("expirationDate", ""))[:10],
        trace_codes=tuple(str(v) for v in exts.get("trace-code", ())),
        supplier=supplier,
        order_control=oc,
        manu_date=_manu_date(exts.get("manufacture-date", []), ref.path),
        rx_only=_rx_only(exts.get("prescription-only", [])),
    )


def _manu_date(values: list[Any], path: str) -> str:
    if not values:
        return ""
    text = str(values[0])[:10]
    try:
        date.fromisoformat(text)
    except ValueError:
        where = f"{path}.extension('manufacture-date')"
        raise MessageRejected(f"{where} is not a date: {values[0]!r}", code="102",
                              location=where) from None
    return text


def _rx_only(values: list[Any]) -> bool | None:
    return bool(values[0]) if values and isinstance(values[0], bool) else None


# facts of a dispense the platform needs and R4 has no element for (extension → extra)
_DISPENSE_EXTRA = ("phar_prac_cert_no", "hi_feesetl_type", "setl_id", "original_no")
# yes/no facts R4 has no element for, kept as the platforms' "1" / "0" (extension → extra)
_DISPENSE_FLAGS = ("rx_circ_flag",)  # 外配处方: a prescription from another institution
_DELIVERY_FLAGS = ("prod_geay_flag",)  # 赠品: goods given, not bought
_YES = frozenset({"1", "y", "yes", "t", "true", "是"})
_NO = frozenset({"0", "n", "no", "f", "false", "否"})


def _prescriber(r: Json, base: str) -> Party | None:
    # R4 keeps the prescriber on the MedicationRequest; a dispense sent alone names
    # them in an extension (valueReference), as the platform wants them on the sale
    values = _ext_map([r], base).get("prescriber")
    return _party(values[0]) if values and isinstance(values[0], Mapping) else None


def _flag(value: Any, where: str) -> str:
    """valueBoolean, or a valueCode / valueString / valueInteger saying yes or no, as
    "1" / "0"."""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value).strip().lower() if isinstance(value, str | int) else ""
    if text in _YES:
        return "1"
    if text in _NO:
        return "0"
    raise MessageRejected(
        f"{where} is {value!r}: a yes/no flag takes valueBoolean, or 1/0, Y/N, true/false "
        "or 是/否", code="102", location=where)


def _flags(exts: Mapping[str, list[Any]], keys: Sequence[str], path: str
           ) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key in keys:
        name = key.replace("_", "-")
        values = exts.get(name)
        if values:
            out.append((key, _flag(values[0], f"{path}.extension('{name}')")))
    return out


def _dispense_extra(r: Json, base: str, path: str) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    exts = _ext_map([r], base)
    for key in _DISPENSE_EXTRA:
        values = exts.get(key.replace("_", "-"))
        if values and str(values[0]):
            out.append((key, str(values[0])))
    out.extend(_flags(exts, _DISPENSE_FLAGS, path))
    return tuple(out)


def _identifier(resource: Json, *keys: str) -> str:
    for key in keys:
        value = resource.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, Mapping) and value.get("value"):
            return str(value["value"])
    return ""


def _patient(resource: Json) -> Patient | None:
    subject = resource.get("subject") or resource.get("patient")
    if not isinstance(subject, Mapping):
        return None
    encounter = resource.get("encounter") or resource.get("context") or {}
    return Patient(id=_ref_id(subject), name=str(subject.get("display", "")),
                   visit_no=_ref_id(encounter) if isinstance(encounter, Mapping) else "")


_MR_CONTROL = {"active": OrderControl.NEW, "draft": OrderControl.NEW,
               "on-hold": OrderControl.NEW, "cancelled": OrderControl.CANCEL,
               "entered-in-error": OrderControl.CANCEL, "stopped": OrderControl.DISCONTINUE}
_SR_CONTROL = {"active": OrderControl.NEW, "draft": OrderControl.NEW,
               "suspended": OrderControl.DISCONTINUE, "cancelled": OrderControl.CANCEL,
               "entered-in-error": OrderControl.CANCEL}


def event_from_resource(ref: ResourceRef, *, event_id: str, source: str, control_id: str,
                        hospital_id: str, received_at: datetime, settings: MappingSettings,
                        medications: Mapping[str, Json]) -> Event:
    """The canonical event of one validated MedicationRequest, MedicationDispense,
    SupplyRequest or SupplyDelivery.

    Raises:
        MessageRejected: the resource is valid R4 but lacks what an event needs.
    """
    r, path, rtype = ref.resource, ref.path, ref.resource_type
    local = {f"#{c.get('id')}": c for c in r.get("contained", ()) or ()
             if c.get("resourceType") == "Medication"}
    meds = {**medications, **local}
    status = str(r.get("status", ""))
    common: dict[str, Any] = {"event_id": event_id, "hospital_id": hospital_id,
                              "source": source, "control_id": control_id}
    if rtype == "MedicationRequest":
        oc = OrderControl.CHANGE if r.get("priorPrescription") and status == "active" \
            else _MR_CONTROL.get(status)
        dr = r.get("dispenseRequest") or {}
        line = _line(r, "medication", dr.get("quantity"), f"{path}.dispenseRequest.quantity",
                     ref, settings, meds, oc)
        return Event(kind=EventKind.PRESCRIPTION, lines=(line,),
                     occurred_at=_time(r.get("authoredOn"), f"{path}.authoredOn", received_at),
                     document_no=_identifier(r, "identifier", "groupIdentifier")
                     or str(r.get("id", "")),
                     order_control=oc, prescriber=_party(r.get("requester")),
                     patient=_patient(r), **common)
    if rtype == "MedicationDispense":
        kind = EventKind.DISPENSE_RETURN if status in ("cancelled", "entered-in-error") \
            else EventKind.DISPENSE
        line = _line(r, "medication", r.get("quantity"), f"{path}.quantity", ref, settings,
                     meds, None)
        performers = r.get("performer") or []
        pharmacist = _party(performers[0].get("actor")) if performers else None
        auth = r.get("authorizingPrescription") or []
        doc = _ref_id(auth[0]) if auth else ""
        when = r.get("whenHandedOver") or r.get("whenPrepared")
        return Event(kind=kind, lines=(line,),
                     occurred_at=_time(when, f"{path}.whenHandedOver", received_at),
                     document_no=doc or _identifier(r, "identifier") or str(r.get("id", "")),
                     pharmacist=pharmacist, patient=_patient(r),
                     prescriber=_prescriber(r, settings.extension_base),
                     extra=_dispense_extra(r, settings.extension_base, path), **common)
    if rtype == "SupplyRequest":
        oc = _SR_CONTROL.get(status)
        suppliers = r.get("supplier") or []
        supplier = _party(suppliers[0]) if suppliers else None
        line = _line(r, "item", r.get("quantity"), f"{path}.quantity", ref, settings, meds, oc,
                     supplier)
        return Event(kind=EventKind.PURCHASE_ORDER, lines=(line,),
                     occurred_at=_time(r.get("authoredOn"), f"{path}.authoredOn", received_at),
                     document_no=_identifier(r, "identifier") or str(r.get("id", "")),
                     order_control=oc, prescriber=_party(r.get("requester")),
                     department=_party(r.get("deliverTo")), supplier=supplier, **common)
    # SupplyDelivery
    item = r.get("suppliedItem")
    item_path = f"{path}.suppliedItem"
    if not isinstance(item, Mapping):
        raise MessageRejected(f"{item_path}: the supplied item is required", code="101",
                              location=item_path)
    supplier = _party(r.get("supplier"))
    line = _line(item, "item", item.get("quantity"), f"{item_path}.quantity", ref, settings,
                 meds, None, supplier, item_path=item_path)
    period = r.get("occurrencePeriod") or {}
    when = r.get("occurrenceDateTime") or period.get("end") or period.get("start")
    based = r.get("basedOn") or []
    receivers = r.get("receiver") or []
    extra = [("based_on", _ref_id(based[0]))] if based else []
    # one SupplyDelivery is one line: its flag may sit on the resource or on suppliedItem
    base = settings.extension_base
    flags = dict(_flags(_ext_map([r], base), _DELIVERY_FLAGS, path))
    for key, value in _flags(_ext_map([item], base), _DELIVERY_FLAGS, item_path):
        flags.setdefault(key, value)
    extra.extend(flags.items())
    return Event(kind=EventKind.RECEIPT, lines=(line,),
                 occurred_at=_time(when, f"{path}.occurrence[x]", received_at),
                 document_no=_identifier(r, "identifier") or (_ref_id(based[0]) if based else "")
                 or str(r.get("id", "")),
                 supplier=supplier, pharmacist=_party(receivers[0]) if receivers else None,
                 department=_party(r.get("destination")),
                 extra=tuple(extra), **common)
