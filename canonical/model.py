"""Canonical event model: what every adapter produces and every later stage consumes.

Events are frozen (immutable) msgspec structs so that parsing, mapping and rule
evaluation stay pure functions over values; msgspec builds them in C, several times
faster than frozen dataclasses, which matters at a few objects per message and
thousands of messages a second. Quantities and prices are ``Decimal``: a box of 24
tablets converted to tablets must not pick up binary rounding on its way to the platform.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import msgspec

__all__ = [
    "CHINA_TZ",
    "PATIENT_FIELDS",
    "PATIENT_IDENTIFIERS",
    "Event",
    "EventKind",
    "Line",
    "OrderControl",
    "Party",
    "Patient",
    "event_from_dict",
    "event_json",
    "event_to_dict",
]

# China has one time zone and no daylight saving; a fixed offset needs no tz database.
CHINA_TZ = timezone(timedelta(hours=8), "CST")


class EventKind(StrEnum):
    """What happened, in the hospital's terms; the platform profile picks the transaction."""

    PRESCRIPTION = "prescription"  # a doctor's order (RDE^O11, MedicationRequest); not a sale
    DISPENSE = "dispense"  # pharmacy sale / dispense to a patient (RDS^O13) → 3505
    DISPENSE_RETURN = "dispense_return"  # a dispensed drug given back → 3506
    PURCHASE_ORDER = "purchase_order"  # order to a distributor (OMS^O05, SupplyRequest)
    RECEIPT = "receipt"  # received into stock against a shipment (SupplyDelivery) → 3503
    RETURN = "return"  # purchase return to the distributor → 3504
    STOCKTAKE = "stocktake"  # inventory count → 3501
    STOCK_CHANGE = "stock_change"  # other stock movement (loss, transfer) → 3502
    PAYMENT = "payment"  # settlement / payment to a supplier
    ADMINISTRATION = "administration"  # given to the patient (RAS^O17, RGV^O15)
    ITEM_MASTER = "item_master"  # the item dictionary (MFN^M16): mapped, never sent


class OrderControl(StrEnum):
    """HL7 ORC-1 style lifecycle of an order line."""

    NEW = "NW"
    CANCEL = "CA"
    DISCONTINUE = "DC"
    CHANGE = "XO"


class Party(msgspec.Struct, frozen=True):
    """A person or organisation named on an event (prescriber, pharmacist, supplier)."""

    id: str = ""
    name: str = ""


class Patient(msgspec.Struct, frozen=True):
    """Patient data as received; it stays in the hospital unless a profile names a field."""

    id: str = ""
    name: str = ""
    id_card: str = ""
    phone: str = ""
    insurance_no: str = ""
    visit_no: str = ""  # 就诊流水号 (mdtrt_sn)


# the patient fields a platform destination may ask for (``patient_fields``)
PATIENT_FIELDS: tuple[str, ...] = Patient.__struct_fields__
# those that identify a person: they leave hashed unless a destination needs them in clear
PATIENT_IDENTIFIERS: frozenset[str] = frozenset(
    {"id", "id_card", "phone", "insurance_no", "visit_no"})


class Line(msgspec.Struct, frozen=True):
    """One item line: hospital item as sent, plus the national code once mapped."""

    seq: int
    item_code: str  # 院内编码
    item_name: str = ""
    specification: str = ""
    manufacturer: str = ""
    quantity: Decimal = Decimal(0)
    unit: str = ""
    price: Decimal | None = None  # per hospital unit
    generic_name: str = ""
    dosage_form: str = ""
    approval_no: str = ""  # 批准文号
    standard_code: str = ""  # 药品本位码
    lot_no: str = ""
    expiry: str = ""  # ISO date
    trace_codes: tuple[str, ...] = ()  # 药品追溯码
    supplier: Party | None = None
    order_control: OrderControl | None = None
    # set by mapping (对码)
    national_code: str | None = None
    national_quantity: Decimal | None = None  # in the national minimum pricing unit
    national_unit: str = ""
    national_price: Decimal | None = None  # per national unit
    manu_date: str = ""  # ISO date of manufacture (生产日期)
    # prescription-only (处方药): a property of the product, from the message or the
    # national catalog; None when neither says (the platform's rx_flag is then unknown)
    rx_only: bool | None = None
    # facts of this line a platform may need that have no attribute of their own (a
    # provincial platform's order-line and listing ids): kept as the sender named them
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def mapped(self) -> bool:
        """True once the line carries a national code."""
        return self.national_code is not None

    @property
    def amount(self) -> Decimal | None:
        """Line amount in yuan (quantity × price), when a price was sent."""
        return None if self.price is None else self.quantity * self.price

    @property
    def package_size(self) -> Decimal | None:
        """Minimum units in one package (``extra`` key ``package_size``, as a sender that
        counts in minimum units gives it), or None when absent or not a positive number."""
        for key, value in self.extra:
            if key == "package_size":
                try:
                    size = Decimal(value)
                except InvalidOperation:
                    return None
                return size if size.is_finite() and size > 0 else None
        return None


