"""Vendor XML and JSON over HTTP, driven by a declarative profile.

The gateway mounts each configured listener on ``POST /ingest/{listener}``. One
adapter instance serves one profile; ``kinds`` of the instance is the profile
name, which is also each parsed message's ``message_type``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, ClassVar

import orjson
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.errors import MessageRejected
from gateway.model import Event, EventKind, Line, OrderControl, Party, Patient

from ..base import Outcome, OutcomeStatus, ParsedMessage, Reply, ReplySummary, Severity
from .extract import Reader, json_nodes, json_reader, xml_nodes, xml_reader
from .profile import FieldSpec, FieldType, load_profile
from .safe_xml import parse_xml

__all__ = ["VendorConfig", "VendorJsonAdapter", "VendorXmlAdapter", "shipped_profiles"]


class VendorConfig(BaseModel):
    """Configuration of a vendor XML / JSON listener."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str | dict[str, Any] = Field(
        description="YAML file, shipped profile name, or the profile inline")
    hospital_id: str | None = Field(
        default=None, description="定点医药机构编号 when the documents do not carry it")
    sender: str | None = Field(default=None, description="sender name when documents have none")
    max_bytes: int = Field(default=1024 * 1024, ge=256, description="largest document taken")
    max_depth: int = Field(default=32, ge=2, le=200, description="deepest XML nesting taken")
    utc_offset_hours: float = Field(default=8, ge=-14, le=14,
                                    description="zone of date-times sent without one")

    @field_validator("hospital_id")
    @classmethod
    def _hospital_code(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 12 or not v.isalnum()):
            raise ValueError(f"{v!r}: a 定点医药机构编号 has 12 letters/digits")
        return v

    @field_validator("profile")
    @classmethod
    def _profile_loads(cls, v: str | dict[str, Any]) -> str | dict[str, Any]:
        load_profile(v)  # report a bad profile at start, with every problem
        return v


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    spec: FieldSpec
    type: FieldType
    read: Reader | None


_TRUE = frozenset({"1", "y", "yes", "true", "t", "是", "有"})
_FALSE = frozenset({"0", "n", "no", "false", "f", "否", "无", ""})


