"""HL7 v2 adapters with a fault, for the parse workers' tests: the worker builds them by
their ``module:Class`` name, as it builds any adapter."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel

from adapters.base import Outcome, ParsedMessage, Reply, ReplySummary
from adapters.hl7v2 import HL7v2Adapter


class _Wrapped:
    name: ClassVar[str] = "hl7v2"
    kinds: ClassVar[frozenset[str]] = HL7v2Adapter.kinds
    config_model: ClassVar[type[BaseModel]] = HL7v2Adapter.config_model
    transport: ClassVar[str] = "mllp"

    def __init__(self, config: Any) -> None:
        self.inner = HL7v2Adapter(config)

    def parse(self, raw: bytes, *, received_at: datetime) -> ParsedMessage:
        return self.inner.parse(raw, received_at=received_at)

    def reply(self, parsed: ParsedMessage | None, raw: bytes, outcome: Outcome, *,
              now: datetime) -> Reply:
        return self.inner.reply(parsed, raw, outcome, now=now)

    def read_reply(self, reply: Reply) -> ReplySummary:
        return self.inner.read_reply(reply)


class ExplodingAdapter(_Wrapped):
    """An adapter with a bug: every parse raises."""

    def parse(self, raw: bytes, *, received_at: datetime) -> ParsedMessage:
        return {}["no such key"]  # type: ignore[no-any-return]


class SlowAdapter(_Wrapped):
    """An adapter that takes 30 s over every message (a pathological input)."""

    def parse(self, raw: bytes, *, received_at: datetime) -> ParsedMessage:
        time.sleep(30)
        return self.inner.parse(raw, received_at=received_at)
