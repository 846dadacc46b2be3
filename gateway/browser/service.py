"""The message browser: "did dispense RX…001 reach the platform?" answered from the store.

A search reads messages (or quarantine rows) by sender, control id, event id, hospital,
item and state; one message's page shows its bytes, decoded text, the answer it got,
its events, outbox rows and each delivery attempt with the platform's answer.

Who sees what: ``admin`` sees everything; ``auditor``, ``pharmacist`` and
``procurement`` see patient fields masked and never the raw bytes. An identity limited
to hospitals sees only messages whose events are all of its hospitals, and no
quarantine rows (bytes that never became a message name no hospital).
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from adapters.base import Adapter, Outcome, OutcomeStatus
from gateway.browser.mask import mask_event, mask_text, patient_values
from gateway.security.identity import Identity, hospital_scope
from gateway.store.browser_rows import MESSAGE_STATES
from gateway.store.browser_tables import (
    AttemptRow,
    DeliveryRow,
    MessageDetail,
    MessageQuery,
    MessageSummary,
    QuarantineRow,
)

__all__ = [
    "DEFAULT_WINDOW_S",
    "MAX_LIMIT",
    "Search",
    "clear_roles",
    "decode_text",
    "detail_to_dict",
    "parse_search",
    "quarantine_to_dict",
    "summary_to_dict",
    "visible",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# without a control id or event id, a search reads at most this far back unless told
DEFAULT_WINDOW_S = 24 * 3600.0
MAX_ID = 2**63 - 1
_CLEAR_ROLES = frozenset({"admin"})
_RAW_ROLES = frozenset({"admin"})
_FILTERS = ("sender", "adapter", "peer", "control_id", "event_id", "hospital", "item",
            "state", "since", "until", "after_id", "limit")


def clear_roles() -> frozenset[str]:
    """The roles that see patient fields in clear (and raw bytes)."""
    return _CLEAR_ROLES


@dataclass(frozen=True, slots=True)
class Search:
    """A search as the store runs it, and whether its time window was defaulted."""

    query: MessageQuery
    window_defaulted: bool


def _time(name: str, value: str | None) -> float | None:
    """Unix seconds, or an ISO 8601 time (UTC when it names no offset)."""
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return float(value)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}: give ISO 8601 (2026-11-23T09:00:00+08:00) or unix"
                         f" seconds, not {value!r}") from None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _int(name: str, value: str | None, low: int, high: int) -> int | None:
    if value in (None, ""):
        return None
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None
    if not low <= n <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return n


def _hospitals(ident: Identity, given: str | None) -> tuple[str, ...]:
    try:
        scope = hospital_scope(ident, given)
    except ValueError:  # several hospitals and none named: all of them
        return tuple(sorted(ident.hospitals))
    return (scope,) if scope else ()


def parse_search(params: Mapping[str, str], ident: Identity, now: float) -> Search:
    """The store query for ``GET /api/messages``' parameters.

    Raises:
        ValueError: an unknown parameter or state, a bad time, limit or cursor.
    """
    unknown = sorted(set(params) - set(_FILTERS))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; use {', '.join(_FILTERS)}")
    state = params.get("state") or None
    if state is not None and state not in MESSAGE_STATES:
        raise ValueError(f"unknown state {state!r}; use {', '.join(MESSAGE_STATES)}")
    since, until = _time("since", params.get("since")), _time("until", params.get("until"))
    selective = bool(params.get("control_id") or params.get("event_id"))
    defaulted = since is None and not selective
    if defaulted:
        since = (until if until is not None else now) - DEFAULT_WINDOW_S
    limit = _int("limit", params.get("limit"), 1, MAX_LIMIT) or DEFAULT_LIMIT
    query = MessageQuery(
        sender=params.get("sender") or None, adapter=params.get("adapter") or None,
        peer=params.get("peer") or None, control_id=params.get("control_id") or None,
        event_id=params.get("event_id") or None,
        hospitals=_hospitals(ident, params.get("hospital") or None),
        item=params.get("item") or None, state=state, since=since, until=until,
        after_id=_int("after_id", params.get("after_id"), 1, MAX_ID), limit=limit)
    return Search(query, defaulted)


def visible(ident: Identity, hospitals: Iterable[str]) -> bool:
    """Whether ``ident`` may see a message whose events are of ``hospitals``: all of
    them must be its own (a message with no event names none, so only the unlimited)."""
    named = set(hospitals)
    if not ident.hospitals:
        return True
    return bool(named) and named <= ident.hospitals


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


def summary_to_dict(s: MessageSummary) -> dict[str, Any]:
    """One listed message."""
    return {"id": str(s.id), "sender": s.sender, "control_id": s.control_id,
            "adapter": s.adapter, "message_type": s.message_type, "peer": s.peer,
            "received_at": _iso(s.received_at), "hospitals": list(s.hospitals),
            "events": s.events, "state": s.state}


def quarantine_to_dict(q: QuarantineRow) -> dict[str, Any]:
    """One quarantine row as listed (its id prefixed ``q``: not a message id)."""
    return {"id": f"q{q.id}", "sender": "", "control_id": "", "adapter": q.adapter,
            "message_type": "", "peer": q.peer, "received_at": _iso(q.received_at),
            "hospitals": [], "events": 0, "state": "quarantined", "reason": q.reason,
            "size": q.original_size}


_HL7_CHARSETS = {"UNICODE UTF-8": "utf-8", "UTF-8": "utf-8", "UTF8": "utf-8",
                 "GB18030": "gb18030", "GB 18030-2000": "gb18030", "GBK": "gb18030",
                 "GB2312": "gb18030", "CHINESE": "gb18030", "ASCII": "ascii", "8859/1": "latin-1"}
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding=["']([A-Za-z0-9_-]+)["']""")


