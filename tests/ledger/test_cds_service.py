"""CDS Hooks service end to end: discovery, cards, suggestions, feedback, JWT, 412."""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from ledger_helpers import (
    DATA,
    EXEMESTANE_PFIZER,
    EXEMESTANE_WIN,
    HOSPITAL,
    cst,
    event,
    fold,
)

from canonical.model import EventKind
from gateway.cds import CdsSettings, TrustedClient, cds_app
from gateway.ledger import override_report, override_report_csv

BASE = "https://gateway.example.local/cds-services"
ISS = "https://his.example.local"
REQUEST = orjson.loads((DATA / "order_sign_request.json").read_bytes())


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def token(key) -> Callable[..., str]:
    def make(aud: str = f"{BASE}/jicai-order-sign", iss: str = ISS, jti: str | None = None,
             exp_in: int = 120, **extra: Any) -> str:
        now = int(time.time())
        claims = {"iss": iss, "sub": "his-client", "aud": aud, "iat": now, "exp": now + exp_in,
                  "jti": jti or str(uuid.uuid4()), **extra}
        return jwt.encode(claims, key, algorithm="ES384", headers={"kid": "his-2026"})
    return make


@pytest.fixture
async def client(ledger, key, aiohttp_client):
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "his-2026", "alg": "ES384", "use": "sig"})
    settings = CdsSettings(
        clients={ISS: TrustedClient(ISS, {"keys": [jwk]}, hospital_id=HOSPITAL)},
        public_base_url=BASE,
        clock=lambda: cst(2026, 7, 2, 10))
    app = web.Application()
    app.add_subapp("/cds-services", cds_app(ledger, settings, fetch=_no_fetch))
    # lagging: 10000 of 36000 (27.8 %) on 2026-07-02 against a time progress of 50.1 %
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 10000, "2.1350")],
                              at=cst(2026, 3, 1))])
    return await aiohttp_client(app)


async def _no_fetch(server: str, query: str, auth: Any) -> Any:
    raise LookupError(f"{server}/{query} unreachable")


def _auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


async def test_discovery_lists_both_hooks(client):
    resp = await client.get("/cds-services")
    assert resp.status == 200
    services = {s["id"]: s for s in (await resp.json())["services"]}
    assert services["jicai-order-sign"]["hook"] == "order-sign"
    assert services["jicai-order-select"]["hook"] == "order-select"
    assert services["jicai-order-sign"]["prefetch"]["encounter"]


async def test_lagging_contract_non_winning_order_sign_card_then_accepted(client, token, ledger):
    resp = await client.post("/cds-services/jicai-order-sign", data=orjson.dumps(REQUEST),
                             headers=_auth(token()))
    assert resp.status == 200, await resp.text()
    cards = (await resp.json())["cards"]
    [card] = [c for c in cards if c["source"]["topic"]["code"] == "nonwinning-while-lagging"]
    assert card["indicator"] == "warning"
    assert "27.8%" in card["detail"] and "50.1%" in card["detail"]
    assert card["selectionBehavior"] == "at-most-one"
    [suggestion] = card["suggestions"]
    [action] = suggestion["actions"]
    assert action["type"] == "update"
    coding = action["resource"]["medicationCodeableConcept"]["coding"][0]
    assert coding["code"] == EXEMESTANE_WIN
    assert action["resource"]["id"] == "rx-1"
    assert {r["code"] for r in card["overrideReasons"]} >= {"clinical-necessity"}

    fb = {"feedback": [{"card": card["uuid"], "outcome": "accepted",
                        "acceptedSuggestions": [{"id": suggestion["uuid"]}],
                        "outcomeTimestamp": "2026-07-02T10:00:05+08:00"}]}
    resp = await client.post("/cds-services/jicai-order-sign/feedback", data=orjson.dumps(fb),
                             headers=_auth(token(aud=f"{BASE}/jicai-order-sign/feedback")))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["recorded"] == 1
    report = override_report(await ledger.cds.feedback_rows())
    [row] = report["by_prescriber"]
    assert (row["doctor"], row["department"]) == ("Practitioner/D10023", "肿瘤内科")
    assert (row["accepted"], row["overridden"], row["shown"]) == (1, 0, 1)
    assert report["by_rule"]["nonwinning-while-lagging"]["accepted"] == 1


