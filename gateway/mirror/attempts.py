"""What the message browser keeps of each request to a platform: its business answer.

Profiles reduce an answer to a verdict and a reason; an operator asking "why was it
refused?" also wants the platform's own code and words, read here from the common
envelope keys (``infcode``/``err_msg`` of the national platform, ``code``/``msg`` of
provincial ones). An answer that is not such JSON (encrypted, HTML error page) keeps
its first bytes as the message.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.platforms.base import Answer, Verdict
from gateway.store.base import Attempt

__all__ = ["attempt"]

_CODE_KEYS = ("infcode", "code", "retCode", "resultCode")
_MESSAGE_KEYS = ("err_msg", "msg", "message", "retMsg", "resultMsg")
_OUTCOMES = {Verdict.DELIVERED: "delivered", Verdict.RETRY: "retry",
             Verdict.REJECTED: "rejected"}
_MAX_MESSAGE = 500


def _first(doc: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = doc.get(key)
        if value not in (None, ""):
            return str(value)
    return ""


def business_answer(body: bytes) -> tuple[str, str]:
    """The platform's (code, message) from an answer's body, as well as it can be read."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", body[:_MAX_MESSAGE].decode("utf-8", "replace")
    if not isinstance(doc, dict):
        return "", ""
    return _first(doc, _CODE_KEYS), _first(doc, _MESSAGE_KEYS)[:_MAX_MESSAGE]


def attempt(answer: Answer, *, at: float, latency_s: float, status: int | None = None,
            body: bytes = b"") -> Attempt:
    """One try as stored in ``delivery_attempts``; without an HTTP answer the reason
    (timeout, refused connection, payload not built) is the message."""
    code, message = business_answer(body) if status is not None else ("", "")
    return Attempt(at=at, outcome=_OUTCOMES[answer.verdict], http_status=status, code=code,
                   message=message or answer.reason[:_MAX_MESSAGE],
                   latency_ms=round(latency_s * 1000.0, 3))
