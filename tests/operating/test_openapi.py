"""The OpenAPI document: every route of the application described, nothing described that
the application does not serve, the roles taken from the access policy, and a valid
OpenAPI 3.1 document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from helpers import HTTP_LISTENERS, config_dict, free_port
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from gateway.app import build_app
from gateway.config import parse_config
from gateway.openapi import document, route_table, spec
from gateway.security.access import allowed_roles


def _app(tmp: Path, **extra: Any) -> web.Application:
    sim = free_port()
    cfg = config_dict(tmp, mllp_port=free_port(), http_port=0, simulator_port=sim,
                      platform_url=f"http://127.0.0.1:{sim}/fsi/api/x", **extra)
    cfg["listeners"] = [*cfg["listeners"], *HTTP_LISTENERS]
    return build_app(parse_config(cfg, "test.yaml"))


def _described(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m, p) for p, item in doc["paths"].items() for m in item
            if m in ("get", "put", "post", "delete", "patch")}


def test_every_route_is_described_and_nothing_else(tmp_path: Path) -> None:
    served = set(route_table(_app(tmp_path)))
    described = _described(spec())
    assert len(served) > 35
    assert served - described == set(), "routes without a description in gateway/openapi.yaml"
    assert described - served == set(), "described but not served"


def test_a_gateway_describes_only_what_it_serves(tmp_path: Path) -> None:
    app = _app(tmp_path, ledger={"enabled": False}, cds={"enabled": False})
    doc = document(app)
    assert _described(doc) == set(route_table(app))
    assert not any(p.startswith(("/ledger", "/cds-services")) for p in doc["paths"])


def test_roles_come_from_the_access_policy(tmp_path: Path) -> None:
    app = _app(tmp_path)
    routes = route_table(app)
    doc = document(app)
    for (method, path), template in routes.items():
        op = doc["paths"][path][method]
        roles = allowed_roles(method.upper(), template)
        if op["x-roles"] in (["public"], ["cds"]):
            assert op["security"] in ([], [{"cdsJwt": []}, {}])
            continue
        assert set(op["x-roles"]) == roles, (method, path)
        assert {"401", "403"} <= set(op["responses"]), (method, path)
    assert doc["paths"]["/api/replay"]["post"]["x-roles"] == ["admin"]
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    assert doc["paths"]["/openapi.json"]["get"]["x-roles"] == ["public"]


def test_the_document_is_valid_openapi_3_1(tmp_path: Path) -> None:
    doc = document(_app(tmp_path))
    assert doc["openapi"].startswith("3.1")
    validate(doc)  # raises, naming the place, when it is not
    assert set(doc["components"]["securitySchemes"]) >= {"bearer", "mutualTLS"}
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]
    broken = spec()
    broken["paths"]["/healthz"]["get"]["responses"] = {"200": {"content": {}}}
    with pytest.raises(OpenAPIValidationError):  # the validator does look
        validate(broken)


def test_every_reference_resolves() -> None:
    doc = spec()
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                refs.append(ref)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(doc)
    assert refs
    for ref in refs:
        target: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict), ref


async def test_served_publicly_as_json(tmp_path: Path) -> None:
    server = TestServer(_app(tmp_path, security={"identities": [
        {"name": "a", "role": "admin", "token_sha256": "0" * 64}]}), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as s, s.get(server.make_url("/openapi.json")) as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            doc = await r.json()
    finally:
        await server.close()
    assert "/api/mappings/entries/{hospital}/{item}" in doc["paths"]
    assert doc["paths"]["/api/unmapped"]["get"]["x-roles"] == [
        "admin", "auditor", "pharmacist", "procurement"]
