"""Every ACK the gateway builds is a valid HL7 ACK by hl7apy's message definitions.

hl7apy is too slow for the hot path (~30 ms per message) but its definitions are the
reference for what receivers of our ACKs expect, so it checks them here.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from helpers import HL7, HOSPITAL
from hl7apy.parser import parse_message

from adapters.base import Issue, Outcome, OutcomeStatus, Severity
from adapters.hl7v2 import HL7v2Adapter
from canonical.errors import MessageRejected
from canonical.model import CHINA_TZ

ADAPTER = HL7v2Adapter({"facilities": {"ZJSRMYY": HOSPITAL}})
NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=CHINA_TZ)


UNREADABLE = {"bad_missing_msh.hl7", "bad_encoding_chars.hl7"}


def _parse(ack: bytes, codec: str, validate: bool) -> object:
    msg = parse_message(ack.decode(codec), find_groups=False)
    if validate:
        msg.validate()
    return msg


@pytest.mark.parametrize("path", sorted(HL7.glob("*.hl7")), ids=lambda p: p.name)
def test_ack_for_every_sample_validates(path) -> None:  # type: ignore[no-untyped-def]
    raw = path.read_bytes()
    try:
        parsed = ADAPTER.parse(raw, received_at=NOW)
        outcome = Outcome(OutcomeStatus.ACCEPTED, (
            Issue(Severity.WARNING, "非中选药品，建议改用中选产品 阿那曲唑片(杭州中美华东)",
                  "0", "RXE-2"),))
    except MessageRejected as exc:
        parsed = None
        outcome = Outcome(OutcomeStatus.REJECTED if exc.reject else OutcomeStatus.ERROR,
                          (Issue(Severity.ERROR, exc.reason, exc.code, exc.location),))
    reply = ADAPTER.reply(parsed, raw, outcome, now=NOW)
    codec = "gb18030" if b"GB 18030" in raw else "utf-8"
    # without a readable MSH there is no MSH-10 to echo, so MSA-2 (required) stays empty
    msg = _parse(reply.body, codec, validate=path.name not in UNREADABLE)
    assert msg.msh.msh_9.msh_9_1.value == "ACK"  # type: ignore[attr-defined]
    if parsed is not None:
        assert msg.msa.msa_1.value == "AA"  # type: ignore[attr-defined]
        assert msg.msa.msa_2.value == parsed.control_id  # type: ignore[attr-defined]
    else:
        assert msg.msa.msa_1.value in ("AR", "AE")  # type: ignore[attr-defined]
