"""A hospital code that is not a 12-character 定点医药机构编号 is refused at the door even
when the gateway lists no hospitals: it would go into every msgid (30 characters only
with a 12-character code) and every platform field that names the hospital."""

from __future__ import annotations

import orjson
import pytest
from helpers import DATA, HOSPITAL

from adapters.fhir import FhirR4Adapter
from adapters.testing import RECEIVED_AT
from gateway.ingest.pipeline import _unconfigured

SAMPLE = DATA / "fhir-r4" / "valid" / "medicationrequest_contained_medication.json"


def _parsed(hospital: str):  # type: ignore[no-untyped-def]
    body = SAMPLE.read_bytes().replace(b"H33010200001", hospital.encode())
    doc = orjson.loads(body)
    return FhirR4Adapter({}).parse(orjson.dumps(doc), received_at=RECEIVED_AT)


@pytest.mark.parametrize("code", ["H3301020001", "H330102000155", "h33010200015", "H3301-200015"])
def test_a_malformed_hospital_code_is_refused_naming_the_field(code: str) -> None:
    refusal = _unconfigured(_parsed(code), None)
    assert refusal is not None and refusal.refusal is not None
    assert refusal.refusal.location == "hospital_id"
    assert "12-character" in str(refusal.refusal)


def test_a_well_formed_code_passes_when_no_hospitals_are_listed() -> None:
    assert _unconfigured(_parsed(HOSPITAL), None) is None
    # and one that is listed passes, one that is not is refused naming the key
    assert _unconfigured(_parsed(HOSPITAL), frozenset({HOSPITAL})) is None
    other = _unconfigured(_parsed("H33019999999"), frozenset({HOSPITAL}))
    assert other is not None and "hospitals[].code" in str(other.refusal)
