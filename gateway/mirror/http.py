"""HTTP API for dead letters and replay, and the mirror's balance.

``GET /api/deadletters`` (filters: ids, destination, hospital, since, until, from_id,
to_id, transaction, states, limit), ``GET /api/outbox/{id}`` (a row with its event),
``POST /api/replay`` (JSON: ids or filters, ``to_destination``, ``force``; 409 when
a delivered row was refused), ``GET /api/mirror/balance``, ``GET /api/mirror/destinations``
(each destination's profile, what it keeps in order, and its pace now).

Listings and replays name their rows: at least one filter, or ``all`` with an explicit
``limit``; at most 5,000 rows (500 by default). Each replay is written to the audit log
with its filter and what it did.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway.keys import MIRROR, STORE
from gateway.mirror.replay import MAX_ROW_ID, bounded_query, record_to_dict, replay_audit
from gateway.security.audit_log import record
from gateway.store.base import Store

__all__ = ["add_mirror_routes"]

def _store(request: web.Request) -> Store:
    return request.config_dict[STORE]


def _error(status: int, text: str) -> web.Response:
    """The API's error answer: ``{"error", "problems"}``, as the other routes give it."""
    return web.json_response({"error": text, "problems": [text]}, status=status)


async def deadletters(request: web.Request) -> web.Response:
    """GET /api/deadletters: rows matching the filters (dead letters by default)."""
    try:
        query = bounded_query(dict(request.query))
    except ValueError as exc:
        return _error(400, str(exc))
    rows = await _store(request).list_outbox(query)
    return web.json_response([record_to_dict(r) for r in rows])


async def outbox_row(request: web.Request) -> web.Response:
    """GET /api/outbox/{id}: one row with its event and last error."""
    try:
        oid = int(request.match_info["id"])
    except ValueError:
        return _error(400, "outbox id must be a number")
    if not 0 <= oid <= MAX_ROW_ID:
        return _error(404, f"no outbox row {oid}")
    record = await _store(request).outbox_record(oid)
    if record is None:
        return _error(404, f"no outbox row {oid}")
    return web.json_response(record_to_dict(record))


async def replay(request: web.Request) -> web.Response:
    """POST /api/replay: queue rows again; delivered rows only with ``force``."""
    try:
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("send a JSON object")
        query = bounded_query(body)
    except ValueError as exc:
        return _error(400, f"bad replay request: {exc}")
    force = bool(body.get("force", False))
    to = body.get("to_destination")
    result = await _store(request).replay(query, to_destination=to, force=force,
                                          now=time.time())
    await record(request, "mirror.replay",
                 **replay_audit(query, result, force=force, to_destination=to))
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


async def destinations(request: web.Request) -> web.Response:
    """GET /api/mirror/destinations: profile facts (ordering keys included) and pace."""
    mirror = request.config_dict[MIRROR]
    now = mirror.clock()
    out = []
    for d in mirror.destinations:
        pacing, cfg = mirror.pacing[d.name], d.config
        out.append({
            "name": d.name, "url": cfg.url, **d.profile.describe(),
            "reachable": mirror.reachable[d.name],
            "circuit": str(mirror.breakers[d.name].state(now)),
            "pace": {"in_flight": pacing.in_flight, "concurrency_limit": pacing.limit.bound,
                     "concurrency": cfg.concurrency,
                     "hospital_concurrency": cfg.hospital_concurrency or cfg.concurrency,
                     "rate_limit_per_s": cfg.rate_limit_per_s,
                     "rate_now_per_s": pacing.pacer.current or None,
                     "throttled": pacing.pacer.throttled_total,
                     "adaptive": cfg.adaptive_concurrency},
        })
    return web.json_response(out)


def add_mirror_routes(app: web.Application) -> None:
    """Register the dead-letter, replay and balance routes on the gateway's app (they use
    its :data:`~gateway.keys.STORE`; a replay wakes the mirrors through the store)."""
    app.router.add_get("/api/deadletters", deadletters)
    app.router.add_get("/api/outbox/{id}", outbox_row)
    app.router.add_post("/api/replay", replay)
    app.router.add_get("/api/mirror/balance", balance)
    app.router.add_get("/api/mirror/destinations", destinations)
