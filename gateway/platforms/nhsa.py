"""The national medical-insurance platform's inventory interface (进销存 3501–3507).

Envelope: ``infno``, ``msgid`` (30 = hospital code + yyyyMMddHHmmss + 4-digit
sequence), ``inf_time``, ``fixmedins_code`` … and ``input``; answer ``infcode``
(0 = success), ``err_msg``, ``output``. One request carries one item line, as the
interface's ``selinfo`` / ``purcinfo`` objects do, so each line has its own msgid.

Corrections never overwrite: an event cancelling an earlier one (order control CA /
DC) goes out as 3507 deletes of the earlier lines' uploads, and a change (XO) as a
3507 delete followed by a fresh upload of each line, in that order (same FIFO
stream), under the earlier upload's batch number ``fixmedins_bchno``.

Ordering (:meth:`NhsaInventoryProfile.order_key`, the table :data:`ORDERING`): the
platform needs a sale before its return and before the 3507 delete of its upload, and
the delete before the re-upload; a purchase return after its receipt; stock movements
of one item and lot in order. So a sale line's key is its document, item and line (its
corrections share it); a return's is the document and item of the sale it gives back
(``original_no``), scope-wide: after every line of that item in that sale; the stock
transactions' is the item and lot, scope-wide. Everything else goes out concurrently.

Bodies come from the field specifications of :mod:`gateway.platforms.fields`, the same
the simulator checks against: a mandatory field the event cannot fill is a
:class:`~gateway.platforms.fields.FieldMissing` naming it, which the mirror turns into a
dead letter with that reason instead of a request the platform would refuse. The visit
serial ``mdtrt_sn`` is part of every sale (it names nobody); the patient's name and
identifiers are added only as the destination's patient policy allows.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from canonical.breaks import take_break
from canonical.model import CHINA_TZ, Event, EventKind, Line, OrderControl
from gateway.config import DestinationConfig, GatewayConfig
from gateway.platforms.base import Answer, Request, Verdict
from gateway.platforms.custom_fields import destination_specs
from gateway.platforms.fields import (
    BCHNO,
    BodyChecks,
    EventPart,
    FieldSpec,
    build_fields,
    check_value,
    event_fields,
)
from gateway.platforms.privacy import PatientPolicy, patient_payload
from gateway.platforms.signing import Signer, SigningKeys

__all__ = ["DELETE_DATA_TYPE", "INFNO", "ORDERING", "THROTTLE_MARKERS",
           "NhsaInventoryProfile", "order_key", "signer_for", "unit_action"]

# event kind → (infno, input wrapper)
INFNO: dict[EventKind, tuple[str, str]] = {
    EventKind.STOCKTAKE: ("3501", "invinfo"),
    EventKind.STOCK_CHANGE: ("3502", "invinfo"),
    EventKind.RECEIPT: ("3503", "purcinfo"),
    EventKind.RETURN: ("3504", "purcinfo"),
    EventKind.DISPENSE: ("3505", "selinfo"),
    EventKind.DISPENSE_RETURN: ("3506", "selinfo"),
}

# 3507 ``inv_data_type``: which upload a delete removes
DELETE_DATA_TYPE: dict[EventKind, str] = {
    EventKind.STOCKTAKE: "1",
    EventKind.STOCK_CHANGE: "2",
    EventKind.RECEIPT: "3",
    EventKind.RETURN: "3",
    EventKind.DISPENSE: "4",
    EventKind.DISPENSE_RETURN: "4",
}

_DELETES = (OrderControl.CANCEL, OrderControl.DISCONTINUE)

# the platform's answer when it already holds a msgid (only that: a batch number
# already uploaded is a different, final rejection)
_DUPLICATE_MARKERS = ("msgid重复", "报文ID重复", "duplicate msgid")
# business answers that mean "too fast", not "wrong": sent again later, more slowly
THROTTLE_MARKERS = ("频繁", "限流", "流量控制", "超过访问频率", "too frequent", "rate limit")

# what must precede what, per transaction: units with equal keys keep commit order
ORDERING: dict[str, str] = {
    "3505": "the sale line (rtal_docno, hospital item, line): the upload before the 3507 "
            "delete of it, the delete before the re-upload; other lines alongside",
    "3506": "after every line of the sale given back (original_no, else its own document) "
            "with that hospital item, and before anything later for them",
    "3501": "hospital item + lot (manu_lotnum)",
    "3502": "hospital item + lot",
    "3503": "hospital item + lot: a receipt before its purchase return",
    "3504": "hospital item + lot",
    "3507": "the key of the upload it deletes",
}

# our patient fields → 3505 keys; a phone number has no key there and never leaves.
# The visit serial (mdtrt_sn) is no identity and comes from the field specification.
_PATIENT_KEYS = {"name": "psn_name", "id_card": "certno", "insurance_no": "psn_no"}


def _extra(event: Event, key: str) -> str:
    return next((v for k, v in event.extra if k == key), "")


_SEQ = operator.attrgetter("seq")
# an event of this many lines has its own fields worked out once for all its units;
# the last EVENT_PARTS_KEPT such (event, transaction) pairs are kept
EVENT_PART_MIN_LINES = 8
EVENT_PARTS_KEPT = 32


def unit_action(event: Event, unit: int) -> tuple[str, Line]:
    """("delete" | "upload", line) for one unit of an event."""
    if event.order_control is OrderControl.CHANGE:
        return ("delete" if unit % 2 == 0 else "upload"), event.lines[unit // 2]
    if event.order_control in _DELETES:
        return "delete", event.lines[unit]
    return "upload", event.lines[unit]


def order_key(event: Event, unit: int) -> str:
    """What a unit must keep its order with (see :data:`ORDERING`)."""
    _, line = unit_action(event, unit)
    if event.kind is EventKind.DISPENSE:
        # one line of a sale: its corrections follow it, other lines go alongside
        return f"sale|{event.document_no or event.control_id}|{line.item_code}#{line.seq}"
    if event.kind is EventKind.DISPENSE_RETURN:
        # scope-wide: after every line of the sale's item it gives back
        sale = _extra(event, "original_no") or event.document_no or event.control_id
        return f"sale|{sale}|{line.item_code}"
    return f"stock|{line.item_code}|{line.lot_no}"


def signer_for(dest: DestinationConfig) -> Signer:
    """The destination's signer, from its configured scheme and keys."""
    def secret(v: Any) -> str:
        return "" if v is None else str(v.get_secret_value())
    return Signer(SigningKeys(scheme=dest.signing, paasid=dest.paas_id,
                              secret=secret(dest.app_secret).encode(),
                              sm4_key=secret(dest.sm4_key),
                              sm2_private_key=secret(dest.sm2_private_key)))


