"""HTTP API of the message browser.

``GET /api/messages`` — search, newest first: ``sender``, ``adapter``, ``peer``,
``control_id`` (MSH-10, FHIR resource id, vendor message id: what the sender called
the message), ``event_id``, ``hospital``, ``item`` (hospital item code or national code),
``state`` (acknowledged, held, quarantined, delivered, dead_letter, pending), ``since`` /
``until`` (received; ISO 8601 or unix seconds), ``limit`` (50, at most 500), ``after_id``
(the cursor: the ``next_after_id`` of the previous page). Without ``control_id`` or
``event_id`` a search reads the 24 hours before ``until`` (or now) unless ``since`` is
given; the answer's ``window`` says which.

``GET /api/messages/{id}`` — one message's path (``q<n>``: a quarantined input).
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from adapters.base import Adapter
from adapters.registry import create as create_adapter
from gateway.browser.service import (
    MAX_ID,
    detail_to_dict,
    parse_search,
    quarantine_detail,
    quarantine_to_dict,
    summary_to_dict,
    visible,
)
from gateway.keys import CONFIG, STORE
from gateway.security.identity import Identity, request_identity
from gateway.store.browser_tables import MessageQuery

__all__ = ["add_browser_routes"]

# adapters by name, built from the listeners' configuration the first time a message
# of theirs is shown (the answer is rebuilt the way the adapter built it)
_ADAPTERS: web.AppKey[dict[str, Adapter | None]] = web.AppKey("browser_adapters")

_QUARANTINE_FILTERS = ("sender", "event_id", "hospitals", "item")


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text, "problems": [text]}, status=status)


def _window(query: MessageQuery, defaulted: bool) -> dict[str, Any]:
    return {"since": query.since, "until": query.until, "defaulted": defaulted}


async def _quarantine_page(request: web.Request, query: MessageQuery,
                           ident: Identity) -> list[dict[str, Any]]:
    if ident.hospitals:  # bytes that never became a message name no hospital
        return []
    rows = await request.config_dict[STORE].browser.search_quarantine(query)
    return [quarantine_to_dict(q) for q in rows]


async def search(request: web.Request) -> web.Response:
    """GET /api/messages: a page of messages (or quarantined inputs), newest first."""
    ident = request_identity(request)
    try:
        found = parse_search(request.query, ident, time.time())
    except ValueError as exc:
        return _error(400, str(exc))
    query = found.query
    if query.state == "quarantined":
        used = [f for f in _QUARANTINE_FILTERS if getattr(query, f) and
                not (f == "hospitals" and "hospital" not in request.query)]
        if used:
            return _error(400, f"quarantined inputs are no messages: search them by peer,"
                               f" adapter, control_id (in their bytes) and time, not by"
                               f" {', '.join(used)}")
        items = await _quarantine_page(request, query, ident)
    else:
        rows = await request.config_dict[STORE].browser.search(query)
        items = [summary_to_dict(s) for s in rows]
    more = len(items) == query.limit
    next_after = items[-1]["id"].lstrip("q") if more else None
    return web.json_response({"items": items, "limit": query.limit,
                              "next_after_id": next_after,
                              "window": _window(query, found.window_defaulted)})


def _adapter(request: web.Request, name: str) -> Adapter | None:
    cache = request.app[_ADAPTERS]
    if name not in cache:
        cache[name] = None
        for listener in request.config_dict[CONFIG].listeners:
            try:
                adapter = create_adapter(listener.adapter, listener.config)
            except Exception:  # a listener that cannot start has no messages here either
                continue
            if adapter.name == name:
                cache[name] = adapter
                break
    return cache[name]


def _id(text: str) -> int | None:
    try:
        n = int(text)
    except ValueError:
        return None
    return n if 0 < n <= MAX_ID else None


async def _show_quarantined(request: web.Request, qid: int | None,
                            ident: Identity) -> web.Response:
    row = None
    if qid is not None and not ident.hospitals:
        row = await request.config_dict[STORE].browser.quarantined(qid)
    if row is None:
        return _error(404, f"no quarantined input {request.match_info['id']}")
    return web.json_response(quarantine_detail(row, ident))


async def show(request: web.Request) -> web.Response:
    """GET /api/messages/{id}: one message, what it was answered and what became of it."""
    ident = request_identity(request)
    text = request.match_info["id"]
    if text[:1] in ("q", "Q"):
        return await _show_quarantined(request, _id(text[1:]), ident)
    mid = _id(text)
    if mid is None:
        return _error(400, "a message id is a positive number (q<n>: a quarantined input)")
    detail = await request.config_dict[STORE].browser.message(mid)
    # another hospital's message is not there at all for a limited identity
    if detail is None or not visible(ident, (e.hospital_id for e in detail.events)):
        return _error(404, f"no message {mid}")
    return web.json_response(detail_to_dict(detail, ident,
                                            _adapter(request, detail.summary.adapter)))


def add_browser_routes(app: web.Application) -> None:
    """Register ``GET /api/messages`` and ``GET /api/messages/{id}``."""
    app[_ADAPTERS] = {}
    app.router.add_get("/api/messages", search)
    app.router.add_get("/api/messages/{id}", show)
