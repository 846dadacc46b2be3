"""The FHIR R4 adapter: POSTed resources and transaction / batch Bundles in, FHIR answers out.

The gateway mounts it on ``POST /fhir``, ``POST /fhir/{type}`` and
``GET /fhir/metadata``; it calls :meth:`FhirR4Adapter.parse`, commits the events
and only then :meth:`FhirR4Adapter.reply` (commit before acknowledge).

Dedup key: a single resource is identified by type, business identifier (or id),
status and meta.versionId, so re-sending it is a duplicate while a status
change (a cancelled prescription) is a new message; a Bundle by its identifier
(or id), else by a digest of its bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapters.base import (
    Issue,
    MessageInvalid,
    Outcome,
    OutcomeStatus,
    ParsedMessage,
    Reply,
    ReplySummary,
    Severity,
)
from adapters.fhir.mapping import MappingSettings, ResourceRef, event_from_resource, find_hospital
from adapters.fhir.validation import EVENT_TYPES, SUPPORTED_TYPES, validate_resource
from canonical.errors import MessageRejected
from canonical.model import Event

__all__ = [
    "FHIR_JSON",
    "FhirR4Adapter",
    "FhirR4Config",
    "capability_statement",
    "operation_outcome",
]

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"

# HL7 table 0357 codes (MessageRejected.code) to FHIR IssueType codes
_ISSUE_TYPE = {"100": "structure", "101": "required", "102": "value", "103": "code-invalid",
               "200": "not-supported", "201": "not-supported", "202": "not-supported",
               "203": "not-supported", "204": "not-found", "205": "duplicate",
               "206": "lock-error", "207": "exception"}
_UNPROCESSABLE = frozenset({"204", "205", "206", "business-rule", "processing", "not-found"})
_REASON = {200: "OK", 201: "Created", 400: "Bad Request", 422: "Unprocessable Entity",
           500: "Internal Server Error"}


class FhirR4Config(BaseModel):
    """Configuration of the FHIR R4 adapter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hospital_identifier_system: str = Field(
        default="http://www.nhsa.gov.cn/CodeSystem/fixmedins",
        description="identifier system whose value is the 12-character 定点医药机构编号")
    organizations: dict[str, str] = Field(
        default_factory=dict,
        description="Organization reference (e.g. 'Organization/zjsrmyy') → 定点医药机构编号")
    default_hospital: str | None = Field(
        default=None, description="hospital code when a resource names none")
    hospital_code_systems: tuple[str, ...] = Field(
        default=(), description="coding systems of the hospital's own item codes "
                                "(empty: any system that is not a national one)")
    national_code_systems: tuple[str, ...] = Field(
        default=("http://www.nhsa.gov.cn/CodeSystem/drug",
                 "http://www.nhsa.gov.cn/CodeSystem/consumable"),
        description="coding systems of national medical-insurance codes")
    standard_code_system: str = Field(
        default="http://www.nmpa.gov.cn/CodeSystem/standard-code",
        description="coding system of the 14-digit 药品本位码")
    extension_base: str = Field(
        default="http://jicai-gateway.org/fhir/StructureDefinition",
        description="base URL of the gateway's extensions (specification, unit-price, "
                    "trace-code, approval-number, generic-name, rx-circ-flag, "
                    "prod-geay-flag …)")
    max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="largest body taken")
    max_entries: int = Field(default=1000, ge=1, description="most entries in one Bundle")

    @field_validator("default_hospital")
    @classmethod
    def _hospital_code(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 12 or not v.isalnum()):
            raise ValueError(f"{v!r}: a 定点医药机构编号 has 12 letters/digits")
        return v


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:24]


def _server_id(key: str) -> str:
    return hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()[:16]


def _json_body(value: Any) -> bytes:
    return orjson.dumps(value)