def patient_policy(dest: DestinationConfig, gateway: GatewayConfig) -> PatientPolicy:
    """The destination's patient-data policy with the hospitals' hash secrets."""
    return PatientPolicy(
        fields=dest.patient_fields, identifiers_in_clear=dest.identifiers_in_clear,
        names=not dest.hash_identifiers,
        secrets={h.code: h.hash_secret.get_secret_value().encode()
                 for h in gateway.hospitals if h.hash_secret is not None})


def _fmt_time(value: datetime) -> str:
    return value.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


class NhsaInventoryProfile:
    """Builds 3501–3506 requests from mapped events and reads the platform's answers."""

    def __init__(self, dest: DestinationConfig, gateway: GatewayConfig) -> None:
        self.dest = dest
        self._names = {h.code: h.name for h in gateway.hospitals}
        self._admdvs = {h.code: h.admdvs for h in gateway.hospitals}
        self.signer = signer_for(dest)
        self.policy = patient_policy(dest, gateway)
        self.specs = destination_specs(dest)
        self._checks = {infno: BodyChecks.of(specs) for infno, specs in self.specs.items()}
        self._event_parts: OrderedDict[tuple[int, str], tuple[Event, EventPart]] = \
            OrderedDict()

    async def prepare(self, session: aiohttp.ClientSession) -> None:
        """Nothing to prepare: every request is signed on its own."""

    def units(self, event: Event) -> int:
        """One request per line; a change (XO) two per line: delete, then upload."""
        if event.kind not in INFNO:
            return 0
        if event.order_control is OrderControl.CHANGE:
            return 2 * len(event.lines)
        return len(event.lines)

    @staticmethod
    def _unit_action(event: Event, unit: int) -> tuple[str, Line]:
        return unit_action(event, unit)

    def order_key(self, event: Event, unit: int) -> str:
        """The unit's ordering key (see :data:`ORDERING`)."""
        return order_key(event, unit)

    def missing(self, event: Event) -> dict[str, str]:
        """What the platform would refuse in some unit of ``event``: mandatory fields
        nothing fills and values not of the interface's form (``"3505 field"`` → why,
        naming the source)."""
        out: dict[str, str] = {}
        defaults = self.dest.field_defaults
        data_type = DELETE_DATA_TYPE.get(event.kind, "")
        seen: set[tuple[object, ...]] = set()
        event_checked: set[str] = set()
        good: set[tuple[str, Any]] = set()
        shared = {"inv_data_type": data_type}  # what the rows checked for form read
        for unit in range(self.units(event)):
            take_break()
            action, line = unit_action(event, unit)
            infno = "3507" if action == "delete" else INFNO[event.kind][0]
            checks = self._checks[infno]
            found = checks.malformed_line(event, line, shared, good)
            if infno not in event_checked:
                event_checked.add(infno)
                found.update(checks.malformed_event(event, line, shared))
                longest = self.batch_no(event, max(event.lines, key=_SEQ))
                problem = check_value(BCHNO, longest)
                if problem:
                    found[BCHNO.name] = (f"{problem}: {longest!r} (source derived.bchno: the "
                                         "document number and the line's number)")
            # what is missing depends only on which of the line's values are empty: lines
            # alike in that are checked once (a 2,000-line dispense costs a few checks)
            sig = (infno, *checks.signature(line))
            if sig not in seen:
                seen.add(sig)
                ctx = {"bchno": self.batch_no(event, line), "inv_data_type": data_type}
                found.update(checks.missing(event, line, ctx, defaults))
            for name, why in found.items():
                out.setdefault(f"{infno} {name}", why)
        return out

    @staticmethod
    def batch_no(event: Event, line: Line) -> str:
        """``fixmedins_bchno``: stable across an event and its corrections."""
        return f"{event.document_no or event.control_id}-{line.seq}"

    def _patient_fields(self, event: Event) -> dict[str, Any]:
        return patient_payload(event.patient, event.hospital_id, self.policy, _PATIENT_KEYS)

    def body(self, event: Event, unit: int) -> tuple[str, str, dict[str, Any]]:
        """(infno, wrapper, body) of unit ``unit`` of ``event``, from the field specifications.

        Raises:
            FieldMissing: mandatory fields the event cannot fill, each named.
        """
        action, line = self._unit_action(event, unit)
        ctx = {"bchno": self.batch_no(event, line),
               "inv_data_type": DELETE_DATA_TYPE[event.kind]}
        infno, wrapper = ("3507", "data") if action == "delete" else INFNO[event.kind]
        specs = self.specs[infno]
        body = build_fields(infno, specs, event, line, ctx, self.dest.field_defaults,
                            self._event_part(infno, specs, event, line, ctx))
        if action == "delete":
            return infno, wrapper, body
        if wrapper == "selinfo":
            body.update(self._patient_fields(event))
        return infno, wrapper, body

    def _event_part(self, infno: str, specs: Sequence[FieldSpec], event: Event, line: Line,
                    ctx: Mapping[str, Any]) -> EventPart | None:
        """The event's own fields for ``infno``, worked out at its first unit and kept
        while its units go out (a big event only: a few lines gain nothing)."""
        if len(event.lines) < EVENT_PART_MIN_LINES:
            return None
        key = (id(event), infno)
        kept = self._event_parts.get(key)
        if kept is not None and kept[0] is event:
            self._event_parts.move_to_end(key)
            return kept[1]
        part = event_fields(specs, event, line, ctx, self.dest.field_defaults)
        self._event_parts[key] = (event, part)  # the event kept too: its id stays its own
        if len(self._event_parts) > EVENT_PARTS_KEPT:
            self._event_parts.popitem(last=False)
        return part

    def build(self, event: Event, unit: int, msgid: str, now: float) -> Request:
        """The signed envelope for unit ``unit`` of ``event`` (an upload or a 3507 delete).

        Raises:
            FieldMissing: the body lacks mandatory fields (the mirror rejects the unit
                with this reason rather than let the platform refuse it).
        """
        infno, wrapper, body = self.body(event, unit)
        return self._envelope(event, infno, wrapper, body, msgid, now)

    def _envelope(self, event: Event, infno: str, wrapper: str, body: dict[str, Any],
                  msgid: str, now: float) -> Request:
        envelope = {
            "infno": infno,
            "msgid": msgid,
            "mdtrtarea_admvs": self._admdvs.get(event.hospital_id, ""),
            "insuplc_admdvs": "",
            "recer_sys_code": self.dest.recer_sys_code,
            "dev_no": "",
            "dev_safe_info": "",
            "cainfo": "",
            "infver": self.dest.infver,
            "opter_type": "1",
            "opter": self.dest.opter,
            "opter_name": self.dest.opter_name,
            "inf_time": _fmt_time(datetime.fromtimestamp(now, CHINA_TZ)),
            "fixmedins_code": event.hospital_id,
            "fixmedins_name": self._names.get(event.hospital_id, ""),
            "sign_no": "",
            "signtype": self.dest.signing if self.dest.signing != "none" else "",
            "input": {wrapper: body},
        }
        sealed, headers = self.signer.seal(orjson.dumps(envelope), now)
        return Request(path="", body=sealed,
                       headers={"Content-Type": "application/json;charset=utf-8", **headers},
                       infno=infno)

    def interpret(self, status: int, body: bytes) -> Answer:
        """infcode 0 (or a duplicate msgid) is delivered; 5xx/429 retry; the rest is final."""
        if status == 429:
            return Answer(Verdict.RETRY, "HTTP 429: too many requests", throttled=True)
        if status >= 500 or status in (408, 425):
            return Answer(Verdict.RETRY, f"HTTP {status}")
        if status in (401, 403):
            # the keys are wrong or expired: every event would fail alike, so wait for
            # the operator (the circuit opens) rather than dead-letter the queue
            return Answer(Verdict.RETRY, f"HTTP {status}: signature or credentials refused")
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
        if any(m in err.lower() for m in THROTTLE_MARKERS):
            return Answer(Verdict.RETRY, f"infcode {infcode}: {err}", throttled=True)
        return Answer(Verdict.REJECTED, f"infcode {infcode}: {err}")

    def describe(self) -> dict[str, Any]:
        """Facts about the profile."""
        return {"profile": "nhsa-inventory", "signing": self.dest.signing,
                "patient_fields": list(self.dest.patient_fields),
                "identifiers": "in clear" if self.dest.identifiers_in_clear else "hashed",
                "transactions": [*sorted(v[0] for v in INFNO.values()), "3507"],
                "ordering": ORDERING}
