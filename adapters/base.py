"""The adapter contract: bytes in, canonical events out, and the reply to send back.

An adapter is pure. It gets the raw bytes and the time of receipt; it returns
events or raises :class:`~canonical.errors.MessageRejected`. It never opens a
socket, touches the store or reads the clock. The gateway owns all I/O: it
commits the events and then asks the adapter to build the reply for the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

import msgspec
from pydantic import BaseModel

from canonical.errors import MessageRejected
from canonical.model import Event

__all__ = [
    "Adapter",
    "Issue",
    "MessageInvalid",
    "MessageRejected",
    "Outcome",
    "OutcomeStatus",
    "ParsedMessage",
    "Reply",
    "ReplyReader",
    "ReplySummary",
    "Severity",
    "rejection_issues",
]


class Severity(StrEnum):
    """How serious an issue named in a reply is."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Issue(msgspec.Struct, frozen=True):
    """One problem or warning to tell the sender (ERR segment, OperationOutcome.issue)."""

    severity: Severity
    text: str
    code: str = ""
    location: str = ""


class OutcomeStatus(StrEnum):
    """What the gateway did with a message."""

    ACCEPTED = "accepted"  # committed durably (AA / 2xx)
    DUPLICATE = "duplicate"  # seen before from the same sender; acknowledged again (AA / 200)
    ERROR = "error"  # application error, e.g. the store failed (AE / 5xx)
    # the sender's control id was already used for a message with other content: not
    # stored, since it is neither a resend nor acceptable under that id (AE / 409)
    CONFLICT = "conflict"
    REJECTED = "rejected"  # the message itself cannot be taken (AR / 4xx)


class Outcome(msgspec.Struct, frozen=True):
    """The gateway's verdict on one message, handed to the adapter to build the reply."""

    status: OutcomeStatus
    issues: tuple[Issue, ...] = ()
    blocked: bool = False  # a blocking rule fired (AR for a prescription)


class ParsedMessage(msgspec.Struct, frozen=True):
    """What an adapter made of one message."""

    adapter: str
    sender: str  # who sent it; (sender, control_id) identifies a message for dedup
    control_id: str
    message_type: str  # e.g. "RDS^O13", "MedicationDispense", "his-prescription"
    events: tuple[Event, ...]
    # adapter-private data needed to build the reply (MSH fields, charset, FHIR ids …)
    context: Mapping[str, Any] = msgspec.field(default_factory=dict)


class Reply(msgspec.Struct, frozen=True):
    """Bytes to send back, and for HTTP the status and content type."""

    body: bytes
    content_type: str = "application/octet-stream"
    status: int = 200
    # extra HTTP response headers (e.g. ``Location`` for a FHIR create); ignored on MLLP
    headers: Mapping[str, str] = msgspec.field(default_factory=dict)


class ReplySummary(msgspec.Struct, frozen=True):
    """What a reply says, read back from its bytes (used by the conformance kit)."""

    accepted: bool  # AA / 2xx
    control_id: str = ""  # the message id the reply acknowledges, when it echoes one
    locations: tuple[str, ...] = ()  # where each reported problem is (ERR-2, issue.expression)


class MessageInvalid(MessageRejected):
    """A rejection that names several problems at once (one ERR / issue each).

    ``reason``, ``code`` and ``location`` are those of the first problem, so a
    caller that knows only :class:`MessageRejected` still gets a useful answer.
    """

    def __init__(self, issues: Sequence[Issue], *, reject: bool = True) -> None:
        if not issues:
            raise ValueError("MessageInvalid needs at least one issue")
        first = issues[0]
        more = f" (and {len(issues) - 1} more problem(s))" if len(issues) > 1 else ""
        super().__init__(first.text + more, code=first.code or "207",
                         location=first.location, reject=reject)
        self.issues = tuple(issues)


MAX_ISSUE_TEXT = 500  # characters of one problem's text in a reply


def _short(text: str) -> str:
    # a reason may quote the offending value, and a hostile value may be 70,000
    # characters: the reply names the problem, it does not echo the message back
    if len(text) <= MAX_ISSUE_TEXT:
        return text
    return f"{text[:MAX_ISSUE_TEXT]}… ({len(text) - MAX_ISSUE_TEXT} more characters)"


def rejection_issues(exc: MessageRejected) -> tuple[Issue, ...]:
    """The issues to put in the reply for a rejection (every problem it names), each
    text at most ``MAX_ISSUE_TEXT`` characters (and as many issues as the adapter found,
    at most 100)."""
    if isinstance(exc, MessageInvalid):
        return tuple(Issue(i.severity, _short(i.text), i.code, _short(i.location))
                     for i in exc.issues[:100])
    return (Issue(Severity.ERROR, _short(exc.reason), exc.code, _short(exc.location)),)


@runtime_checkable
class Adapter(Protocol):
    """What every message dialect implements.

    Class attributes:
        name: the short alias used in configuration (``hl7v2``, ``fhir-r4`` …).
        kinds: message types the adapter handles (``RDE^O11``, ``MedicationRequest`` …).
        config_model: a pydantic model of the adapter's configuration.
        transport: ``mllp`` or ``http``: where the gateway mounts it.
    """

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    config_model: ClassVar[type[BaseModel]]
    transport: ClassVar[str]

    def parse(self, raw: bytes, *, received_at: datetime) -> ParsedMessage:
        """Turn one message into canonical events.

        Args:
            raw: the message bytes exactly as received (framing removed).
            received_at: the gateway's receipt time, timezone-aware.

        Returns:
            The parsed message with its events (possibly none, e.g. a query).

        Raises:
            MessageRejected: the message cannot be taken; its reason names the problem.
        """
        ...

    def reply(
        self, parsed: ParsedMessage | None, raw: bytes, outcome: Outcome, *, now: datetime
    ) -> Reply:
        """Build the answer for ``outcome``; ``parsed`` is None when parsing failed.

        Args:
            parsed: the result of :meth:`parse`, or None if it raised.
            raw: the original bytes (to echo identifiers from a message that failed).
            outcome: what the gateway did with the message.
            now: the time to stamp on the reply.

        Returns:
            The reply to send on the same connection / HTTP response.
        """
        ...


@runtime_checkable
class ReplyReader(Protocol):
    """Optional: an adapter that can read its own replies back (the kit checks round trips)."""

    def read_reply(self, reply: Reply) -> ReplySummary:
        """Summarise a reply this adapter built.

        Raises:
            MessageRejected: the bytes are not a reply of this dialect.
        """
        ...
