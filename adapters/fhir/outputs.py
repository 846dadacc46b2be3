"""What the FHIR R4 adapter can fill, per event kind, named as the platforms' field
specifications name their sources (``line.lot_no``, ``party.pharmacist.name`` …); see
``check-config``. Product facts come from the Medication (code, form, manufacturer,
batch) and the gateway's extensions (specification, approval number, price, trace
codes, manufacture date, prescription-only) and the dispense and delivery extensions
(licence, settlement type and id, 外配处方 and 赠品 flags)."""

from __future__ import annotations

from canonical.model import EventKind

__all__ = ["outputs"]

_EVENT = frozenset({"event.document_no", "event.control_id", "event.hospital_id",
                    "event.occurred_at"})
_LINE = frozenset(f"line.{n}" for n in (
    "item_code", "item_name", "specification", "manufacturer", "quantity", "unit", "price",
    "generic_name", "dosage_form", "approval_no", "standard_code", "lot_no", "expiry",
    "trace_codes", "manu_date", "rx_only"))


def _party(*roles: str) -> frozenset[str]:
    return frozenset(f"party.{r}.{a}" for r in roles for a in ("id", "name"))


# MedicationDispense: performer.actor, the prescriber extension, subject and encounter,
# the dispense extensions kept in Event.extra
_DISPENSE = _EVENT | _LINE | _party("pharmacist", "prescriber") | frozenset({
    "patient.id", "patient.name", "patient.visit_no", "extra.phar_prac_cert_no",
    "extra.hi_feesetl_type", "extra.setl_id", "extra.original_no", "extra.rx_circ_flag"})
# SupplyRequest: requester, deliverTo, supplier
_ORDER = _EVENT | _LINE | _party("prescriber", "department", "supplier") | frozenset({
    "line.supplier.id", "line.supplier.name"})
# SupplyDelivery: supplier, receiver, destination, basedOn, the prod-geay-flag extension
_RECEIPT = _EVENT | _LINE | _party("supplier", "pharmacist", "department") | frozenset({
    "line.supplier.id", "line.supplier.name", "extra.based_on", "extra.prod_geay_flag"})


def outputs() -> dict[EventKind, frozenset[str]]:
    """The values the adapter can fill for each kind of event it produces."""
    return {EventKind.DISPENSE: _DISPENSE, EventKind.DISPENSE_RETURN: _DISPENSE,
            EventKind.PURCHASE_ORDER: _ORDER, EventKind.RECEIPT: _RECEIPT}
