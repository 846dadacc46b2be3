"""A deployment's own field rules on top of the interface's field specifications.

Provinces tighten the national interface: an optional field (``setl_id``,
``prsc_dr_certno``) becomes mandatory, or a field of their own is added to a body. A
destination says so in configuration —

.. code-block:: yaml

    destinations:
      - name: nhsa
        mandatory: {"3505": [setl_id, prsc_dr_certno]}
        extra_fields:
          "3505":
            - {name: hosp_dept_codg, source: party.department.id, length: 30,
               mandatory: true}

— and the profile builds, checks and holds with the result exactly as with the shipped
rows: a field made mandatory that an event cannot fill holds the event naming it, an
added field is typed and checked like any other. For a 招采 destination the keys are the
transaction names (``delivery.receive``) and a line field is named ``lines.<field>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from canonical.model import Line, Party
from gateway.platforms.fields import (
    DERIVED_INPUTS,
    SPECS,
    FieldSpec,
    FieldType,
    date_spec,
    flag_spec,
    number_spec,
    text_spec,
    time_spec,
    typed_problem,
)
from gateway.platforms.zhaocai_fields import DOCUMENTS, LINES, DocumentSpec


class ExtraFieldConfig(Protocol):
    """A configured field (``gateway.config.ExtraFieldConfig``)."""

    @property
    def name(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def length(self) -> int: ...
    @property
    def scale(self) -> int: ...
    @property
    def codes(self) -> tuple[str, ...]: ...
    @property
    def mandatory(self) -> bool: ...
    @property
    def default(self) -> str | None: ...


class DestinationConfig(Protocol):
    """A destination's field rules (``gateway.config.DestinationConfig``; read here
    without importing the configuration, which checks its rules with this module)."""

    @property
    def profile(self) -> str: ...
    @property
    def mandatory(self) -> Mapping[str, tuple[str, ...]]: ...
    @property
    def extra_fields(self) -> Mapping[str, Sequence[ExtraFieldConfig]]: ...
    @property
    def field_defaults(self) -> Mapping[str, str]: ...

__all__ = ["config_problems", "destination_documents", "destination_specs", "source_problem",
           "to_spec"]

_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_ROLES = frozenset({"prescriber", "pharmacist", "department", "supplier"})
_EVENT_TEXT = frozenset({"hospital_id", "source", "occurred_at", "control_id", "document_no"})
_LINE_VALUES = frozenset(Line.__struct_fields__) - {"extra", "trace_codes", "supplier",
                                                    "order_control"}


def source_problem(source: str) -> str:
    """Why ``source`` names no value the gateway has, or "" (the forms are those of
    :mod:`gateway.platforms.fields`)."""
    kind, _, rest = source.partition(".")
    if kind == "config" and not rest:
        return ""
    if kind == "line" and rest in _LINE_VALUES | {"amount"}:
        return ""
    if kind == "event" and rest in _EVENT_TEXT:
        return ""
    if kind == "party":
        role, _, attr = rest.partition(".")
        if role in _ROLES and attr in Party.__struct_fields__:
            return ""
    if kind in ("extra", "line_extra") and _KEY.match(rest):
        return ""
    if kind == "derived" and rest in DERIVED_INPUTS:
        return ""
    return (f"source {source!r} names no value; use line.<{'|'.join(sorted(_LINE_VALUES))}>, "
            f"event.<{'|'.join(sorted(_EVENT_TEXT))}>, party.<{'|'.join(sorted(_ROLES))}>."
            f"<id|name>, extra.<key>, line_extra.<key>, derived.<"
            f"{'|'.join(sorted(DERIVED_INPUTS))}> or config")


def to_spec(field: ExtraFieldConfig) -> FieldSpec:
    """The field specification of one configured field (its ``lines.`` prefix dropped)."""
    name = field.name.removeprefix(f"{LINES}.")
    if field.type == "date":
        spec = date_spec(name, field.source, field.mandatory)
    elif field.type == "datetime":
        spec = time_spec(name, field.source, field.mandatory)
    elif field.type == "decimal":
        spec = number_spec(name, field.source, field.scale, field.mandatory)
    elif field.type == "flag":
        spec = replace(flag_spec(name, field.source), mandatory=field.mandatory)
    else:
        spec = text_spec(name, field.source, field.length, field.mandatory)
        if field.codes:
            spec = replace(spec, type=FieldType.CODE, codes=tuple(field.codes))
    return replace(spec, default=field.default, note="configured (extra_fields)")


def _tightened(specs: Sequence[FieldSpec], mandatory: set[str]) -> tuple[FieldSpec, ...]:
    return tuple(replace(s, mandatory=True) if s.name in mandatory and not s.mandatory else s
                 for s in specs)


def destination_specs(dest: DestinationConfig) -> dict[str, tuple[FieldSpec, ...]]:
    """The national interface's rows with the destination's ``mandatory`` and
    ``extra_fields`` applied (the shipped :data:`SPECS` when it has neither)."""
    if not dest.mandatory and not dest.extra_fields:
        return SPECS
    out: dict[str, tuple[FieldSpec, ...]] = {}
    for infno, specs in SPECS.items():
        made = _tightened(specs, set(dest.mandatory.get(infno, ())))
        out[infno] = made + tuple(to_spec(f) for f in dest.extra_fields.get(infno, ()))
    return out


def destination_documents(dest: DestinationConfig) -> dict[str, DocumentSpec]:
    """The 招采 documents with the destination's ``mandatory`` and ``extra_fields``."""
    if not dest.mandatory and not dest.extra_fields:
        return DOCUMENTS
    out: dict[str, DocumentSpec] = {}
    prefix = f"{LINES}."
    for name, doc in DOCUMENTS.items():
        wanted = dest.mandatory.get(name, ())
        added = dest.extra_fields.get(name, ())
        out[name] = DocumentSpec(
            header=_tightened(doc.header, {f for f in wanted if not f.startswith(prefix)})
            + tuple(to_spec(f) for f in added if not f.name.startswith(prefix)),
            lines=_tightened(doc.lines, {f.removeprefix(prefix) for f in wanted
                                         if f.startswith(prefix)})
            + tuple(to_spec(f) for f in added if f.name.startswith(prefix)))
    return out


