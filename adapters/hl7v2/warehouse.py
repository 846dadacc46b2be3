"""Warehouse (库房 / SPD) stock documents in the gateway's ZWH^Z01 message.

HL7 v2 has no message for "received into stock", "returned to the
distributor" or "paid the supplier for goods received", so warehouse systems that
speak HL7 send this documented Z-message (layout in docs/adapters.md):

``ZWD`` — one per document: ZWD-1 document number, ZWD-2 document type
(RK 入库, TH 退货, PD 盘点, YK 移库, BS 报损, FK 付款; the mapping to event kinds is
configurable), ZWD-3 time, ZWD-4 supplier (id^name), ZWD-5 operator
(id^name, the person who received or returned the goods), ZWD-6 warehouse
(id^name), ZWD-7 invoice number, ZWD-8 online purchase flag (Y/N, 网采), ZWD-9
invoice code (发票代码), ZWD-10 delivery-note number (随货单号), ZWD-11 the
original document a return gives back (the purchase's serial), ZWD-12 the
national stock-change type (inv_chg_type) of a YK / BS document, ZWD-13 the
receipts (入库单号, repeated with ~) a payment settles, ZWD-14 the amount paid,
ZWD-15 free goods (赠品, Y/N): every line of the document was given, not bought.

A payment (FK) needs ZWD-13; its ZWL lines (the items paid) are optional.

``ZWL`` — one per line after its ZWD: ZWL-1 set id, ZWL-2 item code^name,
ZWL-3 specification, ZWL-4 manufacturer, ZWL-5 quantity, ZWL-6 unit, ZWL-7 unit
price, ZWL-8 lot, ZWL-9 expiry (DT), ZWL-10 approval number, ZWL-11
traceability codes (repeated with ~), ZWL-12 药品本位码, ZWL-13 generic name,
ZWL-14 manufacture date (DT), ZWL-15 prescription-only flag (Y/N), ZWL-16 free
goods (赠品, Y/N): this line was given, whatever ZWD-15 says.

Yes/no fields take Y/N, 1/0, T/F, true/false or 是/否; 3503/3504 send free goods as
``prod_geay_flag`` "1".
"""

from __future__ import annotations

from collections.abc import Mapping

from adapters.hl7v2.fields import Header, checked_date, decimal, flag01, party, yes_no
from adapters.hl7v2.message import Message, Segment, parse_ts
from canonical.errors import MessageRejected
from canonical.model import Event, EventKind, Line

__all__ = ["DEFAULT_DOC_TYPES", "WAREHOUSE_TYPES", "events_from_warehouse"]

WAREHOUSE_TYPES = frozenset({"ZWH^Z01"})

DEFAULT_DOC_TYPES: dict[str, EventKind] = {
    "RK": EventKind.RECEIPT,
    "TH": EventKind.RETURN,
    "PD": EventKind.STOCKTAKE,
    "YK": EventKind.STOCK_CHANGE,
    "BS": EventKind.STOCK_CHANGE,
    "FK": EventKind.PAYMENT,
}


def _line(seq: int, zwl: Segment) -> Line:
    code = zwl.get(2, 1)
    if not code:
        raise MessageRejected(f"ZWL-2 (item code) is empty in line {seq}",
                              code="101", location="ZWL-2")
    qty = zwl.get(5)
    if not qty:
        raise MessageRejected(f"ZWL-5 (quantity) is empty in line {seq}",
                              code="101", location="ZWL-5")
    price = zwl.get(7)
    free = flag01(zwl.get(16), "ZWL-16", "prod_geay_flag 赠品标志")
    return Line(
        seq=seq, item_code=code, item_name=zwl.get(2, 2), specification=zwl.get(3),
        manufacturer=zwl.get(4), quantity=decimal(qty, "ZWL-5"),
        unit=zwl.get(6, 2) or zwl.get(6, 1),
        price=decimal(price, "ZWL-7") if price else None,
        lot_no=zwl.get(8), expiry=_date(zwl, 9), approval_no=zwl.get(10),
        trace_codes=tuple(t for t in zwl.all(11) if t), standard_code=zwl.get(12),
        generic_name=zwl.get(13), manu_date=_date(zwl, 14),
        rx_only=yes_no(zwl.get(15), "ZWL-15", "prescription-only flag"),
        extra=(("prod_geay_flag", free),) if free else (),
    )


