"""HTTP API of the crosswalk (对码) and national catalogs, mounted at ``/api/mappings``.

Every write is recorded under the identity the access middleware authenticated, in the
crosswalk's audit trail and in the gateway's audit log (before and after of each entry). A
name the caller writes (``X-Operator`` header, percent-encoded when not ASCII, or a
``user`` field) is kept only as part of the note, never as the author. Errors are JSON,
``{"error": "...", "problems": [...]}``, with 400 for bad input (every problem listed,
nothing changed), 404 for what does not exist and 409 for a request that contradicts
the current state.

Routes (relative to the mount point):

- ``GET /entries`` (``hospital``, ``q``, ``national_code``, ``on``, ``limit``, ``offset``),
  ``POST /entries``; ``GET|PUT|DELETE /entries/{hospital}/{item}[?valid_from=]``
- ``GET /audit`` (``hospital``, ``item``, ``user``, ``since``, ``limit``)
- ``GET /export.csv``, ``GET /export.xlsx`` (``hospital``, ``chinese``); ``POST /import``
- ``GET /unmapped`` (with suggestions); ``POST /unmapped/{hospital}/{item}/accept``
- ``GET /conceptmap``; ``GET /$translate?code=&system=`` (FHIR ``ConceptMap/$translate``)
- ``POST /catalogs`` (import a version), ``GET /catalogs``, ``GET /catalogs/diff``,
  ``GET /alerts/withdrawn``
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import BodyPartReader, web

from canonical.errors import StoreError
from canonical.model import CHINA_TZ
from codes import CatalogDiff, CatalogEntry, CatalogError, CatalogKind, WithdrawnAlert
from codes.catalog_files import VersionInfo
from gateway.crosswalk.service import (
    CatalogImportResult,
    ChangeResult,
    Conflict,
    NotFound,
    QueueItem,
)
from gateway.keys import CONFIG, MAPPINGS, STORE
from gateway.security.audit_log import AuditFields, record, record_many
from gateway.security.http_limits import bounded_chunks
from gateway.security.identity import hospital_scope, request_identity
from gateway.store.files import private_dir, private_file
from gateway.store.state import AuditQuery, StoredAudit
from mappings.entry import CrosswalkEntry, CrosswalkEntryError, entry_to_dict
from mappings.fhir import to_concept_map, translate
from mappings.files import read_csv, read_xlsx, write_csv, write_xlsx

__all__ = ["OPERATOR_HEADER", "mappings_api", "unmapped_queue"]

log = logging.getLogger(__name__)

OPERATOR_HEADER = "X-Operator"
_XLSX_TYPES = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",)
_ENTRY_FIELDS = ("hospital_id", "item_code", "national_code", "item_name", "hospital_unit",
                 "national_unit", "factor", "valid_from", "valid_to")


# --- answers ------------------------------------------------------------------------

def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, default=str), status=status,
                        content_type="application/json")


def _error(status: int, message: str, problems: list[str] | tuple[str, ...] = ()) -> web.Response:
    return _json({"error": message, "problems": list(problems) or [message]}, status)


@web.middleware
async def _errors(request: web.Request,
                  handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    try:
        return await handler(request)
    except _BadRequest as exc:
        return _error(400, "bad request; nothing was changed", exc.problems)
    except CrosswalkEntryError as exc:
        return _error(400, "the change was refused; nothing was changed", exc.problems)
    except NotFound as exc:
        return _error(404, "not found", exc.problems)
    except _Forbidden as exc:
        return _error(403, "forbidden; nothing was changed", exc.problems)
    except Conflict as exc:
        return _error(409, "conflicts with the current state", exc.problems)
    except CatalogError as exc:
        return _error(400, "not a usable catalog file; nothing was imported", [str(exc)])
    except StoreError as exc:
        log.error("crosswalk store: %s", exc)
        return _error(503, "the crosswalk database did not take the change; try again",
                      [str(exc)])


class _BadRequest(CrosswalkEntryError):
    """Input that never reached the crosswalk checks (missing user, malformed JSON …)."""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, CHINA_TZ).isoformat(timespec="seconds")


def _audit_json(a: StoredAudit) -> dict[str, Any]:
    return {"id": a.id, **a.record.to_dict()}


def _change_json(result: ChangeResult, **extra: Any) -> dict[str, Any]:
    return {**extra, "audit": [_audit_json(a) for a in result.audit],
            "released": result.released}


class _Forbidden(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _scope(request: web.Request) -> str | None:
    try:
        return hospital_scope(request_identity(request), request.query.get("hospital") or None)
    except ValueError as exc:
        raise _BadRequest([str(exc)]) from None


def _may_change(request: web.Request, entries: Sequence[CrosswalkEntry]) -> None:
    ident = request_identity(request)
    others = sorted({e.hospital_id for e in entries if not ident.may_act_for(e.hospital_id)})
    if others:
        raise _Forbidden([f"identity {ident.name!r} may not change the crosswalk of "
                          f"hospital {h}" for h in others])


# --- reading requests ---------------------------------------------------------------

async def _body(request: web.Request) -> dict[str, Any]:
    body = await request.read()
    if not body:
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _BadRequest([f"the body is not JSON: {exc}"]) from None
    if not isinstance(data, dict):
        raise _BadRequest(["the body must be a JSON object"])
    return data


def _operator(request: web.Request) -> str:
    # clients that cannot send UTF-8 header values percent-encode the name
    return unquote(request.headers.get(OPERATOR_HEADER, "")).strip()


def _author(request: web.Request, fields: dict[str, Any], note: str) -> tuple[str, str]:
    """Who makes the change (the authenticated identity) and the note to keep with it.

    A name the caller writes proves nothing: it goes into the note, so that a shared
    service account can still say which person at the keyboard made the change.
    """
    user = request_identity(request).name
    claimed = (_operator(request) or str(fields.get("user") or "")
               or request.query.get("user", "")).strip()
    if claimed and claimed != user:
        note = f"{note} (stated by the caller: {claimed})".strip()
    return user, note


async def _audited(request: web.Request, action: str, result: ChangeResult,
                   detail: str = "") -> None:
    """One audit-log entry per crosswalk entry the change touched, with before and after."""
    await record_many(request, [
        AuditFields(action, target=f"{e.hospital_id}/{e.item_code}", hospital_id=e.hospital_id,
                    before=entry_to_dict(a.record.before) if a.record.before else None,
                    after=entry_to_dict(a.record.after) if a.record.after else None,
                    detail=f"crosswalk audit #{a.id}" + (f"; {detail}" if detail else ""))
        for a in result.audit
        for e in (a.record.after or a.record.before,) if e is not None])


def _query_date(request: web.Request, name: str) -> date | None:
    text = request.query.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _BadRequest([f"{name}={text!r} is not a date (YYYY-MM-DD)"]) from None


def _query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    text = request.query.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _BadRequest([f"{name}={text!r} is not a whole number"]) from None
    if not lo <= value <= hi:
        raise _BadRequest([f"{name}={value} must be between {lo} and {hi}"])
    return value


def _entry_from(data: dict[str, Any], base: CrosswalkEntry | None = None) -> CrosswalkEntry:
    """An entry from JSON fields (over ``base`` for an update); every malformed field listed."""
    problems: list[str] = []
    unknown = sorted(set(data) - {*_ENTRY_FIELDS, "user", "note"})
    if unknown:
        problems.append(f"unknown field(s) {', '.join(unknown)}; entry fields are "
                        f"{', '.join(_ENTRY_FIELDS)}")
    values: dict[str, Any] = {}
    current = entry_to_dict(base) if base is not None else {}
    for name in _ENTRY_FIELDS:
        raw = data[name] if name in data else current.get(name, "")
        if raw is None:
            raw = ""
        if not isinstance(raw, str | int | float):
            problems.append(f"{name} must be text, not {type(raw).__name__}")
            continue
        values[name] = str(raw).strip() if isinstance(raw, str) else raw
    for name in ("hospital_id", "item_code", "national_code"):
        if name in values and not values[name]:
            problems.append(f"{name} is required")
    factor = Decimal(1)
    if values.get("factor", "") != "":
        try:
            factor = Decimal(str(values["factor"]))
        except InvalidOperation:
            problems.append(f"factor {values['factor']!r} is not a number")
    days: dict[str, date | None] = {}
    for name in ("valid_from", "valid_to"):
        text = str(values.get(name) or "")
        try:
            days[name] = date.fromisoformat(text) if text else None
        except ValueError:
            problems.append(f"{name} {text!r} is not a date (YYYY-MM-DD)")
    if problems:
        raise _BadRequest(problems)
    return CrosswalkEntry(
        hospital_id=str(values["hospital_id"]), item_code=str(values["item_code"]),
        national_code=str(values["national_code"]).upper(),
        item_name=str(values.get("item_name", "")),
        hospital_unit=str(values.get("hospital_unit", "")),
        national_unit=str(values.get("national_unit", "")),
        factor=factor, valid_from=days["valid_from"], valid_to=days["valid_to"])


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk():
        yield chunk


@contextlib.contextmanager
def _removed_on_error(path: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        path.unlink(missing_ok=True)
        raise


async def _upload(request: web.Request) -> tuple[Path, str, dict[str, str]]:
    """Stream the uploaded file (multipart ``file`` part or the raw body) to a temporary file.

    Returns:
        The temporary path (suffix from the file name, ``format`` or content type), the
        file's name as sent, and the other form fields.
    """
    # a crosswalk or catalog file is the hospital's business: the gateway's user only
    directory = private_dir(request.config_dict[CONFIG].data_dir / "uploads")
    fields: dict[str, str] = {}
    name = request.query.get("filename", "")
    ctype = ""
    tmp = directory / f"upload-{uuid.uuid4().hex}"
    http = request.config_dict[CONFIG].http
    # the whole request counts, form fields included; every byte of it is on disk
    limit, timeout = http.max_body_bytes, http.read_timeout_s
    with _removed_on_error(tmp), private_file(tmp).open("wb") as out:
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            found = False
            async for part in reader:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.filename is not None or part.name == "file":
                    found = True
                    name = part.filename or name
                    ctype = part.headers.get("Content-Type", "")
                    async for chunk in bounded_chunks(_part_chunks(part), limit=limit,
                                                    timeout=timeout):
                        out.write(chunk)
                else:
                    fields[part.name or ""] = (await part.text()).strip()
            if not found:
                tmp.unlink(missing_ok=True)
                raise _BadRequest(["the form has no file part (send it as field \"file\")"])
        else:
            ctype = request.content_type
            async for chunk in bounded_chunks(request.content.iter_chunked(1 << 16),
                                              limit=limit, timeout=timeout):
                out.write(chunk)
    fmt = (request.query.get("format") or fields.get("format") or "").lower().lstrip(".")
    suffix = Path(name).suffix.lower() if name else ""
    if fmt:
        suffix = f".{fmt}"
    elif not suffix:
        with tmp.open("rb") as f:
            head = f.read(4)
        suffix = ".xlsx" if ctype in _XLSX_TYPES or head.startswith(b"PK\x03\x04") else ".csv"
    if suffix not in (".csv", ".txt", ".xlsx", ".xlsm"):
        tmp.unlink(missing_ok=True)
        raise _BadRequest([f"files are read as .csv or .xlsx, not {suffix!r} (give format=)"])
    path = tmp.with_suffix(suffix)
    tmp.rename(path)
    if path.stat().st_size == 0:
        path.unlink(missing_ok=True)
        raise _BadRequest(["the uploaded file is empty"])
    return path, name or path.name, fields


def _decode_csv(raw: bytes, name: str) -> str:
    for codec in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GB18030
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    raise _BadRequest([f"{name}: cannot be read as UTF-8 or GB18030 text"])


# --- the sub-application ---------------------------------------------------------------

def _catalog_entry_json(e: CatalogEntry) -> dict[str, str]:
    return {"code": e.code, "name": e.name, "generic_name": e.generic_name,
            "specification": e.specification, "manufacturer": e.manufacturer,
            "min_pack_quantity": e.min_pack_quantity, "min_pack_unit": e.min_pack_unit,
            "rx_flag": e.rx_flag}


def _alert_json(a: WithdrawnAlert) -> dict[str, Any]:
    return {"code": a.code, "old_version": a.old_version, "new_version": a.new_version,
            "mapped_items": list(a.mapped_items), "message": a.message,
            "entry": _catalog_entry_json(a.entry)}


def _version_json(v: VersionInfo) -> dict[str, Any]:
    return {"version": v.version, "imported_at": v.imported_at.isoformat(),
            "entries": v.entries, "source": v.source}


def _diff_json(d: CatalogDiff, limit: int) -> dict[str, Any]:
    return {
        "kind": d.kind.value, "from": d.old_version, "to": d.new_version,
        "counts": {"added": len(d.added), "changed": len(d.changed),
                   "withdrawn": len(d.withdrawn)},
        "added": [_catalog_entry_json(e) for e in d.added[:limit]],
        "changed": [{"code": c.code, "changes": [{"field": f.field, "old": f.old, "new": f.new}
                                                 for f in c.changes]}
                    for c in d.changed[:limit]],
        "withdrawn": [_catalog_entry_json(e) for e in d.withdrawn[:limit]],
        "truncated": any(len(x) > limit for x in (d.added, d.changed, d.withdrawn)),
    }


def _queue_json(q: QueueItem) -> dict[str, Any]:
    i = q.item
    return {
        "hospital_id": i.hospital_id, "item_code": i.item_code, "item_name": i.item_name,
        "specification": i.specification, "manufacturer": i.manufacturer, "unit": q.unit,
        "occurrences": i.occurrences, "first_seen": _iso(i.first_seen),
        "last_seen": _iso(i.last_seen),
        "suggestions": [
            {"rank": n, "national_code": s.national_code, "score": s.score,
             "reasons": list(s.reasons),
             "proposed": None if c is None else {
                 "factor": str(c.factor), "hospital_unit": c.hospital_unit,
                 "national_unit": c.national_unit, "reason": c.reason}}
            for n, (s, c) in enumerate(q.suggestions, start=1)],
    }


def _catalog_kind(text: str) -> CatalogKind | None:
    if not text:
        return None
    try:
        return CatalogKind(text)
    except ValueError:
        raise _BadRequest([f"kind={text!r}: use one of "
                           f"{', '.join(k.value for k in CatalogKind)}"]) from None


async def unmapped_queue(request: web.Request) -> web.Response:
    """GET /api/unmapped: the unmapped-item queue as stored (no suggestions)."""
    try:
        hospital = _scope(request)
    except _BadRequest as exc:
        return _error(400, "bad request", exc.problems)
    items = await request.config_dict[STORE].unmapped(hospital)
    # orjson keeps Chinese names readable for an operator using curl
    return _json([dataclasses.asdict(i) for i in items])


def mappings_api() -> web.Application:
    """The crosswalk and catalog API as an aiohttp sub-application (mount at /api/mappings).

    Handlers use the gateway's :data:`~gateway.keys.MAPPINGS` service and
    :data:`~gateway.keys.CONFIG` (for the upload directory) through ``config_dict``.
    """
    api = web.Application(middlewares=[_errors])

    # --- entries ---
    async def list_entries(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        found = service.search(hospital=_scope(request),
                               query=request.query.get("q", ""),
                               national_code=request.query.get("national_code") or None,
                               day=_query_date(request, "on"))
        limit = _query_int(request, "limit", 100, 1, 10_000)
        offset = _query_int(request, "offset", 0, 0, 10**9)
        return _json({"total": len(found),
                      "entries": [entry_to_dict(e) for e in found[offset:offset + limit]]})

    async def create(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        body = await _body(request)
        user, note = _author(request, body, str(body.get("note") or ""))
        entry = _entry_from(body)
        _may_change(request, [entry])
        result = await service.create(entry, user=user, note=note)
        await _audited(request, "crosswalk.add", result, note)
        return _json(_change_json(result, entry=entry_to_dict(entry)), 201)

    def _key(request: web.Request) -> tuple[str, str, date | None]:
        return (request.match_info["hospital"], request.match_info["item"],
                _query_date(request, "valid_from"))

    async def show(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        hospital, item = request.match_info["hospital"], request.match_info["item"]
        ranges = service.crosswalk.ranges(hospital, item)
        history = await service.audit(AuditQuery(hospital_id=hospital, item_code=item))
        if not ranges and not history:
            raise NotFound([f"{hospital}/{item}: no crosswalk entry and no history"])
        return _json({"entries": [entry_to_dict(e) for e in ranges],
                      "audit": [_audit_json(a) for a in history]})

    async def update(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        body = await _body(request)
        user, note = _author(request, body, str(body.get("note") or ""))
        key = _key(request)
        before = service.get(key)
        after = _entry_from(body, base=before)
        result = await service.update(key, after, user=user, note=note)
        await _audited(request, "crosswalk.replace", result, note)
        return _json(_change_json(result, entry=entry_to_dict(after)))

    async def delete(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        body = await _body(request)
        user, note = _author(request, body, str(body.get("note") or ""))
        key = _key(request)
        before = service.get(key)
        result = await service.delete(key, user=user, note=note)
        await _audited(request, "crosswalk.delete", result, note)
        return _json(_change_json(result, deleted=entry_to_dict(before)))

    async def audit(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        since = request.query.get("since", "")
        try:
            since_at = datetime.fromisoformat(since) if since else None
        except ValueError:
            raise _BadRequest([f"since={since!r} is not an ISO date-time"]) from None
        if since_at is not None and since_at.tzinfo is None:
            since_at = since_at.replace(tzinfo=CHINA_TZ)
        found = await service.audit(AuditQuery(
            hospital_id=_scope(request),
            item_code=request.query.get("item") or None,
            user=request.query.get("user") or None, since=since_at,
            limit=_query_int(request, "limit", 200, 1, 10_000)))
        return _json({"audit": [_audit_json(a) for a in found]})

    # --- files ---
    def _export_entries(request: web.Request) -> list[CrosswalkEntry]:
        return request.config_dict[MAPPINGS].search(hospital=_scope(request),
                                                    day=_query_date(request, "on"))

    def _chinese(request: web.Request, default: bool) -> bool:
        text = request.query.get("chinese", "")
        return default if not text else text.lower() in ("1", "true", "yes")

    async def export_csv(request: web.Request) -> web.Response:
        text = write_csv(_export_entries(request), chinese_headers=_chinese(request, False))
        # with a BOM: Excel opens UTF-8 CSV with Chinese text correctly only with one
        return web.Response(body=("\ufeff" + text).encode("utf-8"), content_type="text/csv",
                            charset="utf-8", headers={
                                "Content-Disposition": 'attachment; filename="crosswalk.csv"'})

    async def export_xlsx(request: web.Request) -> web.Response:
        buf = io.BytesIO()
        write_xlsx(_export_entries(request), buf, chinese_headers=_chinese(request, True))
        return web.Response(body=buf.getvalue(), content_type=_XLSX_TYPES[0], headers={
            "Content-Disposition": 'attachment; filename="crosswalk.xlsx"'})

    async def import_file(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        path, name, fields = await _upload(request)
        try:
            hospital = request.query.get("hospital") or fields.get("hospital") or None
            if path.suffix in (".xlsx", ".xlsm"):
                entries = read_xlsx(path, hospital_id=hospital)
            else:
                text = _decode_csv(path.read_bytes(), name)
                entries = read_csv(text, hospital_id=hospital)
        finally:
            path.unlink(missing_ok=True)
        user, note = _author(request, fields,
                             request.query.get("note") or fields.get("note") or f"imported {name}")
        _may_change(request, entries)
        result = await service.import_entries(entries, user=user, note=note)
        await _audited(request, "crosswalk.import", result, note)
        created = sum(1 for a in result.audit if a.record.before is None)
        return _json(_change_json(result, file=name, rows=len(entries), created=created,
                                  updated=len(result.audit) - created,
                                  unchanged=result.unchanged))

    # --- unmapped queue ---
    async def unmapped(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        limit = _query_int(request, "limit", 5, 0, 50)
        items, total, labels = await service.queue(
            hospital=_scope(request), limit=limit,
            max_items=_query_int(request, "items", 100, 1, 10_000))
        catalog: dict[str, Any] = {"versions": list(labels)}
        if not labels:
            catalog["message"] = ("no national catalog imported: items are listed without "
                                  "suggestions; import one with POST /api/mappings/catalogs "
                                  "(jicai-gateway catalog import FILE --version LABEL)")
        return _json({"catalog": catalog, "total": total,
                      "items": [_queue_json(q) for q in items]})

    async def accept(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        body = await _body(request)
        user, note = _author(request, body, str(body.get("note") or ""))
        rank = body.get("rank")
        if rank is not None and not isinstance(rank, int):
            raise _BadRequest([f"rank {rank!r} must be a whole number (1 = best)"])
        fields = ("factor", "hospital_unit", "national_unit", "item_name", "valid_from",
                  "valid_to")
        overrides: dict[str, Any] = {k: body[k] for k in fields if k in body}
        code = body.get("national_code")
        result = await service.accept(
            request.match_info["hospital"], request.match_info["item"],
            user=user, national_code=str(code).strip().upper() if code else None, rank=rank,
            overrides=overrides, note=note)
        how = f"suggestion rank {rank}" if rank is not None else f"national code {code}"
        await _audited(request, "crosswalk.accept", result, "; ".join(filter(None, (how, note))))
        after = result.audit[0].record.after
        return _json(_change_json(result, entry=entry_to_dict(after) if after else None), 201)

    # --- FHIR ---
    async def conceptmap(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        hospital = _scope(request)
        entries = service.search(hospital=hospital) if hospital else service.crosswalk
        return _json(to_concept_map(entries, day=_query_date(request, "date")))

    async def translate_op(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        code = request.query.get("code", "").strip()
        system = request.query.get("system", "").strip()
        problems = [f"{n} is required" for n, v in (("code", code), ("system", system)) if not v]
        if problems:
            raise _BadRequest(problems)
        day = _query_date(request, "date") or service.clock().date()
        return _json(translate(service.crosswalk, code, system, day=day,
                               target_system=request.query.get("targetsystem") or None))

    # --- catalogs ---
    async def import_catalog(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        path, name, fields = await _upload(request)
        try:
            version = (request.query.get("version") or fields.get("version")
                       or Path(name).stem).strip()
            kind = _catalog_kind(request.query.get("kind") or fields.get("kind", ""))
            replace = (request.query.get("replace") or fields.get("replace", "")).lower() in (
                "1", "true", "yes")
            result = await service.import_catalog(path, version=version, kind=kind,
                                                  source=name, replace=replace)
        finally:
            path.unlink(missing_ok=True)
        info = result.version
        await record(request, "catalog.import", target=f"{result.kind.value}/{info.version}",
                     after={"kind": result.kind.value, "version": info.version,
                            "entries": info.entries, "source": info.source,
                            "replaced": replace, "withdrawn_alerts": len(result.alerts)},
                     detail=f"national {result.kind.value} catalog {info.version} from {name}")
        return _json(_catalog_import_json(result), 201)

    async def catalogs(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        return _json({kind.value: [_version_json(v) for v in versions]
                      for kind, versions in (await service.versions()).items()})

    async def catalog_search(request: web.Request) -> web.Response:
        query = request.query.get("q", "").strip()
        if not query:
            raise _BadRequest(["q= is required: a national code, 本位码, 批准文号, name or "
                               "maker (several words must all be found)"])
        found = await request.config_dict[MAPPINGS].search_catalogs(
            query, _catalog_kind(request.query.get("kind", "")),
            _query_int(request, "limit", 50, 1, 500))
        return _json({"query": query, "hits": [
            {"kind": v.kind.value, "version": v.version, "reason": h.reason,
             **dataclasses.asdict(h.entry)} for v, h in found]})

    async def catalog_diff(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        old, new = request.query.get("from", ""), request.query.get("to", "")
        problems = [f"{n}= is required (a version label)" for n, v in (("from", old), ("to", new))
                    if not v]
        if problems:
            raise _BadRequest(problems)
        kind = _catalog_kind(request.query.get("kind", "")) or CatalogKind.DRUG
        limit = _query_int(request, "limit", 200, 0, 1_000_000)
        return _json(_diff_json(await service.diff(kind, old, new), limit))

    async def withdrawn(request: web.Request) -> web.Response:
        service = request.config_dict[MAPPINGS]
        alerts, compared = await service.withdrawn_alerts()
        out: dict[str, Any] = {"compared": compared, "alerts": [_alert_json(a) for a in alerts]}
        if not compared:
            out["message"] = "fewer than two versions of any catalog imported: nothing to compare"
        return _json(out)

    r = api.router
    r.add_get("/entries", list_entries)
    r.add_post("/entries", create)
    r.add_get("/entries/{hospital}/{item}", show)
    r.add_put("/entries/{hospital}/{item}", update)
    r.add_delete("/entries/{hospital}/{item}", delete)
    r.add_get("/audit", audit)
    r.add_get("/export.csv", export_csv)
    r.add_get("/export.xlsx", export_xlsx)
    r.add_post("/import", import_file)
    r.add_get("/unmapped", unmapped)
    r.add_post("/unmapped/{hospital}/{item}/accept", accept)
    r.add_get("/conceptmap", conceptmap)
    r.add_get("/$translate", translate_op)
    r.add_post("/catalogs", import_catalog)
    r.add_get("/catalogs", catalogs)
    r.add_get("/catalogs/diff", catalog_diff)
    r.add_get("/catalogs/search", catalog_search)
    r.add_get("/alerts/withdrawn", withdrawn)
    return api


def _catalog_import_json(result: CatalogImportResult, shown: int = 200) -> dict[str, Any]:
    imp = result.imported
    out: dict[str, Any] = {
        "kind": result.kind.value, **_version_json(result.version), "summary": imp.summary(),
        "rows_read": imp.rows_read,
        "columns": dict(imp.columns),  # field → the header it was read from
        "skipped_total": len(imp.skipped),
        "skipped": [{"row": s.row, "code": s.code, "reason": s.reason}
                    for s in imp.skipped[:shown]],
        "notes_total": len(imp.notes),
        "notes": [{"row": n.row, "code": n.code, "column": n.column, "note": n.note}
                  for n in imp.notes[:shown]],
        "diff": None if result.diff is None else _diff_json(result.diff, 0) | {
            "withdrawn": [_catalog_entry_json(e) for e in result.diff.withdrawn[:shown]]},
        "withdrawn_alerts": [_alert_json(a) for a in result.alerts],
    }
    return out
