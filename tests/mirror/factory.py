"""Realistic events for the mirror tests, built in code (the HL7 path has its own tests).

National codes are real entries of the national drug code list
(tests/data/codes/nhsa_drug_codes.csv): 阿那曲唑片 and 他达拉非片, with the hospital
item codes of config/crosswalk.sample.csv. Hospital codes follow the 12-character
定点医药机构编号 format; the patient is invented.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from canonical.model import CHINA_TZ, Event, EventKind, Line, OrderControl, Party, Patient
from gateway.platforms.nhsa import order_key
from gateway.store.base import Incoming, PlannedDelivery

HOSPITALS = ("H33010200015", "H33010600021", "H33010800032", "H33011000047")
ANASTROZOLE = "XL02BGA045A001010104520"  # 阿那曲唑片 1mg*14片
TADALAFIL = "XG04BET001A001010207360"  # 他达拉非片
REJECTED_CODE = "XL02BGA045A00101010452"  # one character short: the platform refuses it
PATIENT = Patient(id="P0012345", name="张伟", id_card="330102198001010016",
                  phone="13800138000", insurance_no="33010099887766", visit_no="MZ202611230017")
T0 = datetime(2026, 11, 23, 9, 30, tzinfo=CHINA_TZ)


def dispense(n: int, hospital: str = HOSPITALS[0], *, code: str = ANASTROZOLE,
             item: str = "Y0012345", lines: int = 1, kind: EventKind = EventKind.DISPENSE,
             control: OrderControl | None = None, doc: str | None = None,
             quantity: int = 28, event_id: str | None = None) -> Event:
    """Dispense number ``n`` of a hospital, ``lines`` item lines."""
    return Event(
        event_id=event_id or f"{hospital}-{kind.value}-{n}-{control.value if control else 'NW'}",
        kind=kind, hospital_id=hospital, source="hl7v2:HIS^WINNING",
        occurred_at=T0 + timedelta(seconds=n),
        lines=tuple(Line(seq=i + 1, item_code=item, item_name="阿那曲唑片",
                         specification="1mg*14片", manufacturer="杭州中美华东制药有限公司",
                         quantity=Decimal(2), unit="盒", price=Decimal("32.90"),
                         national_code=code, national_quantity=Decimal(quantity),
                         national_unit="片", national_price=Decimal("2.35"),
                         lot_no="L2026090112", expiry="2028-08-31", manu_date="2026-09-01",
                         approval_no="国药准字H20203365",
                         rx_only=True,
                         supplier=Party("S01", "华东医药股份有限公司"),
                         extra=_line_extra(kind, n, i))
                    for i in range(lines)),
        control_id=f"RDS{n:012d}", document_no=doc or f"CF{hospital[-4:]}{n:08d}",
        order_control=control, prescriber=Party("D0107", "李明"),
        pharmacist=Party("Y0031", "孙丽"), patient=PATIENT,
        extra=_sale_extra(kind, n, hospital))


def _sale_extra(kind: EventKind, n: int, hospital: str) -> tuple[tuple[str, str], ...]:
    """What the ZJC segment adds to a sale: licence number, settlement type (1 普通门诊)."""
    extra = (("phar_prac_cert_no", "330102201800123"), ("hi_feesetl_type", "1"))
    if kind is EventKind.DISPENSE_RETURN:
        extra += (("original_no", f"CF{hospital[-4:]}{n:08d}"),)  # dispense n's document
    # what a provincial procurement platform (招采) asks of each document
    if kind is EventKind.RECEIPT:
        extra += (("dynt_no", f"PS{n:013d}"), ("invoice_no", f"0441{n:04d}"))
    elif kind is EventKind.RETURN:
        extra += (("original_no", f"RK{n:011d}"), ("return_reason", "近效期"))
    elif kind is EventKind.PAYMENT:
        extra += (("receipt_no", f"RK{n:011d}"),)
    return extra


def _line_extra(kind: EventKind, n: int, i: int) -> tuple[tuple[str, str], ...]:
    """A received line's order line and listing (挂网) on the procurement platform."""
    if kind is not EventKind.RECEIPT:
        return ()
    return (("order_line_id", f"PO{n:011d}-{i + 1}"), ("listing_id", "ZJYP2025011870"))


def _key(event: Event, unit: int) -> str:
    """The national interface's ordering key, as the ingest path plans it (a unit the
    event does not have, as some store tests plan, keeps its event's stream)."""
    try:
        return order_key(event, unit)
    except IndexError:
        return event.stream


def incoming(events: Sequence[Event], units: Sequence[tuple[str, int]],
             control_id: str | None = None) -> Incoming:
    """One message carrying ``events``; ``units`` = (destination, unit count) per event."""
    deliveries = tuple(PlannedDelivery(i, dest, u, _key(events[i], u))
                       for i, (dest, count) in enumerate(units) for u in range(count))
    first = events[0]
    return Incoming(adapter="hl7v2", sender="HIS^WINNING",
                    control_id=control_id or first.control_id or first.event_id,
                    message_type="RDS^O13", raw=f"MSH|{first.event_id}".encode(),
                    received_at=datetime.now(CHINA_TZ), events=tuple(events),
                    held=tuple(False for _ in events), deliveries=deliveries)
