"""Pharmacy messages to canonical events: orders, dispenses, gives and administrations.

Each ORC opens an order group. The group's item segment (RXE order, RXD
dispense, RXG give, RXA administration) is one line; each RXC after it (the
components of an IV mixture) is a line of its own, because each component is a
product bought and counted on its own. A Z-segment after a line carries what
HL7 v2.5 has no field for and 集采 needs (specification, manufacturer, unit price,
traceability codes, approval number, generic name) and facts of the whole
prescription (the pharmacist's licence, 外配处方 flag, insurance settlement id); its
name and field positions are configured per hospital
(:class:`~adapters.hl7v2.fields.ZLayout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from adapters.hl7v2.fields import Header, ZLayout, checked_date, decimal, flag01, party, yes_no
from adapters.hl7v2.message import Message, Segment, parse_ts
from canonical.errors import MessageRejected
from canonical.model import Event, EventKind, Line, OrderControl, Party, Patient

__all__ = ["PHARMACY_TYPES", "events_from_pharmacy", "patient_of"]


@dataclass(frozen=True, slots=True)
class _Item:
    """Where an item segment keeps each fact (0: the segment has no such field)."""

    kind: EventKind
    segment: str
    code: int
    qty: int
    unit: int
    form: int = 0
    lot: int = 0
    expiry: int = 0
    maker: int = 0
    time: int = 0
    actor: int = 0


_RXE = _Item(EventKind.PRESCRIPTION, "RXE", 2, 10, 11, form=6)
_RXD = _Item(EventKind.DISPENSE, "RXD", 2, 4, 5, lot=18, expiry=19, maker=20, time=3, actor=10)
_RXG = _Item(EventKind.ADMINISTRATION, "RXG", 4, 5, 7, form=8, lot=19, expiry=20, maker=21)
_RXA = _Item(EventKind.ADMINISTRATION, "RXA", 5, 6, 7, form=8, lot=15, expiry=16, maker=17,
             time=3, actor=10)

_TYPES: dict[str, _Item] = {
    "RDE^O11": _RXE, "RDE^O01": _RXE,
    "RDS^O13": _RXD, "RDS^O01": _RXD,
    "RGV^O15": _RXG, "RGV^O01": _RXG,
    "RAS^O17": _RXA, "RAS^O01": _RXA,
}

PHARMACY_TYPES = frozenset(_TYPES)

# RXA-20 completion status: a refused or not-given dose consumed nothing
_NOT_GIVEN = frozenset({"RE", "NA"})
# RXA-21 action code: A add, D delete, U update
_RXA_ACTION = {"D": OrderControl.CANCEL, "U": OrderControl.CHANGE}


_ORDER_CONTROLS = {oc.value: oc for oc in OrderControl}


def _order_control(value: str, location: str) -> OrderControl | None:
    if not value:
        return None
    oc = _ORDER_CONTROLS.get(value)
    if oc is None:
        raise MessageRejected(
            f"unsupported order control {value!r} in {location} (supported: NW, CA, DC, XO)",
            code="103", location=location)
    return oc


def patient_of(msg: Message) -> Patient | None:
    """The PID / PV1 patient of a message, if it names one."""
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
    family, given, _ = pid.components(5)
    return Patient(
        id=patient_id,
        name=family + given,
        id_card=id_card or pid.get(19),
        phone=pid.get(13, 1),
        insurance_no=pid.get(2),
        visit_no=pv1.get(19) if pv1 is not None else "",
    )


def _apply_z(z: Segment | None, layout: ZLayout) -> dict[str, str | tuple[str, ...]]:
    if z is None:
        return {}
    out: dict[str, str | tuple[str, ...]] = {}
    for name, pos in layout.positions:
        value = z.get(pos)
        if value:
            out[name] = value
    if layout.trace_codes is not None:
        codes = tuple(t for t in z.all(layout.trace_codes) if t)
        if codes:
            out["trace_codes"] = codes
    return out


def _second_or_first(seg: Segment, n: int) -> str:
    """A coded field's text (component 2), or its code when it has no text."""
    first, second, _ = seg.components(n)
    return second or first


