"""What a provincial procurement platform (招采) takes, document by document, as data.

One request carries a whole document: header fields once, then ``lines``. Each
transaction is a :class:`DocumentSpec` of :class:`~gateway.platforms.fields.FieldSpec`
rows, with the same sources, types, defaults and ``field_defaults`` as the national
interface (see :mod:`gateway.platforms.fields`). The profile builds documents from these
rows and the simulator checks them against the same rows.

No official field list was at hand; the rows follow the public clients of one
provincial platform (Zhejiang) as DOMAIN.md sums them up: order lines carry the
hospital item id, distributor, quantity and price; a receipt answers a shipment and
carries, per line, the order line it delivers, the product's listing (挂网) id, lot,
expiry, purchase price and insurance payment price, with the shipment's invoice; a
return names the receipt it returns (``original_no``); a settlement lists the receipts
it pays and the items paid. A deployment supplies values no message carries in
``field_defaults`` (by field name, header or line).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from canonical.breaks import take_break
from canonical.model import Event
from gateway.platforms.fields import (
    BodyChecks,
    FieldMissing,
    FieldSpec,
    build_fields,
    check_fields,
    date_spec,
    number_spec,
    text_spec,
    time_spec,
)

__all__ = ["DOCUMENTS", "LINES", "DocumentChecks", "DocumentSpec", "build_document",
           "check_document", "missing_in_document"]

LINES = "lines"  # the key of a document's line list, and the prefix of a line field's name


@dataclass(frozen=True, slots=True)
class DocumentSpec:
    """The header fields and the fields of each line of one transaction."""

    header: tuple[FieldSpec, ...]
    lines: tuple[FieldSpec, ...]

    def fields(self) -> Iterable[tuple[str, FieldSpec]]:
        """Every field with the name ``missing`` reports it under (``lines.lotNo``)."""
        yield from ((f.name, f) for f in self.header)
        yield from ((f"{LINES}.{f.name}", f) for f in self.lines)


_HOSPITAL = text_spec("hospitalCode", "event.hospital_id", 12, True)
_DISTRIBUTOR = text_spec("distributor", "derived.supplier_name", 200, True,
                         note="the distributor (配送企业): the line's supplier, else the "
                              "document's (RQ1-4, 供应商名称)")
_LINE_NO = text_spec("lineNo", "line.seq", 10, True)
_ITEM = text_spec("hospitalItemId", "line.item_code", 50, True)
_ITEM_NAME = text_spec("itemName", "line.item_name", 200)
_NATIONAL = text_spec("nationalCode", "line.national_code", 50)
_QUANTITY = number_spec("quantity", "line.quantity", 4, True)  # in the hospital's unit
_PRICE = number_spec("price", "line.price", 4, True)
_MEMO = text_spec("memo", "extra.memo", 500)

_ORDER = DocumentSpec(
    header=(
        _HOSPITAL,
        text_spec("orderNo", "event.document_no", 50, True,
                  note="the purchase-order number (ORC-4, else ORC-2)"),
        time_spec("orderTime", "derived.time", True),
        text_spec("buyer", "party.prescriber.name", 50, note="ORC-12, the person ordering"),
        text_spec("department", "party.department.name", 100),
        _MEMO,
    ),
    lines=(
        _LINE_NO, _ITEM, _ITEM_NAME, _NATIONAL,
        text_spec("specification", "line.specification", 200),
        text_spec("manufacturer", "line.manufacturer", 200),
        _DISTRIBUTOR, _QUANTITY,
        text_spec("unit", "line.unit", 20),
        _PRICE,
        number_spec("amount", "derived.amount", 4),
    ),
)

_CANCEL = DocumentSpec(
    header=(
        _HOSPITAL,
        text_spec("orderNo", "event.document_no", 50, True),
        time_spec("cancelTime", "derived.time", True),
        text_spec("reason", "extra.cancel_reason", 200),
    ),
    lines=(_LINE_NO, _ITEM, _QUANTITY),
)

_RECEIPT = DocumentSpec(
    header=(
        _HOSPITAL,
        text_spec("receiptNo", "event.document_no", 50, True),
        text_spec("shipmentId", "derived.shipment_id", 50, True,
                  note="the distributor's delivery note (配送单号, extra shipment_id or "
                       "dynt_no)"),
        text_spec("invoiceNo", "extra.invoice_no", 50, True),
        text_spec("invoiceCode", "extra.invoice_code", 50),
        time_spec("receiveTime", "derived.time", True),
        text_spec("receiver", "party.pharmacist.name", 50, True,
                  note="the person who received the goods (操作员, ZWD-5)"),
        _DISTRIBUTOR,
        _MEMO,
    ),
    lines=(
        text_spec("orderLineId", "line_extra.order_line_id", 50, True,
                  note="the order line this line delivers (订单明细号)"),
        text_spec("listingId", "line_extra.listing_id", 50, True,
                  note="the product's listing on the platform (挂网编号)"),
        _ITEM, _ITEM_NAME, _NATIONAL,
        text_spec("lotNo", "line.lot_no", 30, True),
        date_spec("expiryDate", "line.expiry", True),
        date_spec("manuDate", "line.manu_date"),
        _QUANTITY,
        number_spec("purchasePrice", "line.price", 4, True),
        number_spec("insurancePayPrice", "line_extra.insurance_pay_price", 4,
                    False),  # a product may have no insurance payment standard yet
    ),
)

_RETURN = DocumentSpec(
    header=(
        _HOSPITAL,
        text_spec("returnNo", "event.document_no", 50, True),
        text_spec("originalNo", "extra.original_no", 50, True,
                  note="the receipt the goods came in with (原单据号)"),
        time_spec("returnTime", "derived.time", True),
        text_spec("reason", "extra.return_reason", 200, True, note="退货原因"),
        _DISTRIBUTOR,
        _MEMO,
    ),
    lines=(
        _ITEM, _ITEM_NAME,
        text_spec("listingId", "line_extra.listing_id", 50),
        text_spec("lotNo", "line.lot_no", 30, True),
        _QUANTITY, _PRICE,
    ),
)

_SETTLEMENT = DocumentSpec(
    header=(
        _HOSPITAL,
        text_spec("settlementNo", "event.document_no", 50, True),
        time_spec("settleTime", "derived.time", True),
        _DISTRIBUTOR,
        text_spec("receiptNos", "extra.receipt_no", 1000, True,
                  note="the receipts this statement pays, '|' between them"),
        number_spec("totalAmount", "derived.total_amount", 2, True),
        _MEMO,
    ),
    lines=(_ITEM, _ITEM_NAME, _QUANTITY, _PRICE,
           number_spec("amount", "derived.amount", 4, True)),
)

DOCUMENTS: dict[str, DocumentSpec] = {
    "order.submit": _ORDER, "order.cancel": _CANCEL, "delivery.receive": _RECEIPT,
    "return.apply": _RETURN, "settlement.submit": _SETTLEMENT,
}


def build_document(infno: str, spec: DocumentSpec, event: Event,
                   defaults: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The document's ``data``: header fields and ``lines``, typed.

    Raises:
        FieldMissing: every field without a value or of the wrong form, a line's
            named ``lines[<seq>].<field>``.
    """
    ctx: dict[str, Any] = {}
    problems: dict[str, str] = {}
    data: dict[str, Any] = {}
    try:
        data = build_fields(infno, spec.header, event, event.lines[0], ctx, defaults)
    except FieldMissing as exc:
        problems.update(exc.problems)
    lines = []
    for line in event.lines:
        try:
            lines.append(build_fields(infno, spec.lines, event, line, ctx, defaults))
        except FieldMissing as exc:
            problems.update({f"{LINES}[{line.seq}].{k}": v for k, v in exc.problems.items()})
    if problems:
        raise FieldMissing(infno, problems)
    data[LINES] = lines
    return data


