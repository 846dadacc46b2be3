"""What the national inventory interface (3501–3507) takes, field by field, as data.

Each transaction is a tuple of :class:`FieldSpec` rows, one per interface field, in
the order and with the types and mandatory flags of the interface's field lists
(see DOMAIN.md, "Field lists with mandatory flags"). The nhsa profile builds a body
from these rows (:func:`build_body`) and the simulator checks a body against the same
rows (:func:`check_body`), so what we send and what the platform accepts cannot drift
apart.

A row's ``source`` says where the value comes from:

- ``line.<attr>`` / ``event.<attr>``: an attribute of the canonical line or event;
- ``party.<role>.<id|name>``: the id or name of ``event.prescriber``, ``pharmacist`` …;
- ``extra.<key>``: a fact an adapter kept in ``Event.extra``;
- ``line_extra.<key>``: a fact of one line kept in ``Line.extra`` (a provincial
  platform's order-line or listing id);
- ``derived.<name>``: computed (batch number, quantity, flags, times …), see ``_DERIVED``;
- ``config``: only the deployment's ``field_defaults`` (or the row's default).

When the source is empty the deployment's ``field_defaults[<field>]`` applies, then the
row's documented ``default``; a mandatory field still empty is a :class:`FieldMissing`,
an optional one is left out of the body (the platform reads "" as a value).
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from canonical.model import CHINA_TZ, Event, Line

__all__ = [
    "BCHNO",
    "DERIVED_INPUTS",
    "MANDATORY",
    "SPECS",
    "BodyChecks",
    "EventPart",
    "FieldMissing",
    "FieldSpec",
    "FieldType",
    "build_body",
    "build_fields",
    "check_body",
    "check_fields",
    "check_value",
    "date_spec",
    "event_fields",
    "flag_spec",
    "mandatory_fields",
    "number_spec",
    "text_spec",
    "time_spec",
    "typed_problem",
]


class FieldType(StrEnum):
    """The interface's value types."""

    TEXT = "C"  # text up to ``length`` characters
    DATE = "D"  # yyyy-MM-dd
    DATETIME = "T"  # yyyy-MM-dd HH:mm:ss
    DECIMAL = "N"  # number with ``precision`` digits, ``scale`` after the point
    CODE = "CODE"  # one of ``codes`` (flags are the strings "0" / "1")
    TRACE_LIST = "LIST"  # drugtracinfo: [{"drug_trac_codg": …}]


# eq=False: a row is hashed by identity, which is cheap (each row is one object)
@dataclass(frozen=True, slots=True, eq=False)
class FieldSpec:
    """One field of one transaction body."""

    name: str
    source: str
    type: FieldType
    mandatory: bool = False
    length: int = 0  # TEXT / CODE: maximum characters
    precision: int = 16  # DECIMAL
    scale: int = 0  # DECIMAL
    codes: tuple[str, ...] = ()  # CODE: the allowed values (empty: any up to ``length``)
    default: str | None = None  # used when the source is empty; see ``note``
    note: str = ""


class FieldMissing(ValueError):
    """A mandatory field has no value (or a value of the wrong form); names every field."""

    def __init__(self, infno: str, problems: Mapping[str, str]) -> None:
        self.infno = infno
        self.problems = dict(problems)
        detail = "; ".join(f"{k}: {v}" for k, v in self.problems.items())
        super().__init__(f"{infno}: {detail}")


_FLAG = ("0", "1")


def text_spec(name: str, source: str, length: int, mandatory: bool = False,
              default: str | None = None, note: str = "") -> FieldSpec:
    """A text field of at most ``length`` characters."""
    return FieldSpec(name, source, FieldType.TEXT, mandatory, length, default=default,
                     note=note)


def flag_spec(name: str, source: str, default: str | None = None, note: str = "") -> FieldSpec:
    """A mandatory "0" / "1" flag."""
    return FieldSpec(name, source, FieldType.CODE, True, 3, codes=_FLAG, default=default,
                     note=note)


def date_spec(name: str, source: str, mandatory: bool = False) -> FieldSpec:
    """A date, yyyy-MM-dd."""
    return FieldSpec(name, source, FieldType.DATE, mandatory)


