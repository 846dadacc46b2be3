"""The HL7 v2 adapter: MLLP payloads in, canonical events and ACKs out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel

from adapters.base import (
    Issue,
    Outcome,
    OutcomeStatus,
    ParsedMessage,
    Reply,
    ReplySummary,
    Severity,
)
from adapters.hl7v2.ack import AckHeader, build_ack
from adapters.hl7v2.config import SUPPORTED_VERSIONS, HL7v2Config
from adapters.hl7v2.fields import Header, ZLayout
from adapters.hl7v2.item_master import (
    ITEM_MASTER_TYPES,
    ITEM_MASTER_VERSIONS,
    events_from_item_master,
)
from adapters.hl7v2.message import Message, charset_codec, decode_message, parse_ts
from adapters.hl7v2.pharmacy import PHARMACY_TYPES, events_from_pharmacy
from adapters.hl7v2.supply import SUPPLY_TYPES, events_from_supply
from adapters.hl7v2.warehouse import WAREHOUSE_TYPES, events_from_warehouse
from canonical.errors import MessageRejected

__all__ = ["HL7v2Adapter", "HL7v2Config"]

_FROM_SUPPLIER = frozenset({"ORS^O06"})


class HL7v2Adapter:
    """HL7 v2.3.1–2.5.1 pharmacy messages."""

    name: ClassVar[str] = "hl7v2"
    kinds: ClassVar[frozenset[str]] = (PHARMACY_TYPES | SUPPLY_TYPES | WAREHOUSE_TYPES
                                       | ITEM_MASTER_TYPES)
    config_model: ClassVar[type[BaseModel]] = HL7v2Config
    transport: ClassVar[str] = "mllp"

    def __init__(self, config: HL7v2Config | Mapping[str, Any] | None = None) -> None:
        if config is None:
            config = HL7v2Config()
        elif not isinstance(config, HL7v2Config):
            config = HL7v2Config.model_validate(config)
        self.config = config
        self._default_layout = ZLayout(segment=config.z_segment,
                                       **config.z_fields.model_dump(exclude_unset=True))

    def _hospital(self, msg: Message) -> str:
        # a supplier's response comes from the supplier: the hospital is the receiver
        field = 6 if msg.message_type in _FROM_SUPPLIER else 4
        fac = msg.msh.get(field, 1)
        code = self.config.facilities.get(fac)
        if code:
            return code
        if len(fac) == 12 and fac.isalnum() and not self.config.facilities:
            return fac
        if self.config.default_hospital:
            return self.config.default_hospital
        raise MessageRejected(
            f"unknown {'receiving' if field == 6 else 'sending'} facility {fac!r} in "
            f"MSH-{field}: add it under the adapter's "
            "'facilities' with its 12-character 定点医药机构编号",
            code="204", location=f"MSH-{field}")

    def parse(self, raw: bytes, *, received_at: datetime) -> ParsedMessage:
        """Decode, check the header and build the pharmacy events."""
        msg = decode_message(raw, self.config.default_charset)
        msh = msg.msh
        control_id = msg.control_id
        if not control_id:
            raise MessageRejected("MSH-10 (message control id) is empty",
                                  code="101", location="MSH-10", reject=True)
        if _CONTROL.search(control_id):
            raise MessageRejected("MSH-10 (message control id) holds control characters",
                                  code="102", location="MSH-10", reject=True)
        mtype = msg.message_type
        if not msh.get(9, 1):
            raise MessageRejected("MSH-9 (message type) is empty",
                                  code="101", location="MSH-9", reject=True)
        if mtype not in self.kinds:
            raise MessageRejected(
                f"unsupported message type {mtype} (supported: {', '.join(sorted(self.kinds))})",
                code="200", location="MSH-9", reject=True)
        version = msg.version
        if version not in self.config.versions and not (
                mtype in ITEM_MASTER_TYPES and version in ITEM_MASTER_VERSIONS):
            raise MessageRejected(
                f"unsupported HL7 version {version!r} in MSH-12 "
                f"(supported: {', '.join(self.config.versions)})",
                code="203", location="MSH-12", reject=True)
        facility = msh.get(4, 1)
        sender = f"{msh.get(3, 1)}^{facility}"
        header = Header(
            hospital_id=self._hospital(msg),
            source=f"hl7v2:{sender}",
            control_id=control_id,
            occurred_at=parse_ts(msh.get(7), "MSH-7") or received_at,
        )
        layout = self.config.z_by_facility.get(facility, self._default_layout)
        if mtype in PHARMACY_TYPES:
            events = events_from_pharmacy(msg, header, layout)
        elif mtype in SUPPLY_TYPES:
            events = events_from_supply(msg, header, layout)
        elif mtype in ITEM_MASTER_TYPES:
            events = events_from_item_master(msg, header, layout)
        else:
            events = events_from_warehouse(msg, header, self.config.warehouse_doc_types)
        return ParsedMessage(
            adapter=self.name, sender=sender, control_id=control_id, message_type=mtype,
            events=events, context={"ack": _ack_header(msg)})

    def reply(self, parsed: ParsedMessage | None, raw: bytes, outcome: Outcome, *,
              now: datetime) -> Reply:
        """An HL7 ACK: AA when committed (or a duplicate), AE / AR otherwise."""
        if parsed is not None:
            h: AckHeader = parsed.context["ack"]
        else:
            h = _salvage_header(raw)
        status = outcome.status
        if outcome.blocked:
            code = "AR"
        elif status in (OutcomeStatus.ACCEPTED, OutcomeStatus.DUPLICATE):
            code = "AA"
        elif status is OutcomeStatus.REJECTED:
            code = "AR"
        else:
            code = "AE"
        text = build_ack(h, code, outcome.issues, now)
        codec = h.charset and _codec_or_utf8(h.charset)
        return Reply(text.encode(codec or "utf-8", errors="replace"), "application/hl7-v2")

    def read_reply(self, reply: Reply) -> ReplySummary:
        """Read an ACK back: accepted when MSA-1 is AA/CA; ERR locations as ``SEG-n``.

        Raises:
            MessageRejected: the bytes are not an HL7 ACK.
        """
        msg = decode_message(reply.body, self.config.default_charset)
        msa = msg.find("MSA")
        if msa is None:
            raise MessageRejected("reply has no MSA segment", code="100", location="MSA")
        locations = []
        for seg in msg.segments:
            if seg.name != "ERR":
                continue
            if msg.version.startswith(("2.3", "2.4")):
                seg_id, field, text = seg.get(1, 1), seg.get(1, 3), seg.get(1, 4, 2)
            else:
                seg_id, field, text = seg.get(2, 1), seg.get(2, 3), seg.get(8)
            if seg_id:
                locations.append(f"{seg_id}-{field}" if field else seg_id)
            elif text.endswith(")") and " (" in text:
                # a location that is no SEG-n (e.g. "ORC[2]") travels at the end of the text
                locations.append(text[text.rindex(" (") + 2 : -1])
        return ReplySummary(accepted=msa.get(1) in ("AA", "CA"), control_id=msa.get(2),
                            locations=tuple(locations))


def _codec_or_utf8(charset: str) -> str:
    try:
        return charset_codec(charset) or "utf-8"
    except MessageRejected:
        return "utf-8"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


_MAX_COPY = 227  # the longest field an ACK copies (HD, HL7 v2.5)


def _clean(value: str) -> str:
    """A value copied from the message into the ACK, without control characters (a
    ``\x1c`` there would end the sender's MLLP frame early) and no longer than any such
    field may be (a 70,000-character MSH-3 is not sent back)."""
    return _CONTROL.sub("", value[:4 * _MAX_COPY])[:_MAX_COPY]


def _ack_header(msg: Message) -> AckHeader:
    msh = msg.msh
    response, structure, tail, level = "ACK", "ACK", "", ""
    entries: tuple[tuple[str, str, str, str], ...] = ()
    mfi = msg.find("MFI") if msh.get(9, 1) == "MFN" else None
    if mfi is not None:  # a master file is answered with MFK, which must echo the MFI
        response, structure = "MFK", "MFK_M01"
        tail = _clean(msg.seps.field.join(mfi.fields))
        level = _clean(mfi.get(6))
        entries = tuple((_clean(e.get(1)), _clean(e.raw(2)), _clean(e.raw(4)),
                         _clean(e.raw(5))) for e in msg.segments if e.name == "MFE")
    return AckHeader(
        seps=msg.seps,
        sending_app=_clean(msh.raw(3)), sending_facility=_clean(msh.raw(4)),
        receiving_app=_clean(msh.raw(5)), receiving_facility=_clean(msh.raw(6)),
        control_id=_clean(msh.raw(10)), trigger=_clean(msh.get(9, 2)),
        version=_clean(msh.get(12)) or "2.5", charset=_clean(msh.raw(18)),
        response=response, structure=structure, tail=tail, response_level=level,
        entries=entries,
    )


def _salvage_header(raw: bytes) -> AckHeader:
    """Best-effort MSH fields from a message that failed to parse, so the NAK is addressable.

    The whole message when it still decodes (an MFK needs the MFI and the MFEs), else
    the MSH line alone.
    """
    try:
        msg = decode_message(raw)
    except MessageRejected:
        try:
            msg = decode_message(raw.split(b"\r", 1)[0] + b"\r")
        except MessageRejected:
            return AckHeader()
    h = _ack_header(msg)
    if h.version not in SUPPORTED_VERSIONS and not (
            h.response == "MFK" and h.version in ITEM_MASTER_VERSIONS):
        h.version = "2.5"
    return h


def rejection_issue(exc: MessageRejected) -> Issue:
    """The ERR content for a rejection."""
    return Issue(Severity.ERROR, exc.reason, exc.code, exc.location)

