"""ConceptMap export (validated as R4) and $translate."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from fhir.resources.R4B.conceptmap import ConceptMap
from fhir.resources.R4B.parameters import Parameters

from mappings.crosswalk import Crosswalk, CrosswalkEntry
from mappings.fhir import FhirSystems, to_concept_map, translate

H = "310100000001"
OLD, NEW = "XG04BET001A001041803307", "XG04BET001A001010206988"
SUTURE = "C0101010011303807555"
SY = FhirSystems()
CW = Crosswalk([
    CrosswalkEntry(H, "YP1", OLD, "他达拉非片", "盒", "片", Decimal(21),
                   valid_to=date(2024, 12, 31)),
    CrosswalkEntry(H, "YP1", NEW, "他达拉非片", valid_from=date(2025, 1, 1)),
    CrosswalkEntry(H, "HC7", SUTURE, "可吸收缝线"),
])


def test_concept_map_is_valid_r4_with_a_group_per_system_pair() -> None:
    cm = to_concept_map(CW, version="42")
    ConceptMap.model_validate(cm)
    pairs = [(g["source"], g["target"]) for g in cm["group"]]
    assert pairs == [(SY.hospital(H), SY.consumable), (SY.hospital(H), SY.drug)]
    drug = cm["group"][1]["element"][0]
    assert (drug["code"], drug["display"]) == ("YP1", "他达拉非片")
    assert [t["code"] for t in drug["target"]] == [OLD, NEW]
    assert all(t["equivalence"] == "equivalent" for t in drug["target"])
    assert "1 盒 = 21 片" in drug["target"][0]["comment"]


def test_concept_map_for_one_day_keeps_only_valid_entries() -> None:
    cm = to_concept_map(CW, day=date(2025, 3, 1))
    targets = [t["code"] for g in cm["group"] for el in g["element"] for t in el["target"]]
    assert sorted(targets) == sorted([NEW, SUTURE])


def value(params: dict[str, object], name: str) -> object:
    for p in params["parameter"]:  # type: ignore[attr-defined]
        if p["name"] == name:
            return p
    return None


def test_translate_answers_with_the_code_valid_on_the_day() -> None:
    out = translate(CW, "YP1", SY.hospital(H), day=date(2024, 6, 1))
    Parameters.model_validate(out)
    assert value(out, "result") == {"name": "result", "valueBoolean": True}
    match = value(out, "match")
    concept = next(p for p in match["part"] if p["name"] == "concept")  # type: ignore[index]
    assert concept["valueCoding"] == {"system": SY.drug, "code": OLD}
    later = translate(CW, "YP1", SY.hospital(H), day=date(2025, 6, 1))
    assert NEW in str(value(later, "match"))


def test_translate_without_match_says_why() -> None:
    for out in (translate(CW, "YP9", SY.hospital(H), day=date(2024, 6, 1)),
                translate(CW, "YP1", "http://example.org/other", day=date(2024, 6, 1)),
                translate(CW, "YP1", SY.hospital(H), day=date(2024, 6, 1),
                          target_system=SY.consumable)):
        Parameters.model_validate(out)
        assert value(out, "result") == {"name": "result", "valueBoolean": False}
        assert value(out, "match") is None
        assert value(out, "message")["valueString"]  # type: ignore[index]