def time_spec(name: str, source: str, mandatory: bool = False) -> FieldSpec:
    """A date and time, yyyy-MM-dd HH:mm:ss."""
    return FieldSpec(name, source, FieldType.DATETIME, mandatory)


def number_spec(name: str, source: str, scale: int, mandatory: bool = False) -> FieldSpec:
    """A decimal of 16 digits, ``scale`` of them after the point."""
    return FieldSpec(name, source, FieldType.DECIMAL, mandatory, scale=scale)


_ITEM = (
    text_spec("med_list_codg", "line.national_code", 50, True),
    text_spec("fixmedins_hilist_id", "line.item_code", 30, True),
    text_spec("fixmedins_hilist_name", "line.item_name", 200, True),
)
# the batch number (the document number and the line's): the profile checks its longest
# once per event, not each line's
BCHNO = text_spec("fixmedins_bchno", "derived.bchno", 30, True)
_RX_FLAG = flag_spec("rx_flag", "derived.rx_flag",
                 note="line.rx_only (the message or the national catalog); no default: "
                      "a product's prescription status is never guessed")
_TRACE = FieldSpec("drugtracinfo", "derived.drugtracinfo", FieldType.TRACE_LIST)
_MEMO = text_spec("memo", "extra.memo", 500)

_3501 = (
    *_ITEM, _RX_FLAG,
    date_spec("invdate", "derived.date", True),
    number_spec("inv_cnt", "derived.quantity", 4, True),
    text_spec("manu_lotnum", "line.lot_no", 30, True),
    BCHNO,
    date_spec("manu_date", "line.manu_date", True),
    date_spec("expy_end", "line.expiry", True),
    _MEMO, _TRACE,
)

_3502 = (
    text_spec("med_list_codg", "line.national_code", 50, True),
    text_spec("inv_chg_type", "extra.inv_chg_type", 6, True,
       note="from the warehouse document type (ZWD-2) through the deployment's "
            "field_defaults or the adapter; the national code list is unconfirmed"),
    *_ITEM[1:], BCHNO,
    number_spec("pric", "line.national_price", 6, True),
    # how much moved; which way is the change type's (a loss may come signed)
    number_spec("cnt", "derived.moved_quantity", 4, True),
    _RX_FLAG,
    time_spec("inv_chg_time", "derived.time", True),
    text_spec("inv_chg_opter_name", "party.pharmacist.name", 50),
    _MEMO,
    flag_spec("trdn_flag", "derived.trdn_flag"),
    _TRACE,
)

_3503 = (
    *_ITEM,
    text_spec("dynt_no", "extra.dynt_no", 50),
    BCHNO,
    text_spec("spler_name", "derived.supplier_name", 200, True),
    text_spec("spler_pmtno", "extra.spler_pmtno", 50),
    text_spec("manu_lotnum", "line.lot_no", 30, True),
    text_spec("prodentp_name", "line.manufacturer", 200, True),
    text_spec("aprvno", "line.approval_no", 100, True),
    date_spec("manu_date", "line.manu_date", True),
    date_spec("expy_end", "line.expiry", True),
    number_spec("finl_trns_pric", "line.national_price", 6),
    number_spec("purc_retn_cnt", "derived.quantity", 4, True),
    text_spec("purc_invo_codg", "extra.invoice_code", 50),
    text_spec("purc_invo_no", "extra.invoice_no", 50),
    _RX_FLAG,
    time_spec("purc_retn_stoin_time", "derived.time", True),
    text_spec("purc_retn_opter_name", "party.pharmacist.name", 50, True,
       note="the person who received (or returned) the goods: ZWD-5, SupplyDelivery.receiver"),
    flag_spec("prod_geay_flag", "derived.prod_geay_flag", default="0",
          note="free goods (赠品), flagged by the sender per line (ZWL-16, line extra) or "
               "for the whole document (ZWD-15, extra); default 0"),
    _MEMO,
)

_3504 = (*_3503, text_spec("medins_prod_purc_no", "extra.original_no", 50, True,
                    note="the serial of the purchase returned (ZWD-9, extra original_no)"))

