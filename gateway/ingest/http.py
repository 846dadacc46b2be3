"""HTTP ingest: ``POST /ingest/{listener}`` for vendor XML / JSON and FHIR R4 under ``/fhir``.

Each request goes through the same pipeline as an MLLP frame (one at a time,
:meth:`~gateway.ingest.pipeline.Ingestor.handle`): commit before the 2xx.
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from adapters.base import Adapter
from adapters.fhir import capability_statement
from gateway.keys import CONFIG, HTTP_ADAPTERS, INGESTOR
from gateway.security.identity import request_identity

__all__ = ["add_ingest_routes"]

log = logging.getLogger(__name__)


async def _ingest(request: web.Request, adapter: Adapter) -> web.Response:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CONFIG].http.max_body_bytes
        log.warning("refused a body over %d bytes from %s for %s (%s bytes announced)",
                    limit, request.remote, adapter.name, request.content_length)
        return web.json_response(
            {"error": f"message body exceeds http.max_body_bytes ({limit} bytes)"}, status=413)
    # the authenticated caller (LOCAL on a gateway without identities: any hospital)
    reply = await request.app[INGESTOR].handle(adapter, raw, request.remote or "?",
                                               request_identity(request))
    ctype, _, params = reply.content_type.partition(";")
    charset = params.partition("charset=")[2].strip() or None
    return web.Response(body=reply.body, status=reply.status, content_type=ctype.strip(),
                        charset=charset, headers=dict(reply.headers))


async def ingest_http(request: web.Request) -> web.Response:
    """POST /ingest/{listener}: a message for an HTTP adapter (FHIR, vendor XML/JSON)."""
    name = request.match_info["listener"]
    adapters = request.app[HTTP_ADAPTERS]
    adapter = adapters.get(name)
    if adapter is None:
        known = ", ".join(sorted(adapters)) or "none configured"
        return web.json_response(
            {"error": f"no HTTP listener named {name!r} (listeners: {known})"}, status=404)
    return await _ingest(request, adapter)


def _fhir_adapter(request: web.Request) -> Adapter:
    for adapter in request.app[HTTP_ADAPTERS].values():
        if adapter.name == "fhir-r4":
            return adapter
    raise web.HTTPNotFound(text="no FHIR listener is configured (adapter: fhir-r4)")


def _outcome(status: int, code: str, text: str, expression: str = "") -> web.Response:
    issue: dict[str, object] = {"severity": "error", "code": code, "diagnostics": text}
    if expression:
        issue["expression"] = [expression]
    return web.json_response({"resourceType": "OperationOutcome", "issue": [issue]},
                             status=status, content_type="application/fhir+json")


async def fhir_post(request: web.Request) -> web.Response:
    """POST /fhir (Bundle) and POST /fhir/{type} (one resource of that type)."""
    adapter = _fhir_adapter(request)
    rtype = request.match_info.get("type")
    if rtype:
        try:
            declared = orjson.loads(await request.read()).get("resourceType")
        except (orjson.JSONDecodeError, AttributeError):
            declared = None  # the adapter names the problem
        if declared is not None and declared != rtype:
            return _outcome(400, "invalid", f"resourceType {declared!r} posted to /fhir/{rtype}",
                            "resourceType")
    return await _ingest(request, adapter)


async def fhir_metadata(request: web.Request) -> web.Response:
    """GET /fhir/metadata: the CapabilityStatement."""
    _fhir_adapter(request)
    base = f"{request.scheme}://{request.host}/fhir"
    return web.json_response(capability_statement(base), content_type="application/fhir+json")


def add_ingest_routes(app: web.Application) -> None:
    """Register the HTTP ingest and FHIR routes on the gateway's app."""
    app.router.add_post("/ingest/{listener}", ingest_http)
    app.router.add_post("/fhir", fhir_post)
    app.router.add_post("/fhir/{type}", fhir_post)
    app.router.add_get("/fhir/metadata", fhir_metadata)
