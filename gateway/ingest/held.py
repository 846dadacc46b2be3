"""HTTP API for held events: what waits, why, and letting it go once the data is there.

``GET /api/held`` (``hospital``, ``limit``): held events, oldest first, each with its
reasons — unmapped items (对码) or a platform's mandatory field without a value, named
with the field and where its value would come from. ``POST /api/held/release``
(``{"hospital": …}`` optional): map the held events again and send those now complete
(after a crosswalk change or a catalog import that supplies a product fact this happens
by itself; after ``field_defaults`` or an adapter changed, a restart does it too).
"""

from __future__ import annotations

import orjson
from aiohttp import web

from gateway.keys import INGESTOR, STORE
from gateway.security.audit_log import record
from gateway.security.identity import hospital_scope, request_identity

__all__ = ["add_held_routes"]

MAX_LIMIT = 1000


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _error(status: int, text: str) -> web.Response:
    return _json({"error": text, "problems": [text]}, status)


async def held(request: web.Request) -> web.Response:
    """GET /api/held: held events with the reasons they wait."""
    try:
        hospital = hospital_scope(request_identity(request),
                                  request.query.get("hospital") or None)
        limit = int(request.query.get("limit", "100"))
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1–{MAX_LIMIT}")
    except ValueError as exc:
        return _error(400, str(exc))
    ingestor = request.config_dict[INGESTOR]
    events = await request.config_dict[STORE].held_events(hospital, limit)
    return _json([{"event_id": ev.event_id, "hospital_id": ev.hospital_id,
                   "kind": ev.kind.value, "document_no": ev.document_no,
                   "occurred_at": ev.occurred_at.isoformat(), "lines": len(ev.lines),
                   "reasons": ingestor.hold_reasons(ev)} for ev in events])


async def release(request: web.Request) -> web.Response:
    """POST /api/held/release: send the held events that are now complete."""
    try:
        body = orjson.loads(await request.read() or b"{}")
        if not isinstance(body, dict):
            raise ValueError("send a JSON object")
        hospital = hospital_scope(request_identity(request), body.get("hospital") or None)
    except (orjson.JSONDecodeError, ValueError) as exc:
        return _error(400, f"bad release request: {exc}")
    released = await request.config_dict[INGESTOR].release_held(hospital)
    await record(request, "held.release", hospital_id=hospital or "",
                 after={"released": released})
    return _json({"released": released})


def add_held_routes(app: web.Application) -> None:
    """Register the held-event routes (they use the gateway's ingestor and store)."""
    app.router.add_get("/api/held", held)
    app.router.add_post("/api/held/release", release)
