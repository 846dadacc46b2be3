"""FHIR R4 (4.0.1) over HTTP."""

from adapters.fhir.adapter import (
    FHIR_JSON,
    FhirR4Adapter,
    FhirR4Config,
    capability_statement,
    operation_outcome,
)
from adapters.fhir.validation import validate_resource

__all__ = [
    "FHIR_JSON",
    "FhirR4Adapter",
    "FhirR4Config",
    "capability_statement",
    "operation_outcome",
    "validate_resource",
]