class FhirR4Adapter:
    """FHIR R4 (4.0.1) MedicationRequest, MedicationDispense, SupplyRequest, SupplyDelivery."""

    name: ClassVar[str] = "fhir-r4"
    kinds: ClassVar[frozenset[str]] = EVENT_TYPES | {"Bundle"}
    config_model: ClassVar[type[BaseModel]] = FhirR4Config
    transport: ClassVar[str] = "http"

    def __init__(self, config: FhirR4Config | Mapping[str, Any] | None = None) -> None:
        if config is None:
            config = FhirR4Config()
        elif not isinstance(config, FhirR4Config):
            config = FhirR4Config.model_validate(config)
        self.config = config
        self._settings = MappingSettings(
            hospital_identifier_system=config.hospital_identifier_system,
            organizations=dict(config.organizations),
            default_hospital=config.default_hospital,
            hospital_code_systems=frozenset(config.hospital_code_systems),
            national_code_systems=frozenset(config.national_code_systems),
            standard_code_system=config.standard_code_system,
            extension_base=config.extension_base.rstrip("/"),
        )

    # ---------------------------------------------------------------- parse

    def _decode(self, raw: bytes) -> dict[str, Any]:
        if len(raw) > self.config.max_bytes:
            raise MessageRejected(f"body of {len(raw)} bytes exceeds {self.config.max_bytes}",
                                  code="100", location="", reject=True)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MessageRejected(f"body is not JSON: {exc}", code="100", location="",
                                  reject=True) from None
        if not isinstance(body, dict):
            raise MessageRejected("body is not a FHIR resource (a JSON object)", code="100",
                                  location="", reject=True)
        rtype = body.get("resourceType")
        # a hostile resourceType may be a list or an object: never tested against a set
        if not isinstance(rtype, str) or (rtype != "Bundle" and rtype not in EVENT_TYPES):
            where = f"{rtype}" if isinstance(rtype, str) and rtype else "resourceType"
            raise MessageRejected(
                f"resource type {rtype!r} is not taken here (supported: Bundle, "
                f"{', '.join(sorted(EVENT_TYPES))})", code="200", location=where, reject=True)
        return body

    def _single_control_id(self, r: Mapping[str, Any], rtype: str, raw: bytes) -> str:
        ids = r.get("identifier")
        ident = ids[0] if isinstance(ids, list) and ids else ids
        key = ""
        if isinstance(ident, Mapping) and ident.get("value"):
            key = f"{ident.get('system', '')}|{ident['value']}"
        elif r.get("id"):
            key = str(r["id"])
        if not key:
            return f"{rtype}/sha256:{_digest(raw)}"
        version = (r.get("meta") or {}).get("versionId", "")
        return f"{rtype}/{key}/{r.get('status', '')}" + (f"/{version}" if version else "")

    def parse(self, raw: bytes, *, received_at: datetime) -> ParsedMessage:
        """Validate the resource or Bundle as FHIR R4 and map it to events.

        Args:
            raw: the HTTP request body (``application/fhir+json``).
            received_at: the gateway's receipt time, timezone-aware.

        Returns:
            The parsed message; ``context`` keeps what the reply needs.

        Raises:
            MessageInvalid: the body is not valid R4; every problem is named by FHIRPath.
            MessageRejected: the body is not JSON, not a supported type, or valid R4 that
                lacks what an event needs (hospital, item code, quantity).
        """
        body = self._decode(raw)
        rtype = str(body["resourceType"])
        if rtype == "Bundle":
            return self._parse_bundle(body, raw, received_at)
        issues = validate_resource(body, rtype)
        if issues:
            raise MessageInvalid(issues)
        control_id = self._single_control_id(body, rtype, raw)
        ref = ResourceRef(rtype, body, rtype)
        hospital = find_hospital(body, self._settings, rtype)
        sender = str((body.get("meta") or {}).get("source") or hospital)
        event = event_from_resource(
            ref, event_id=f"fhir-r4:{sender}:{control_id}:0", source=f"fhir-r4:{sender}",
            control_id=control_id, hospital_id=hospital, received_at=received_at,
            settings=self._settings, medications={})
        return ParsedMessage(adapter=self.name, sender=sender, control_id=control_id,
                             message_type=rtype, events=(event,),
                             context={"mode": "single", "resources": (ref,)})

    def _parse_bundle(self, bundle: dict[str, Any], raw: bytes,
                      received_at: datetime) -> ParsedMessage:
        btype = bundle.get("type")
        if btype not in ("transaction", "batch"):
            raise MessageRejected(
                f"Bundle.type {btype!r} is not taken here (send a transaction or a batch)",
                code="200", location="Bundle.type", reject=True)
        entries = bundle.get("entry") or []
        if not isinstance(entries, list):
            raise MessageInvalid([Issue(Severity.ERROR, "Bundle.entry must be an array",
                                        "102", "Bundle.entry")])
        if len(entries) > self.config.max_entries:
            raise MessageRejected(f"Bundle has {len(entries)} entries; at most "
                                  f"{self.config.max_entries} are taken", code="100",
                                  location="Bundle.entry", reject=True)
        shell = {**bundle, "entry": [
            {k: v for k, v in e.items() if k != "resource"} if isinstance(e, dict) else e
            for e in entries]}
        issues = validate_resource(shell, "Bundle")
        if issues:
            raise MessageInvalid(issues)
        refs: list[ResourceRef] = []
        entry_issues: dict[int, list[Issue]] = {}
        for i, entry in enumerate(entries):
            path = f"Bundle.entry[{i}].resource"
            resource = entry.get("resource")
            problems: list[Issue] = []
            if not isinstance(resource, dict):
                problems.append(Issue(Severity.ERROR, f"{path}: the entry has no resource",
                                      "101", path))
            elif not isinstance(resource.get("resourceType"), str) \
                    or resource["resourceType"] not in SUPPORTED_TYPES:
                problems.append(Issue(
                    Severity.ERROR, f"{path}: resource type {resource.get('resourceType')!r} "
                    "is not taken here", "200", f"{path}.resourceType"))
            else:
                method = (entry.get("request") or {}).get("method")
                if btype == "transaction" and method not in ("POST", "PUT"):
                    problems.append(Issue(Severity.ERROR,
                                          f"Bundle.entry[{i}].request.method: only POST and "
                                          "PUT are taken", "200",
                                          f"Bundle.entry[{i}].request.method"))
                problems.extend(validate_resource(resource, path))
            if problems:
                entry_issues[i] = problems
                refs.append(ResourceRef("", {}, path))
                continue
            assert isinstance(resource, dict)
            refs.append(ResourceRef(str(resource["resourceType"]), resource, path,
                                    str(entry.get("fullUrl", ""))))
        if btype == "transaction" and entry_issues:
            raise MessageInvalid([iss for i in sorted(entry_issues) for iss in entry_issues[i]])
        control_id = _identifier_key(bundle) or f"Bundle/sha256:{_digest(raw)}"
        medications: dict[str, Any] = {}
        for ref in refs:
            if ref.resource_type == "Medication":
                if ref.full_url:
                    medications[ref.full_url] = ref.resource
                if ref.resource.get("id"):
                    medications[f"Medication/{ref.resource['id']}"] = ref.resource
        events: list[Event] = []
        hospital_default = None
        sender = str((bundle.get("meta") or {}).get("source") or "")
        for i, ref in enumerate(refs):
            if ref.resource_type not in EVENT_TYPES:
                continue
            try:
                hospital = find_hospital(ref.resource, self._settings, ref.path)
                hospital_default = hospital_default or hospital
                who = sender or hospital
                events.append(event_from_resource(
                    ref, event_id=f"fhir-r4:{who}:{control_id}:{i}", source=f"fhir-r4:{who}",
                    control_id=control_id, hospital_id=hospital, received_at=received_at,
                    settings=self._settings, medications=medications))
            except MessageRejected as exc:
                if btype == "transaction":
                    raise
                entry_issues[i] = [Issue(Severity.ERROR, exc.reason, exc.code, exc.location)]
        return ParsedMessage(
            adapter=self.name, sender=sender or hospital_default or "fhir-r4",
            control_id=control_id, message_type="Bundle", events=tuple(events),
            context={"mode": btype, "resources": tuple(refs),
                     "entry_issues": {k: tuple(v) for k, v in entry_issues.items()}})

    # ---------------------------------------------------------------- reply

    def reply(self, parsed: ParsedMessage | None, raw: bytes, outcome: Outcome, *,
              now: datetime) -> Reply:
        """The FHIR answer: 201 / 200 with the resource or a response Bundle, else an
        OperationOutcome naming each problem (400 malformed, 409 a reused identifier,
        422 unprocessable, 500)."""
        status = outcome.status
        if outcome.blocked or status in (OutcomeStatus.REJECTED, OutcomeStatus.ERROR,
                                         OutcomeStatus.CONFLICT) or parsed is None:
            code = _error_status(outcome)
            issues = outcome.issues or (Issue(
                Severity.ERROR, "the message was not taken" if code < 500
                else "the gateway could not store the message; send it again",
                "207" if code >= 500 else "", ""),)
            return Reply(_json_body(operation_outcome(issues)), FHIR_JSON, code)
        duplicate = status is OutcomeStatus.DUPLICATE
        mode = parsed.context.get("mode", "single")
        refs: Sequence[ResourceRef] = parsed.context.get("resources", ())
        stamp = now.isoformat()
        if mode == "single":
            ref = refs[0]
            resource = _stored(ref, parsed.control_id, stamp)
            location = f"{ref.resource_type}/{resource['id']}/_history/1"
            return Reply(_json_body(resource), FHIR_JSON, 200 if duplicate else 201,
                         {"Location": location, "ETag": 'W/"1"', "Last-Modified": stamp})
        entry_issues: Mapping[int, Sequence[Issue]] = parsed.context.get("entry_issues", {})
        entries = []
        warnings = [i for i in outcome.issues if i.severity is not Severity.ERROR]
        for i, ref in enumerate(refs):
            if i in entry_issues:
                entries.append({"response": {
                    "status": "400 Bad Request",
                    "outcome": operation_outcome(entry_issues[i])}})
                continue
            stored = _stored(ref, f"{parsed.control_id}:{i}", stamp)
            response: dict[str, Any] = {
                "status": "200 OK" if duplicate else "201 Created",
                "location": f"{ref.resource_type}/{stored['id']}/_history/1",
                "etag": 'W/"1"', "lastModified": stamp}
            mine = [w for w in warnings if w.location.startswith(ref.path)]
            if mine:
                response["outcome"] = operation_outcome(mine)
            entries.append({"response": response})
        bundle = {"resourceType": "Bundle", "id": _server_id(parsed.control_id + ":response"),
                  "type": f"{mode}-response", "entry": entries}
        return Reply(_json_body(bundle), FHIR_JSON, 200)

    def read_reply(self, reply: Reply) -> ReplySummary:
        """Read a reply back: 2xx is accepted; issue expressions are the locations.

        Raises:
            MessageRejected: the body is not a FHIR JSON resource.
        """
        try:
            body = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            raise MessageRejected("reply is not JSON", code="100", reject=True) from None
        locations: list[str] = []
        outcomes = [body] if body.get("resourceType") == "OperationOutcome" else [
            e.get("response", {}).get("outcome") or {} for e in body.get("entry", ())]
        for oo in outcomes:
            for issue in oo.get("issue", ()):
                locations.extend(issue.get("expression", ()))
        return ReplySummary(accepted=200 <= reply.status < 300, locations=tuple(locations))

    def capability_statement(self, base_url: str) -> dict[str, Any]:
        """The CapabilityStatement for ``GET {base_url}/metadata``."""
        return capability_statement(base_url)


