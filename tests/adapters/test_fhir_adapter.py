"""FHIR R4 adapter: R4 (not R5) validation, answers and the CapabilityStatement."""

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

from adapters.base import (
    Issue,
    MessageInvalid,
    Outcome,
    OutcomeStatus,
    Severity,
    rejection_issues,
)
from adapters.fhir import FhirR4Adapter, capability_statement
from adapters.testing import RECEIVED_AT
from canonical.errors import MessageRejected

DATA = Path(__file__).parent.parent / "data" / "fhir-r4"
ADAPTER = FhirR4Adapter({"organizations": {"Organization/zjsrmyy": "H33010200001"}})


def _sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads((DATA / "valid" / name).read_bytes())
    return loaded


def _reject(body: dict[str, Any]) -> MessageRejected:
    with pytest.raises(MessageRejected) as info:
        ADAPTER.parse(orjson.dumps(body), received_at=RECEIVED_AT)
    return info.value


def test_r5_models_reject_the_r4_payload_that_r4_validation_takes() -> None:
    from fhir.resources.medicationrequest import MedicationRequest as R5MedicationRequest
    from pydantic import ValidationError

    body = _sample("medicationrequest_contained_medication.json")
    with pytest.raises(ValidationError):
        R5MedicationRequest.model_validate(body)
    assert ADAPTER.parse(orjson.dumps(body), received_at=RECEIVED_AT).events


def test_every_problem_is_named_by_its_element() -> None:
    body = _sample("medicationrequest_contained_medication.json")
    del body["subject"]
    body["status"] = "dispensed"
    body["dispenseRequest"]["quantity"]["value"] = "七"
    body["contained"][0]["batch"]["expirationDate"] = "2028-02-30x"
    exc = _reject(body)
    assert isinstance(exc, MessageInvalid)
    where = {i.location for i in rejection_issues(exc)}
    assert where == {"MedicationRequest.subject", "MedicationRequest.status",
                     "MedicationRequest.dispenseRequest.quantity.value",
                     "MedicationRequest.contained[0].batch.expirationDate"}
    reply = ADAPTER.reply(None, b"", Outcome(OutcomeStatus.REJECTED, rejection_issues(exc)),
                          now=RECEIVED_AT)
    assert reply.status == 400
    outcome = orjson.loads(reply.body)
    OperationOutcome.model_validate(outcome)
    expressions = [i["expression"][0] for i in outcome["issue"]]
    assert sorted(expressions) == sorted(where)
    assert {i["code"] for i in outcome["issue"]} == {"required", "code-invalid", "value"}


def test_created_then_duplicate() -> None:
    raw = (DATA / "valid" / "medicationrequest_contained_medication.json").read_bytes()
    parsed = ADAPTER.parse(raw, received_at=RECEIVED_AT)
    created = ADAPTER.reply(parsed, raw, Outcome(OutcomeStatus.ACCEPTED), now=RECEIVED_AT)
    assert created.status == 201
    assert created.headers["Location"] == "MedicationRequest/cf20261123000123-1/_history/1"
    body = orjson.loads(created.body)
    assert body["identifier"][0]["value"] == "CF20261123000123"
    assert body["meta"]["versionId"] == "1"
    again = ADAPTER.reply(parsed, raw, Outcome(OutcomeStatus.DUPLICATE), now=RECEIVED_AT)
    assert again.status == 200


def test_a_cancellation_is_not_a_duplicate_of_the_order() -> None:
    body = _sample("medicationrequest_contained_medication.json")
    order = ADAPTER.parse(orjson.dumps(body), received_at=RECEIVED_AT)
    body["status"] = "cancelled"
    cancel = ADAPTER.parse(orjson.dumps(body), received_at=RECEIVED_AT)
    assert order.control_id != cancel.control_id
    assert cancel.events[0].order_control is not None
    assert cancel.events[0].order_control.value == "CA"


