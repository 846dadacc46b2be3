"""How the process logs: plain text lines, or one JSON object a line for a log collector.

A JSON line carries ``time`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, the
traceback as ``exception`` when there is one, and the fields of :data:`CONTEXT` that a
log call passes with ``extra=`` (the pipeline's: which message, hospital, adapter and
outcome). Only those names are copied from a record, so nothing a call did not mean to
publish — a patient's name, an ID number, a message's bytes — becomes a field.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

__all__ = ["CONTEXT", "JsonFormatter", "setup_logging"]

# what the pipeline passes with extra=: identifiers of a message, never its content
CONTEXT = ("control_id", "event_id", "sender", "hospital", "adapter", "message_type",
           "outcome", "peer")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT:
            value = record.__dict__.get(key)
            if value is not None and value != "":
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def setup_logging(level: str, fmt: Literal["text", "json"] = "text") -> None:
    """Log to stderr at ``level``, as text lines or JSON lines; replaces any handler set
    before, so that every line of the process has the one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Python's own warnings would otherwise reach stderr unformatted
    logging.captureWarnings(fmt == "json")