_3505 = (
    *_ITEM, BCHNO,
    text_spec("prsc_dr_cert_type", "extra.prsc_dr_cert_type", 6),
    text_spec("prsc_dr_certno", "party.prescriber.id", 50),
    text_spec("prsc_dr_name", "party.prescriber.name", 50, True),
    text_spec("phar_cert_type", "extra.phar_cert_type", 6),
    text_spec("phar_certno", "party.pharmacist.id", 50),
    text_spec("phar_name", "party.pharmacist.name", 50, True),
    text_spec("phar_prac_cert_no", "extra.phar_prac_cert_no", 50, True,
       note="the dispensing pharmacist's practising-licence number (ZJC-9)"),
    text_spec("hi_feesetl_type", "extra.hi_feesetl_type", 6, True,
       note="the visit's settlement type; a deployment may set field_defaults"),
    text_spec("setl_id", "extra.setl_id", 30,
       note="the visit's insurance settlement id (ZJC-11, FHIR extension setl-id)"),
    text_spec("mdtrt_sn", "derived.mdtrt_sn", 30, True,
       note="the visit serial (PV1-19, FHIR encounter): no identity, sent in clear"),
    text_spec("psn_cert_type", "extra.psn_cert_type", 6, True, default="01",
       note="default 01 (居民身份证): the certificate type says nothing about the person"),
    text_spec("manu_lotnum", "line.lot_no", 30, True),
    date_spec("manu_date", "line.manu_date", True),
    date_spec("expy_end", "line.expiry", True),
    _RX_FLAG,
    flag_spec("trdn_flag", "derived.trdn_flag"),
    number_spec("finl_trns_pric", "line.national_price", 6),
    text_spec("rxno", "derived.rxno", 40),
    flag_spec("rx_circ_flag", "extra.rx_circ_flag", default="0",
          note="default 0: a prescription from another institution (外配, ZJC-10, FHIR "
               "extension rx-circ-flag) is flagged by the sender"),
    text_spec("rtal_docno", "event.document_no", 40, True),
    text_spec("stoout_no", "extra.stoout_no", 40),
    number_spec("sel_retn_cnt", "derived.quantity", 4, True),
    time_spec("sel_retn_time", "derived.time", True),
    text_spec("sel_retn_opter_name", "party.pharmacist.name", 50, True,
       note="the person who dispensed (RXD-10)"),
    _MEMO,
    text_spec("mdtrt_setl_type", "extra.mdtrt_setl_type", 6),
    _TRACE,
)

_3506 = (*_3505, text_spec("medins_prod_sel_no", "extra.original_no", 50, True,
                    note="the serial of the sale given back (extra original_no)"))

_3507 = (
    BCHNO,
    FieldSpec("inv_data_type", "derived.inv_data_type", FieldType.CODE, True, 3,
              codes=("1", "2", "3", "4")),
)

SPECS: dict[str, tuple[FieldSpec, ...]] = {
    "3501": _3501, "3502": _3502, "3503": _3503, "3504": _3504, "3505": _3505,
    "3506": _3506, "3507": _3507,
}


MANDATORY: dict[str, tuple[FieldSpec, ...]] = {
    infno: tuple(f for f in specs if f.mandatory) for infno, specs in SPECS.items()}


def mandatory_fields(infno: str) -> tuple[str, ...]:
    """The mandatory fields of one transaction, in interface order."""
    return tuple(f.name for f in SPECS[infno] if f.mandatory)


# --- building ---------------------------------------------------------------------------

Derived = Callable[[Event, Line, Mapping[str, Any]], Any]


def _fmt_time(value: datetime) -> str:
    return value.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _quantity(event: Event, line: Line, ctx: Mapping[str, Any]) -> Decimal:
    return line.national_quantity if line.national_quantity is not None else line.quantity


def _rx_flag(event: Event, line: Line, ctx: Mapping[str, Any]) -> str | None:
    return None if line.rx_only is None else ("1" if line.rx_only else "0")


def _trdn_flag(event: Event, line: Line, ctx: Mapping[str, Any]) -> str:
    package = line.package_size
    if package is not None:
        # a sender counting in minimum units names the package: 15 tablets of a box of
        # 10 split one, whatever its quantity looks like
        units = line.national_quantity if line.national_quantity is not None else line.quantity
        packages = units / package
        return "0" if packages == packages.to_integral_value() else "1"
    # the hospital unit is the package the crosswalk's factor converts from: a
    # fraction of it is a split package, whatever the minimum-unit count is
    return "0" if line.quantity == line.quantity.to_integral_value() else "1"


