"""Message dialects: each adapter turns bytes into canonical events and builds replies."""

from adapters.base import (
    Adapter,
    Issue,
    MessageInvalid,
    Outcome,
    OutcomeStatus,
    ParsedMessage,
    Reply,
    ReplyReader,
    ReplySummary,
    Severity,
    rejection_issues,
)
from adapters.registry import UnknownAdapterError, available, create, resolve

__all__ = [
    "Adapter",
    "Issue",
    "MessageInvalid",
    "Outcome",
    "OutcomeStatus",
    "ParsedMessage",
    "Reply",
    "ReplyReader",
    "ReplySummary",
    "Severity",
    "UnknownAdapterError",
    "available",
    "create",
    "rejection_issues",
    "resolve",
]
