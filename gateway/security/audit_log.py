"""Writing and reading the audit log.

Handlers that change state call :func:`record` after the change took effect; the entry
names the caller the access middleware authenticated (:func:`request_identity`), never a
name the caller writes. What the gateway does by itself (start, reloading the identities
file) is the ``gateway`` identity's (:class:`Recorder`, :func:`record_start`); commands run
on the store without a gateway name the operating-system account (:func:`record_shell`).
``GET /api/audit-log`` pages through entries, ``GET /api/audit-log/verify`` walks the
whole chain.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import json
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from canonical.errors import StoreError
from canonical.model import CHINA_TZ
from gateway.config import GatewayConfig
from gateway.security.audit import AuditDraft, AuditEntry, ChainVerifier, Verdict
from gateway.security.identity import hospital_scope, request_identity
from gateway.store.audit_rows import MAX_PAGE, AuditLogQuery, AuditLogTables

__all__ = [
    "RECORDER",
    "SYSTEM",
    "AuditFields",
    "Recorder",
    "add_audit_routes",
    "record",
    "record_as",
    "record_many",
    "record_shell",
    "record_start",
    "shell_identity",
    "verify_chain",
]

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


def _log_of(request: web.Request) -> AuditLogTables | None:
    # None: a sub-application served on its own (tests, tools), or the store not open yet
    recorder = request.config_dict.get(RECORDER)
    return None if recorder is None else recorder.log()


def _open_log(request: web.Request) -> AuditLogTables:
    log_ = _log_of(request)
    if log_ is None:
        raise web.HTTPServiceUnavailable(text="the audit log is not open yet")
    return log_


@dataclass(frozen=True, slots=True)
class AuditFields:
    """What one entry says, for :func:`record_many` (who and when it adds itself)."""

    action: str
    target: str = ""
    hospital_id: str = ""
    before: Any = None
    after: Any = None
    detail: str = ""


async def record_many(request: web.Request, items: Sequence[AuditFields]) -> None:
    """Append one entry per item for the authenticated caller of ``request``, in one
    transaction (an import of thousands of rows is one commit, not thousands)."""
    log_ = _log_of(request)
    if log_ is None or not items:
        return
    who = request_identity(request)
    drafts = [AuditDraft(who.name, who.role, i.action, target=i.target,
                         hospital_id=i.hospital_id, before=i.before, after=i.after,
                         detail=i.detail) for i in items]
    try:
        await log_.append_many(drafts)
    except StoreError as exc:
        log.error("%d audit entries not stored (%s): %s", len(drafts), exc, drafts[:20])


def shell_identity() -> tuple[str, str]:
    """Who runs a command on the store directly (``jicai-gateway replay``): the operating
    system's account and host. No token is involved; whoever can read the configuration
    can write the store, so this names the account to ask, it does not prove anything."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}", "shell"


async def record_shell(log_: AuditLogTables, action: str, **fields: Any) -> AuditEntry | None:
    """Append an entry for a change made from the command line on the store itself."""
    return await record_as(log_, *shell_identity(), action, **fields)


async def record(request: web.Request, action: str, *, target: str = "",
                 hospital_id: str = "", before: Any = None, after: Any = None,
                 detail: str = "") -> AuditEntry | None:
    """Append an entry for what the authenticated caller of ``request`` just changed."""
    log_ = _log_of(request)
    if log_ is None:
        return None
    who = request_identity(request)
    return await record_as(log_, who.name, who.role, action, target=target,
                           hospital_id=hospital_id, before=before, after=after,
                           detail=detail)


