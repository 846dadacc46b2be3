"""The conformance kit run on the FHIR R4 adapter with its sample corpus."""

from pathlib import Path

from adapters.fhir import FhirR4Adapter
from adapters.testing import make_conformance_tests

DATA = Path(__file__).parent.parent / "data" / "fhir-r4"

CONFIG = {
    "organizations": {"Organization/zjsrmyy": "H33010200001"},
    "hospital_code_systems": ["http://hospital.zjsrmyy.cn/CodeSystem/drug"],
}

TestFhirR4Conformance = make_conformance_tests(FhirR4Adapter, CONFIG, DATA, alias="fhir-r4")