def _names(dest: DestinationConfig) -> Mapping[str, set[str]]:
    """Each transaction's field names as ``mandatory`` takes them (``lines.x`` for a
    招采 line field)."""
    if dest.profile == "zhaocai":
        return {name: {n for n, _ in doc.fields()} for name, doc in DOCUMENTS.items()}
    return {infno: {s.name for s in specs} for infno, specs in SPECS.items()}


def config_problems(dest: DestinationConfig) -> list[str]:
    """What is wrong with a destination's ``mandatory``, ``extra_fields`` and
    ``field_defaults``: unknown transactions, fields and sources, each named."""
    known = _names(dest)
    problems: list[str] = []
    choices = ", ".join(sorted(known))
    for infno, fields in dest.extra_fields.items():
        if infno not in known:
            problems.append(f"extra_fields: unknown transaction {infno!r}; choose from "
                            f"{choices}")
            continue
        for f in fields:
            if dest.profile != "zhaocai" and f.name.startswith(f"{LINES}."):
                problems.append(f"extra_fields.{infno}.{f.name}: 'lines.' names a 招采 "
                                "line field; a national interface body is one line")
            elif f.name in known[infno]:
                problems.append(f"extra_fields.{infno}.{f.name}: the interface already has "
                                "this field (use mandatory to require it)")
            why = source_problem(f.source)
            if why:
                problems.append(f"extra_fields.{infno}.{f.name}: {why}")
    for infno, names in dest.mandatory.items():
        if infno not in known:
            problems.append(f"mandatory: unknown transaction {infno!r}; choose from {choices}")
            continue
        added = {f.name for f in dest.extra_fields.get(infno, ())}
        unknown = sorted(set(names) - known[infno] - added)
        if unknown:
            problems.append(f"mandatory.{infno}: {', '.join(unknown)} not fields of {infno} "
                            "(add a province's own field under extra_fields)")
    every = {n.removeprefix(f"{LINES}.") for names in known.values() for n in names}
    every |= {f.name.removeprefix(f"{LINES}.") for fs in dest.extra_fields.values() for f in fs}
    unknown = sorted(set(dest.field_defaults) - every)
    if unknown:
        # a misspelt key would leave every event it was meant for held or refused
        problems.append(f"field_defaults: {', '.join(unknown)} not fields of any "
                        f"{dest.profile} transaction")
    problems.extend(_default_problems(dest))
    return problems


def _default_problems(dest: DestinationConfig) -> list[str]:
    """``field_defaults`` values the platform would refuse for their form: checked once
    here, since an event filled from one is not checked again before it goes."""
    if not dest.field_defaults:
        return []
    if dest.profile == "zhaocai":
        specs = [s for doc in destination_documents(dest).values()
                 for s in (*doc.header, *doc.lines)]
    else:
        specs = [s for rows in destination_specs(dest).values() for s in rows]
    problems: dict[str, str] = {}
    for spec in specs:
        value = dest.field_defaults.get(spec.name)
        if value is None or spec.name in problems:
            continue
        why = typed_problem(spec, value)
        if why:
            problems[spec.name] = f"field_defaults.{spec.name}: {why}"
    return list(problems.values())
