"""Supply orders (OMS^O05) and the supplier's responses (ORS^O06) to canonical events.

An OMS^O05 is the hospital's purchase order to a distributor: one ORC per line
with an RQD (requisition detail: RQD-2 hospital item code^name, RQD-5 quantity,
RQD-6 unit) and an optional RQ1 (RQ1-1 price, RQ1-2 manufacturer, RQ1-4
vendor). Lines sharing ORC-4 (placer group number, the purchase-order number)
form one document; without ORC-4 each ORC-2 is its own document.

An ORS^O06 answers an order: ORC-1 OK (accepted), UA (unable to accept), CR
(cancelled as requested), OC (order cancelled). It becomes a PURCHASE_ORDER event
whose ``extra`` carries ``order_response`` (ORC-1) and ``acknowledged`` (MSA-2),
with order control CA when the supplier cancelled or refused the lines.
"""

from __future__ import annotations

from datetime import datetime

from adapters.hl7v2.fields import Header, ZLayout, decimal, party
from adapters.hl7v2.message import Message, Segment, parse_ts
from canonical.errors import MessageRejected
from canonical.model import Event, EventKind, Line, OrderControl, Party

__all__ = ["SUPPLY_TYPES", "events_from_supply"]

SUPPLY_TYPES = frozenset({"OMS^O05", "ORS^O06"})

_ORDER_CONTROL = {"NW": OrderControl.NEW, "CA": OrderControl.CANCEL,
                  "DC": OrderControl.DISCONTINUE, "XO": OrderControl.CHANGE}
# ORS ORC-1 answers that mean the lines will not be delivered
_REFUSED = frozenset({"UA", "CR", "OC", "CA", "UC", "DR"})
_RESPONSES = frozenset({"OK", "UA", "CR", "OC", "CA", "UC", "DR", "NA", "UM", "UX", "XR"})


def _line(seq: int, rqd: Segment, rq1: Segment | None, z: Segment | None, layout: ZLayout,
          oc: OrderControl | None) -> Line:
    code = rqd.get(2, 1) or rqd.get(4, 1)
    if not code:
        raise MessageRejected(f"RQD-2 (hospital item code) is empty in line {seq}",
                              code="101", location="RQD-2")
    qty = rqd.get(5)
    if not qty:
        raise MessageRejected(f"RQD-5 (requisition quantity) is empty in line {seq}",
                              code="101", location="RQD-5")
    price = maker = ""
    supplier = None
    if rq1 is not None:
        price = rq1.get(1, 1)
        maker = rq1.get(2, 2) or rq1.get(2, 1)
        supplier = party(rq1, 4)
    spec = approval = generic = ""
    trace: tuple[str, ...] = ()
    if z is not None:
        if layout.specification:
            spec = z.get(layout.specification)
        if layout.manufacturer:
            maker = z.get(layout.manufacturer) or maker
        if layout.price and z.get(layout.price):
            price = z.get(layout.price)
        if layout.approval_no:
            approval = z.get(layout.approval_no)
        if layout.generic_name:
            generic = z.get(layout.generic_name)
        if layout.trace_codes:
            trace = tuple(t for t in z.all(layout.trace_codes) if t)
    return Line(
        seq=seq, item_code=code, item_name=rqd.get(2, 2) or rqd.get(4, 2),
        specification=spec, manufacturer=maker, quantity=decimal(qty, "RQD-5"),
        unit=rqd.get(6, 2) or rqd.get(6, 1),
        price=decimal(price, "RQ1-1") if price else None,
        generic_name=generic, approval_no=approval, trace_codes=trace,
        supplier=supplier, order_control=oc,
    )


def events_from_supply(msg: Message, header: Header,
                       layout: ZLayout | None = None) -> tuple[Event, ...]:
    """One PURCHASE_ORDER event per purchase-order number of an OMS^O05 or ORS^O06.

    Raises:
        MessageRejected: a required field is missing or malformed.
    """
    layout = layout or ZLayout()
    response = msg.message_type == "ORS^O06"
    extra_base: tuple[tuple[str, str], ...] = ()
    if response:
        msa = msg.find("MSA")
        if msa is None:
            raise MessageRejected("ORS^O06 has no MSA segment", code="100", location="MSA")
        extra_base = (("ack_code", msa.get(1)), ("acknowledged", msa.get(2)))
    docs: dict[str, list[Line]] = {}
    doc_orc: dict[str, Segment] = {}
    answers: dict[str, str] = {}
    orc: Segment | None = None
    rqd: Segment | None = None
    rq1: Segment | None = None
    z: Segment | None = None
    pending: list[tuple[Segment, Segment, Segment | None, Segment | None]] = []

    def close() -> None:
        if orc is not None and rqd is not None:
            pending.append((orc, rqd, rq1, z))

    for seg in msg.segments:
        n = seg.name
        if n == "ORC":
            close()
            orc, rqd, rq1, z = seg, None, None, None
        elif orc is None:
            continue
        elif n == "RQD":
            if rqd is not None:  # several RQD under one ORC: each is a line
                close()
                rq1 = z = None
            rqd = seg
        elif n == "RQ1":
            rq1 = seg
        elif n == layout.segment:
            z = seg
    close()
    if orc is None:
        raise MessageRejected(f"{msg.message_type} has no ORC segment",
                              code="100", location="ORC")
    if not pending and not response:
        raise MessageRejected("OMS^O05 has no RQD requisition line", code="100",
                              location="RQD")
    for g_orc, g_rqd, g_rq1, g_z in pending:
        control = g_orc.get(1)
        if response:
            if control not in _RESPONSES:
                raise MessageRejected(
                    f"unsupported order response {control!r} in ORC-1 "
                    "(expected OK, UA, CR, OC …)", code="103", location="ORC-1")
            oc: OrderControl | None = OrderControl.CANCEL if control in _REFUSED else None
        else:
            oc = _ORDER_CONTROL.get(control) if control else None
            if control and oc is None:
                raise MessageRejected(
                    f"unsupported order control {control!r} in ORC-1 (supported: NW, CA, DC, XO)",
                    code="103", location="ORC-1")
        doc = g_orc.get(4, 1) or g_orc.get(2, 1) or header.control_id
        lines = docs.setdefault(doc, [])
        lines.append(_line(len(lines) + 1, g_rqd, g_rq1, g_z, layout, oc))
        doc_orc.setdefault(doc, g_orc)
        answers.setdefault(doc, control)
    events = []
    for index, (doc, lines) in enumerate(docs.items()):
        o = doc_orc[doc]
        occurred: datetime = parse_ts(o.get(9), "ORC-9") or header.occurred_at
        extra = extra_base + ((("order_response", answers[doc]),) if response else ())
        supplier: Party | None = next((ln.supplier for ln in lines if ln.supplier), None)
        events.append(Event(
            event_id=f"{header.source}:{header.control_id}:{index}",
            kind=EventKind.PURCHASE_ORDER,
            hospital_id=header.hospital_id,
            source=header.source,
            occurred_at=occurred,
            lines=tuple(lines),
            control_id=header.control_id,
            document_no=doc,
            order_control=lines[0].order_control,
            prescriber=party(o, 12),  # ORC-12 ordering provider: the buyer
            department=party(o, 17),  # ORC-17 entering organization
            supplier=supplier,
            extra=extra,
        ))
    return tuple(events)