class _VendorAdapter:
    """Shared engine of the XML and JSON vendor adapters."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    config_model: ClassVar[type[BaseModel]] = VendorConfig
    transport: ClassVar[str] = "http"
    _format: ClassVar[str]

    def __init__(self, config: VendorConfig | Mapping[str, Any]) -> None:
        if not isinstance(config, VendorConfig):
            config = VendorConfig.model_validate(config)
        self.config = config
        profile = load_profile(config.profile)
        if profile.format != self._format:
            raise ValueError(f"profile {profile.name!r} is for {profile.format}, "
                             f"not {self._format}")
        self.profile = profile
        self.kinds = frozenset({profile.name})  # type: ignore[misc]
        self._tz = timezone(timedelta(hours=config.utc_offset_hours))
        self._header = self._compile(profile.header)
        self._event = self._compile(profile.event)
        self._extra = self._compile(profile.extra)
        self._lines = self._compile(profile.lines.fields)
        self._documents = self._nodes(profile.documents)
        self._line_nodes = self._nodes(profile.lines.path)

    # --- format hooks
    def _reader(self, path: str) -> Reader:
        raise NotImplementedError

    def _nodes(self, path: str) -> Callable[[Any], list[Any]]:
        raise NotImplementedError

    def _load(self, raw: bytes) -> Any:
        raise NotImplementedError

    def _loc(self, base: str, index: int) -> str:
        raise NotImplementedError

    def _join(self, base: str, path: str) -> str:
        if path.startswith(("/", "$")):
            return path.lstrip("$")
        return f"{base}/{path}" if base else path

    def _compile(self, specs: Mapping[str, FieldSpec]) -> tuple[_Field, ...]:
        return tuple(_Field(n, s, self.profile.field_type(n, s),
                            self._reader(s.path) if s.path is not None else None)
                     for n, s in specs.items())

    # --- values
    def _value(self, f: _Field, node: Any, root: Any, where: str,
               cache: dict[Any, dict[str, Any]]) -> Any:
        spec = f.spec
        values = [spec.value or ""] if f.read is None else f.read(node, root, cache)
        if spec.split and values:
            values = [v.strip() for x in values for v in x.split(spec.split)]
        if values and not all(values):
            values = [v for v in values if v]
        if spec.map is not None and values:
            table = spec.map
            for v in values:
                if v not in table:
                    location = self._where(where, spec)
                    raise MessageRejected(
                        f"{location}: value {v!r} has no translation "
                        f"(known: {', '.join(table)})", code="103", location=location)
            values = [table[v] for v in values]
        if not values:
            if spec.default is not None:
                values = [spec.default]
            elif spec.required:
                location = self._where(where, spec)
                raise MessageRejected(f"{location}: required value is missing", code="101",
                                      location=location)
            else:
                return None
        ftype = f.type
        if ftype == "str":
            return values[0]
        if ftype == "list":
            return tuple(values)
        return self._convert(values[0], ftype, spec, self._where(where, spec))

    def _where(self, where: str, spec: FieldSpec) -> str:
        return self._join(where, spec.path) if spec.path else where

    def _convert(self, v: str, ftype: FieldType, spec: FieldSpec, location: str) -> Any:
        if ftype == "str":
            return v
        if ftype == "decimal":
            try:
                d = Decimal(v.replace(",", ""))
            except InvalidOperation:
                raise MessageRejected(f"{location}: not a number: {v!r}", code="102",
                                      location=location) from None
            if not d.is_finite():
                raise MessageRejected(f"{location}: not a finite number", code="102",
                                      location=location)
            return d
        if ftype == "bool":
            low = v.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise MessageRejected(f"{location}: not a yes/no value: {v!r}", code="102",
                                  location=location)
        parsed = self._datetime(v, spec)
        if parsed is None:
            raise MessageRejected(f"{location}: not a date/time in a known format: {v!r}",
                                  code="102", location=location)
        if ftype == "date":
            return parsed.date().isoformat()
        return parsed

    def _datetime(self, v: str, spec: FieldSpec) -> datetime | None:
        try:
            parsed = datetime.fromisoformat(v)
        except ValueError:
            parsed = None
            for fmt in spec.formats:
                try:
                    parsed = datetime.strptime(v, fmt)
                    break
                except ValueError:
                    continue
        if parsed is None:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=self._tz)

    def _read(self, fields: tuple[_Field, ...], node: Any, root: Any, where: str,
              cache: dict[Any, dict[str, Any]]) -> dict[str, Any]:
        out = {}
        for f in fields:
            value = self._value(f, node, root, where, cache)
            if value is not None:
                out[f.name] = value
        return out

    # --- parse
    def parse(self, raw: bytes, *, received_at: datetime) -> ParsedMessage:
        """Read every document of the body into one event each, as the profile says.

        Args:
            raw: the HTTP request body.
            received_at: the gateway's receipt time, timezone-aware.

        Returns:
            The parsed message; ``message_type`` is the profile name.

        Raises:
            MessageRejected: the body is malformed or a field is missing or invalid;
                ``location`` is the path of the offending value.
        """
        root = self._load(raw)
        cache: dict[Any, dict[str, Any]] = {}
        header = self._read(self._header, root, root, "", cache)
        docs = self._documents(root)
        if not docs:
            raise MessageRejected(f"no document at {self.profile.documents}", code="100",
                                  location=self.profile.documents)
        docs_path = self.profile.documents
        control_id = str(header.get("control_id") or "")
        parsed_docs = []
        for d, doc in enumerate(docs):
            where = self._loc(docs_path, d) if len(docs) > 1 or self._format == "json" \
                else docs_path
            fields = {**header, **self._read(self._event, doc, root, where, cache)}
            extra = self._read(self._extra, doc, root, where, cache)
            items = self._line_nodes(doc)
            if not items:
                location = self._join(where, self.profile.lines.path)
                raise MessageRejected(f"{location}: the document has no line items",
                                      code="100", location=location)
            if len(items) > self.profile.lines.max_lines:
                raise MessageRejected(f"{len(items)} line items exceed the limit of "
                                      f"{self.profile.lines.max_lines}", code="100",
                                      location=self._join(where, self.profile.lines.path))
            lines = tuple(
                self._line(j + 1, self._read(
                    self._lines, item, root,
                    self._loc(self._join(where, self.profile.lines.path), j), cache))
                for j, item in enumerate(items))
            parsed_docs.append((fields, extra, lines))
            control_id = control_id or str(fields.get("control_id") or "")
        if not control_id:
            control_id = "sha256:" + hashlib.sha256(raw).hexdigest()[:24]
        sender = str(header.get("sender") or parsed_docs[0][0].get("sender")
                     or self.config.sender or self.profile.name)
        source = f"{self.name}:{sender}"
        events = tuple(
            self._event_of(i, fields, extra, lines, source, control_id, received_at)
            for i, (fields, extra, lines) in enumerate(parsed_docs))
        return ParsedMessage(adapter=self.name, sender=sender, control_id=control_id,
                             message_type=self.profile.name, events=events,
                             context={"control_id": control_id})

    def _line(self, seq: int, v: Mapping[str, Any]) -> Line:
        supplier = None
        if v.get("supplier.id") or v.get("supplier.name"):
            supplier = Party(str(v.get("supplier.id", "")), str(v.get("supplier.name", "")))
        oc = v.get("order_control")
        return Line(
            seq=seq, item_code=str(v["item_code"]), item_name=v.get("item_name", ""),
            specification=v.get("specification", ""), manufacturer=v.get("manufacturer", ""),
            quantity=v["quantity"], unit=v.get("unit", ""), price=v.get("price"),
            generic_name=v.get("generic_name", ""), dosage_form=v.get("dosage_form", ""),
            approval_no=v.get("approval_no", ""), standard_code=v.get("standard_code", ""),
            lot_no=v.get("lot_no", ""), expiry=v.get("expiry", ""),
            trace_codes=v.get("trace_codes", ()), supplier=supplier,
            order_control=self._order_control(oc, "order_control") if oc else None)

    def _order_control(self, value: str, location: str) -> OrderControl:
        try:
            return OrderControl(value)
        except ValueError:
            raise MessageRejected(f"{location}: {value!r} is not an order control "
                                  "(NW, CA, DC, XO); translate it in the profile's map",
                                  code="103", location=location) from None

    @staticmethod
    def _party(v: Mapping[str, Any], who: str) -> Party | None:
        pid, name = v.get(f"{who}.id", ""), v.get(f"{who}.name", "")
        return Party(str(pid), str(name)) if (pid or name) else None

    def _event_of(self, index: int, v: Mapping[str, Any], extra: Mapping[str, Any],
                  lines: tuple[Line, ...], source: str, control_id: str,
                  received_at: datetime) -> Event:
        hospital = v.get("hospital_id") or self.config.hospital_id
        if not hospital:
            raise MessageRejected("the document names no hospital and the listener has no "
                                  "'hospital_id' configured", code="204",
                                  location=self.profile.header.get("hospital_id",
                                                                   FieldSpec(value="")).path
                                  or self.profile.documents)
        try:
            kind = EventKind(v["kind"])
        except (KeyError, ValueError):
            raise MessageRejected(f"event kind {v.get('kind')!r} is not known", code="103",
                                  location=self.profile.documents) from None
        patient = None
        if any(k.startswith("patient.") for k in v):
            patient = Patient(**{k.split(".", 1)[1]: str(x) for k, x in v.items()
                                 if k.startswith("patient.")})
        oc = v.get("order_control")
        return Event(
            event_id=f"{source}:{control_id}:{index}", kind=kind, hospital_id=str(hospital),
            source=source, occurred_at=v.get("occurred_at") or received_at, lines=lines,
            control_id=control_id, document_no=str(v.get("document_no", "")),
            order_control=self._order_control(oc, "order_control") if oc else None,
            prescriber=self._party(v, "prescriber"), pharmacist=self._party(v, "pharmacist"),
            department=self._party(v, "department"), supplier=self._party(v, "supplier"),
            patient=patient, online=v.get("online", True), emergency=v.get("emergency", False),
            extra=tuple((k, "|".join(x) if isinstance(x, tuple) else str(x))
                        for k, x in extra.items()))

    # --- reply
    def _reply_fields(self, parsed: ParsedMessage | None, raw: bytes,
                      outcome: Outcome) -> tuple[int, bool, str, list[tuple[str, str]]]:
        ok = outcome.status in (OutcomeStatus.ACCEPTED, OutcomeStatus.DUPLICATE) \
            and not outcome.blocked
        if ok:
            status = 200
        elif outcome.status is OutcomeStatus.ERROR and not outcome.blocked:
            status = 500
        elif outcome.blocked or (all(i.code in ("204", "205") for i in outcome.issues
                                    if i.severity is Severity.ERROR) and outcome.issues):
            status = 422
        else:
            status = 400
        control = parsed.control_id if parsed is not None else ""
        errors = [(i.location, i.text) for i in outcome.issues]
        return status, ok, control, errors

    def reply(self, parsed: ParsedMessage | None, raw: bytes, outcome: Outcome, *,
              now: datetime) -> Reply:
        """The answer in the vendor's own shape (profile ``reply``): code, message, errors."""
        raise NotImplementedError


