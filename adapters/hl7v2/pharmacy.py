"""Pharmacy messages (RDE^O11 orders, RDS^O13 dispenses) to canonical events.

Each ORC opens an order group; the RXE (order) or RXD (dispense) in the group is
one line. A ``ZJC`` segment after it carries what HL7 v2.5 has no field for and
集采 needs: specification, manufacturer, unit price, traceability codes, approval
number and generic name (layout documented in docs/hl7v2.md).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation

from gateway.errors import MessageRejected
from gateway.model import Event, EventKind, Line, OrderControl, Party, Patient

from .message import Message, Segment, parse_ts

__all__ = ["Header", "events_from_pharmacy"]


def _decimal(value: str, location: str) -> Decimal:
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise MessageRejected(f"{location} is not a number: {value!r}",
                              code="102", location=location) from None
    if not d.is_finite():
        raise MessageRejected(f"{location} is not a finite number: {value!r}",
                              code="102", location=location)
    return d


def _order_control(value: str, location: str) -> OrderControl | None:
    if not value:
        return None
    try:
        return OrderControl(value)
    except ValueError:
        raise MessageRejected(
            f"unsupported order control {value!r} in {location} (supported: NW, CA, DC, XO)",
            code="103", location=location) from None


def _party(seg: Segment | None, n: int) -> Party | None:
    """An XCN/XON field: id^family^given (Chinese names come whole in the family part)."""
    if seg is None:
        return None
    pid, family, given = seg.get(n, 1), seg.get(n, 2), seg.get(n, 3)
    if not (pid or family):
        return None
    return Party(pid, family + given)


class Header:
    """The MSH facts every event of a message shares."""

    __slots__ = ("control_id", "hospital_id", "occurred_at", "source")

    def __init__(self, hospital_id: str, source: str, control_id: str,
                 occurred_at: datetime) -> None:
        self.hospital_id = hospital_id
        self.source = source
        self.control_id = control_id
        self.occurred_at = occurred_at


def _patient(msg: Message) -> Patient | None:
    pid = msg.find("PID")
    if pid is None:
        return None
    pv1 = msg.find("PV1")
    id_card = ""
    patient_id = ""
    for i in range(len(pid.repetitions(3))):
        ident, id_type = pid.get(3, 1, rep=i + 1), pid.get(3, 5, rep=i + 1)
        if id_type in ("NNCHN", "ID", "SFZ") and not id_card:
            id_card = ident
        elif not patient_id:
            patient_id = ident
    return Patient(
        id=patient_id,
        name=pid.get(5, 1) + pid.get(5, 2),
        id_card=id_card or pid.get(19),
        phone=pid.get(13, 1),
        insurance_no=pid.get(2),
        visit_no=pv1.get(19) if pv1 is not None else "",
    )


def _line(seq: int, item: Segment, z: Segment | None, qty_field: int, unit_field: int,
          code_field: int, oc: OrderControl | None) -> Line:
    name = item.name
    code = item.get(code_field, 1)
    if not code:
        raise MessageRejected(f"{name}-{code_field} (item code) is empty in order group {seq}",
                              code="101", location=f"{name}-{code_field}")
    qty_raw = item.get(qty_field)
    if not qty_raw:
        raise MessageRejected(f"{name}-{qty_field} (quantity) is empty in order group {seq}",
                              code="101", location=f"{name}-{qty_field}")
    quantity = _decimal(qty_raw, f"{name}-{qty_field}")
    price = None
    spec = manufacturer = approval = generic = ""
    trace: tuple[str, ...] = ()
    if z is not None:
        spec = z.get(1)
        manufacturer = z.get(2)
        if z.get(3):
            price = _decimal(z.get(3), f"{z.name}-3")
        trace = tuple(t for t in z.all(4) if t)
        approval = z.get(5)
        generic = z.get(6)
    lot = expiry = ""
    if name == "RXD":
        manufacturer = manufacturer or item.get(20, 2) or item.get(20, 1)
        lot = item.get(18)
        exp = item.get(19)
        expiry = f"{exp[0:4]}-{exp[4:6]}-{exp[6:8]}" if len(exp) >= 8 and exp.isdigit() else exp
    else:
        spec = spec or (f"{item.get(25)}{item.get(26, 1)}" if item.get(25) else "")
    return Line(
        seq=seq,
        item_code=code,
        item_name=item.get(code_field, 2),
        specification=spec,
        manufacturer=manufacturer,
        quantity=quantity,
        unit=item.get(unit_field, 2) or item.get(unit_field, 1),
        price=price,
        generic_name=generic,
        dosage_form=item.get(6, 2) or item.get(6, 1) if name == "RXE" else "",
        approval_no=approval,
        lot_no=lot,
        expiry=expiry,
        trace_codes=trace,
        order_control=oc,
    )


_KINDS: dict[str, tuple[EventKind, str, int, int, int]] = {
    # message type: kind, item segment, code field, quantity field, unit field
    "RDE^O11": (EventKind.PRESCRIPTION, "RXE", 2, 10, 11),
    "RDE^O01": (EventKind.PRESCRIPTION, "RXE", 2, 10, 11),
    "RDS^O13": (EventKind.DISPENSE, "RXD", 2, 4, 5),
    "RDS^O01": (EventKind.DISPENSE, "RXD", 2, 4, 5),
}

PHARMACY_TYPES = frozenset(_KINDS)


def events_from_pharmacy(msg: Message, header: Header, z_name: str = "ZJC") -> tuple[Event, ...]:
    """Turn an RDE or RDS message into one event per ORC-2 document (prescription).

    Raises:
        MessageRejected: a required field is missing or malformed.
    """
    kind, item_name, code_f, qty_f, unit_f = _KINDS[msg.message_type]
    groups: list[tuple[Segment, Segment | None, Segment | None]] = []  # ORC, item, Z
    orc: Segment | None = None
    item: Segment | None = None
    z: Segment | None = None
    for seg in msg.segments:
        n = seg.name
        if n == "ORC":
            if orc is not None:
                groups.append((orc, item, z))
            orc, item, z = seg, None, None
        elif n == item_name and orc is not None:
            if item is not None:  # a second item in one group starts a new line
                groups.append((orc, item, z))
                z = None
            item = seg
        elif n == z_name and orc is not None:
            z = seg
    if orc is not None:
        groups.append((orc, item, z))
    if not groups:
        raise MessageRejected(f"{msg.message_type} has no ORC order group",
                              code="100", location="ORC")
    patient = _patient(msg)
    pv1 = msg.find("PV1")
    department = None
    if pv1 is not None and (pv1.get(3, 1) or pv1.get(10)):
        department = Party(pv1.get(3, 1) or pv1.get(10), pv1.get(3, 9) or pv1.get(3, 1))
    # one event per document number (ORC-2 placer order / prescription number)
    docs: dict[str, list[Line]] = {}
    first_orc: dict[str, Segment] = {}
    disp_time: dict[str, datetime | None] = {}
    dispenser: dict[str, Party | None] = {}
    for i, (g_orc, g_item, g_z) in enumerate(groups, start=1):
        if g_item is None:
            raise MessageRejected(f"order group {i} has no {item_name} segment",
                                  code="100", location=f"ORC[{i}]")
        # only an order has a lifecycle; a dispense's ORC-1 is RE (observations follow)
        oc = _order_control(g_orc.get(1), "ORC-1") if kind is EventKind.PRESCRIPTION else None
        doc = g_orc.get(2, 1) or (g_item.get(7) if item_name == "RXD" else "") or header.control_id
        line = _line(len(docs.get(doc, ())) + 1, g_item, g_z, qty_f, unit_f, code_f, oc)
        docs.setdefault(doc, []).append(line)
        first_orc.setdefault(doc, g_orc)
        if item_name == "RXD":
            disp_time.setdefault(doc, parse_ts(g_item.get(3), "RXD-3"))
            dispenser.setdefault(doc, _party(g_item, 10))
    events = []
    for index, (doc, lines) in enumerate(docs.items()):
        o = first_orc[doc]
        occurred = disp_time.get(doc) or parse_ts(o.get(9), "ORC-9") or header.occurred_at
        events.append(Event(
            event_id=f"{header.source}:{header.control_id}:{index}",
            kind=kind,
            hospital_id=header.hospital_id,
            source=header.source,
            occurred_at=occurred,
            lines=tuple(lines),
            control_id=header.control_id,
            document_no=doc,
            order_control=lines[0].order_control,
            prescriber=_party(o, 12),
            pharmacist=dispenser.get(doc),
            department=department,
            patient=patient,
        ))
    return tuple(events)