def _supplier_name(event: Event, line: Line, ctx: Mapping[str, Any]) -> str:
    supplier = line.supplier or event.supplier
    return supplier.name if supplier else ""


def _mdtrt_sn(event: Event, line: Line, ctx: Mapping[str, Any]) -> str:
    return event.patient.visit_no if event.patient else ""


def _rxno(event: Event, line: Line, ctx: Mapping[str, Any]) -> str:
    # a dispense's document is its prescription (ORC-2, MedicationDispense.authorizingPrescription)
    return _extra(event, "rxno") or event.document_no


_CENT = Decimal("0.01")
_AMOUNT_STEP = Decimal("0.0001")


def _amount(event: Event, line: Line, ctx: Mapping[str, Any]) -> Decimal | None:
    # quantity × price can have more places than the platform's N(16,4): rounded, as
    # the money is, rather than refused
    amount = line.amount
    return None if amount is None else amount.quantize(_AMOUNT_STEP, ROUND_HALF_UP)


def _total_amount(event: Event, line: Line, ctx: Mapping[str, Any]) -> Decimal | None:
    # a statement's total is its lines' amounts, in yuan and fen; a line without a price
    # leaves it unknown
    total = Decimal(0)
    for li in event.lines:
        amount = _amount(event, li, ctx)
        if amount is None:
            return None
        total += amount
    return total.quantize(_CENT, ROUND_HALF_UP)


def _prod_geay_flag(event: Event, line: Line, ctx: Mapping[str, Any]) -> str:
    # a delivery may mix bought and given lines (买十赠一): the line's own flag first,
    # then one for the whole document
    return _line_extra(line, "prod_geay_flag") or _extra(event, "prod_geay_flag")


def _shipment_id(event: Event, line: Line, ctx: Mapping[str, Any]) -> str:
    # the distributor's delivery note (随货单号, 配送单号) is the shipment a receipt answers
    return _extra(event, "shipment_id") or _extra(event, "dynt_no")


_DERIVED: dict[str, Derived] = {
    "bchno": lambda e, ln, ctx: ctx.get("bchno", ""),
    "inv_data_type": lambda e, ln, ctx: ctx.get("inv_data_type", ""),
    "quantity": _quantity,
    "moved_quantity": lambda e, ln, ctx: abs(_quantity(e, ln, ctx)),
    "time": lambda e, ln, ctx: e.occurred_at,
    "date": lambda e, ln, ctx: _fmt_time(e.occurred_at)[:10],
    "rx_flag": _rx_flag,
    "trdn_flag": _trdn_flag,
    "supplier_name": _supplier_name,
    "mdtrt_sn": _mdtrt_sn,
    "rxno": _rxno,
    "shipment_id": _shipment_id,
    "prod_geay_flag": _prod_geay_flag,
    "amount": _amount,
    "total_amount": _total_amount,
    "drugtracinfo": lambda e, ln, ctx: [{"drug_trac_codg": c} for c in ln.trace_codes],
}

# what a message must carry for a derived value: any one of these canonical values
# (``catalog`` where the national catalog can supply it; () where the gateway itself
# computes it) — ``check-config`` compares them with what the adapters can fill
DERIVED_INPUTS: dict[str, tuple[str, ...]] = {
    "bchno": (), "inv_data_type": (), "quantity": (), "moved_quantity": (), "time": (),
    "date": (),
    "trdn_flag": (), "drugtracinfo": (),
    "rx_flag": ("line.rx_only", "catalog"),
    "supplier_name": ("line.supplier.name", "party.supplier.name"),
    "mdtrt_sn": ("patient.visit_no",),
    "rxno": ("extra.rxno", "event.document_no"),
    "shipment_id": ("extra.shipment_id", "extra.dynt_no"),
    "prod_geay_flag": ("line_extra.prod_geay_flag", "extra.prod_geay_flag"),
    "amount": ("line.price",),
    "total_amount": ("line.price",),
}


def _extra(event: Event, key: str) -> str:
    for k, v in event.extra:
        if k == key:
            return v
    return ""


def _line_extra(line: Line, key: str) -> str:
    for k, v in line.extra:
        if k == key:
            return v
    return ""