def _identifier_key(bundle: Mapping[str, Any]) -> str:
    ident = bundle.get("identifier")
    if isinstance(ident, Mapping) and ident.get("value"):
        return f"Bundle/{ident.get('system', '')}|{ident['value']}"
    if bundle.get("id"):
        return f"Bundle/{bundle['id']}"
    return ""


def _stored(ref: ResourceRef, key: str, stamp: str) -> dict[str, Any]:
    resource = dict(ref.resource)
    resource.setdefault("id", _server_id(key))
    meta = dict(resource.get("meta") or {})
    meta.update({"versionId": "1", "lastUpdated": stamp})
    resource["meta"] = meta
    return resource


def _error_status(outcome: Outcome) -> int:
    if outcome.blocked:
        return 422
    if outcome.status is OutcomeStatus.CONFLICT:
        return 409
    codes = {i.code for i in outcome.issues if i.severity is Severity.ERROR}
    if outcome.status is OutcomeStatus.ERROR and (not codes or codes <= {"207", "exception"}):
        return 500
    if codes and codes <= _UNPROCESSABLE:
        return 422
    return 400 if outcome.status is OutcomeStatus.REJECTED or codes else 500


def operation_outcome(issues: Sequence[Issue]) -> dict[str, Any]:
    """An R4 OperationOutcome with one issue per problem, located by ``expression``."""
    out = []
    for issue in issues:
        entry: dict[str, Any] = {
            "severity": issue.severity.value if issue.severity is not Severity.INFO
            else "information",
            "code": _ISSUE_TYPE.get(issue.code, issue.code or "processing"),
            "diagnostics": issue.text,
            "details": {"text": issue.text},
        }
        if issue.location:
            entry["expression"] = [issue.location]
        out.append(entry)
    return {"resourceType": "OperationOutcome", "issue": out}


def capability_statement(base_url: str, *, date: str = "2026-11-23",
                         software_version: str = "0.1.0") -> dict[str, Any]:
    """The R4 CapabilityStatement of the gateway's FHIR endpoint (a pure function).

    Args:
        base_url: the FHIR base the gateway serves, e.g. ``https://gw.example/fhir``.
        date: the statement's date (the software's release date by default).
        software_version: the gateway's version.

    Returns:
        The CapabilityStatement as a JSON object.
    """
    resources = [{
        "type": rtype,
        "interaction": [{"code": "create"}],
        "versioning": "no-version",
        "conditionalCreate": False,
    } for rtype in sorted(EVENT_TYPES)]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "jicai-gateway",
        "kind": "instance",
        "software": {"name": "jicai-gateway", "version": software_version},
        "implementation": {"description": "集采 HIS integration gateway: FHIR R4 ingest",
                           "url": base_url.rstrip("/")},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "POST a resource or a transaction / batch Bundle; the answer "
                             "comes after the events are durably committed.",
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
        }],
    }
