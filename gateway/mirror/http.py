"""HTTP API for dead letters and replay, and the mirror's balance.

``GET /api/deadletters`` (filters: destination, hospital, since, until,
transaction, states, limit), ``GET /api/outbox/{id}`` (a row with its event),
``POST /api/replay`` (JSON: ids or filters, ``to_destination``, ``force``; 409 when
a delivered row was refused), ``GET /api/mirror/balance``.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.keys import STORE
from gateway.mirror.replay import query_from_params, record_to_dict
from gateway.store.base import Store

__all__ = ["add_mirror_routes"]

def _store(request: web.Request) -> Store:
    return request.config_dict[STORE]


async def deadletters(request: web.Request) -> web.Response:
    """GET /api/deadletters: rows matching the filters (dead letters by default)."""
    try:
        query = query_from_params(dict(request.query))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    rows = await _store(request).list_outbox(query)
    return web.json_response([record_to_dict(r) for r in rows])


async def outbox_row(request: web.Request) -> web.Response:
    """GET /api/outbox/{id}: one row with its event and last error."""
    try:
        oid = int(request.match_info["id"])
    except ValueError:
        raise web.HTTPBadRequest(text="outbox id must be a number") from None
    record = await _store(request).outbox_record(oid)
    if record is None:
        raise web.HTTPNotFound(text=f"no outbox row {oid}")
    return web.json_response(record_to_dict(record))


async def replay(request: web.Request) -> web.Response:
    """POST /api/replay: queue rows again; delivered rows only with ``force``."""
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("send a JSON object")
        query = query_from_params(body)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"bad replay request: {exc}") from None
    force = bool(body.get("force", False))
    result = await _store(request).replay(query, to_destination=body.get("to_destination"),
                                          force=force, now=time.time())
    payload: dict[str, Any] = {"queued": list(result.queued), "refused": list(result.refused),
               "skipped": list(result.skipped)}
    if result.refused:
        payload["error"] = ("already delivered: the platform holds these; "
                            "send force=true to deliver them again")
    return web.json_response(payload, status=409 if result.refused else 200)


async def balance(request: web.Request) -> web.Response:
    """GET /api/mirror/balance: received = delivered + queued + dead + held, per destination."""
    b = await _store(request).balance()
    dests = sorted({*b.delivered, *b.queued, *b.dead})
    return web.json_response({d: {"received": b.received(d), "delivered": b.delivered.get(d, 0),
                                  "queued": b.queued.get(d, 0), "dead": b.dead.get(d, 0),
                                  "held": b.held_events} for d in dests})


def add_mirror_routes(app: web.Application) -> None:
    """Register the dead-letter, replay and balance routes on the gateway's app (they use
    its :data:`~gateway.keys.STORE`; a replay wakes the mirrors through the store)."""
    app.router.add_get("/api/deadletters", deadletters)
    app.router.add_get("/api/outbox/{id}", outbox_row)
    app.router.add_post("/api/replay", replay)
    app.router.add_get("/api/mirror/balance", balance)