Getter = Callable[[Event, Line, Mapping[str, Any]], Any]
# the line's attributes that are always text (their lengths are checked at once)
_LINE_TEXT = {name: kind == "str" for name, kind in Line.__annotations__.items()}


@functools.cache
def _getter(spec: FieldSpec) -> Getter:
    """How one row reads its value, decided once per row (every unit of every event asks)."""
    kind, _, rest = spec.source.partition(".")
    if kind == "line":
        get_line = operator.attrgetter(rest)
        return lambda e, ln, ctx: get_line(ln)
    if kind == "event":
        get_event = operator.attrgetter(rest)
        return lambda e, ln, ctx: get_event(e)
    if kind == "party":
        role, _, attr = rest.partition(".")
        get_party, get_attr = operator.attrgetter(role), operator.attrgetter(attr)

        def party(e: Event, ln: Line, ctx: Mapping[str, Any]) -> Any:
            found = get_party(e)
            return get_attr(found) if found is not None else ""
        return party
    if kind == "extra":
        return lambda e, ln, ctx: _extra(e, rest)
    if kind == "line_extra":
        return lambda e, ln, ctx: _line_extra(ln, rest)
    if kind == "derived":
        return _DERIVED[rest]
    return lambda e, ln, ctx: None


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _number(value: Decimal) -> int | float:
    # JSON numbers, not strings: an integral quantity as an integer, others as the
    # shortest float that reads back to the same decimal (at most 6 places here)
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def _typed(spec: FieldSpec, value: Any) -> tuple[Any, str]:
    """(value in the interface's type, problem or "")."""
    if spec.type is FieldType.DECIMAL:
        try:
            d = value if isinstance(value, Decimal) else Decimal(str(value))
        except InvalidOperation:
            return None, f"not a number: {value!r}"
        number = _number(d)
        return number, check_value(spec, number)
    if spec.type is FieldType.TRACE_LIST:
        return value, check_value(spec, value)
    if isinstance(value, datetime) and spec.type is FieldType.DATETIME:
        return _fmt_time(value), ""  # formatted here: of the right form by construction
    text = _fmt_time(value) if isinstance(value, datetime) else str(value)
    return text, check_value(spec, text)


def typed_problem(spec: FieldSpec, value: Any) -> str:
    """Why the platform would refuse ``value`` (as a deployment or a message gives it) for
    ``spec`` once put in the interface's type, or ""."""
    return _typed(spec, value)[1]


_SKIP: Any = object()  # an optional field without a value: left out of the body


def _field(spec: FieldSpec, event: Event, line: Line, ctx: Mapping[str, Any],
           fallback: Mapping[str, str]) -> tuple[Any, str]:
    """(typed value, "") of one row, (``_SKIP``, "") for an optional row without a value,
    or (None, why the platform would refuse it, naming the source)."""
    value = _getter(spec)(event, line, ctx)
    if _empty(value):
        value = fallback.get(spec.name, spec.default)
    if _empty(value):
        if spec.mandatory:
            return None, f"mandatory, no value (source {spec.source})"
        return _SKIP, ""
    typed, problem = _typed(spec, value)
    if problem:
        return None, f"{problem} (source {spec.source})"
    return typed, ""


EventPart = Mapping[FieldSpec, tuple[Any, str]]


def event_fields(specs: Sequence[FieldSpec], event: Event, line: Line,
                 ctx: Mapping[str, Any], defaults: Mapping[str, str] | None = None
                 ) -> EventPart:
    """The rows of ``specs`` that read the event, not a line, worked out once for all the
    units of an event (:func:`build_fields` takes them as ``event_part``): a 2,000-line
    dispense's prescriber, pharmacist and settlement fields are the same in each of its
    2,000 requests. ``ctx`` must be one whose event-wide values hold for every unit."""
    fallback = defaults or {}
    return {spec: _field(spec, event, line, ctx, fallback)
            for spec in specs if not _per_line(spec)}