class Recorder:
    """Appends entries for what happens outside a request (the identities file read again),
    from code that cannot wait: each append runs as a task kept until it is done."""

    def __init__(self, log_: Callable[[], AuditLogTables | None],
                 config_file: str | Path | None = None) -> None:
        self._log = log_
        self.config_file = config_file
        self._tasks: set[asyncio.Task[AuditEntry | None]] = set()

    def log(self) -> AuditLogTables | None:
        """The store's audit log, once the store is open."""
        return self._log()

    def __call__(self, action: str, **fields: Any) -> None:
        log_ = self._log()
        if log_ is None:  # before the store opened: nothing could have changed yet
            return
        task = asyncio.get_running_loop().create_task(
            record_as(log_, *SYSTEM, action, **fields))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def identities_reloaded(self, before: frozenset[str], after: frozenset[str]) -> None:
        """The :class:`~gateway.security.identity.Identities` reload callback."""
        added, removed = sorted(after - before), sorted(before - after)
        self("identities.reload", target="security.identities_file", before=sorted(before),
             after=sorted(after), detail=f"added: {', '.join(added) or '-'}; "
                                         f"removed: {', '.join(removed) or '-'} (the others' "
                                         "tokens, roles or hospitals may have changed)")

    async def drain(self) -> None:
        """Wait for the entries still being written."""
        await asyncio.gather(*self._tasks, return_exceptions=True)


# the application's recorder, and the configuration file it was started from
RECORDER: web.AppKey[Recorder] = web.AppKey("audit_recorder", Recorder)


async def record_start(log_: AuditLogTables, cfg: GatewayConfig,
                       config_file: str | Path | None) -> AuditEntry | None:
    """One entry per start: which configuration runs, by the SHA-256 of its file (secrets
    included, so a changed password shows as a changed hash without being written)."""
    source = str(config_file) if config_file is not None else "<built in code>"
    try:
        content = (Path(config_file).read_bytes() if config_file is not None
                   else cfg.model_dump_json().encode())
    except OSError as exc:  # moved away since it was read: say so rather than not start
        content, source = b"", f"{source} (unreadable now: {exc.strerror})"
    digest = hashlib.sha256(content).hexdigest()
    return await record_as(log_, *SYSTEM, "config.start", target=source,
                           after={"config_file": source, "sha256": digest,
                                  "store": cfg.store.backend},
                           detail=f"gateway started with configuration sha256={digest}")


async def verify_chain(log_: AuditLogTables, page: int = MAX_PAGE) -> Verdict:
    """Walk the whole log, a page at a time, to the first broken entry."""
    walker = ChainVerifier()
    while True:
        batch = await log_.entries(AuditLogQuery(after_id=walker.last_id, limit=page))
        if not walker.feed(batch) or len(batch) < page:
            return walker.verdict()


def _bad(text: str) -> web.HTTPBadRequest:
    """A 400 with the API's error body, ``{"error", "problems"}``."""
    return web.HTTPBadRequest(text=json.dumps({"error": text, "problems": [text]},
                                              ensure_ascii=False),
                              content_type="application/json")


def _time(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name, "").strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(f"{name}={text!r} is not an ISO date-time") from None
    # an operator in a Chinese hospital means China time when giving none
    return when if when.tzinfo is not None else when.replace(tzinfo=CHINA_TZ)


def _int(request: web.Request, name: str, default: int, hi: int) -> int:
    text = request.query.get(name, "").strip()
    try:
        value = int(text) if text else default
    except ValueError:
        raise _bad(f"{name}={text!r} is not a whole number") from None
    if not 0 <= value <= hi:
        raise _bad(f"{name}={value} must be between 0 and {hi}")
    return value


async def list_entries(request: web.Request) -> web.Response:
    """GET /api/audit-log: entries oldest first; page on with ``after_id`` = the last id."""
    q = request.query
    try:
        hospital = hospital_scope(request_identity(request), q.get("hospital") or None)
    except ValueError as exc:
        raise _bad(str(exc)) from None
    query = AuditLogQuery(identity=q.get("identity") or None, action=q.get("action") or None,
                          hospital_id=hospital, since=_time(request, "since"),
                          until=_time(request, "until"),
                          after_id=_int(request, "after_id", 0, 2**62),
                          limit=_int(request, "limit", 200, MAX_PAGE))
    found = await _open_log(request).entries(query)
    more = len(found) == query.limit and query.limit > 0
    return web.json_response({"entries": [e.to_dict() for e in found],
                              "next_after_id": found[-1].id if more else None},
                             dumps=_dumps)


async def verify(request: web.Request) -> web.Response:
    """GET /api/audit-log/verify: ``{ok, entries, broken_at, reason, head}``."""
    verdict = await verify_chain(_open_log(request))
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
