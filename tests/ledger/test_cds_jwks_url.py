"""CDS clients whose keys live at a JWKS URL: fetched, cached, rotated, jku checked."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from ledger_helpers import DATA, HOSPITAL, cst

from gateway.cds import CdsSettings, TrustedClient, cds_app

BASE = "https://gateway.example.local/cds-services"
ISS = "https://his.example.local"
REQUEST = orjson.loads((DATA / "order_sign_request.json").read_bytes())


def _jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": kid, "alg": "ES384", "use": "sig"})
    return jwk


def _token(key: ec.EllipticCurvePrivateKey, kid: str, **header: str) -> str:
    now = int(time.time())
    claims = {"iss": ISS, "sub": "his-client", "aud": f"{BASE}/jicai-order-sign", "iat": now,
              "exp": now + 120, "jti": str(uuid.uuid4())}
    return jwt.encode(claims, key, algorithm="ES384", headers={"kid": kid, **header})


@pytest.fixture
async def keyserver(aiohttp_server):  # type: ignore[no-untyped-def]
    """The HIS's JWKS endpoint on the hospital network: serves whatever ``state`` holds."""
    state: dict[str, Any] = {"keys": [], "hits": 0, "status": 200}

    async def jwks(_: web.Request) -> web.Response:
        state["hits"] += 1
        return web.json_response({"keys": state["keys"]}, status=state["status"])

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    server = await aiohttp_server(app)
    state["url"] = str(server.make_url("/.well-known/jwks.json"))
    return state


@pytest.fixture(params=[0.0])
async def cds(request, ledger, keyserver, aiohttp_client):  # type: ignore[no-untyped-def]
    settings = CdsSettings(
        clients={ISS: TrustedClient(ISS, {"keys": []}, hospital_id=HOSPITAL,
                                    jwks_url=keyserver["url"])},
        public_base_url=BASE, clock=lambda: cst(2026, 7, 2, 10),
        jwks_min_refetch_s=request.param)

    async def no_fetch(server: str, query: str, auth: Any) -> Any:
        raise LookupError("unreachable")

    app = web.Application()
    app.add_subapp("/cds-services", cds_app(ledger, settings, fetch=no_fetch))
    return await aiohttp_client(app)


async def _sign(cds, token: str) -> int:  # type: ignore[no-untyped-def]
    resp = await cds.post("/cds-services/jicai-order-sign", data=orjson.dumps(REQUEST),
                          headers={"Authorization": f"Bearer {token}"})
    return int(resp.status)


async def test_keys_are_fetched_once_and_a_rotated_key_is_fetched_again(cds, keyserver) -> None:
    first, second = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(
        ec.SECP384R1())
    keyserver["keys"] = [_jwk(first, "his-2026")]
    assert await _sign(cds, _token(first, "his-2026")) == 200
    assert await _sign(cds, _token(first, "his-2026")) == 200
    assert keyserver["hits"] == 1  # cached
    # the HIS rotates its key: a token with the new kid makes the gateway look again
    keyserver["keys"] = [_jwk(second, "his-2027")]
    assert await _sign(cds, _token(second, "his-2027")) == 200
    assert keyserver["hits"] == 2
    assert await _sign(cds, _token(first, "his-2026")) == 401  # the old key is gone


async def test_only_the_configured_jku_is_followed(cds, keyserver) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    keyserver["keys"] = [_jwk(key, "his-2026")]
    elsewhere = "https://attacker.example/jwks.json"
    assert await _sign(cds, _token(key, "his-2026", jku=elsewhere)) == 401
    assert keyserver["hits"] == 0  # refused before anything was fetched
    assert await _sign(cds, _token(key, "his-2026", jku=keyserver["url"])) == 200


async def test_an_unreachable_key_set_refuses_with_the_reason(cds, keyserver) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    keyserver["status"] = 503
    resp = await cds.post("/cds-services/jicai-order-sign", data=orjson.dumps(REQUEST),
                          headers={"Authorization": f"Bearer {_token(key, 'his-2026')}"})
    assert resp.status == 401
    assert "key set is unavailable" in (await resp.json())["error"]  # details only in the log
    keyserver["status"], keyserver["keys"] = 200, [_jwk(key, "his-2026")]
    assert await _sign(cds, _token(key, "his-2026")) == 200  # back once the HIS answers


@pytest.mark.parametrize("cds", [30.0], indirect=True)
async def test_made_up_key_ids_cannot_make_the_gateway_fetch_again_and_again(cds, keyserver
                                                                            ) -> None:
    import asyncio

    key, other = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(
        ec.SECP384R1())
    keyserver["keys"] = [_jwk(key, "his-2026")]
    assert await _sign(cds, _token(key, "his-2026")) == 200
    assert keyserver["hits"] == 1
    # unknown kids, one after another and twenty at once: within the 30 s refetch limit
    # the set is not asked for again, and the tokens are refused
    assert await _sign(cds, _token(other, "forged-1")) == 401
    statuses = await asyncio.gather(*(_sign(cds, _token(other, f"forged-{i}"))
                                      for i in range(20)))
    assert set(statuses) == {401}
    assert keyserver["hits"] == 1
    assert await _sign(cds, _token(key, "his-2026")) == 200  # the real key still works


async def test_a_key_set_without_usable_keys_is_refused_not_an_error(cds, keyserver) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    keyserver["keys"] = [{"kty": "XYZ", "kid": "his-2026", "x": "AAAA"}]
    assert await _sign(cds, _token(key, "his-2026")) == 401