def _line(seq: int, item: Segment, spec: _Item, z: Segment | None, layout: ZLayout,
          oc: OrderControl | None) -> Line:
    name = item.name
    code, item_name, _ = item.components(spec.code)
    if not code:
        raise MessageRejected(f"{name}-{spec.code} (item code) is empty in line {seq}",
                              code="101", location=f"{name}-{spec.code}")
    qty_raw = item.get(spec.qty)
    if not qty_raw:
        raise MessageRejected(f"{name}-{spec.qty} (quantity) is empty in line {seq}",
                              code="101", location=f"{name}-{spec.qty}")
    quantity = decimal(qty_raw, f"{name}-{spec.qty}")
    zv = _apply_z(z, layout)
    price_raw = zv.get("price")
    price = decimal(price_raw, f"{layout.segment}-{layout.price}") \
        if isinstance(price_raw, str) else None
    maker = ""
    if spec.maker:
        maker_id, maker_name, _ = item.components(spec.maker)
        maker = maker_name or maker_id
    spec_text = str(zv.get("specification", ""))
    if not spec_text and name == "RXE" and item.get(25):
        spec_text = f"{item.get(25)}{item.get(26, 1)}"  # give strength + units
    trace = zv.get("trace_codes", ())
    return Line(
        seq=seq,
        item_code=code,
        item_name=item_name,
        specification=spec_text,
        manufacturer=str(zv.get("manufacturer", "")) or maker,
        quantity=quantity,
        unit=_second_or_first(item, spec.unit),
        price=price,
        generic_name=str(zv.get("generic_name", "")),
        dosage_form=_second_or_first(item, spec.form) if spec.form else "",
        approval_no=str(zv.get("approval_no", "")),
        standard_code=str(zv.get("standard_code", "")),
        lot_no=str(zv.get("lot_no", "")) or (item.get(spec.lot) if spec.lot else ""),
        expiry=_expiry(str(zv.get("expiry", "")), item, spec, layout),
        trace_codes=trace if isinstance(trace, tuple) else (),
        order_control=oc,
        manu_date=_date(str(zv.get("manu_date", "")), layout, layout.manu_date),
        rx_only=_flag(str(zv.get("rx_only", "")), layout),
    )


def _flag(value: str, layout: ZLayout) -> bool | None:
    return yes_no(value, f"{layout.segment}-{layout.rx_only}", "prescription-only flag")


def _expiry(z_value: str, item: Segment, spec: _Item, layout: ZLayout) -> str:
    if z_value:
        return checked_date(z_value, f"{layout.segment}-{layout.expiry}")
    value = item.get(spec.expiry) if spec.expiry else ""
    return checked_date(value, f"{item.name}-{spec.expiry}") if value else ""


def _date(value: str, layout: ZLayout, pos: int | None) -> str:
    return checked_date(value, f"{layout.segment}-{pos}") if value else ""


# the document facts that are yes/no flags, as the ERR text names them when refused
_FLAG_MEANING = {"rx_circ_flag": "rx_circ_flag 外配处方标志"}


def _document_facts(slots: list[list[Segment | None]], layout: ZLayout,
                    found: dict[str, str]) -> None:
    """ZJC-9..11 (licence, 外配处方, settlement id) of one order group into ``found``,
    where the document's earlier groups left them empty.

    A flag is checked in every Z-segment, not only the one that gives it: a bad value is
    refused wherever it stands.
    """
    segment = layout.segment
    for _, z in slots:
        if z is None:
            continue
        for name, pos in layout.document_positions:
            value = z.get(pos)
            if not value:
                continue
            meaning = _FLAG_MEANING.get(name)
            if meaning is not None:
                value = flag01(value, f"{segment}-{pos}", meaning)
            if name not in found:
                found[name] = value


def _event_extra(facts: dict[str, str], settlement: str) -> tuple[tuple[str, str], ...]:
    """The Z-segment's document facts and PV1-20 (financial class) as the settlement
    type."""
    extra: tuple[tuple[str, str], ...] = ()
    licence = facts.get("phar_prac_cert_no", "")
    if licence:
        extra += (("phar_prac_cert_no", licence),)
    if settlement:
        extra += (("hi_feesetl_type", settlement),)
    for name in ("rx_circ_flag", "setl_id"):
        value = facts.get(name, "")
        if value:
            extra += ((name, value),)
    return extra


def _component_line(seq: int, rxc: Segment, z: Segment | None, layout: ZLayout,
                    oc: OrderControl | None) -> Line:
    """An RXC component: RXC-2 code^name, RXC-3 amount, RXC-4 units."""
    code = rxc.get(2, 1)
    if not code:
        raise MessageRejected(f"RXC-2 (component code) is empty in line {seq}",
                              code="101", location="RXC-2")
    amount = rxc.get(3)
    if not amount:
        raise MessageRejected(f"RXC-3 (component amount) is empty in line {seq}",
                              code="101", location="RXC-3")
    zv = _apply_z(z, layout)
    price_raw = zv.get("price")
    trace = zv.get("trace_codes", ())
    return Line(
        seq=seq, item_code=code, item_name=rxc.get(2, 2),
        specification=str(zv.get("specification", "")),
        manufacturer=str(zv.get("manufacturer", "")),
        quantity=decimal(amount, "RXC-3"), unit=rxc.get(4, 2) or rxc.get(4, 1),
        price=decimal(price_raw, f"{layout.segment}-{layout.price}")
        if isinstance(price_raw, str) else None,
        generic_name=str(zv.get("generic_name", "")),
        approval_no=str(zv.get("approval_no", "")),
        standard_code=str(zv.get("standard_code", "")),
        trace_codes=trace if isinstance(trace, tuple) else (),
        order_control=oc,
    )


