"""HL7 v2 over MLLP."""

from adapters.hl7v2.adapter import HL7v2Adapter, HL7v2Config
from adapters.hl7v2.message import Message, Segment, decode_message

__all__ = ["HL7v2Adapter", "HL7v2Config", "Message", "Segment", "decode_message"]
