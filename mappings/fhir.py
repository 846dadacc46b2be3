"""The crosswalk as a FHIR R4 ConceptMap, and the ``$translate`` operation over it.

Each hospital's item codes form their own code system; the national codes
form one system per kind (drugs, consumables, herbal pieces). The ConceptMap
has one group per (hospital system, national system) pair. Unit factors and
validity are not part of R4's element model, so they travel in the target's
``comment`` (for people) and in extensions (for machines).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from codes import CodeKind, kind_of
from mappings.crosswalk import Crosswalk
from mappings.entry import CrosswalkEntry

__all__ = ["FhirSystems", "to_concept_map", "translate"]

_EXT = "urn:jicai-gateway:fhir:StructureDefinition:"


@dataclass(frozen=True, slots=True)
class FhirSystems:
    """The code-system URIs used in the ConceptMap (override them to a province's own)."""

    hospital_prefix: str = "urn:jicai-gateway:hospital:"
    drug: str = "urn:jicai-gateway:nhsa:drug"
    consumable: str = "urn:jicai-gateway:nhsa:consumable"
    herbal: str = "urn:jicai-gateway:nhsa:herbal"
    concept_map_url: str = "urn:jicai-gateway:conceptmap:crosswalk"

    def hospital(self, hospital_id: str) -> str:
        """The code system of one hospital's item codes."""
        return f"{self.hospital_prefix}{hospital_id}"

    def hospital_of(self, system: str) -> str | None:
        """The hospital id a hospital code-system URI names, or None."""
        if system.startswith(self.hospital_prefix) and len(system) > len(self.hospital_prefix):
            return system[len(self.hospital_prefix):]
        return None

    def national(self, code: str) -> str:
        """The national code system a code belongs to (by its kind)."""
        kind = kind_of(code)
        if kind is CodeKind.CONSUMABLE:
            return self.consumable
        if kind is CodeKind.HERBAL_PIECE:
            return self.herbal
        return self.drug


def _validity_text(e: CrosswalkEntry) -> str:
    parts = []
    if e.hospital_unit or e.national_unit or e.factor != 1:
        hospital_unit = e.hospital_unit or "院内单位"
        parts.append(f"1 {hospital_unit} = {e.factor} {e.national_unit or '医保单位'}")
    if e.valid_from or e.valid_to:
        lo = e.valid_from.isoformat() if e.valid_from else ""
        hi = e.valid_to.isoformat() if e.valid_to else ""
        parts.append(f"valid {lo}..{hi}")
    return "; ".join(parts)


def _target(e: CrosswalkEntry) -> dict[str, Any]:
    target: dict[str, Any] = {"code": e.national_code, "equivalence": "equivalent"}
    comment = _validity_text(e)
    if comment:
        target["comment"] = comment
    ext: list[dict[str, Any]] = [{"url": _EXT + "unit-factor", "valueDecimal": float(e.factor)}]
    if e.valid_from or e.valid_to:
        period: dict[str, str] = {}
        if e.valid_from:
            period["start"] = e.valid_from.isoformat()
        if e.valid_to:
            period["end"] = e.valid_to.isoformat()
        ext.append({"url": _EXT + "validity", "valuePeriod": period})
    target["extension"] = ext
    return target


def to_concept_map(
    entries: Crosswalk | Iterable[CrosswalkEntry],
    *,
    day: date | None = None,
    systems: FhirSystems | None = None,
    version: str = "",
    status: str = "active",
    name: str = "JicaiCrosswalk",
    title: str = "院内项目与国家医保编码对照 (对码)",
) -> dict[str, Any]:
    """Export crosswalk entries as an R4 ConceptMap resource (a plain dict, JSON-ready).

    Args:
        entries: the crosswalk or some of its entries.
        day: only entries valid on this day; all entries when None.
        systems: code-system URIs; :class:`FhirSystems` defaults when None.
        version: the ConceptMap's business version (e.g. the crosswalk's change number).
        status: draft | active | retired | unknown.
        name: computer-friendly name; title: the human title.

    Returns:
        A ConceptMap with one group per (hospital, national code system).
    """
    sy = systems or FhirSystems()
    groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for e in sorted(entries, key=lambda e: (e.hospital_id, e.item_code,
                                           e.valid_from or date.min)):
        if day is not None and not e.valid_on(day):
            continue
        elements = groups.setdefault((sy.hospital(e.hospital_id), sy.national(e.national_code)), {})
        element = elements.get(e.item_code)
        if element is None:
            element = {"code": e.item_code}
            if e.item_name:
                element["display"] = e.item_name
            element["target"] = []
            elements[e.item_code] = element
        element["target"].append(_target(e))
    resource: dict[str, Any] = {
        "resourceType": "ConceptMap",
        "url": sy.concept_map_url,
        "name": name,
        "title": title,
        "status": status,
        "group": [
            {"source": source, "target": target, "element": list(elements.values())}
            for (source, target), elements in sorted(groups.items())
        ],
    }
    if version:
        resource["version"] = version
    return resource


def _parameters(
    result: bool, message: str, matches: list[list[dict[str, Any]]]
) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": "result", "valueBoolean": result},
        {"name": "message", "valueString": message},
    ]
    params.extend({"name": "match", "part": m} for m in matches)
    return {"resourceType": "Parameters", "parameter": params}


def translate(
    crosswalk: Crosswalk,
    code: str,
    system: str,
    *,
    day: date,
    target_system: str | None = None,
    systems: FhirSystems | None = None,
) -> dict[str, Any]:
    """The ``ConceptMap/$translate`` answer for one hospital code (a Parameters resource dict).

    Args:
        crosswalk: the crosswalk to answer from.
        code: the hospital item code.
        system: the hospital's code-system URI (``FhirSystems.hospital(hospital_id)``).
        day: the day the translation must be valid on.
        target_system: only answer with codes of this national system, when given.
        systems: code-system URIs; :class:`FhirSystems` defaults when None.

    Returns:
        Parameters with ``result`` (true when a match exists), ``message`` and, on a
        match, one ``match`` with equivalence, concept and source.
    """
    sy = systems or FhirSystems()
    hospital = sy.hospital_of(system)
    if hospital is None:
        return _parameters(False, f"unknown code system {system!r}: expected "
                                  f"{sy.hospital_prefix}<hospital id>", [])
    entry = crosswalk.lookup(hospital, code, day)
    if entry is None:
        return _parameters(False, f"no crosswalk entry for {code!r} of hospital {hospital} "
                                  f"on {day.isoformat()}", [])
    national_system = sy.national(entry.national_code)
    if target_system is not None and target_system != national_system:
        return _parameters(False, f"{code!r} maps to a code of {national_system}, "
                                  f"not {target_system}", [])
    concept: dict[str, Any] = {"system": national_system, "code": entry.national_code}
    match: list[dict[str, Any]] = [
        {"name": "equivalence", "valueCode": "equivalent"},
        {"name": "concept", "valueCoding": concept},
        {"name": "source", "valueUri": sy.concept_map_url},
    ]
    text = f"{code} → {entry.national_code}"
    comment = _validity_text(entry)
    return _parameters(True, f"{text} ({comment})" if comment else text, [match])