def build_fields(label: str, specs: Sequence[FieldSpec], event: Event, line: Line,
                 ctx: Mapping[str, Any], defaults: Mapping[str, str] | None = None,
                 event_part: EventPart | None = None) -> dict[str, Any]:
    """The fields ``specs`` describe for one line (or a document's header), typed,
    optional empty fields left out (``event_part``: the event's own rows, from
    :func:`event_fields`).

    Raises:
        FieldMissing: mandatory fields without a value, or values of the wrong form,
            each named with its source; ``label`` names the transaction.
    """
    body: dict[str, Any] = {}
    problems: dict[str, str] = {}
    fallback = defaults or {}
    for spec in specs:
        got = event_part.get(spec) if event_part is not None else None
        typed, problem = got if got is not None else _field(spec, event, line, ctx, fallback)
        if problem:
            problems[spec.name] = problem
        elif typed is not _SKIP:
            body[spec.name] = typed
    if problems:
        raise FieldMissing(label, problems)
    return body


def build_body(infno: str, event: Event, line: Line, ctx: Mapping[str, Any],
               defaults: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``infno`` body for one line, typed, optional empty fields left out.

    Args:
        infno: 3501–3507.
        event, line: what the body reports.
        ctx: values only the profile knows (``bchno``, ``inv_data_type``).
        defaults: the deployment's ``field_defaults`` (field → value).

    Raises:
        FieldMissing: mandatory fields without a value, or values of the wrong form,
            each named with its source.
    """
    return build_fields(infno, SPECS[infno], event, line, ctx, defaults)


# --- checking an event before it may go out ---------------------------------------------

# derived values that do not depend on the line: read once per event
_EVENT_DERIVED = frozenset({"time", "date", "mdtrt_sn", "rxno", "shipment_id", "total_amount",
                            "inv_data_type"})
# values the gateway computes in the interface's form by construction: never malformed
# (the batch number is the profile's: it checks the longest once per event)
_WELL_FORMED = frozenset({"derived.rx_flag", "derived.trdn_flag", "derived.time",
                          "derived.date", "derived.inv_data_type", "derived.amount",
                          "derived.total_amount", "derived.bchno"})
# the line values a derived value reads (its emptiness is theirs)
_DERIVED_LINE_VALUES: dict[str, tuple[str, ...]] = {
    "quantity": ("quantity", "national_quantity"),
    "moved_quantity": ("quantity", "national_quantity"),
    "rx_flag": ("rx_only",), "supplier_name": ("supplier",), "amount": ("price",),
    "drugtracinfo": ("trace_codes",),
}


def _per_line(spec: FieldSpec) -> bool:
    kind, _, rest = spec.source.partition(".")
    return kind in ("line", "line_extra") or (kind == "derived" and rest not in _EVENT_DERIVED)


def _fits(spec: FieldSpec, value: Decimal) -> bool:
    # the common case without building the float: few enough places and digits as sent
    # (the platform's form only ever has fewer)
    _, digits, exponent = value.as_tuple()
    return (exponent.__class__ is int and -exponent <= spec.scale
            and len(digits) + exponent <= spec.precision - spec.scale)


Row = tuple[FieldSpec, Getter]


@dataclass(frozen=True, slots=True)
class BodyChecks:
    """One transaction's rows arranged for the check an event passes at ingest: which
    mandatory fields nothing fills, which values the platform would refuse for their form.

    Values read from the event are checked once per event, values read from a line once
    per line, each with the cheapest test that decides (the lengths of a line's texts at
    once; a sender's extra facts only where it sent them), so that a 2,000-line dispense
    costs little more than its lines and a small one little more than before.
    """

    mandatory: tuple[Row, ...]
    event_rows: tuple[Row, ...]  # read once per event, but not a sender's extra facts
    extra_rows: Mapping[str, tuple[FieldSpec, ...]]  # extra.<key> rows by key
    line_texts: Callable[[Line], tuple[str, ...]]  # every line.<text attribute> row
    line_limits: tuple[int, ...]
    text_rows: tuple[Row, ...]
    line_rows: tuple[Row, ...]  # the other rows read per line
    signature: Callable[[Line], tuple[Any, ...]]

    @classmethod
    def of(cls, specs: Sequence[FieldSpec]) -> BodyChecks:
        """The checks of a transaction's rows (as a deployment configured them)."""
        rows = [(s, _getter(s)) for s in specs]
        checked = [r for r in rows if r[0].source not in _WELL_FORMED]
        texts = tuple(r for r in checked if r[0].source.startswith("line.")
                      and r[0].type is _TEXT and _LINE_TEXT.get(r[0].source[5:]))
        extra_rows: dict[str, tuple[FieldSpec, ...]] = {}
        for spec, _ in checked:
            if spec.source.startswith("extra."):
                key = spec.source[6:]
                extra_rows[key] = (*extra_rows.get(key, ()), spec)
        text_attrs = [s.source[5:] for s, _ in texts]
        get_texts = operator.attrgetter(*text_attrs) if text_attrs else (lambda ln: ())
        return cls(
            mandatory=tuple(r for r in rows if r[0].mandatory),
            event_rows=tuple(r for r in checked if not _per_line(r[0])
                             and not r[0].source.startswith("extra.")),
            extra_rows=extra_rows,
            line_texts=((lambda ln: (get_texts(ln),)) if len(text_attrs) == 1  # type: ignore[arg-type, return-value]
                        else get_texts),
            line_limits=tuple(s.length for s, _ in texts),
            text_rows=texts,
            line_rows=tuple(r for r in checked if _per_line(r[0]) and r not in texts),
            signature=_signature(specs))

    def missing(self, event: Event, line: Line, ctx: Mapping[str, Any],
                defaults: Mapping[str, str] | None) -> dict[str, str]:
        """Mandatory fields nothing fills: field → why, naming the source."""
        out: dict[str, str] = {}
        for spec, get in self.mandatory:
            value = get(event, line, ctx)
            if value is None or value == "" or value == []:
                value = defaults.get(spec.name, spec.default) if defaults else spec.default
                if value is None or value == "":
                    out[spec.name] = f"has no value (source {spec.source})"
        return out

    def malformed_event(self, event: Event, line: Line,
                        ctx: Mapping[str, Any]) -> dict[str, str]:
        """The event's own values (not a line's) the platform would refuse."""
        out = _malformed(self.event_rows, event, line, ctx)
        for key, value in event.extra:
            for spec in self.extra_rows.get(key, ()):
                problem = _problem(spec, value)
                if problem:
                    out[spec.name] = f"{problem} (source {spec.source})"
        return out

    def malformed_line(self, event: Event, line: Line, ctx: Mapping[str, Any],
                       good: set[tuple[str, Any]] | None = None) -> dict[str, str]:
        """One line's values the platform would refuse: field → why, naming the source.
        ``good`` keeps the (field, value) pairs found good across an event's lines (a
        dispense's lines share dates, prices and quantities)."""
        out = _malformed(self.line_rows, event, line, ctx, good)
        if not all(map(operator.le, map(len, self.line_texts(line)), self.line_limits)):
            out.update(_malformed(self.text_rows, event, line, ctx))
        return out


def _signature(specs: Sequence[FieldSpec]) -> Callable[[Line], tuple[Any, ...]]:
    """Which of a line's values that mandatory rows read are empty (lines alike in that
    miss the same fields)."""
    attrs: list[str] = []
    extras: list[str] = []
    for spec in specs:
        if not (spec.mandatory and _per_line(spec)):
            continue
        kind, _, rest = spec.source.partition(".")
        if kind == "line":
            attrs.append(rest)
        elif kind == "line_extra":
            extras.append(rest)
        else:
            attrs.extend(_DERIVED_LINE_VALUES.get(rest, ()))
    names = list(dict.fromkeys(attrs))
    getter = operator.attrgetter(*names) if names else None

    def signature(line: Line) -> tuple[Any, ...]:
        values = getter(line) if getter is not None else ()
        if len(names) == 1:
            values = (values,)
        # (a Decimal compared with "" goes through the numbers ABCs: slow, and never empty)
        return (*(v is None or (v.__class__ is str and not v) for v in values),
                *(not _line_extra(line, k) for k in extras))

    return signature


_TEXT, _CODE, _DATE_TYPE, _DECIMAL = (FieldType.TEXT, FieldType.CODE, FieldType.DATE,
                                      FieldType.DECIMAL)


def _problem(spec: FieldSpec, value: Any) -> str:
    """Why the platform would refuse ``value`` for ``spec``, or "" (the common cases
    decided without formatting the value)."""
    if value.__class__ is str:
        if spec.type is _TEXT and len(value) <= spec.length:
            return ""
        if spec.type is _CODE and (value in spec.codes if spec.codes
                                   else len(value) <= spec.length):
            return ""
        if spec.type is _DATE_TYPE and len(value) == 10 and value[4] == "-" == value[7]:
            try:
                date.fromisoformat(value)
            except ValueError:
                pass  # worded below
            else:
                return ""
    elif value.__class__ is Decimal and spec.type is _DECIMAL and _fits(spec, value):
        return ""
    return _typed(spec, value)[1]


def _malformed(rows: Sequence[Row], event: Event, line: Line, ctx: Mapping[str, Any],
               good: set[tuple[str, Any]] | None = None) -> dict[str, str]:
    out: dict[str, str] = {}
    for spec, get in rows:
        if spec.source == "derived.drugtracinfo":
            # the codes themselves: no list of dicts for a line of 10,000 of them
            codes = line.trace_codes
            longest = max(map(len, codes)) if codes else 0
            if longest > _TRACE_CODE_WIDTH:
                out[spec.name] = (f"drug_trac_codg长度{longest}超过{_TRACE_CODE_WIDTH} "
                                  f"(source {spec.source})")
            continue
        value = get(event, line, ctx)
        if value is None or value == "":
            continue
        if good is not None:
            key = (spec.name, value)
            if key in good:
                continue
            problem = _problem(spec, value)
            if not problem:
                good.add(key)
                continue
        else:
            problem = _problem(spec, value)
        if problem:
            out[spec.name] = f"{problem} (source {spec.source})"
    return out


# --- checking a body ---------------------------------------------------------------------

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def _check_decimal(spec: FieldSpec, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"应为数值 N({spec.precision},{spec.scale}), 收到 {value!r}"
    d = Decimal(str(value))
    exponent = d.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    digits = len(d.as_tuple().digits)
    if places > spec.scale or digits - places > spec.precision - spec.scale:
        return f"超出 N({spec.precision},{spec.scale}): {value!r}"
    return ""


def _check_date(value: Any, pattern: re.Pattern[str], fmt: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        return f"日期格式应为 {fmt}: {value!r}"
    try:
        if len(value) == 10:
            date.fromisoformat(value)
        else:  # the pattern has fixed the form; this checks the calendar, fast
            datetime.fromisoformat(value)
    except ValueError:
        return f"不是有效日期: {value!r}"
    return ""


_TRACE_CODE_WIDTH = 100  # drug_trac_codg: C100 in the interface


def check_value(spec: FieldSpec, value: Any) -> str:
    """Why ``value`` is not of ``spec``'s type, or "" (messages in the platform's words)."""
    t = spec.type
    if t is FieldType.DECIMAL:
        return _check_decimal(spec, value)
    if t is FieldType.DATE:
        return _check_date(value, _DATE, "yyyy-MM-dd")
    if t is FieldType.DATETIME:
        return _check_date(value, _DATETIME, "yyyy-MM-dd HH:mm:ss")
    if t is FieldType.TRACE_LIST:
        ok = isinstance(value, list) and all(
            isinstance(x, dict) and isinstance(x.get("drug_trac_codg"), str) for x in value)
        if not ok:
            return f"应为[{{drug_trac_codg}}]列表: {value!r}"
        for x in value:
            code = x["drug_trac_codg"]
            if len(code) > _TRACE_CODE_WIDTH:
                return f"drug_trac_codg长度{len(code)}超过{_TRACE_CODE_WIDTH}"
        return ""
    if not isinstance(value, str):
        return f"应为字符串, 收到 {type(value).__name__}"
    if spec.length and len(value) > spec.length:
        return f"长度{len(value)}超过{spec.length}"
    if spec.codes and value not in spec.codes:
        return f"取值应为 {'/'.join(spec.codes)}: {value!r}"
    return ""


def check_body(infno: str, body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field, reason) of the first field of ``body`` the platform refuses, or None."""
    return check_fields(SPECS[infno], body)


def check_fields(specs: Sequence[FieldSpec], body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field, reason) of the first field of ``body`` that ``specs`` refuse, or None."""
    for spec in specs:
        value = body.get(spec.name)
        if value is None or value == "":
            if spec.mandatory:
                return spec.name, "必填字段缺失"
            continue
        problem = check_value(spec, value)
        if problem:
            return spec.name, problem
    return None