class _Group:
    __slots__ = ("orc", "slots")

    def __init__(self, orc: Segment) -> None:
        self.orc = orc
        self.slots: list[list[Segment | None]] = []  # [item or RXC, Z]


def _groups(msg: Message, item_name: str, z_name: str) -> list[_Group]:
    groups: list[_Group] = []
    current: _Group | None = None
    for seg in msg.segments:
        n = seg.name
        if n == "ORC":
            current = _Group(seg)
            groups.append(current)
        elif current is None:
            continue
        elif n == item_name or n == "RXC":
            current.slots.append([seg, None])
        elif n == z_name and current.slots:
            current.slots[-1][1] = seg
    return groups


def events_from_pharmacy(msg: Message, header: Header,
                         layout: ZLayout | None = None) -> tuple[Event, ...]:
    """One event per ORC-2 document (prescription) of an RDE, RDS, RGV or RAS message.

    Raises:
        MessageRejected: a required field is missing or malformed.
    """
    layout = layout or ZLayout()
    spec = _TYPES[msg.message_type]
    kind = spec.kind
    groups = _groups(msg, spec.segment, layout.segment)
    if not groups:
        raise MessageRejected(f"{msg.message_type} has no ORC order group",
                              code="100", location="ORC")
    patient = patient_of(msg)
    pv1 = msg.find("PV1")
    department = None
    if pv1 is not None and (pv1.get(3, 1) or pv1.get(10)):
        department = Party(pv1.get(3, 1) or pv1.get(10), pv1.get(3, 9) or pv1.get(3, 1))
    docs: dict[str, list[Line]] = {}
    first_orc: dict[str, Segment] = {}
    item_time: dict[str, datetime | None] = {}
    actor: dict[str, Party | None] = {}
    facts: dict[str, dict[str, str]] = {}  # ZJC-9..11, per document
    for i, group in enumerate(groups, start=1):
        g_orc = group.orc
        if not group.slots or group.slots[0][0] is None or group.slots[0][0].name == "RXC":
            raise MessageRejected(f"order group {i} has no {spec.segment} segment",
                                  code="100", location=f"ORC[{i}]")
        # only an order has a lifecycle in ORC-1; a dispense's ORC-1 is RE
        oc = _order_control(g_orc.get(1), "ORC-1") if kind is EventKind.PRESCRIPTION else None
        item = group.slots[0][0]
        doc = g_orc.get(2, 1) or (item.get(7) if spec.segment == "RXD" else "") \
            or header.control_id
        lines = docs.setdefault(doc, [])
        first_orc.setdefault(doc, g_orc)
        if layout.document_positions:
            _document_facts(group.slots, layout, facts.setdefault(doc, {}))
        for seg, z in group.slots:
            assert seg is not None
            if seg.name == "RXC":
                lines.append(_component_line(len(lines) + 1, seg, z, layout, oc))
                continue
            item = seg
            line_oc = oc
            if spec.segment == "RXA":
                if item.get(20) in _NOT_GIVEN:
                    continue
                line_oc = _RXA_ACTION.get(item.get(21))
            lines.append(_line(len(lines) + 1, item, spec, z, layout, line_oc))
            if spec.time:
                item_time.setdefault(doc, parse_ts(item.get(spec.time),
                                                   f"{spec.segment}-{spec.time}"))
            if spec.actor:
                actor.setdefault(doc, party(item, spec.actor))
    settlement = pv1.get(20, 1) if pv1 is not None else ""
    events = []
    index = 0
    for doc, lines in docs.items():
        if not lines:  # every dose of the document was refused / not given
            continue
        o = first_orc[doc]
        occurred = item_time.get(doc) or parse_ts(o.get(9), "ORC-9") or header.occurred_at
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
            prescriber=party(o, 12),
            pharmacist=actor.get(doc),
            department=department,
            patient=patient,
            extra=_event_extra(facts.get(doc, {}), settlement),
        ))
        index += 1
    return tuple(events)