@dataclass(frozen=True, slots=True)
class DocumentChecks:
    """A document's header and line rows arranged for the check at ingest."""

    header: BodyChecks
    lines: BodyChecks

    @classmethod
    def of(cls, spec: DocumentSpec) -> DocumentChecks:
        """The checks of one document specification."""
        return cls(BodyChecks.of(spec.header), BodyChecks.of(spec.lines))


def missing_in_document(checks: DocumentChecks, event: Event,
                        defaults: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the platform would refuse in the document: mandatory fields nothing fills and
    values not of the interface's form, ``receiver`` / ``lines.lotNo`` → why."""
    if not event.lines:
        return {}
    first, ctx = event.lines[0], dict[str, Any]()
    head, rows = checks.header, checks.lines
    out = {**head.missing(event, first, ctx, defaults), **head.malformed_event(event, first, ctx),
           **head.malformed_line(event, first, ctx)}
    found = rows.malformed_event(event, first, ctx)
    seen: set[tuple[Any, ...]] = set()
    good: set[tuple[str, Any]] = set()
    for line in event.lines:
        take_break()
        found.update(rows.malformed_line(event, line, ctx, good))
        sig = rows.signature(line)
        if sig not in seen:
            seen.add(sig)
            found.update(rows.missing(event, line, ctx, defaults))
    for name, why in found.items():
        out.setdefault(f"{LINES}.{name}", why)
    return out


def check_document(spec: DocumentSpec, data: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field, reason) of the first field of a document ``data`` the platform refuses."""
    found = check_fields(spec.header, data)
    if found is not None:
        return found
    lines = data.get(LINES)
    if not isinstance(lines, list) or not lines:
        return LINES, "明细不能为空"
    for i, line in enumerate(lines, 1):
        if not isinstance(line, dict):
            return f"{LINES}[{i}]", "明细应为对象"
        found = check_fields(spec.lines, line)
        if found is not None:
            return f"{LINES}[{i}].{found[0]}", found[1]
    return None
