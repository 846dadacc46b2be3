"""The OpenAPI 3.1 document of the gateway's HTTP interface, served at ``GET /openapi.json``.

The paths, parameters and schemas are data (``openapi.yaml`` beside this module, shipped
with the package). Who may call each operation is not written there but taken from the
access policy (:func:`~gateway.security.access.allowed_roles`) when the document is
built, so the document cannot drift from what the middleware enforces. A gateway
describes only the routes it serves: with the ledger or CDS disabled, theirs are left out.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

from gateway.keys import CONFIG
from gateway.security.access import CDS, PUBLIC, allowed_roles

__all__ = ["SPEC_FILE", "add_openapi_route", "document", "route_table", "spec"]

SPEC_FILE = Path(__file__).with_name("openapi.yaml")
_METHODS = ("get", "put", "post", "delete", "patch")
_AUTHENTICATED: list[dict[str, list[str]]] = [{"bearer": []}, {"mutualTLS": []}]


@functools.cache
def _loaded() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SPEC_FILE.read_text("utf-8"))
    return data


def spec() -> dict[str, Any]:
    """The document as written, every path of a gateway with every feature enabled."""
    return copy.deepcopy(_loaded())


def route_table(app: web.Application) -> dict[tuple[str, str], str]:
    """``(method, OpenAPI path) → route template`` for every route of ``app``, its
    sub-applications included; HEAD is GET's twin and not listed."""
    table: dict[tuple[str, str], str] = {}
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.PrefixedSubAppResource):
            continue  # a sub-application's own routes are listed by the router too
        if route.method in ("HEAD", "*"):
            continue
        template = resource.canonical
        path = template
        if isinstance(resource, web.StaticResource):
            path = f"{template}/{{filename}}"  # the policy sees the prefix, callers a file
        table[(route.method.lower(), path)] = template
    return table


def _with_access(op: dict[str, Any], roles: frozenset[str]) -> None:
    responses = op.setdefault("responses", {})
    if roles is PUBLIC:
        op["x-roles"] = ["public"]
        op["security"] = []
        return
    if roles is CDS:
        op["x-roles"] = ["cds"]
        op["security"] = [{"cdsJwt": []}, {}]  # without cds.require_auth, none
        return
    op["x-roles"] = sorted(roles)
    op["security"] = _AUTHENTICATED
    responses.setdefault("401", {"$ref": "#/components/responses/Unauthorized"})
    responses.setdefault("403", {"$ref": "#/components/responses/Forbidden"})
    op["description"] = (op.get("description", "") +
                         f"\n\nRoles: {', '.join(sorted(roles))}.").strip()


def document(app: web.Application) -> dict[str, Any]:
    """The document for ``app``: its routes only, each with the roles that may call it
    (``x-roles``, ``security``) under the application's ``http.public_probes``."""
    cfg = app.get(CONFIG)
    public_probes = True if cfg is None else cfg.http.public_probes
    routes = route_table(app)
    doc = spec()
    paths: dict[str, Any] = {}
    for path, item in doc["paths"].items():
        kept = {k: v for k, v in item.items() if k not in _METHODS}
        for method in _METHODS:
            if method not in item or (method, path) not in routes:
                continue
            op = item[method]
            _with_access(op, allowed_roles(method.upper(), routes[(method, path)],
                                           public_probes=public_probes))
            kept[method] = op
        if any(m in kept for m in _METHODS):
            paths[path] = kept
    doc["paths"] = paths
    return doc


def add_openapi_route(app: web.Application) -> None:
    """``GET /openapi.json``: built at the first request, once every route is in place."""
    built: list[bytes] = []

    async def openapi_json(request: web.Request) -> web.Response:
        if not built:
            built.append(orjson.dumps(document(request.app)))
        return web.Response(body=built[0], content_type="application/json")

    app.router.add_get("/openapi.json", openapi_json)