class Event(msgspec.Struct, frozen=True):
    """One canonical event. ``event_id`` is the idempotency key for its whole life."""

    event_id: str
    kind: EventKind
    hospital_id: str  # 定点医药机构编号 (12 characters)
    source: str  # adapter alias and sender, e.g. "hl7v2:HIS^WINNING"
    occurred_at: datetime
    lines: tuple[Line, ...]
    control_id: str = ""  # MSH-10 or the transport's message id
    document_no: str = ""  # prescription / order / receipt number
    order_control: OrderControl | None = None
    prescriber: Party | None = None
    pharmacist: Party | None = None
    department: Party | None = None
    supplier: Party | None = None
    patient: Patient | None = None
    online: bool = True  # bought through the provincial platform (网采)
    emergency: bool = False
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def stream(self) -> str:
        """The FIFO stream this event belongs to on its way to a platform."""
        return self.kind.value

    def with_lines(self, lines: tuple[Line, ...]) -> Event:
        """Return a copy with new lines (mapping never mutates an event)."""
        # spelled out rather than dataclasses.replace, which is slow on the hot path
        return Event(self.event_id, self.kind, self.hospital_id, self.source, self.occurred_at,
                     lines, self.control_id, self.document_no, self.order_control,
                     self.prescriber, self.pharmacist, self.department, self.supplier,
                     self.patient, self.online, self.emergency, self.extra)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, msgspec.Struct):
        return {name: _jsonable(getattr(value, name)) for name in value.__struct_fields__}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def event_to_dict(event: Event) -> dict[str, Any]:
    """Plain-JSON form of an event (Decimals as strings, datetimes ISO 8601)."""
    result: dict[str, Any] = _jsonable(event)
    return result


_ENCODER = msgspec.json.Encoder()


def event_json(event: Event) -> bytes:
    """The stored JSON of an event: :func:`event_to_dict`'s shape, encoded in C."""
    return _ENCODER.encode(event)


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _party(value: Any) -> Party | None:
    return None if value is None else Party(**value)


def _line_from_dict(d: dict[str, Any]) -> Line:
    oc = d.get("order_control")
    return Line(
        seq=int(d["seq"]),
        item_code=d["item_code"],
        item_name=d.get("item_name", ""),
        specification=d.get("specification", ""),
        manufacturer=d.get("manufacturer", ""),
        quantity=Decimal(str(d.get("quantity", "0"))),
        unit=d.get("unit", ""),
        price=_dec(d.get("price")),
        generic_name=d.get("generic_name", ""),
        dosage_form=d.get("dosage_form", ""),
        approval_no=d.get("approval_no", ""),
        standard_code=d.get("standard_code", ""),
        lot_no=d.get("lot_no", ""),
        expiry=d.get("expiry", ""),
        trace_codes=tuple(d.get("trace_codes", ())),
        supplier=_party(d.get("supplier")),
        order_control=OrderControl(oc) if oc else None,
        national_code=d.get("national_code"),
        national_quantity=_dec(d.get("national_quantity")),
        national_unit=d.get("national_unit", ""),
        national_price=_dec(d.get("national_price")),
        manu_date=d.get("manu_date", ""),
        rx_only=d.get("rx_only"),
        extra=tuple((str(k), str(v)) for k, v in d.get("extra", ())),
    )


def event_from_dict(d: dict[str, Any]) -> Event:
    """Inverse of :func:`event_to_dict`."""
    oc = d.get("order_control")
    patient = d.get("patient")
    return Event(
        event_id=d["event_id"],
        kind=EventKind(d["kind"]),
        hospital_id=d["hospital_id"],
        source=d["source"],
        occurred_at=datetime.fromisoformat(d["occurred_at"]),
        lines=tuple(_line_from_dict(x) for x in d["lines"]),
        control_id=d.get("control_id", ""),
        document_no=d.get("document_no", ""),
        order_control=OrderControl(oc) if oc else None,
        prescriber=_party(d.get("prescriber")),
        pharmacist=_party(d.get("pharmacist")),
        department=_party(d.get("department")),
        supplier=_party(d.get("supplier")),
        patient=None if patient is None else Patient(**patient),
        online=bool(d.get("online", True)),
        emergency=bool(d.get("emergency", False)),
        extra=tuple((str(k), str(v)) for k, v in d.get("extra", ())),
    )
