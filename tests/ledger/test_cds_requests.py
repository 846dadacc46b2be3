"""CDS Hooks requests as clients send them: null prefetch, no encounter, medication
references, malformed shapes, the bearer scheme's case, and which FHIR servers the
service may fetch from (loopback servers stand in for the hospital's)."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from ledger_helpers import DATA, EXEMESTANE_PFIZER, EXEMESTANE_WIN, HOSPITAL, cst, event, fold

from canonical.model import EventKind
from gateway.cds import CdsSettings, TrustedClient, cds_app
from gateway.cds.service import _default_fetch, allowed_fhir_server

BASE = "https://gateway.example.local/cds-services"
ISS = "https://his.example.local"
FHIR = "https://his.example.local/fhir"
REQUEST = orjson.loads((DATA / "order_sign_request.json").read_bytes())


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def token(key) -> Callable[..., str]:
    def make(aud: str = f"{BASE}/jicai-order-sign") -> str:
        now = int(time.time())
        claims = {"iss": ISS, "sub": "his", "aud": aud, "iat": now, "exp": now + 120,
                  "jti": str(uuid.uuid4())}
        return jwt.encode(claims, key, algorithm="ES384", headers={"kid": "his-2026"})
    return make


@pytest.fixture
def fetched() -> list[tuple[str, str, Any]]:
    return []


@pytest.fixture
async def client(ledger, key, aiohttp_client, fetched):
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "his-2026", "alg": "ES384", "use": "sig"})
    settings = CdsSettings(
        clients={ISS: TrustedClient(ISS, {"keys": [jwk]}, hospital_id=HOSPITAL,
                                    fhir_servers=(FHIR,))},
        public_base_url=BASE, clock=lambda: cst(2026, 7, 2, 10))

    async def fetch(server: str, query: str, auth: Any) -> Any:
        fetched.append((server, query, auth))
        return {"resourceType": "Encounter", "serviceProvider": {"display": "泌尿外科"}}

    app = web.Application()
    app.add_subapp("/cds-services", cds_app(ledger, settings, fetch=fetch))
    # lagging: 10000 of 36000 on 2026-07-02, so the non-winning product gets a card
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 10000, "2.1350")],
                              at=cst(2026, 3, 1))])
    return await aiohttp_client(app)


async def _sign(client, token, req: dict[str, Any], scheme: str = "Bearer"
                ) -> tuple[int, Any]:
    resp = await client.post("/cds-services/jicai-order-sign", data=orjson.dumps(req),
                             headers={"Authorization": f"{scheme} {token()}"})
    return resp.status, await resp.json()


async def _departments(ledger) -> list[str]:
    return [card.department for card, _ in await ledger.cds.feedback_rows()]


def _lagging(cards: list[dict[str, Any]]) -> dict[str, Any]:
    [card] = [c for c in cards if c["source"]["topic"]["code"] == "nonwinning-while-lagging"]
    return card


async def test_a_null_prefetch_is_no_data_not_a_412(client, token, ledger, fetched):
    req = copy.deepcopy(REQUEST)
    req["prefetch"]["encounter"] = None
    req["fhirServer"] = FHIR
    status, body = await _sign(client, token, req)
    assert status == 200, body
    assert _lagging(body["cards"])
    assert fetched == []  # null: the client has no such data, nothing to fetch
    assert await _departments(ledger) == [""]


async def test_an_order_without_an_encounter_gets_cards_without_a_department(
        client, token, ledger, fetched):
    req = copy.deepcopy(REQUEST)
    del req["prefetch"]
    del req["context"]["encounterId"]
    req["fhirServer"] = FHIR
    status, body = await _sign(client, token, req)
    assert status == 200, body
    assert _lagging(body["cards"])
    assert fetched == [] and await _departments(ledger) == [""]


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
async def test_the_bearer_scheme_is_case_insensitive(client, token, scheme):
    status, _ = await _sign(client, token, REQUEST, scheme)
    assert status == 200


def _by_reference(req: dict[str, Any], reference: str) -> dict[str, Any]:
    mr = req["context"]["draftOrders"]["entry"][0]["resource"]
    del mr["medicationCodeableConcept"]
    mr["medicationReference"] = {"reference": reference}
    return mr


async def test_a_medication_reference_to_a_contained_medication_is_resolved(client, token):
    req = copy.deepcopy(REQUEST)
    mr = _by_reference(req, "#med-1")
    mr["contained"] = [{"resourceType": "Medication", "id": "med-1", "code": {
        "coding": [{"system": "http://www.nhsa.gov.cn/CodeSystem/drug",
                    "code": EXEMESTANE_PFIZER}], "text": "依西美坦片 25mg"}}]
    status, body = await _sign(client, token, req)
    assert status == 200, body
    [suggestion] = _lagging(body["cards"])["suggestions"]
    resource = suggestion["actions"][0]["resource"]
    assert resource["medicationCodeableConcept"]["coding"][0]["code"] == EXEMESTANE_WIN
    assert "medicationReference" not in resource


async def test_a_medication_reference_to_a_prefetched_medication_is_resolved(client, token):
    req = copy.deepcopy(REQUEST)
    _by_reference(req, "Medication/m-8841")
    req["prefetch"]["medications"] = {"resourceType": "Bundle", "entry": [{"resource": {
        "resourceType": "Medication", "id": "m-8841", "code": {"coding": [
            {"system": "http://www.nhsa.gov.cn/CodeSystem/drug",
             "code": EXEMESTANE_PFIZER}]}}}]}
    status, body = await _sign(client, token, req)
    assert status == 200, body
    assert _lagging(body["cards"])


@pytest.mark.parametrize(("path", "value", "message"), [
    (("medicationCodeableConcept",), "依西美坦片", "medicationCodeableConcept must be an object"),
    (("medicationCodeableConcept",), [1], "medicationCodeableConcept must be an object"),
    (("medicationCodeableConcept", "coding"), {"code": "x"}, "coding must be an array"),
    (("dispenseRequest",), 30, "dispenseRequest must be an object"),
])
async def test_malformed_orders_are_400_with_a_message(client, token, path, value, message):
    req = copy.deepcopy(REQUEST)
    node = req["context"]["draftOrders"]["entry"][0]["resource"]
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    status, body = await _sign(client, token, req)
    assert status == 400
    assert message in body["error"] and "MedicationRequest/rx-1" in body["error"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda req: req["context"]["draftOrders"].__setitem__("entry", 7),
     "context.draftOrders.entry must be an array"),
    (lambda req: req["context"]["draftOrders"].__setitem__("entry", {"resource": {}}),
     "context.draftOrders.entry must be an array"),
    (lambda req: _by_reference(req, "#med-1").__setitem__("contained", 1),
     "MedicationRequest/rx-1.contained must be an array"),
    (lambda req: (_by_reference(req, "Medication/m-8841"), req["prefetch"].__setitem__(
        "medications", {"resourceType": "Bundle", "entry": 3})),
     "prefetch.medications.entry must be an array"),
    (lambda req: (req.pop("prefetch"), req.__setitem__("fhirServer", FHIR),
                  req.__setitem__("fhirAuthorization", {"access_token": 5})),
     "fhirAuthorization.access_token must be a string"),
])
async def test_malformed_containers_are_400_naming_the_field(client, token, change, message):
    req = copy.deepcopy(REQUEST)
    change(req)
    status, body = await _sign(client, token, req)
    assert status == 400, body
    assert message in body["error"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("overrideReason", "临床必需", "feedback[0].overrideReason must be an object"),
    ("overrideReason", {"reason": "clinical-necessity"},
     "feedback[0].overrideReason.reason must be a Coding object"),
    ("acceptedSuggestions", "s-1", "feedback[0].acceptedSuggestions must be an array"),
])
async def test_malformed_feedback_is_400_with_a_message(client, token, field, value, message):
    _, body = await _sign(client, token, REQUEST)
    fb = {"feedback": [{"card": body["cards"][0]["uuid"], "outcome": "overridden",
                        field: value}]}
    resp = await client.post("/cds-services/jicai-order-sign/feedback", data=orjson.dumps(fb),
                             headers={"Authorization": "Bearer "
                                      + token(f"{BASE}/jicai-order-sign/feedback")})
    assert resp.status == 400
    assert message in (await resp.json())["error"]


async def test_the_fhir_server_is_fetched_only_when_configured_and_ids_are_escaped(
        client, token, fetched):
    req = copy.deepcopy(REQUEST)
    del req["prefetch"]
    req["fhirServer"] = "https://attacker.example/fhir"
    req["fhirAuthorization"] = {"access_token": "t0k", "token_type": "Bearer"}
    status, body = await _sign(client, token, req)
    assert status == 412 and "not a FHIR server configured" in body["error"]
    assert fetched == []
    req["fhirServer"] = FHIR + "/"
    req["context"]["encounterId"] = "E-2026.07-1"
    status, body = await _sign(client, token, req)
    assert status == 200, body
    assert fetched == [(FHIR + "/", "Encounter/E-2026.07-1",
                        {"access_token": "t0k", "token_type": "Bearer"})]


@pytest.mark.parametrize("encounter_id", [
    "..", ".", "a/b", "../Patient/P0000917?_format=json", "E%2F1", "x" * 65])
async def test_an_encounter_id_that_is_not_a_fhir_id_is_400_and_nothing_is_fetched(
        ledger, key, aiohttp_client, aiohttp_server, token, encounter_id):
    hits: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        return web.json_response({"resourceType": "Encounter"})

    fhir_app = web.Application()
    fhir_app.router.add_get("/{tail:.*}", anything)
    fhir = await aiohttp_server(fhir_app)
    base = f"http://127.0.0.1:{fhir.port}/fhir"
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "his-2026", "alg": "ES384", "use": "sig"})
    settings = CdsSettings(
        clients={ISS: TrustedClient(ISS, {"keys": [jwk]}, hospital_id=HOSPITAL,
                                    fhir_servers=(base,))},
        public_base_url=BASE, clock=lambda: cst(2026, 7, 2, 10))
    app = web.Application()
    app.add_subapp("/cds-services", cds_app(ledger, settings))  # the real HTTP fetch
    gw = await aiohttp_client(app)
    req = copy.deepcopy(REQUEST)
    del req["prefetch"]
    req["fhirServer"] = base
    req["fhirAuthorization"] = {"access_token": "t0k", "token_type": "Bearer"}
    req["context"]["encounterId"] = "E1"
    status, _ = await _sign(gw, token, req)
    assert status == 200 and hits == ["/fhir/Encounter/E1"]  # the server does answer
    hits.clear()
    req["context"]["encounterId"] = encounter_id
    status, body = await _sign(gw, token, req)
    assert status == 400, body
    assert "context.encounterId must be a FHIR id" in body["error"]
    assert hits == []


def test_allowed_fhir_servers():
    assert allowed_fhir_server(FHIR, (FHIR + "/",))
    assert not allowed_fhir_server(FHIR + "2", (FHIR,))
    assert not allowed_fhir_server("https://his.example.local", (FHIR,))
    assert not allowed_fhir_server("", ("",))


async def test_the_fetch_follows_no_redirect_and_caps_the_size(aiohttp_server):
    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPFound("/elsewhere/Encounter/E1")

    async def elsewhere(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"resourceType": "Encounter"})

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)  # chunked: no Content-Length to refuse early
        for _ in range(20):
            await resp.write(b" " * 1000)
        await resp.write(b"{}")
        return resp

    app = web.Application()
    app.router.add_get("/fhir/Encounter/E1", redirect)
    app.router.add_get("/elsewhere/Encounter/E1", elsewhere)
    app.router.add_get("/big/Encounter/E1", big)
    server = await aiohttp_server(app)
    base = f"http://127.0.0.1:{server.port}"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(LookupError, match="answered 302"):
            await _default_fetch(session, f"{base}/fhir", "Encounter/E1",
                                 {"access_token": "t0k"}, 2.0)
        assert hits == ["/fhir/Encounter/E1"]  # the redirect was not followed
        with pytest.raises(LookupError, match="exceeds 10000 bytes"):
            await _default_fetch(session, f"{base}/big", "Encounter/E1", None, 2.0, 10_000)
        assert await _default_fetch(session, f"{base}/big", "Encounter/E1", None, 2.0,
                                    100_000) == {}


async def test_a_second_answer_keeps_the_recorded_override_reason(client, token, ledger):
    _, body = await _sign(client, token, REQUEST)
    card = _lagging(body["cards"])
    answers = [
        {"card": card["uuid"], "outcome": "overridden",
         "overrideReason": {"reason": card["overrideReasons"][0], "userComment": "既往用药"},
         "outcomeTimestamp": "2026-07-02T10:00:05+08:00"},
        {"card": card["uuid"], "outcome": "accepted",
         "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
         "outcomeTimestamp": "2026-07-02T10:02:00+08:00"},
    ]
    for answer in answers:
        resp = await client.post("/cds-services/jicai-order-sign/feedback",
                                 data=orjson.dumps({"feedback": [answer]}),
                                 headers={"Authorization": "Bearer "
                                          + token(f"{BASE}/jicai-order-sign/feedback")})
        assert resp.status == 200
    history = await ledger.cds.feedback_history(card["uuid"])
    assert [(f.outcome, f.reason_display, f.comment) for f in history] == [
        ("overridden", "临床必需，不可替代", "既往用药"), ("accepted", "", "")]
