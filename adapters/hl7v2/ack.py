"""ACK building: MSA-2 echoes MSH-10; ERR segments name each problem or warning."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from adapters.base import Issue, Severity
from adapters.hl7v2.message import DEFAULT_SEPARATORS, Separators, escape

__all__ = ["AckHeader", "build_ack"]

_SEVERITY = {Severity.ERROR: "E", Severity.WARNING: "W", Severity.INFO: "I"}


class AckHeader:
    """What the ACK copies from the original MSH (all empty for an unreadable message)."""

    __slots__ = ("charset", "control_id", "entries", "receiving_app", "receiving_facility",
                 "response", "response_level", "sending_app", "sending_facility", "seps",
                 "structure", "tail", "trigger", "version")

    def __init__(self, *, seps: Separators = DEFAULT_SEPARATORS, sending_app: str = "",
                 sending_facility: str = "", receiving_app: str = "",
                 receiving_facility: str = "", control_id: str = "", trigger: str = "",
                 version: str = "2.5", charset: str = "", response: str = "ACK",
                 structure: str = "ACK", tail: str = "", response_level: str = "",
                 entries: tuple[tuple[str, str, str, str], ...] = ()) -> None:
        self.seps = seps
        self.sending_app = sending_app
        self.sending_facility = sending_facility
        self.receiving_app = receiving_app
        self.receiving_facility = receiving_facility
        self.control_id = control_id
        self.trigger = trigger
        self.version = version
        self.charset = charset
        self.response = response  # MFK answers an MFN; ACK everything else
        self.structure = structure  # MSH-9.3: ACK, or MFK_M01 for an MFK
        self.tail = tail  # segments after MSA/ERR (an MFK echoes the MFI)
        self.response_level = response_level  # MFI-6: NE, ER, AL or SU
        # per MFE of an MFN: (MFE-1 event code, MFE-2 control id, MFE-4 key, MFE-5 type)
        self.entries = entries


_ERL = re.compile(r"^([A-Z][A-Z0-9]{2})(?:-(\d+))?$")


def _erl(location: str, c: str) -> tuple[str, str, str]:
    """ERR-2 (segment^sequence^field) for an ``RXD-4`` style location; empty otherwise."""
    m = _ERL.match(location)
    if not m:
        return "", "", ""
    seg, field = m.group(1), m.group(2) or ""
    return (f"{seg}{c}1{c}{field}" if field else f"{seg}{c}1"), seg, field


def _err(issue: Issue, version: str, seps: Separators) -> str:
    c = seps.component
    f = seps.field
    code = issue.code or ("207" if issue.severity is Severity.ERROR else "0")
    text = escape(issue.text, seps)
    location, seg, field = _erl(issue.location, c)
    if issue.location and not location:
        text = f"{text} ({escape(issue.location, seps)})"
    if version.startswith(("2.3", "2.4")):
        # ERR-1 (CM): segment^sequence^field^code&text — what v2.3/2.4 receivers read
        return f"ERR{f}{seg}{c}{1 if seg else ''}{c}{field}{c}{code}{seps.subcomponent}{text}"
    return (f"ERR{f}{f}{location}{f}{code}{c}{text}{c}HL70357{f}{_SEVERITY[issue.severity]}"
            f"{f}{f}{f}{f}{text}")


def build_ack(h: AckHeader, ack_code: str, issues: Sequence[Issue], now: datetime) -> str:
    """The ACK text (segments joined by CR), in the original message's delimiters."""
    s = h.seps
    f = s.field
    enc = f"{s.component}{s.repetition}{s.escape}{s.subcomponent}"
    ts = now.strftime("%Y%m%d%H%M%S")
    ctrl = ("A" + h.control_id)[:20] if h.control_id else "A" + ts
    r = h.response
    trigger = f"{r}{s.component}{h.trigger}{s.component}{h.structure}" if h.trigger else r
    msh = (f"MSH{f}{enc}{f}{h.receiving_app}{f}{h.receiving_facility}{f}{h.sending_app}{f}"
           f"{h.sending_facility}{f}{ts}{f}{f}{trigger}{f}{ctrl}{f}P{f}{h.version}"
           f"{f}{f}{f}{f}{f}{f}{h.charset}")
    first_error = next((i.text for i in issues if i.severity is Severity.ERROR), "")
    msa = f"MSA{f}{ack_code}{f}{h.control_id}"
    if first_error:
        msa += f"{f}{escape(first_error, s)}"
    segs = [msh, msa]
    segs.extend(_err(i, h.version, s) for i in issues)
    if h.tail:
        segs.append(h.tail)
        segs.extend(_mfa(h, ack_code in ("AA", "CA"), ts))
    return "\r".join(segs) + "\r"


def _mfa(h: AckHeader, accepted: bool, ts: str) -> list[str]:
    """One MFA per MFE when MFI-6 asks for it (AL always, SU on success, ER on error)."""
    level = h.response_level
    if not (level == "AL" or (level == "SU" and accepted) or (level == "ER" and not accepted)):
        return []
    f = h.seps.field
    status = "S" if accepted else "U"  # HL7 table 0181: successful / unsuccessful posting
    return [f"MFA{f}{code}{f}{control}{f}{ts}{f}{status}{f}{key}{f}{key_type}"
            for code, control, key, key_type in h.entries]
