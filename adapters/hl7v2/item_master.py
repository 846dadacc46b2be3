"""Item master files (MFN^M16, HL7 v2.6 chapter 17): the pharmacy's or warehouse's
item dictionary.

An MFN^M16 names the master file in MFI and carries, per item, an MFE (MFE-1
record-level event: MAD add, MUP update, MDL delete, MDC deactivate, MAC
reactivate; MFE-4 the item's key) followed by its ITM (ITM-1 item identifier,
ITM-2 description, ITM-7 manufacturer identifier, ITM-8 manufacturer name), any
PKG (PKG-2 packaging unit, PKG-3 default order unit Y/N, PKG-5 price) and the
hospital's Z-segment (specification, approval number, 本位码, generic name; the
same layout as for pharmacy messages).

Items are not purchases: the message becomes one ``item_master`` event whose lines
are the items (quantity 0; MFE-1 as the line's order control), so every item goes
through 对码 like any other line and an item the crosswalk does not know is queued for
mapping, with suggestions, before the first dispense of it arrives; an item deleted or
deactivated (CA / DC) leaves that queue instead. No platform profile sends this kind.
"""

from __future__ import annotations

from decimal import Decimal

from adapters.hl7v2.fields import Header, ZLayout, decimal
from adapters.hl7v2.message import Message, Segment, parse_ts
from canonical.errors import MessageRejected
from canonical.model import Event, EventKind, Line, OrderControl

__all__ = ["ITEM_MASTER_TYPES", "ITEM_MASTER_VERSIONS", "events_from_item_master"]

ITEM_MASTER_TYPES = frozenset({"MFN^M16"})
# MFN^M16 with ITM and PKG is defined in v2.6; SPD systems send it as 2.5 / 2.5.1 too
ITEM_MASTER_VERSIONS = ("2.5", "2.5.1", "2.6")

# MFE-1 record-level event code (HL7 table 0180) → the line's lifecycle
_EVENTS = {
    "MAD": OrderControl.NEW,
    "MAC": OrderControl.NEW,
    "MUP": OrderControl.CHANGE,
    "MDL": OrderControl.CANCEL,
    "MDC": OrderControl.DISCONTINUE,
}
_NEEDS_ITM = frozenset({"MAD", "MAC", "MUP"})  # a deletion may carry the key alone


class _Entry:
    __slots__ = ("itm", "mfe", "pkgs", "z")

    def __init__(self, mfe: Segment) -> None:
        self.mfe = mfe
        self.itm: Segment | None = None
        self.pkgs: list[Segment] = []
        self.z: Segment | None = None


def _entries(msg: Message, z_name: str) -> list[_Entry]:
    entries: list[_Entry] = []
    for seg in msg.segments:
        n = seg.name
        if n == "MFE":
            entries.append(_Entry(seg))
        elif not entries:
            continue
        elif n == "ITM" and entries[-1].itm is None:
            entries[-1].itm = seg
        elif n == "PKG":
            entries[-1].pkgs.append(seg)
        elif n == z_name and entries[-1].z is None:
            entries[-1].z = seg
    return entries


def _unit_and_price(pkgs: list[Segment]) -> tuple[str, Decimal | None]:
    if not pkgs:
        return "", None
    chosen = next((p for p in pkgs if p.get(3) == "Y"), pkgs[0])
    unit = chosen.get(2, 2) or chosen.get(2, 1)
    price = chosen.get(5, 1, 1)  # CP: price (MO: quantity & denomination) ^ type …
    return unit, decimal(price, "PKG-5") if price else None


def _line(seq: int, entry: _Entry, layout: ZLayout) -> Line:
    mfe, itm = entry.mfe, entry.itm
    event_code = mfe.get(1)
    control = _EVENTS.get(event_code)
    if control is None:
        raise MessageRejected(
            f"unsupported record-level event {event_code!r} in MFE-1 of item {seq} "
            "(supported: MAD, MUP, MDL, MDC, MAC)", code="103", location="MFE-1")
    if itm is None and event_code in _NEEDS_ITM:
        raise MessageRejected(f"item {seq} ({event_code}) has no ITM segment",
                              code="100", location="ITM")
    code = (itm.get(1, 1) if itm is not None else "") or mfe.get(4, 1)
    if not code:
        raise MessageRejected(f"item {seq} has no item code (ITM-1, MFE-4)",
                              code="101", location="ITM-1")
    unit, price = _unit_and_price(entry.pkgs)
    z = entry.z
    fields = dict.fromkeys(("specification", "approval_no", "standard_code",
                            "generic_name", "manufacturer"), "")
    if z is not None:
        for name, pos in layout.positions:
            if name in fields:
                fields[name] = z.get(pos)
    manufacturer = (itm.get(8) if itm is not None else "") or fields["manufacturer"]
    return Line(
        seq=seq, item_code=code, item_name=itm.get(2) if itm is not None else "",
        specification=fields["specification"], manufacturer=manufacturer,
        quantity=Decimal(0), unit=unit, price=price, generic_name=fields["generic_name"],
        approval_no=fields["approval_no"], standard_code=fields["standard_code"],
        order_control=control)


def events_from_item_master(msg: Message, header: Header,
                            layout: ZLayout | None = None) -> tuple[Event, ...]:
    """One ``item_master`` event with a line per MFE of an MFN^M16.

    Raises:
        MessageRejected: no MFI or MFE, an unknown MFE-1 code, an item without code.
    """
    layout = layout or ZLayout()
    mfi = msg.find("MFI")
    if mfi is None:
        raise MessageRejected("MFN^M16 has no MFI segment", code="100", location="MFI")
    entries = _entries(msg, layout.segment)
    if not entries:
        raise MessageRejected("MFN^M16 has no MFE segment", code="100", location="MFE")
    lines = tuple(_line(i, entry, layout) for i, entry in enumerate(entries, start=1))
    occurred = parse_ts(mfi.get(4), "MFI-4") or header.occurred_at
    return (Event(
        event_id=f"{header.source}:{header.control_id}:0",
        kind=EventKind.ITEM_MASTER,
        hospital_id=header.hospital_id,
        source=header.source,
        occurred_at=occurred,
        lines=lines,
        control_id=header.control_id,
        document_no=mfi.get(1, 1) or header.control_id,
    ),)
