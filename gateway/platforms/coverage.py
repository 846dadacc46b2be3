"""Which mandatory platform fields the configured adapters cannot fill (``check-config``).

Each destination's transactions have field specifications naming the source of every
field (:mod:`gateway.platforms.fields`, :mod:`gateway.platforms.zhaocai_fields`); each
adapter declares what it can fill per event kind (the HL7 v2 adapter's segments, a
vendor profile's field mappings). A mandatory field whose source no listener producing
that kind can fill — and that no default or ``field_defaults`` entry covers — means
every such event will be held: worth a warning before the first one waits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from canonical.model import EventKind
from gateway.config import DestinationConfig, GatewayConfig, ListenerConfig
from gateway.platforms.custom_fields import destination_documents, destination_specs
from gateway.platforms.fields import DERIVED_INPUTS, FieldSpec
from gateway.platforms.nhsa import INFNO
from gateway.platforms.zhaocai import CANCEL, TRANSACTIONS

__all__ = ["Gap", "config_gaps", "coverage_gaps", "inputs_of", "listener_outputs"]

# filled for every event whatever the adapter: every adapter refuses a message without
# them, the gateway sets them (the receipt time), or mapping does (the national code)
ALWAYS = frozenset({"event.hospital_id", "event.occurred_at", "line.seq", "line.item_code",
                    "line.quantity", "line.national_code", "line.national_quantity"})
# values mapping computes from what the message carries
_IMPLIED = {"line.national_price": ("line.price",), "line.amount": ("line.price",)}
CATALOG = "catalog"  # a value the national catalog can supply (rx_flag)

Outputs = Mapping[EventKind, frozenset[str]]


@dataclass(frozen=True, slots=True)
class Gap:
    """A mandatory field one listener's events of a kind can never fill."""

    destination: str
    transaction: str
    field: str
    listener: str
    adapter: str
    needs: tuple[str, ...]  # any one of these would fill it

    @property
    def catalog(self) -> bool:
        """The national catalog can still supply it (a 处方药标志 / OTC 标志 column)."""
        return CATALOG in self.needs

    @property
    def message(self) -> str:
        """The warning, with what would cure it."""
        wanted = " or ".join(n for n in self.needs if n != CATALOG)
        cure = ("filled only when the national catalog has a 处方药标志 / OTC 标志 column"
                if self.catalog else f"such events are held: map {wanted} in the adapter "
                f"or set destinations[{self.destination}].field_defaults.{self.field_key}")
        return (f"{self.destination} {self.transaction} {self.field}: listener "
                f"{self.listener} ({self.adapter}) fills no {wanted}; {cure}")

    @property
    def field_key(self) -> str:
        """The field's name as ``field_defaults`` takes it (a line field without ``lines.``)."""
        return self.field.rpartition(".")[2]


def inputs_of(source: str) -> tuple[str, ...]:
    """What a message must carry for ``source``: any one of these; () when it is always
    filled, ("config",) when only ``field_defaults`` fills it."""
    if source in ALWAYS:
        return ()
    kind, _, rest = source.partition(".")
    if kind == "derived":
        return DERIVED_INPUTS[rest]
    if kind == "config":
        return ("config",)
    return _IMPLIED.get(source, (source,))


def _requirements(dest: DestinationConfig
                  ) -> Iterator[tuple[str, EventKind, str, FieldSpec]]:
    """(transaction, event kind, field, spec) of every mandatory field of the destination."""
    if dest.profile == "zhaocai":
        documents = destination_documents(dest)
        kinds = [*TRANSACTIONS.items(), (EventKind.PURCHASE_ORDER, CANCEL)]
        for kind, name in kinds:
            for field, spec in documents[name].fields():
                if spec.mandatory:
                    yield name, kind, field, spec
        return
    specs = destination_specs(dest)
    for kind, (infno, _) in INFNO.items():
        for spec in specs[infno]:
            if spec.mandatory:
                yield infno, kind, spec.name, spec


def listener_outputs(listener: ListenerConfig) -> Outputs | None:
    """What a listener's adapter can fill per event kind; None for an adapter that
    declares nothing (a plug-in): its events are not checked.

    Raises:
        ValueError: the listener's adapter configuration is invalid.
    """
    if listener.adapter == "hl7v2":
        from adapters.hl7v2.config import HL7v2Config
        from adapters.hl7v2.outputs import outputs as hl7_outputs

        return hl7_outputs(HL7v2Config.model_validate(listener.config))
    if listener.adapter == "fhir-r4":
        from adapters.fhir.outputs import outputs as fhir_outputs

        return fhir_outputs()
    if listener.adapter in ("vendor-xml", "vendor-json"):
        from adapters.vendor.outputs import outputs as vendor_outputs
        from adapters.vendor.profile import load_profile

        profile = listener.config.get("profile")
        if profile is None:
            raise ValueError(f"listener {listener.name}: no vendor profile configured")
        return vendor_outputs(load_profile(profile))
    return None


def coverage_gaps(dest: DestinationConfig,
                  producers: Iterable[tuple[ListenerConfig, Outputs]]) -> list[Gap]:
    """The mandatory fields of ``dest`` that some listener's events can never fill."""
    producers = list(producers)
    gaps: list[Gap] = []
    for transaction, kind, field, spec in _requirements(dest):
        if spec.default is not None or spec.name in dest.field_defaults:
            continue
        needs = inputs_of(spec.source)
        if not needs:
            continue
        for listener, outputs in producers:
            filled = outputs.get(kind)
            if filled is None or any(n in filled for n in needs):
                continue  # the listener sends no such events, or can fill it
            gaps.append(Gap(dest.name, transaction, field, listener.name, listener.adapter,
                            needs))
    return gaps


def config_gaps(cfg: GatewayConfig) -> tuple[list[Gap], list[str]]:
    """Every destination's gaps over every listener, and the listeners not checked
    (with why)."""
    producers: list[tuple[ListenerConfig, Outputs]] = []
    unchecked: list[str] = []
    for listener in cfg.listeners:
        try:
            outputs = listener_outputs(listener)
        except (ValueError, OSError) as exc:  # pydantic's errors are ValueErrors
            unchecked.append(f"{listener.name} ({listener.adapter}): {exc}")
            continue
        if outputs is None:
            unchecked.append(f"{listener.name} ({listener.adapter}): declares no outputs")
        else:
            producers.append((listener, outputs))
    gaps = [g for dest in cfg.destinations for g in coverage_gaps(dest, producers)]
    return gaps, unchecked
