"""Declarative vendor profiles: a new HIS or warehouse dialect is YAML, not code.

A profile names, for each canonical field, where the vendor keeps it (an XPath
for XML, a JSON pointer for JSON), how to read it (text, decimal, date-time,
flag, list) and how to translate its values (``新开`` → ``NW``). Example (the
shipped profiles under ``adapters/vendor/profiles/`` are complete ones)::

    name: his-prescription
    format: xml
    documents: /处方信息/处方              # each match becomes one event
    header:                               # read once from the document root
      control_id: /处方信息/消息头/消息ID
      hospital_id: /处方信息/消息头/机构编码
    event:                                # read from each document
      kind: {value: prescription}
      document_no: 处方号
      order_control: {path: 操作类型, map: {新开: NW, 作废: CA}}
    lines:
      path: 药品明细/药品                  # repeated line items, relative to the document
      fields:
        item_code: {path: 院内编码, required: true}
        quantity: {path: 数量, type: decimal, required: true}

XML paths are relative to the current element unless they start with ``/``;
plain child paths (``a/b``, ``a/@attr``) are read together by one walk per
element (``xml_plan``; the first element of an intermediate name is followed),
anything else is compiled as XPath 1.0. Canonical fields have fixed types
(``quantity`` decimal, ``occurred_at`` date-time …); ``type`` is for ``extra``
(``flag`` reads yes/no — 1/0, Y/N, true/false, 是/否 — and keeps "1" / "0").
JSON paths are JSON pointers (RFC 6901) applied to the current object; a leading
``$`` applies them to the root (``$/head/msgId``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from canonical.model import EventKind

__all__ = [
    "EVENT_FIELDS",
    "LINE_FIELDS",
    "FieldSpec",
    "LinesSpec",
    "Profile",
    "ReplySpec",
    "load_profile",
]

# "flag": a yes/no value kept as the platforms' "1" / "0" (an ``extra`` such as 3503's
# prod_geay_flag), where "bool" is a canonical field's True / False
FieldType = Literal["str", "decimal", "datetime", "date", "bool", "list", "flag"]

_PARTY = ("id", "name")
EVENT_FIELDS = frozenset(
    {"control_id", "sender", "hospital_id", "kind", "document_no", "occurred_at",
     "order_control", "online", "emergency"}
    | {f"{p}.{a}" for p in ("prescriber", "pharmacist", "department", "supplier") for a in _PARTY}
    | {f"patient.{a}" for a in ("id", "name", "id_card", "phone", "insurance_no", "visit_no")}
)
LINE_FIELDS = frozenset({
    "item_code", "item_name", "specification", "manufacturer", "quantity", "unit", "price",
    "generic_name", "dosage_form", "approval_no", "standard_code", "lot_no", "expiry",
    "trace_codes", "supplier.id", "supplier.name", "order_control", "manu_date", "rx_only",
})
_DEFAULT_TYPES: dict[str, FieldType] = {
    "quantity": "decimal", "price": "decimal", "occurred_at": "datetime", "expiry": "date",
    "trace_codes": "list", "online": "bool", "emergency": "bool", "manu_date": "date",
    "rx_only": "bool",
}


class FieldSpec(BaseModel):
    """Where one canonical field is and how to read it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str | None = Field(default=None, description="XPath / JSON pointer of the value")
    value: str | None = Field(default=None, description="a constant instead of a path")
    type: FieldType | None = Field(default=None, description="default depends on the field")
    required: bool = False
    default: str | None = Field(default=None, description="used when the value is absent")
    map: dict[str, str] | None = Field(
        default=None, description="value translations; a value not listed is rejected")
    split: str | None = Field(default=None, description="separator for a list in one value")
    formats: tuple[str, ...] = Field(
        default=("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%d%H%M%S", "%Y-%m-%d",
                 "%Y%m%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d"),
        description="strptime formats tried after ISO 8601")

    @model_validator(mode="after")
    def _path_or_value(self) -> FieldSpec:
        if (self.path is None) == (self.value is None):
            raise ValueError("give exactly one of 'path' and 'value'")
        return self


def _field_spec(value: Any) -> Any:
    return {"path": value} if isinstance(value, str) else value