def _declared(raw: bytes) -> str | None:
    if raw.startswith(b"MSH") and len(raw) > 4:
        first = raw.split(b"\r", 1)[0].split(b"\n", 1)[0]
        fields = first.split(raw[3:4])
        if len(fields) > 17 and fields[17].strip():
            name = fields[17].decode("ascii", "replace").split(raw[4:5].decode("latin-1"))[0]
            return _HL7_CHARSETS.get(name.strip().upper())
    m = _XML_ENCODING.match(raw)
    if m:
        return m.group(1).decode("ascii").lower()
    return None


def decode_text(raw: bytes) -> tuple[str, str]:
    """The text of ``raw`` and its charset: the one MSH-18 or the XML prolog names, else
    UTF-8, else GB18030 (what the adapters read too)."""
    declared = _declared(raw)
    for charset in (declared, "utf-8", "gb18030"):
        if charset is None:
            continue
        try:
            return raw.decode(charset), charset
        except (LookupError, UnicodeDecodeError):
            continue
    return raw.decode("latin-1"), "latin-1"


def _outbox_to_dict(r: DeliveryRow, attempts: list[AttemptRow]) -> dict[str, Any]:
    return {"id": r.id, "destination": r.destination, "msgid": r.msgid, "unit": r.unit,
            "event_id": r.event_id, "state": r.state, "attempts": r.attempts,
            "created_at": _iso(r.created_at),
            "next_attempt_at": _iso(r.next_attempt_at) if r.state == "pending" else None,
            "delivered_at": _iso(r.delivered_at), "last_error": r.last_error,
            "platform_ref": r.platform_ref,
            "tries": [{"at": _iso(a.at), "outcome": a.outcome, "http_status": a.http_status,
                       "code": a.code, "message": a.message, "latency_ms": a.latency_ms}
                      for a in attempts]}


def _held_reason(event: dict[str, Any]) -> str:
    items = [f"{li.get('item_code')} ({li.get('item_name') or '?'})"
             for li in event.get("lines", []) if not li.get("national_code")]
    return (f"unmapped item(s) {', '.join(items)} for hospital {event.get('hospital_id')}:"
            " waiting for 对码 (GET /api/unmapped)")


def answer_of(adapter: Adapter | None, raw: bytes | None,
              received_at: float) -> dict[str, Any]:
    """The answer a stored message got, built again as the adapter builds it: every stored
    message was answered "accepted" (AA / 2xx) after its commit. Warnings of 集采 rules
    that went with it are not kept."""
    if adapter is None or raw is None:
        return {"status": OutcomeStatus.ACCEPTED.value, "rebuilt": False,
                "note": "adapter not configured here or bytes purged: accepted, text unknown"}
    at = datetime.fromtimestamp(received_at, UTC)
    try:
        reply = adapter.reply(adapter.parse(raw, received_at=at), raw,
                              Outcome(OutcomeStatus.ACCEPTED), now=at)
    except Exception as exc:  # the adapter changed since: the verdict stands
        return {"status": OutcomeStatus.ACCEPTED.value, "rebuilt": False,
                "note": f"cannot rebuild the text: {type(exc).__name__}"}
    text, _ = decode_text(reply.body)
    return {"status": OutcomeStatus.ACCEPTED.value, "rebuilt": True,
            "http_status": reply.status, "content_type": reply.content_type, "text": text}


def detail_to_dict(d: MessageDetail, ident: Identity,
                   adapter: Adapter | None) -> dict[str, Any]:
    """One message's path, masked for ``ident`` unless its role sees patients in clear."""
    clear = ident.role in _CLEAR_ROLES
    events = [orjson.loads(e.body) for e in d.events]
    values = {} if clear else patient_values(events)
    out = summary_to_dict(d.summary)
    out["masked"] = not clear
    out["raw_purged"] = d.raw is None
    if d.raw is not None:
        text, charset = decode_text(d.raw)
        out["charset"] = charset
        out["text"] = text if clear else mask_text(text, values)
        if ident.role in _RAW_ROLES:
            out["raw_base64"] = base64.b64encode(d.raw).decode("ascii")
    answer = answer_of(adapter, d.raw, d.summary.received_at)
    if not clear and "text" in answer:
        answer["text"] = mask_text(answer["text"], values)
    out["answer"] = answer
    out["events"] = [_event_to_dict(e.seq, e.held, body, clear)
                     for e, body in zip(d.events, events, strict=True)]
    tries: dict[int, list[AttemptRow]] = {}
    for a in d.attempts:
        tries.setdefault(a.outbox_id, []).append(a)
    out["outbox"] = [_outbox_to_dict(r, tries.get(r.id, [])) for r in d.outbox]
    return out


def _event_to_dict(seq: int, held: bool, body: dict[str, Any], clear: bool) -> dict[str, Any]:
    return {"seq": seq, "held": held, "held_reason": _held_reason(body) if held else None,
            "event": body if clear else mask_event(body)}


def quarantine_detail(q: QuarantineRow, ident: Identity) -> dict[str, Any]:
    """A quarantined input: its reason and bytes (raw for ``admin``, masked text else)."""
    out = quarantine_to_dict(q)
    clear = ident.role in _CLEAR_ROLES
    text, charset = decode_text(q.raw)
    out.update(masked=not clear, charset=charset, kept=len(q.raw),
               text=text if clear else mask_text(text, {}))
    if ident.role in _RAW_ROLES:
        out["raw_base64"] = base64.b64encode(q.raw).decode("ascii")
    return out
