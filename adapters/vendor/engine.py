"""The profile engine of the vendor adapters: a YAML profile compiled into a reader.

Pure: bytes and a receipt time in, a ``ParsedMessage`` or ``MessageRejected`` out.
Compiled with mypyc at install (``gateway/native.py``); ``adapter.py`` wraps it
in the adapter contract and builds the replies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import orjson

from adapters.base import ParsedMessage
from adapters.vendor import xml_walk
from adapters.vendor.config import VendorConfig
from adapters.vendor.extract import Reader, json_nodes, json_reader, xml_nodes, xml_reader
from adapters.vendor.profile import FieldSpec, FieldType, Profile
from adapters.vendor.safe_xml import parse_xml
from adapters.vendor.xml_plan import Plan, PlanBuilder, element_steps, is_plain
from canonical.errors import MessageRejected
from canonical.model import Event, EventKind, Line, OrderControl, Party, Patient

__all__ = ["JsonProfileReader", "ProfileReader", "XmlProfileReader"]


# where a field's values come from
_CONST, _WALK, _ROOT, _READ = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class _Field:
    """One profile field, with what reading it needs copied out of its ``FieldSpec``."""

    name: str
    type: FieldType
    source: int  # _CONST, _WALK (the element's plan), _ROOT (the absolute plan), _READ
    index: int  # position in the plan's values (_WALK, _ROOT)
    read: Reader | None  # XPath or JSON pointer (_READ)
    const: list[str] | None  # the constant (_CONST)
    # a plain text field: the first non-empty value or nothing, no checks
    plain: bool
    path: str | None
    split: str | None
    map: dict[str, str] | None
    default: str | None
    required: bool
    formats: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Section:
    """The fields read from one element (root, document or line item)."""

    fields: tuple[_Field, ...]
    extra: tuple[_Field, ...]  # fields kept in ``Event.extra`` or ``Line.extra``
    plan: Any  # the plain relative paths, read by one walk (prepared), or None
    size: int


_TRUE = frozenset({"1", "y", "yes", "true", "t", "是", "有"})
_FALSE = frozenset({"0", "n", "no", "false", "f", "否", "无", ""})
_NO_VALUES: list[list[str] | None] = []
# a walk's values: per field index, and the plain fields by name
_Walked = tuple[list[list[str] | None], dict[str, Any]]
# by value: a dict look-up, where calling the enum runs Python code in the enum module
_EVENT_KINDS: dict[Any, EventKind] = {k.value: k for k in EventKind}
_ORDER_CONTROLS: dict[str, OrderControl] = {c.value: c for c in OrderControl}
_PRESCRIBER = ("prescriber.id", "prescriber.name")
_PHARMACIST = ("pharmacist.id", "pharmacist.name")
_DEPARTMENT = ("department.id", "department.name")
_SUPPLIER = ("supplier.id", "supplier.name")


class ProfileReader:
    """One profile compiled for reading: bytes in, canonical events out.

    Subclasses give the format: how to load a body, read a path, find elements.
    """

    _format: ClassVar[str] = ""

    def __init__(self, profile: Profile, config: VendorConfig, adapter: str) -> None:
        if profile.format != self._format:
            raise ValueError(f"profile {profile.name!r} is for {profile.format}, "
                             f"not {self._format}")
        self.profile = profile
        self.adapter = adapter
        self._tz = timezone(timedelta(hours=config.utc_offset_hours))
        absolute = PlanBuilder()
        self._header = self._section(absolute, profile.header)
        self._event = self._section(absolute, profile.event, profile.extra)
        # a line cannot be built without these, whatever the profile says
        self._lines = self._section(absolute, profile.lines.fields, profile.lines.extra,
                                    needed=frozenset({"item_code", "quantity"}))
        self._absolute = self._prepare(absolute.build()) if absolute.size else None
        self._absolute_size = absolute.size
        self._documents = self._nodes(profile.documents)
        self._line_nodes = self._nodes(profile.lines.path)
        self._lines_path = profile.lines.path
        # read on every message: kept as plain attributes, not looked up on the models
        self._docs_path = profile.documents
        self._max_lines = profile.lines.max_lines
        self._lines_required = profile.lines.required
        self._message_type = profile.name
        self._default_sender = config.sender or profile.name
        self._default_hospital = config.hospital_id
        self._max_bytes = config.max_bytes
        self._max_depth = config.max_depth
        # Line fields that are objects, built from more than one profile field
        self._line_objects = bool({"supplier.id", "supplier.name", "order_control"}
                                  & set(profile.lines.fields))
        self._patient_keys = tuple((k, k.split(".", 1)[1])
                                   for k in sorted({*profile.header, *profile.event})
                                   if k.startswith("patient."))

    # --- format hooks
    def _reader(self, path: str) -> Reader:
        raise NotImplementedError

    def _walked(self, path: str) -> bool:
        """True for a path the plan walk reads (the XML adapter's plain paths)."""
        return False

    def _prepare(self, plan: Plan) -> Any:
        """A plan in the shape the walk reads."""
        return plan

    def _walk(self, node: Any, section: _Section) -> _Walked:
        """The section's walked values under ``node``: (per field index, plain by name)."""
        return _NO_VALUES, {}

    def _walk_root(self, root: Any) -> list[list[str] | None]:
        return _NO_VALUES

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

    def _section(self, absolute: PlanBuilder, *parts: Mapping[str, FieldSpec],
                 needed: frozenset[str] = frozenset()) -> _Section:
        """The fields of one element, and those of them kept in ``Event.extra`` apart.

        A plain text field at a plain relative path of the main part is read by the
        walk alone, straight into the section's values; it gets no ``_Field``.
        """
        relative = PlanBuilder()
        compiled: list[tuple[_Field, ...]] = []
        for part, specs in enumerate(parts):
            fields = []
            for n, s in specs.items():
                ftype = self.profile.field_type(n, s)
                required = s.required or n in needed
                plain = (ftype == "str" and not s.split and s.map is None
                         and s.default is None and not required)
                source, index, read, const = _READ, -1, None, None
                if s.path is None:
                    source, const = _CONST, [s.value or ""]
                elif self._walked(s.path):
                    if plain and part == 0 and not s.path.startswith("/"):
                        relative.add(s.path, key=n)
                        continue
                    builder = absolute if s.path.startswith("/") else relative
                    source = _ROOT if builder is absolute else _WALK
                    index = builder.add(s.path)
                else:
                    read = self._reader(s.path)
                fields.append(_Field(n, ftype, source, index, read, const, plain, s.path,
                                     s.split, s.map, s.default, required, s.formats))
            compiled.append(tuple(fields))
        return _Section(compiled[0], compiled[1] if len(compiled) > 1 else (),
                        None if relative.empty else self._prepare(relative.build()),
                        relative.size)

    # --- values
    def _value(self, f: _Field, values: list[str] | None, where: str) -> Any:
        if values and f.split:
            split = f.split
            values = [v.strip() for x in values for v in x.split(split)]
        if values and not all(values):
            values = [v for v in values if v]
        if f.map is not None and values:
            table = f.map
            for v in values:
                if v not in table:
                    location = self._where(where, f)
                    raise MessageRejected(
                        f"{location}: value {v!r} has no translation "
                        f"(known: {', '.join(table)})", code="103", location=location)
            values = [table[v] for v in values]
        if not values:
            if f.default is not None:
                values = [f.default]
            elif f.required:
                location = self._where(where, f)
                raise MessageRejected(f"{location}: required value is missing", code="101",
                                      location=location)
            else:
                return None
        ftype = f.type
        if ftype == "str":
            return values[0]
        if ftype == "list":
            return tuple(values)
        return self._convert(values[0], ftype, f, where)

    def _where(self, where: str, f: _Field) -> str:
        return self._join(where, f.path) if f.path else where

    def _convert(self, v: str, ftype: FieldType, f: _Field, where: str) -> Any:
        if ftype == "str":
            return v
        if ftype == "decimal":
            try:
                d = Decimal(v.replace(",", "") if "," in v else v)
            except InvalidOperation:
                raise self._invalid(where, f, f"not a number: {v!r}") from None
            if not d.is_finite():
                raise self._invalid(where, f, "not a finite number")
            return d
        if ftype == "bool" or ftype == "flag":
            low = v.lower()
            if low in _TRUE:
                return True if ftype == "bool" else "1"
            if low in _FALSE:
                return False if ftype == "bool" else "0"
            if ftype == "flag":
                # the vendor's path says where; the canonical name says what the
                # platform would have refused
                raise self._invalid(where, f, f"{f.name} is not a yes/no flag (1/0, Y/N, "
                                              f"true/false, 是/否): {v!r}")
            raise self._invalid(where, f, f"not a yes/no value: {v!r}")
        parsed = self._datetime(v, f)
        if parsed is None:
            raise self._invalid(where, f, f"not a date/time in a known format: {v!r}")
        if ftype == "date":
            return parsed.date().isoformat()
        return parsed

    def _invalid(self, where: str, f: _Field, problem: str) -> MessageRejected:
        location = self._where(where, f)
        return MessageRejected(f"{location}: {problem}", code="102", location=location)

    def _datetime(self, v: str, f: _Field) -> datetime | None:
        try:
            parsed = datetime.fromisoformat(v)
        except ValueError:
            parsed = None
            for fmt in f.formats:
                try:
                    parsed = datetime.strptime(v, fmt)
                    break
                except ValueError:
                    continue
        if parsed is None:
            return None
        if parsed.tzinfo:
            return parsed
        # positional: about a third of what replace(tzinfo=…) costs; no DST in a fixed zone
        return datetime(parsed.year, parsed.month, parsed.day, parsed.hour, parsed.minute,
                        parsed.second, parsed.microsecond, self._tz)

    def _read(self, fields: tuple[_Field, ...], node: Any, root: Any, where: str,
              walked: list[list[str] | None], absolute: list[list[str] | None],
              out: dict[str, Any]) -> dict[str, Any]:
        for f in fields:
            source = f.source
            if source == _WALK:
                values = walked[f.index]
            elif source == _ROOT:
                values = absolute[f.index]
            elif source == _CONST:
                values = f.const
            else:
                assert f.read is not None
                values = f.read(node, root)
            if f.plain:  # most fields: skip the general path
                if values:
                    for v in values:
                        if v:
                            out[f.name] = v
                            break
                continue
            value = self._value(f, values, where)
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
        absolute = self._walk_root(root)
        lists, plain = self._walk(root, self._header)
        header = self._read(self._header.fields, root, root, "", lists, absolute, plain)
        docs_path = self._docs_path
        docs = self._documents(root)
        if not docs:
            raise MessageRejected(f"no document at {docs_path}", code="100",
                                  location=docs_path)
        event_section, line_section = self._event, self._lines
        max_lines = self._max_lines
        control_id = str(header.get("control_id") or "")
        parsed_docs = []
        for d, doc in enumerate(docs):
            where = self._loc(docs_path, d) if len(docs) > 1 or self._format == "json" \
                else docs_path
            lists, plain = self._walk(doc, event_section)
            fields = {**header, **self._read(event_section.fields, doc, root, where, lists,
                                             absolute, plain)}
            extra = self._read(event_section.extra, doc, root, where, lists, absolute, {})
            items = self._line_nodes(doc)
            lines_where = self._join(where, self._lines_path)
            if not items and self._lines_required:
                raise MessageRejected(f"{lines_where}: the document has no line items",
                                      code="100", location=lines_where)
            if len(items) > max_lines:
                raise MessageRejected(f"{len(items)} line items exceed the limit of "
                                      f"{max_lines}", code="100", location=lines_where)
            lines = []
            for j, item in enumerate(items):
                lists, plain = self._walk(item, line_section)
                loc = self._loc(lines_where, j)
                values = self._read(line_section.fields, item, root, loc, lists, absolute, plain)
                if line_section.extra:
                    values["extra"] = _extras(self._read(line_section.extra, item, root, loc,
                                                         lists, absolute, {}))
                lines.append(self._line(j + 1, values))
            parsed_docs.append((fields, extra, tuple(lines)))
            control_id = control_id or str(fields.get("control_id") or "")
        if not control_id:
            control_id = "sha256:" + hashlib.sha256(raw).hexdigest()[:24]
        sender = str(header.get("sender") or parsed_docs[0][0].get("sender")
                     or self._default_sender)
        source = f"{self.adapter}:{sender}"
        events = tuple(
            self._event_of(i, fields, extra, lines, source, control_id, received_at)
            for i, (fields, extra, lines) in enumerate(parsed_docs))
        return ParsedMessage(adapter=self.adapter, sender=sender, control_id=control_id,
                             message_type=self._message_type, events=events,
                             context={"control_id": control_id})

    def _line(self, seq: int, v: dict[str, Any]) -> Line:
        # the profile checked that every value has its Line field's type
        if not self._line_objects:
            return Line(seq=seq, **v)
        pid, name = v.pop("supplier.id", ""), v.pop("supplier.name", "")
        oc = v.pop("order_control", None)
        return Line(seq=seq, supplier=Party(pid, name) if (pid or name) else None,
                    order_control=self._order_control(oc, "order_control") if oc else None,
                    **v)

    def _order_control(self, value: str, location: str) -> OrderControl:
        control = _ORDER_CONTROLS.get(value)
        if control is None:
            raise MessageRejected(f"{location}: {value!r} is not an order control "
                                  "(NW, CA, DC, XO); translate it in the profile's map",
                                  code="103", location=location)
        return control

    @staticmethod
    def _party(v: Mapping[str, Any], keys: tuple[str, str]) -> Party | None:
        pid, name = v.get(keys[0], ""), v.get(keys[1], "")
        return Party(pid, name) if (pid or name) else None

    def _event_of(self, index: int, v: Mapping[str, Any], extra: Mapping[str, Any],
                  lines: tuple[Line, ...], source: str, control_id: str,
                  received_at: datetime) -> Event:
        hospital = v.get("hospital_id") or self._default_hospital
        if not hospital:
            raise MessageRejected("the document names no hospital and the listener has no "
                                  "'hospital_id' configured", code="204",
                                  location=self.profile.header.get("hospital_id",
                                                                   FieldSpec(value="")).path
                                  or self.profile.documents)
        kind = _EVENT_KINDS.get(v.get("kind"))
        if kind is None:
            raise MessageRejected(f"event kind {v.get('kind')!r} is not known", code="103",
                                  location=self.profile.documents)
        patient = None
        if self._patient_keys:
            found = {attr: v[key] for key, attr in self._patient_keys if key in v}
            if found:
                patient = Patient(**found)
        oc = v.get("order_control")
        return Event(
            event_id=f"{source}:{control_id}:{index}", kind=kind, hospital_id=hospital,
            source=source, occurred_at=v.get("occurred_at") or received_at, lines=lines,
            control_id=control_id, document_no=v.get("document_no", ""),
            order_control=self._order_control(oc, "order_control") if oc else None,
            prescriber=self._party(v, _PRESCRIBER), pharmacist=self._party(v, _PHARMACIST),
            department=self._party(v, _DEPARTMENT), supplier=self._party(v, _SUPPLIER),
            patient=patient, online=v.get("online", True), emergency=v.get("emergency", False),
            extra=_extras(extra))


def _extras(values: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """``extra`` values as kept on an event or line: a list joined with ``|``."""
    return tuple((k, "|".join(x) if isinstance(x, tuple) else str(x))
                 for k, x in values.items())


class XmlProfileReader(ProfileReader):
    """Vendor XML: hardened parsing, plain paths by one walk per element, others by XPath."""

    _format: ClassVar[str] = "xml"

    def __init__(self, profile: Profile, config: VendorConfig, adapter: str) -> None:
        walker = self._walker = xml_walk.IMPLEMENTATION  # looked up now: tests pick one
        self._children_walk = walker.walk_children
        self._root_walk = walker.walk_root
        super().__init__(profile, config, adapter)

    def _reader(self, path: str) -> Reader:
        return xml_reader(path, self.profile.namespaces)

    def _walked(self, path: str) -> bool:
        # with namespaces declared, names need their prefixes resolved: XPath does that
        return not self.profile.namespaces and is_plain(path)

    def _prepare(self, plan: Plan) -> Any:
        return self._walker.prepare(plan)

    def _walk(self, node: Any, section: _Section) -> _Walked:
        plain: dict[str, Any] = {}
        if section.plan is None:
            return _NO_VALUES, plain
        out: list[list[str] | None] = [None] * section.size
        self._children_walk(node, section.plan, out, plain)
        return out, plain

    def _walk_root(self, root: Any) -> list[list[str] | None]:
        if self._absolute is None:
            return _NO_VALUES
        out: list[list[str] | None] = [None] * self._absolute_size
        self._root_walk(root, self._absolute, out, {})
        return out

    def _nodes(self, path: str) -> Callable[[Any], list[Any]]:
        steps = None if self.profile.namespaces else element_steps(path)
        if steps is None:
            return xml_nodes(path, self.profile.namespaces)
        select = self._walker.select
        return lambda node: select(node, steps)

    def _load(self, raw: bytes) -> Any:
        return parse_xml(raw, max_bytes=self._max_bytes, max_depth=self._max_depth)

    def _loc(self, base: str, index: int) -> str:
        return f"{base}[{index + 1}]"


class JsonProfileReader(ProfileReader):
    """Vendor JSON: fields by JSON pointer."""

    _format: ClassVar[str] = "json"

    def _reader(self, path: str) -> Reader:
        return json_reader(path)

    def _nodes(self, path: str) -> Callable[[Any], list[Any]]:
        return json_nodes(path)

    def _load(self, raw: bytes) -> Any:
        if len(raw) > self._max_bytes:
            raise MessageRejected(f"document of {len(raw)} bytes exceeds the limit of "
                                  f"{self._max_bytes}", code="100", location="/",
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