class LinesSpec(BaseModel):
    """The repeated line items of a document."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    fields: dict[str, FieldSpec]
    extra: dict[str, FieldSpec] = Field(
        default_factory=dict, description="more line facts kept in Line.extra (a provincial "
                                          "platform's order-line id, listing id …)")
    max_lines: int = Field(default=10_000, ge=1)
    required: bool = Field(
        default=True, description="false: a document may have no line items (a payment "
                                  "that names only the receipts it settles)")

    @field_validator("fields", "extra", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {k: _field_spec(x) for k, x in v.items()} if isinstance(v, dict) else v

    @field_validator("fields")
    @classmethod
    def _known(cls, v: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        unknown = sorted(set(v) - LINE_FIELDS)
        if unknown:
            raise ValueError(f"unknown line fields {unknown} (known: {sorted(LINE_FIELDS)})")
        if "item_code" not in v or "quantity" not in v:
            raise ValueError("lines need at least 'item_code' and 'quantity'")
        return v


class ReplySpec(BaseModel):
    """The answer the vendor's system expects: its element / key names and codes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    root: str = "response"
    code: str = "code"
    message: str = "message"
    control_id: str = "control_id"
    errors: str = "errors"
    error_location: str = "location"
    success_code: str = "0"
    failure_code: str = "1"
    success_message: str = "OK"


class Profile(BaseModel):
    """One vendor dialect."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    format: Literal["xml", "json"]
    description: str = ""
    documents: str = Field(description="path of each document (one event each)")
    namespaces: dict[str, str] = Field(default_factory=dict)
    header: dict[str, FieldSpec] = Field(default_factory=dict)
    event: dict[str, FieldSpec] = Field(default_factory=dict)
    extra: dict[str, FieldSpec] = Field(default_factory=dict,
                                        description="more event facts kept in Event.extra")
    lines: LinesSpec
    reply: ReplySpec = Field(default_factory=ReplySpec)

    @field_validator("header", "event", "extra", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {k: _field_spec(x) for k, x in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _fields_known(self) -> Profile:
        for section in ("header", "event"):
            unknown = sorted(set(getattr(self, section)) - EVENT_FIELDS)
            if unknown:
                raise ValueError(f"{section}: unknown event fields {unknown} "
                                 f"(known: {sorted(EVENT_FIELDS)})")
        for section, specs in (("header", self.header), ("event", self.event),
                               ("lines.fields", self.lines.fields)):
            for name, spec in specs.items():
                wanted = _DEFAULT_TYPES.get(name, "str")
                if spec.type is not None and spec.type != wanted:
                    raise ValueError(f"{section}.{name}: is read as {wanted}, not {spec.type} "
                                     "('type' chooses the reading of 'extra' fields only)")
        fields = {**self.header, **self.event}
        if "kind" not in fields:
            raise ValueError("the profile must give the event 'kind' (a value or a mapped path)")
        kind = fields["kind"]
        known = {k.value for k in EventKind}
        targets = [kind.value] if kind.value is not None else list((kind.map or {}).values())
        bad = sorted(t for t in targets if t not in known)
        if bad or not targets:
            raise ValueError(f"kind: {bad or 'a path needs a map'} — event kinds are "
                             f"{sorted(known)}")
        return self

    def field_type(self, name: str, spec: FieldSpec) -> FieldType:
        """The type a field is read as."""
        return spec.type or _DEFAULT_TYPES.get(name, "str")


def load_profile(source: str | Path | dict[str, Any]) -> Profile:
    """Load a profile from a YAML file, a shipped profile name, or an inline mapping.

    Args:
        source: a path to a YAML file, the name of a shipped profile
            (``his-prescription-xml``, ``warehouse-stock-json``) or the profile itself.

    Returns:
        The validated profile.

    Raises:
        FileNotFoundError: no such file or shipped profile.
        pydantic.ValidationError: the profile is malformed; every problem is listed.
    """
    if isinstance(source, dict):
        return Profile.model_validate(source)
    path = Path(source)
    if not path.suffix:
        shipped = Path(__file__).parent / "profiles" / f"{source}.yaml"
        if shipped.is_file():
            path = shipped
    if not path.is_file():
        shipped_names = sorted(p.stem for p in (Path(__file__).parent / "profiles").glob("*.yaml"))
        raise FileNotFoundError(f"no vendor profile {source!r} (a YAML file or one of "
                                f"{shipped_names})")
    return Profile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
