"""What the HL7 v2 adapter can fill, per event kind, named as the platforms' field
specifications name their sources (``line.lot_no``, ``party.pharmacist.name``,
``extra.invoice_no`` …).

``check-config`` compares these with the mandatory fields of each destination, so that a
field no configured sender can fill is found before the first event waits for it. A
value a message may leave empty still counts: what is declared here is what the
segments can carry.
"""

from __future__ import annotations

from adapters.hl7v2.config import HL7v2Config
from adapters.hl7v2.layout import ZLayout
from canonical.model import EventKind

__all__ = ["outputs"]

_EVENT = frozenset({"event.document_no", "event.control_id", "event.hospital_id",
                    "event.occurred_at"})
_LINE = frozenset({"line.item_code", "line.item_name", "line.quantity", "line.unit"})
# RDS^O13 / RDS^O01: ORC-12 prescriber, RXD-10 dispensing pharmacist, PV1 visit and
# financial class (the settlement type), RXD-18/19/20 lot, expiry, manufacturer
_DISPENSE = _EVENT | _LINE | frozenset({
    "party.prescriber.id", "party.prescriber.name", "party.pharmacist.id",
    "party.pharmacist.name", "party.department.id", "party.department.name",
    "patient.id", "patient.name", "patient.id_card", "patient.phone", "patient.insurance_no",
    "patient.visit_no", "extra.hi_feesetl_type", "line.dosage_form", "line.lot_no",
    "line.expiry", "line.manufacturer"})
# ZWH^Z01: ZWD document (supplier, operator, warehouse, invoice, delivery note, original
# document, stock-change type, free goods) and ZWL lines (free goods per line)
_WAREHOUSE = _EVENT | _LINE | frozenset({
    "party.supplier.id", "party.supplier.name", "party.pharmacist.id",
    "party.pharmacist.name", "party.department.id", "party.department.name",
    "extra.invoice_no", "extra.invoice_code", "extra.dynt_no", "extra.original_no",
    "extra.inv_chg_type", "extra.prod_geay_flag", "line_extra.prod_geay_flag",
    "line.specification", "line.manufacturer", "line.price",
    "line.lot_no", "line.expiry", "line.approval_no", "line.trace_codes",
    "line.standard_code", "line.generic_name", "line.manu_date", "line.rx_only"})
# OMS^O05: ORC-12 the buyer, ORC-17 the department, RQ1-1 price, RQ1-2 maker, RQ1-4 vendor
_ORDER = _EVENT | _LINE | frozenset({
    "party.prescriber.id", "party.prescriber.name", "party.department.id",
    "party.department.name", "party.supplier.id", "party.supplier.name", "line.price",
    "line.manufacturer", "line.supplier.id", "line.supplier.name"})


def _z_facts(layout: ZLayout) -> frozenset[str]:
    out = {"line.trace_codes"} if layout.trace_codes else set()
    out.update(f"line.{name}" for name, _ in layout.positions)
    out.update(f"extra.{name}" for name, _ in layout.document_positions)
    return frozenset(out)


def outputs(config: HL7v2Config) -> dict[EventKind, frozenset[str]]:
    """The values the adapter can fill for each kind of event it produces (with the
    Z-segment facts every configured layout carries)."""
    layouts = [ZLayout(segment=config.z_segment,
                       **config.z_fields.model_dump(exclude_unset=True)),
               *config.z_by_facility.values()]
    z = frozenset.intersection(*(_z_facts(layout) for layout in layouts))
    dispense = _DISPENSE | z
    order = _ORDER | (z & {"line.specification", "line.approval_no", "line.generic_name",
                           "line.trace_codes", "line.manufacturer", "line.price"})
    kinds = set(config.warehouse_doc_types.values())
    out = {EventKind.DISPENSE: dispense, EventKind.PURCHASE_ORDER: order}
    out.update({kind: _WAREHOUSE for kind in kinds})
    if EventKind.PAYMENT in out:  # FK: ZWD-13 the receipts paid, ZWD-14 the amount
        out[EventKind.PAYMENT] = _WAREHOUSE | {"extra.receipt_no", "extra.amount"}
    return out
