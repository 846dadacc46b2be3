"""Message dialects: each adapter turns bytes into canonical events and builds replies."""

from .base import Adapter, Issue, Outcome, OutcomeStatus, ParsedMessage, Reply, Severity
from .registry import UnknownAdapterError, available, create, resolve

__all__ = [
    "Adapter",
    "Issue",
    "Outcome",
    "OutcomeStatus",
    "ParsedMessage",
    "Reply",
    "Severity",
    "UnknownAdapterError",
    "available",
    "create",
    "resolve",
]