def test_transaction_response_has_one_entry_per_request() -> None:
    raw = (DATA / "valid" / "bundle_transaction_bundled_medication.json").read_bytes()
    parsed = ADAPTER.parse(raw, received_at=RECEIVED_AT)
    reply = ADAPTER.reply(parsed, raw, Outcome(OutcomeStatus.ACCEPTED), now=RECEIVED_AT)
    bundle = orjson.loads(reply.body)
    assert reply.status == 200
    assert bundle["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in bundle["entry"]]
    assert statuses == ["201 Created"] * 3
    assert bundle["entry"][1]["response"]["location"].startswith("MedicationRequest/")


def test_batch_answers_the_bad_entry_alone() -> None:
    raw = (DATA / "valid" / "bundle_batch_one_bad_entry.json").read_bytes()
    parsed = ADAPTER.parse(raw, received_at=RECEIVED_AT)
    reply = ADAPTER.reply(parsed, raw, Outcome(OutcomeStatus.ACCEPTED), now=RECEIVED_AT)
    entries = orjson.loads(reply.body)["entry"]
    assert [e["response"]["status"] for e in entries] == ["201 Created", "400 Bad Request"]
    issue = entries[1]["response"]["outcome"]["issue"][0]
    assert issue["expression"] == ["Bundle.entry[1].resource.suppliedItem.quantity.value"]


def test_transaction_is_all_or_nothing() -> None:
    body = _sample("bundle_transaction_bundled_medication.json")
    body["entry"][1]["resource"]["dispenseRequest"]["quantity"]["value"] = "一"
    exc = _reject(body)
    assert exc.location == "Bundle.entry[1].resource.dispenseRequest.quantity.value"


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        (Outcome(OutcomeStatus.REJECTED, (Issue(Severity.ERROR, "x", "102", "A.b"),)), 400),
        (Outcome(OutcomeStatus.REJECTED, (Issue(Severity.ERROR, "no hospital", "204", "A"),)),
         422),
        (Outcome(OutcomeStatus.ACCEPTED, (Issue(Severity.ERROR, "集采", "business-rule"),),
                 blocked=True), 422),
        (Outcome(OutcomeStatus.ERROR), 500),
        (Outcome(OutcomeStatus.ERROR, (Issue(Severity.ERROR, "disk full", "207"),)), 500),
    ],
)
def test_error_status_codes(outcome: Outcome, status: int) -> None:
    reply = ADAPTER.reply(None, b"{}", outcome, now=RECEIVED_AT)
    assert reply.status == status
    assert reply.content_type == "application/fhir+json"
    OperationOutcome.model_validate(orjson.loads(reply.body))


def test_national_code_is_the_item_when_no_hospital_coding() -> None:
    body = _sample("medicationrequest_codeableconcept_cancelled.json")
    codings = body["medicationCodeableConcept"]["coding"]
    body["medicationCodeableConcept"]["coding"] = [c for c in codings if "hospital" not in
                                                   c["system"]]
    line = ADAPTER.parse(orjson.dumps(body), received_at=RECEIVED_AT).events[0].lines[0]
    assert line.item_code == "XL02BGA045A001010104641"
    assert line.national_code is None
    assert line.standard_code == "86904641003065"


def test_capability_statement_is_valid_r4() -> None:
    cs = capability_statement("https://gw.zjsrmyy.cn/fhir/")
    CapabilityStatement.model_validate(copy.deepcopy(cs))
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["implementation"]["url"] == "https://gw.zjsrmyy.cn/fhir"
    types = {r["type"] for r in cs["rest"][0]["resource"]}
    assert types == {"MedicationRequest", "MedicationDispense", "SupplyRequest",
                     "SupplyDelivery"}
    assert ADAPTER.capability_statement("https://x/fhir") == capability_statement(
        "https://x/fhir")


def test_contained_resource_of_unknown_type_is_named() -> None:
    body = _sample("medicationrequest_contained_medication.json")
    body["contained"][0]["resourceType"] = "Medicament"
    exc = _reject(body)
    assert isinstance(exc, MessageInvalid)
    issues = rejection_issues(exc)
    assert [i.location for i in issues] == ["MedicationRequest.contained[0].resourceType"]
    assert "Medicament" in issues[0].text
