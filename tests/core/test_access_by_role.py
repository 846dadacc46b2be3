"""Every route of the application, tried by every role: generated from the route table,
so that a route added without a rule in the policy is caught here (it is admin-only)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from helpers import HOSPITAL, HTTP_LISTENERS, config_dict, free_port

from gateway.app import build_app
from gateway.config import ROLES, parse_config
from gateway.security.access import CDS, PUBLIC, allowed_roles
from gateway.security.identity import hash_token, new_token

TOKENS = {role: new_token() for role in ROLES}
OTHER_HOSPITAL = "H44010600022"
# a pharmacist and an auditor of one hospital only
LIMITED = new_token()
LIMITED_AUDITOR = new_token()

SAMPLE_PARAMS = {"hospital": HOSPITAL, "hospital_id": HOSPITAL, "item": "XJ-0001",
                 "listener": "spd-json", "type": "MedicationDispense", "id": "1",
                 "service_id": "jicai-order-select"}


def _config(tmp: Path, **security: object) -> dict[str, object]:
    sim = free_port()
    cfg = config_dict(tmp, mllp_port=free_port(), http_port=0, simulator_port=sim,
                      platform_url=f"http://127.0.0.1:{sim}/fsi/api/x")
    cfg["listeners"] = [*cfg["listeners"], *HTTP_LISTENERS]  # type: ignore[misc]
    identities = [{"name": f"{role}-1", "role": role, "token_sha256": hash_token(tok)}
                  for role, tok in TOKENS.items()]
    identities.append({"name": "pharmacist-zj", "role": "pharmacist",
                       "token_sha256": hash_token(LIMITED), "hospitals": [HOSPITAL]})
    identities.append({"name": "auditor-zj", "role": "auditor",
                       "token_sha256": hash_token(LIMITED_AUDITOR), "hospitals": [HOSPITAL]})
    cfg["security"] = {"identities": identities, **security}
    return cfg


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestServer]:
    srv = TestServer(build_app(parse_config(_config(tmp_path), "test.yaml")), host="127.0.0.1")
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


def _routes(app: web.Application) -> list[tuple[str, str]]:
    seen = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.PrefixedSubAppResource):
            continue
        if route.method in ("HEAD", "*"):
            continue
        seen.append((route.method, resource.canonical))
    return sorted(set(seen))


def _path(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS[m.group(1)], template)


async def _status(session: aiohttp.ClientSession, server: TestServer, method: str, path: str,
                  token: str | None) -> int:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with session.request(method, server.make_url(path), headers=headers, json={}) as r:
        return r.status


async def test_every_route_needs_an_identity_and_a_role_that_may_use_it(
        server: TestServer) -> None:
    routes = _routes(server.app)
    assert len(routes) > 30  # the whole application, sub-applications included
    checked = 0
    async with aiohttp.ClientSession() as s:
        for method, template in routes:
            roles = allowed_roles(method, template)
            path = _path(template)
            if roles in (PUBLIC, CDS):
                continue
            checked += 1
            assert await _status(s, server, method, path, None) == 401, (method, template)
            assert await _status(s, server, method, path, "jcgw_not-a-token") == 401
            for role, token in TOKENS.items():
                status = await _status(s, server, method, path, token)
                if role in roles:
                    assert status not in (401, 403), (method, template, role, status)
                else:
                    assert status == 403, (method, template, role, status)
    assert checked > 25


async def test_only_the_documented_routes_are_public(server: TestServer) -> None:
    public = {t for m, t in _routes(server.app) if allowed_roles(m, t) is PUBLIC}
    assert {t for t in public if not t.startswith("/console")} == {
        "/healthz", "/readyz", "/metrics", "/openapi.json"}
    cds = {t for m, t in _routes(server.app) if allowed_roles(m, t) is CDS}
    assert cds and all(t.startswith("/cds-services") for t in cds)


def test_a_route_no_rule_names_is_for_admin_only() -> None:
    assert allowed_roles("POST", "/api/some-new-route") == {"admin"}
    assert allowed_roles("GET", "/ledger/report/{hospital_id}") >= {"procurement", "auditor"}
    assert "auditor" not in allowed_roles("POST", "/api/replay")
    assert allowed_roles("POST", "/ingest/{listener}") == {"sender", "admin"}


async def test_probes_can_be_closed(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    cfg["http"] = {"host": "127.0.0.1", "port": 0, "public_probes": False}
    srv = TestServer(build_app(parse_config(cfg, "test.yaml")), host="127.0.0.1")
    await srv.start_server()
    try:
        async with aiohttp.ClientSession() as s:
            assert await _status(s, srv, "GET", "/metrics", None) == 401
            assert await _status(s, srv, "GET", "/metrics", TOKENS["auditor"]) == 200
            assert await _status(s, srv, "GET", "/healthz", TOKENS["sender"]) == 403
    finally:
        await srv.close()


async def test_an_identity_limited_to_a_hospital_cannot_act_for_another(
        server: TestServer) -> None:
    async with aiohttp.ClientSession() as s:
        own = await _status(s, server, "GET", f"/api/mappings/unmapped?hospital={HOSPITAL}",
                            LIMITED)
        other = await _status(s, server, "GET",
                              f"/api/mappings/unmapped?hospital={OTHER_HOSPITAL}", LIMITED)
        assert own == 200
        assert other == 403
        entry = f"/api/mappings/entries/{OTHER_HOSPITAL}/XJ-0001"
        assert await _status(s, server, "DELETE", entry, LIMITED) == 403


async def test_refusals_are_counted_and_say_what_to_send(server: TestServer) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(server.make_url("/api/unmapped")) as r:
            assert r.status == 401
            assert "Bearer" in r.headers["WWW-Authenticate"]
            assert "Authorization: Bearer" in (await r.json())["error"]
        async with s.post(server.make_url("/api/replay"), json={},
                          headers={"Authorization": f"Bearer {TOKENS['auditor']}"}) as r:
            assert r.status == 403
            text = (await r.json())["error"]
            assert "auditor-1" in text and "admin" in text
        async with s.get(server.make_url("/metrics")) as r:
            body = await r.text()
    assert 'jcgw_http_requests_refused_total{reason="unauthenticated"} 1.0' in body
    assert 'jcgw_http_requests_refused_total{reason="forbidden_role"} 1.0' in body


async def test_tokens_rotate_through_the_identities_file_without_a_restart(
        tmp_path: Path) -> None:
    old, new = new_token(), new_token()
    ids = tmp_path / "identities.yaml"
    ids.write_text(f"- {{name: hisjk, role: pharmacist, token_sha256: {hash_token(old)}}}\n",
                   "utf-8")
    cfg = _config(tmp_path, identities_file=str(ids))
    srv = TestServer(build_app(parse_config(cfg, "test.yaml")), host="127.0.0.1")
    await srv.start_server()
    try:
        async with aiohttp.ClientSession() as s:
            assert await _status(s, srv, "GET", "/api/unmapped", old) == 200
            assert await _status(s, srv, "GET", "/api/unmapped", new) == 401
            ids.write_text("- {name: hisjk, role: pharmacist, token_sha256: "
                           f"[{hash_token(new)}]}}\n", "utf-8")
            import asyncio
            for _ in range(30):  # the file is looked at once a second at most
                if await _status(s, srv, "GET", "/api/unmapped", new) == 200:
                    break
                await asyncio.sleep(0.1)
            assert await _status(s, srv, "GET", "/api/unmapped", new) == 200
            assert await _status(s, srv, "GET", "/api/unmapped", old) == 401
            # a broken file keeps the identities in force
            ids.write_text("- {name: hisjk, role: nobody}\n", "utf-8")
            await asyncio.sleep(1.1)
            assert await _status(s, srv, "GET", "/api/unmapped", new) == 200
    finally:
        await srv.close()


async def test_a_limited_identity_reads_and_changes_only_its_own_hospitals_crosswalk(
        server: TestServer) -> None:
    auth = {"Authorization": f"Bearer {LIMITED}"}
    entry = {"hospital_id": OTHER_HOSPITAL, "item_code": "Y0077001",
             "national_code": "XL02BBB011A001010104138", "item_name": "比卡鲁胺片 50mg*28片",
             "hospital_unit": "盒", "national_unit": "片", "factor": "28",
             "valid_from": "2026-01-01"}
    async with aiohttp.ClientSession() as s, s.post(
            server.make_url("/api/mappings/entries"), json={**entry, "item_code": "Y0077002"},
            headers={"Authorization": f"Bearer {TOKENS['admin']}"}) as r:
        assert r.status == 201  # the other hospital has a crosswalk too
    async with aiohttp.ClientSession(headers=auth) as s:
        async with s.post(server.make_url("/api/mappings/entries"), json=entry) as r:
            assert r.status == 403
            assert OTHER_HOSPITAL in (await r.json())["problems"][0]
        csv = ("hospital_id,item_code,national_code,item_name,hospital_unit,national_unit,"
               "factor,valid_from,valid_to\n"
               f"{OTHER_HOSPITAL},Y0077001,XL02BBB011A001010104138,比卡鲁胺片,盒,片,28,"
               "2026-01-01,\n").encode()
        async with s.post(server.make_url("/api/mappings/import?format=csv"), data=csv,
                          headers={"Content-Type": "text/csv"}) as r:
            assert r.status == 403
        async with s.get(server.make_url("/api/mappings/entries?limit=10000")) as r:
            listed = (await r.json())["entries"]
        assert listed and {e["hospital_id"] for e in listed} == {HOSPITAL}
        async with s.post(server.make_url("/api/mappings/entries"),
                          json={**entry, "hospital_id": HOSPITAL}) as r:
            assert r.status == 201


async def test_a_limited_auditor_reads_only_its_hospitals_audit_entries(
        server: TestServer) -> None:
    entry = {"hospital_id": OTHER_HOSPITAL, "item_code": "Y0077003",
             "national_code": "XL02BBB011A001010104138", "item_name": "比卡鲁胺片 50mg*28片",
             "hospital_unit": "盒", "national_unit": "片", "factor": "28",
             "valid_from": "2026-01-01"}
    admin = {"Authorization": f"Bearer {TOKENS['admin']}"}
    async with aiohttp.ClientSession(headers=admin) as s:
        for hospital in (HOSPITAL, OTHER_HOSPITAL):
            async with s.post(server.make_url("/api/mappings/entries"),
                              json={**entry, "hospital_id": hospital}) as r:
                assert r.status == 201
        async with s.get(server.make_url("/api/audit-log?limit=1000")) as r:
            everything = (await r.json())["entries"]
    assert {e["hospital_id"] for e in everything} >= {HOSPITAL, OTHER_HOSPITAL}
    limited = {"Authorization": f"Bearer {LIMITED_AUDITOR}"}
    async with aiohttp.ClientSession(headers=limited) as s:
        async with s.get(server.make_url("/api/audit-log?limit=1000")) as r:
            own = (await r.json())["entries"]
        async with s.get(server.make_url(
                f"/api/audit-log?hospital={OTHER_HOSPITAL}")) as r:
            assert r.status == 403
    assert own and {e["hospital_id"] for e in own} == {HOSPITAL}