class VendorXmlAdapter(_VendorAdapter):
    """Vendor XML documents, hardened parsing, fields by XPath."""

    name: ClassVar[str] = "vendor-xml"
    kinds: ClassVar[frozenset[str]] = frozenset({"vendor-xml"})
    _format: ClassVar[str] = "xml"

    def _reader(self, path: str) -> Reader:
        return xml_reader(path, self.profile.namespaces)

    def _nodes(self, path: str) -> Callable[[Any], list[Any]]:
        return xml_nodes(path, self.profile.namespaces)

    def _load(self, raw: bytes) -> Any:
        return parse_xml(raw, max_bytes=self.config.max_bytes, max_depth=self.config.max_depth)

    def _loc(self, base: str, index: int) -> str:
        return f"{base}[{index + 1}]"

    def reply(self, parsed: ParsedMessage | None, raw: bytes, outcome: Outcome, *,
              now: datetime) -> Reply:
        """An XML answer with the profile's element names."""
        spec = self.profile.reply
        status, ok, control, errors = self._reply_fields(parsed, raw, outcome)
        root = etree.Element(spec.root)
        etree.SubElement(root, spec.code).text = spec.success_code if ok else spec.failure_code
        first = next((t for _, t in errors), "")
        etree.SubElement(root, spec.message).text = spec.success_message if ok else first
        etree.SubElement(root, spec.control_id).text = control
        for location, text in errors:
            el = etree.SubElement(root, spec.errors)
            el.set(spec.error_location, location)
            el.text = text
        body = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
        return Reply(body, "application/xml; charset=utf-8", status)

    def read_reply(self, reply: Reply) -> ReplySummary:
        """Read an XML answer back.

        Raises:
            MessageRejected: the body is not such an answer.
        """
        spec = self.profile.reply
        root = parse_xml(reply.body, max_bytes=1 << 20, max_depth=8)
        code = root.findtext(spec.code) or ""
        locations = tuple(e.get(spec.error_location) or "" for e in root.iterchildren(spec.errors))
        return ReplySummary(code == spec.success_code, root.findtext(spec.control_id) or "",
                            locations)


