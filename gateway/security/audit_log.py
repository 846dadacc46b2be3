"""Writing and reading the audit log over HTTP.

Handlers that change state call :func:`record` after the change took effect; the entry
names the caller the access middleware authenticated (:func:`request_identity`), never a
name the caller writes. ``GET /api/audit-log`` pages through entries, ``GET
/api/audit-log/verify`` walks the whole chain.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from aiohttp import web

from canonical.errors import StoreError
from canonical.model import CHINA_TZ
from gateway.keys import STORE
from gateway.security.audit import AuditDraft, AuditEntry, ChainVerifier, Verdict
from gateway.security.identity import request_identity
from gateway.store.audit_rows import MAX_PAGE, AuditLogQuery, AuditLogTables

__all__ = ["SYSTEM", "add_audit_routes", "record", "record_as", "verify_chain"]

log = logging.getLogger(__name__)

SYSTEM = ("gateway", "system")  # identity and role of what the gateway does by itself


async def record_as(log_: AuditLogTables, identity: str, role: str, action: str,
                    **fields: Any) -> AuditEntry | None:
    """Append an entry; a failure is logged with the entry, not raised: the change it
    describes has already happened, and answering it with an error would invite a
    second one."""
    draft = AuditDraft(identity, role, action, **fields)
    try:
        return await log_.append(draft)
    except StoreError as exc:
        log.error("audit entry not stored (%s): %s", exc, draft)
        return None


async def record(request: web.Request, action: str, *, target: str = "",
                 hospital_id: str = "", before: Any = None, after: Any = None,
                 detail: str = "") -> AuditEntry | None:
    """Append an entry for what the authenticated caller of ``request`` just changed."""
    store = request.config_dict.get(STORE)
    if store is None:  # a sub-application served on its own (tests, tools): no log
        return None
    who = request_identity(request)
    return await record_as(store.audit_log, who.name, who.role, action, target=target,
                           hospital_id=hospital_id, before=before, after=after,
                           detail=detail)


async def verify_chain(log_: AuditLogTables, page: int = MAX_PAGE) -> Verdict:
    """Walk the whole log, a page at a time, to the first broken entry."""
    walker = ChainVerifier()
    while True:
        batch = await log_.entries(AuditLogQuery(after_id=walker.last_id, limit=page))
        if not walker.feed(batch) or len(batch) < page:
            return walker.verdict()


def _time(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name, "").strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}={text!r} is not an ISO date-time") from None
    # an operator in a Chinese hospital means China time when giving none
    return when if when.tzinfo is not None else when.replace(tzinfo=CHINA_TZ)


def _int(request: web.Request, name: str, default: int, hi: int) -> int:
    text = request.query.get(name, "").strip()
    try:
        value = int(text) if text else default
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}={text!r} is not a whole number") from None
    if not 0 <= value <= hi:
        raise web.HTTPBadRequest(text=f"{name}={value} must be between 0 and {hi}")
    return value


async def list_entries(request: web.Request) -> web.Response:
    """GET /api/audit-log: entries oldest first; page on with ``after_id`` = the last id."""
    q = request.query
    query = AuditLogQuery(identity=q.get("identity") or None, action=q.get("action") or None,
                          hospital_id=q.get("hospital") or None, since=_time(request, "since"),
                          until=_time(request, "until"),
                          after_id=_int(request, "after_id", 0, 2**62),
                          limit=_int(request, "limit", 200, MAX_PAGE))
    found = await request.config_dict[STORE].audit_log.entries(query)
    more = len(found) == query.limit and query.limit > 0
    return web.json_response({"entries": [e.to_dict() for e in found],
                              "next_after_id": found[-1].id if more else None},
                             dumps=_dumps)


async def verify(request: web.Request) -> web.Response:
    """GET /api/audit-log/verify: ``{ok, entries, broken_at, reason, head}``."""
    verdict = await verify_chain(request.config_dict[STORE].audit_log)
    if not verdict.ok:
        log.error("audit log chain broken at entry %s: %s", verdict.broken_at, verdict.reason)
    return web.json_response(verdict.to_dict())


def _dumps(data: Any) -> str:
    # Chinese names stay readable for an auditor using curl
    return json.dumps(data, ensure_ascii=False)


def add_audit_routes(app: web.Application) -> None:
    """Register the audit log's routes on the gateway's app (policy: admin, auditor)."""
    app.router.add_get("/api/audit-log", list_entries)
    app.router.add_get("/api/audit-log/verify", verify)