def _date(zwl: Segment, n: int) -> str:
    value = zwl.get(n)
    return checked_date(value, f"ZWL-{n}") if value else ""


# ZWD fields kept in Event.extra for the platform's purchase and stock-change bodies
_EXTRA = (("invoice_no", 7), ("invoice_code", 9), ("dynt_no", 10), ("original_no", 11),
          ("inv_chg_type", 12), ("amount", 14))


def _extra(zwd: Segment, kind: EventKind) -> tuple[tuple[str, str], ...]:
    found = tuple((key, zwd.get(n)) for key, n in _EXTRA if zwd.get(n))
    free = flag01(zwd.get(15), "ZWD-15", "prod_geay_flag 赠品标志")
    if free:
        found += (("prod_geay_flag", free),)
    if kind is not EventKind.PAYMENT:
        return found
    amount = zwd.get(14)
    if amount:
        decimal(amount, "ZWD-14")
    # the ledger splits on "|", which cannot occur inside an HL7 v2 field
    receipts = "|".join(r for r in zwd.all(13) if r)
    if not receipts:
        raise MessageRejected(f"payment {zwd.get(1)} names no receipt in ZWD-13 (入库单号)",
                              code="101", location="ZWD-13")
    return (("receipt_no", receipts), *found)


def events_from_warehouse(msg: Message, header: Header,
                          doc_types: Mapping[str, EventKind] | None = None
                          ) -> tuple[Event, ...]:
    """One event per ZWD document of a ZWH^Z01 message.

    Raises:
        MessageRejected: no ZWD, an unknown document type, or a bad line.
    """
    types = DEFAULT_DOC_TYPES if doc_types is None else doc_types
    groups: list[tuple[Segment, list[Segment]]] = []
    for seg in msg.segments:
        if seg.name == "ZWD":
            groups.append((seg, []))
        elif seg.name == "ZWL":
            if not groups:
                raise MessageRejected("ZWL line before any ZWD document header",
                                      code="100", location="ZWL")
            groups[-1][1].append(seg)
    if not groups:
        raise MessageRejected("ZWH^Z01 has no ZWD document", code="100", location="ZWD")
    events = []
    for index, (zwd, zwls) in enumerate(groups):
        doc = zwd.get(1)
        if not doc:
            raise MessageRejected("ZWD-1 (document number) is empty", code="101",
                                  location="ZWD-1")
        doc_type = zwd.get(2, 1)
        kind = types.get(doc_type)
        if kind is None:
            raise MessageRejected(
                f"unknown warehouse document type {doc_type!r} in ZWD-2 "
                f"(configured: {', '.join(sorted(types))})", code="103", location="ZWD-2")
        if not zwls and kind is not EventKind.PAYMENT:
            raise MessageRejected(f"document {doc} has no ZWL line", code="100",
                                  location="ZWL")
        lines = tuple(_line(i, seg) for i, seg in enumerate(zwls, start=1))
        events.append(Event(
            event_id=f"{header.source}:{header.control_id}:{index}",
            kind=kind,
            hospital_id=header.hospital_id,
            source=header.source,
            occurred_at=parse_ts(zwd.get(3), "ZWD-3") or header.occurred_at,
            lines=lines,
            control_id=header.control_id,
            document_no=doc,
            supplier=party(zwd, 4),
            pharmacist=party(zwd, 5),  # the storekeeper who booked it
            department=party(zwd, 6),
            online=zwd.get(8) != "N",
            extra=_extra(zwd, kind),
        ))
    return tuple(events)