async def test_override_with_reason_is_reported(client, token, ledger):
    resp = await client.post("/cds-services/jicai-order-sign", data=orjson.dumps(REQUEST),
                             headers=_auth(token()))
    card = (await resp.json())["cards"][0]
    reason = card["overrideReasons"][0]
    fb = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                        "overrideReason": {"reason": reason, "userComment": "既往用药"},
                        "outcomeTimestamp": "2026-07-02T10:01:00+08:00"}]}
    resp = await client.post("/cds-services/jicai-order-sign/feedback", data=orjson.dumps(fb),
                             headers=_auth(token(aud=f"{BASE}/jicai-order-sign/feedback")))
    assert resp.status == 200
    [row] = override_report(await ledger.cds.feedback_rows())["by_prescriber"]
    assert row["overridden"] == 1 and row["override_rate"] == 1.0
    assert row["reasons"] == {"临床必需，不可替代": 1}
    rows = await ledger.cds.feedback_rows()
    assert "临床必需，不可替代×1" in override_report_csv(override_report(rows))


async def test_unknown_card_feedback_is_404(client, token):
    fb = {"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted"}]}
    resp = await client.post("/cds-services/jicai-order-sign/feedback", data=orjson.dumps(fb),
                             headers=_auth(token(aud=f"{BASE}/jicai-order-sign/feedback")))
    assert resp.status == 404


async def test_order_select_only_looks_at_selected_orders(client, token):
    req = copy.deepcopy(REQUEST)
    req["hook"] = "order-select"
    req["context"]["selections"] = ["MedicationRequest/other"]
    resp = await client.post("/cds-services/jicai-order-select", data=orjson.dumps(req),
                             headers=_auth(token(aud=f"{BASE}/jicai-order-select")))
    assert resp.status == 200 and (await resp.json())["cards"] == []
    req["context"]["selections"] = ["MedicationRequest/rx-1"]
    resp = await client.post("/cds-services/jicai-order-select", data=orjson.dumps(req),
                             headers=_auth(token(aud=f"{BASE}/jicai-order-select")))
    assert len((await resp.json())["cards"]) == 1


@pytest.mark.parametrize("bad", ["aud", "iss", "expired", "missing", "hs256", "tenant"])
async def test_jwt_is_checked(client, token, bad):
    if bad == "aud":
        tok = token(aud=f"{BASE}/jicai-order-select")
    elif bad == "iss":
        tok = token(iss="https://intruder.example")
    elif bad == "expired":
        tok = token(exp_in=-120)
    elif bad == "hs256":
        tok = jwt.encode({"iss": ISS, "aud": f"{BASE}/jicai-order-sign", "iat": 1,
                          "exp": int(time.time()) + 60, "jti": "x"}, "secret" * 6,
                         algorithm="HS256")
    elif bad == "tenant":
        tok = token(tenant="H11010500001")
    else:
        tok = ""
    headers = _auth(tok) if tok else {}
    resp = await client.post("/cds-services/jicai-order-sign", data=orjson.dumps(REQUEST),
                             headers=headers)
    assert resp.status == 401


async def test_replayed_jti_is_refused(client, token):
    tok = token(jti="once-only")
    first = await client.post("/cds-services/jicai-order-sign", data=orjson.dumps(REQUEST),
                              headers=_auth(tok))
    again = await client.post("/cds-services/jicai-order-sign", data=orjson.dumps(REQUEST),
                              headers=_auth(tok))
    assert (first.status, again.status) == (200, 401)
    assert "jti" in (await again.json())["error"]


async def test_token_living_longer_than_five_minutes_is_refused(client, token):
    resp = await client.post("/cds-services/jicai-order-sign", data=orjson.dumps(REQUEST),
                             headers=_auth(token(exp_in=3600)))
    assert resp.status == 401


async def test_missing_prefetch_that_cannot_be_fetched_is_412(client, token):
    req = copy.deepcopy(REQUEST)
    del req["prefetch"]
    resp = await client.post("/cds-services/jicai-order-sign", data=orjson.dumps(req),
                             headers=_auth(token()))
    assert resp.status == 412
    req["fhirServer"] = "http://127.0.0.1:9/fhir"
    resp = await client.post("/cds-services/jicai-order-sign", data=orjson.dumps(req),
                             headers=_auth(token()))
    assert resp.status == 412


