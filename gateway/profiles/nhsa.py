"""The national medical-insurance platform's inventory interface (进销存 3501–3507).

Envelope: ``infno``, ``msgid`` (30 = hospital code + yyyyMMddHHmmss + 4-digit
sequence), ``inf_time``, ``fixmedins_code`` … and ``input``; answer ``infcode``
(0 = success), ``err_msg``, ``output``. One request carries one item line, as the
interface's ``selinfo`` / ``purcinfo`` objects do, so each line has its own msgid.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from ..config import DestinationConfig, GatewayConfig
from ..model import CHINA_TZ, Event, EventKind, Line
from .base import Answer, Request, Verdict

__all__ = ["INFNO", "NhsaInventoryProfile"]

# event kind → (infno, input wrapper)
INFNO: dict[EventKind, tuple[str, str]] = {
    EventKind.STOCKTAKE: ("3501", "invinfo"),
    EventKind.STOCK_CHANGE: ("3502", "invinfo"),
    EventKind.RECEIPT: ("3503", "purcinfo"),
    EventKind.RETURN: ("3504", "purcinfo"),
    EventKind.DISPENSE: ("3505", "selinfo"),
    EventKind.DISPENSE_RETURN: ("3506", "selinfo"),
}

_DUPLICATE_MARKERS = ("重复", "duplicate")


def _fmt_time(value: datetime) -> str:
    return value.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _num(value: Decimal | None) -> str:
    return "" if value is None else format(value.normalize(), "f")


class NhsaInventoryProfile:
    """Builds 3501–3506 requests from mapped events and reads the platform's answers."""

    def __init__(self, dest: DestinationConfig, gateway: GatewayConfig) -> None:
        self.dest = dest
        self._names = {h.code: h.name for h in gateway.hospitals}
        self._admdvs = {h.code: h.admdvs for h in gateway.hospitals}

    def units(self, event: Event) -> int:
        """One request per line for the kinds this interface takes, none otherwise."""
        return len(event.lines) if event.kind in INFNO else 0

    def _line_fields(self, event: Event, line: Line) -> dict[str, Any]:
        return {
            "med_list_codg": line.national_code or "",
            "fixmedins_hilist_id": line.item_code,
            "fixmedins_hilist_name": line.item_name,
            "fixmedins_bchno": f"{event.document_no or event.control_id}-{line.seq}",
            "manu_lotnum": line.lot_no,
            "expy_end": line.expiry,
            "finl_trns_pric": _num(line.national_price),
            "aprvno": line.approval_no,
        }

    def _patient_fields(self, event: Event) -> dict[str, Any]:
        wanted = self.dest.patient_fields
        p = event.patient
        if not wanted or p is None:
            return {}
        names = {"visit_no": ("mdtrt_sn", p.visit_no), "name": ("psn_name", p.name),
                 "id_card": ("certno", p.id_card), "insurance_no": ("psn_no", p.insurance_no)}
        return {names[f][0]: names[f][1] for f in wanted if f in names}

    def build(self, event: Event, unit: int, msgid: str, now: float) -> Request:
        """The envelope for line ``unit`` of ``event``."""
        infno, wrapper = INFNO[event.kind]
        line = event.lines[unit]
        body = self._line_fields(event, line)
        when = _fmt_time(event.occurred_at)
        qty = _num(line.national_quantity if line.national_quantity is not None
                   else line.quantity)
        if wrapper == "selinfo":
            body.update({
                "prsc_dr_certno": event.prescriber.id if event.prescriber else "",
                "prsc_dr_name": event.prescriber.name if event.prescriber else "",
                "phar_certno": event.pharmacist.id if event.pharmacist else "",
                "phar_name": event.pharmacist.name if event.pharmacist else "",
                "rtal_docno": event.document_no,
                "sel_retn_cnt": qty,
                "sel_retn_time": when,
                "rx_flag": "1" if event.prescriber else "0",
                "trdn_flag": "0",
                "drugtracinfo": [{"drug_trac_codg": c} for c in line.trace_codes],
            })
            body.update(self._patient_fields(event))
        elif wrapper == "purcinfo":
            supplier = line.supplier or event.supplier
            body.update({
                "spler_name": supplier.name if supplier else "",
                "purc_retn_cnt": qty,
                "purc_retn_stoin_time": when,
                "purc_retn_opter_name": self.dest.opter_name,
                "prod_geay_flag": "0",
            })
        else:
            body.update({"inv_cnt": qty, "invdate": when[:10], "cnt": qty,
                         "inv_chg_time": when, "rx_flag": "0"})
        envelope = {
            "infno": infno,
            "msgid": msgid,
            "mdtrtarea_admvs": self._admdvs.get(event.hospital_id, ""),
            "insuplc_admdvs": "",
            "recer_sys_code": self.dest.recer_sys_code,
            "dev_no": "",
            "dev_safe_info": "",
            "cainfo": "",
            "signtype": "",
            "infver": self.dest.infver,
            "opter_type": "1",
            "opter": self.dest.opter,
            "opter_name": self.dest.opter_name,
            "inf_time": _fmt_time(datetime.fromtimestamp(now, CHINA_TZ)),
            "fixmedins_code": event.hospital_id,
            "fixmedins_name": self._names.get(event.hospital_id, ""),
            "sign_no": "",
            "input": {wrapper: body},
        }
        return Request(path="", body=orjson.dumps(envelope),
                       headers={"Content-Type": "application/json;charset=utf-8"}, infno=infno)

    def interpret(self, status: int, body: bytes) -> Answer:
        """infcode 0 (or a duplicate msgid) is delivered; 5xx/429 retry; the rest is final."""
        if status >= 500 or status in (408, 425, 429):
            return Answer(Verdict.RETRY, f"HTTP {status}")
        if status >= 400:
            return Answer(Verdict.REJECTED, f"HTTP {status}: {body[:200]!r}")
        try:
            answer = orjson.loads(body)
            infcode = int(answer["infcode"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return Answer(Verdict.RETRY, f"malformed answer: {body[:200]!r}")
        err = str(answer.get("err_msg") or "")
        output = answer.get("output") or {}
        ref = str(output.get("platform_ref") or answer.get("inf_refmsgid") or "") \
            if isinstance(output, dict) else str(answer.get("inf_refmsgid") or "")
        if infcode == 0:
            return Answer(Verdict.DELIVERED, platform_ref=ref)
        if any(m in err for m in _DUPLICATE_MARKERS):
            # the platform already holds this msgid: it was delivered before a crash
            return Answer(Verdict.DELIVERED, err, ref, duplicate=True)
        return Answer(Verdict.REJECTED, f"infcode {infcode}: {err}")

    def describe(self) -> dict[str, Any]:
        """Facts about the profile."""
        return {"profile": "nhsa-inventory", "transactions": sorted(v[0] for v in INFNO.values())}