class VendorJsonAdapter(_VendorAdapter):
    """Vendor JSON documents, fields by JSON pointer."""

    name: ClassVar[str] = "vendor-json"
    kinds: ClassVar[frozenset[str]] = frozenset({"vendor-json"})
    _format: ClassVar[str] = "json"

    def _reader(self, path: str) -> Reader:
        return json_reader(path)

    def _nodes(self, path: str) -> Callable[[Any], list[Any]]:
        return json_nodes(path)

    def _load(self, raw: bytes) -> Any:
        if len(raw) > self.config.max_bytes:
            raise MessageRejected(f"document of {len(raw)} bytes exceeds the limit of "
                                  f"{self.config.max_bytes}", code="100", location="/",
                                  reject=True)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MessageRejected(f"not JSON: {exc}", code="100", location="/",
                                  reject=True) from None
        if not isinstance(body, dict):
            raise MessageRejected("the document is not a JSON object", code="100",
                                  location="/", reject=True)
        return body

    def _loc(self, base: str, index: int) -> str:
        return f"{base}/{index}"

    def _join(self, base: str, path: str) -> str:
        # pointers are relative to the current object; "$" anchors them at the root
        if path.startswith("$"):
            return path[1:]
        return f"{base}{path if path.startswith('/') else '/' + path}"

    def reply(self, parsed: ParsedMessage | None, raw: bytes, outcome: Outcome, *,
              now: datetime) -> Reply:
        """A JSON answer with the profile's key names."""
        spec = self.profile.reply
        status, ok, control, errors = self._reply_fields(parsed, raw, outcome)
        first = next((t for _, t in errors), "")
        body = {spec.code: spec.success_code if ok else spec.failure_code,
                spec.message: spec.success_message if ok else first,
                spec.control_id: control,
                spec.errors: [{spec.error_location: loc, spec.message: text}
                              for loc, text in errors]}
        return Reply(orjson.dumps(body), "application/json", status)

    def read_reply(self, reply: Reply) -> ReplySummary:
        """Read a JSON answer back.

        Raises:
            MessageRejected: the body is not such an answer.
        """
        spec = self.profile.reply
        try:
            body = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            raise MessageRejected("reply is not JSON", code="100") from None
        locations = tuple(str(e.get(spec.error_location, "")) for e in body.get(spec.errors, ()))
        return ReplySummary(str(body.get(spec.code)) == spec.success_code,
                            str(body.get(spec.control_id) or ""), locations)


def shipped_profiles() -> list[Path]:
    """The profile files that ship with the gateway."""
    return sorted((Path(__file__).parent / "profiles").glob("*.yaml"))