async def test_missing_prefetch_is_fetched_from_the_fhir_server(ledger, token, aiohttp_client,
                                                                key):
    seen = []

    async def fetch(server: str, query: str, auth: Any) -> Any:
        seen.append((server, query, auth["access_token"]))
        return {"resourceType": "Encounter", "serviceProvider": {"display": "泌尿外科"}}

    settings = CdsSettings(require_auth=False, default_hospital_id=HOSPITAL,
                           default_fhir_servers=("https://his.example.local/fhir",),
                           clock=lambda: cst(2026, 7, 2, 10))
    app = web.Application()
    app.add_subapp("/cds-services", cds_app(ledger, settings, fetch=fetch))
    cli = await aiohttp_client(app)
    req = copy.deepcopy(REQUEST)
    del req["prefetch"]
    req["fhirServer"] = "https://his.example.local/fhir"
    req["fhirAuthorization"] = {"access_token": "t0k", "token_type": "Bearer",
                                "expires_in": 300, "scope": "user/Encounter.read",
                                "subject": "jicai"}
    resp = await cli.post("/cds-services/jicai-order-sign", data=orjson.dumps(req))
    assert resp.status == 200
    assert seen == [("https://his.example.local/fhir", "Encounter/E20260702-0031", "t0k")]


async def test_hospital_item_codes_go_through_resolve_item(ledger, aiohttp_client):
    settings = CdsSettings(require_auth=False, default_hospital_id=HOSPITAL,
                           clock=lambda: cst(2026, 7, 2, 10), required_prefetch=(),
                           resolve_item=lambda h, c: EXEMESTANE_PFIZER if c == "YP0456" else None)
    app = web.Application()
    app.add_subapp("/cds-services", cds_app(ledger, settings))
    cli = await aiohttp_client(app)
    req = copy.deepcopy(REQUEST)
    req["context"]["draftOrders"]["entry"][0]["resource"]["medicationCodeableConcept"] = {
        "coding": [{"system": "urn:oid:2.16.156.10011.99.H36070200012.drug", "code": "YP0456"}],
        "text": "依西美坦片"}
    resp = await cli.post("/cds-services/jicai-order-sign", data=orjson.dumps(req))
    assert resp.status == 200
    assert (await resp.json())["cards"][0]["suggestions"][0]["actions"][0]["resource"][
        "medicationCodeableConcept"]["coding"][0]["code"] == EXEMESTANE_WIN


async def test_malformed_request_is_400(client, token):
    resp = await client.post("/cds-services/jicai-order-sign", data=b"{not json",
                             headers=_auth(token()))
    assert resp.status == 400


async def test_a_token_id_the_store_cannot_record_is_refused_with_503(client, token, ledger,
                                                                      monkeypatch):
    from canonical.errors import StoreError

    async def broken(*_: Any) -> bool:
        raise StoreError("database unreachable")
    monkeypatch.setattr(ledger.cds, "claim_jti", broken)
    resp = await client.post("/cds-services/jicai-order-sign", data=orjson.dumps(REQUEST),
                             headers=_auth(token()))
    assert resp.status == 503 and "token id" in (await resp.json())["error"]


async def test_feedback_on_another_hospitals_card_is_404_and_not_recorded(ledger, key, token,
                                                                         aiohttp_client):
    other = "https://his.other-hospital.local"
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "his-2026", "alg": "ES384", "use": "sig"})
    settings = CdsSettings(
        clients={ISS: TrustedClient(ISS, {"keys": [jwk]}, hospital_id=HOSPITAL),
                 other: TrustedClient(other, {"keys": [jwk]}, hospital_id="H9999999")},
        public_base_url=BASE, clock=lambda: cst(2026, 7, 2, 10))
    app = web.Application()
    app.add_subapp("/cds-services", cds_app(ledger, settings, fetch=_no_fetch))
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 10000, "2.1350")],
                              at=cst(2026, 3, 1))])
    client = await aiohttp_client(app)
    resp = await client.post("/cds-services/jicai-order-sign", data=orjson.dumps(REQUEST),
                             headers=_auth(token()))
    card = (await resp.json())["cards"][0]
    fb = orjson.dumps({"feedback": [{"card": card["uuid"], "outcome": "overridden",
                                     "overrideReason": {"reason": card["overrideReasons"][0]},
                                     "outcomeTimestamp": "2026-07-02T10:01:00+08:00"}]})
    aud = f"{BASE}/jicai-order-sign/feedback"
    resp = await client.post("/cds-services/jicai-order-sign/feedback", data=fb,
                             headers=_auth(token(aud=aud, iss=other)))
    assert resp.status == 404  # the same answer as for a card that does not exist
    assert (await resp.json())["cards"] == [card["uuid"]]
    assert [f for _, f in await ledger.cds.feedback_rows()] == [None]
    resp = await client.post("/cds-services/jicai-order-sign/feedback", data=fb,
                             headers=_auth(token(aud=aud)))
    assert resp.status == 200 and (await resp.json())["recorded"] == 1
