"""Finding adapters: built-ins by short alias, vendor adapters through entry points."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, cast

from adapters.base import Adapter
from canonical.errors import GatewayError

__all__ = ["ENTRY_POINT_GROUP", "UnknownAdapterError", "available", "create", "resolve"]

ENTRY_POINT_GROUP = "jicai_gateway.adapters"

BUILTIN: dict[str, str] = {
    "hl7v2": "adapters.hl7v2:HL7v2Adapter",
    "fhir-r4": "adapters.fhir:FhirR4Adapter",
    "vendor-xml": "adapters.vendor:VendorXmlAdapter",
    "vendor-json": "adapters.vendor:VendorJsonAdapter",
}


class UnknownAdapterError(GatewayError, KeyError):
    """No adapter has that name; the message suggests the closest ones."""

    def __init__(self, name: str, known: list[str]) -> None:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(f"unknown adapter {name!r}{hint} (available: {', '.join(sorted(known))})")
        self.name = name
        self.suggestions = close

    def __str__(self) -> str:
        return str(self.args[0])


def _vendor() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> dict[str, str]:
    """Every adapter name with its ``module:Class`` target; built-ins win a clash."""
    return {**_vendor(), **BUILTIN}


def resolve(name: str) -> type[Adapter]:
    """The adapter class for an alias or a ``module:Class`` path.

    Raises:
        UnknownAdapterError: nothing has that name.
    """
    known = available()
    target = known.get(name)
    if target is None and ":" in name:
        target = name
    if target is None:
        raise UnknownAdapterError(name, list(known))
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return cast(type[Adapter], getattr(module, attr))


def create(name: str, config: Mapping[str, Any] | None = None) -> Adapter:
    """Instantiate an adapter with its validated configuration.

    Raises:
        UnknownAdapterError: nothing has that name.
        pydantic.ValidationError: the configuration does not fit the adapter's schema.
    """
    cls = resolve(name)
    validated = cls.config_model.model_validate(dict(config or {}))
    return cls(validated)  # type: ignore[call-arg]
