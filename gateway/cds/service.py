"""The CDS Hooks 2.0.1 service: discovery, order-select / order-sign, feedback.

Mount with ``app.add_subapp("/cds-services", cds_app(ledger, settings))`` (or with a
function returning the ledger, when it opens with the application's store). Per request
the work is JSON decoding, JWT verification, claiming the token id in the store (in
memory on SQLite, one statement on PostgreSQL, so a replica never accepts a token
another one took) and dictionary lookups in the ledger's view; the store writes issued
cards in batches, not per request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import jwt
import orjson
from aiohttp import web

from canonical.errors import StoreError
from gateway.cds.auth import AuthError, TrustedClient, refuse_replay, verify_bearer
from gateway.cds.cards import (
    NATIONAL_SYSTEMS,
    RequestError,
    build_cards,
    department_of,
    draft_lines,
)
from gateway.cds.jwks import RemoteJwks
from gateway.ledger.http import LedgerRef, current_ledger
from gateway.ledger.ledger import Ledger, ResolveItem
from gateway.store.ledger_records import CardRow, FeedbackRow

__all__ = ["CdsSettings", "PrefetchFetcher", "cds_app", "services_document"]

log = logging.getLogger(__name__)

PrefetchFetcher = Callable[[str, str, Mapping[str, Any] | None], Awaitable[Any]]

_PREFETCH = {"encounter": "Encounter/{{context.encounterId}}"}


@dataclass(frozen=True, slots=True)
class CdsSettings:
    """How the CDS service authenticates, what it requires and where it says it lives."""

    clients: Mapping[str, TrustedClient] = field(default_factory=dict)
    # the public URL of the mount point, e.g. https://gw.hospital.local/cds-services; the JWT
    # aud must equal this plus the path called
    public_base_url: str = "http://127.0.0.1:8080/cds-services"
    require_auth: bool = True
    default_hospital_id: str = ""  # only when require_auth is False (tests, demos)
    required_prefetch: tuple[str, ...] = ("encounter",)
    fetch_timeout: float = 2.0
    leeway: float = 30
    national_systems: frozenset[str] = NATIONAL_SYSTEMS
    resolve_item: ResolveItem | None = None
    jwks_ttl_s: float = 3600.0  # keys from a client's jwks_url are fetched again after this
    jwks_min_refetch_s: float = 30.0  # … or sooner for an unknown kid, at most this often
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # told of each card issued (its rule id) and of each answer recorded (rule id,
    # accepted / overridden): the gateway counts them for its metrics
    on_card: Callable[[str], None] = field(default=lambda rule_id: None)
    on_feedback: Callable[[str, str], None] = field(default=lambda rule_id, outcome: None)


def services_document() -> dict[str, Any]:
    """The discovery response."""
    common = {"prefetch": dict(_PREFETCH),
              "usageRequirements": "需在 prefetch 中提供 encounter（用于科室统计），"
                                   "或提供 fhirServer 与 fhirAuthorization 以便服务获取。"}
    return {"services": [
        {"hook": "order-sign", "id": "jicai-order-sign", "title": "集采用药预警（签署）",
         "description": "处方签署前检查集采中选产品使用、序时进度、库存和通用名处方。", **common},
        {"hook": "order-select", "id": "jicai-order-select", "title": "集采用药预警（选药）",
         "description": "选药时提示集采中选产品，建议替换非中选产品。", **common},
    ]}


_HOOK_OF = {"jicai-order-sign": "order-sign", "jicai-order-select": "order-select"}
_TEMPLATE = re.compile(r"\{\{context\.(\w+)\}\}")


async def _default_fetch(session: aiohttp.ClientSession, fhir_server: str, query: str,
                         auth: Mapping[str, Any] | None, timeout: float) -> Any:
    headers = {"Accept": "application/fhir+json"}
    if auth and auth.get("access_token"):
        headers["Authorization"] = f"{auth.get('token_type', 'Bearer')} {auth['access_token']}"
    url = fhir_server.rstrip("/") + "/" + query
    async with session.get(url, headers=headers,
                           timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        if resp.status != 200:
            raise LookupError(f"FHIR server answered {resp.status} for {query}")
        return await resp.json(loads=orjson.loads, content_type=None)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class _Service:
    def __init__(self, ledger: LedgerRef, settings: CdsSettings) -> None:
        self._ledger = ledger
        self.settings = settings
        self.session: aiohttp.ClientSession | None = None
        self.fetch: PrefetchFetcher | None = None
        self.remote: dict[str, RemoteJwks] = {}  # JWKS URL → its cached key set
        self.any_remote = any(c.jwks_url for c in settings.clients.values())
        self.key_session: aiohttp.ClientSession | None = None

    @property
    def ledger(self) -> Ledger:
        return current_ledger(self._ledger)

    async def authenticate(self, request: web.Request, suffix: str = "") -> str:
        """The hospital the verified caller acts for; the JWT aud must name this endpoint."""
        if not self.settings.require_auth:
            return self.settings.default_hospital_id
        header = request.headers.get("Authorization")
        await self._load_remote_keys(header)
        service_id = request.match_info.get("service_id", "")
        audience = f"{self.settings.public_base_url.rstrip('/')}/{service_id}{suffix}"
        v = verify_bearer(header, audience=audience, clients=self.settings.clients,
                          leeway=self.settings.leeway)
        # a StoreError (the id not recorded, so a replay not ruled out) refuses the call
        await refuse_replay(v, self.ledger.cds.claim_jti)
        return v.hospital_id

    async def _load_remote_keys(self, header: str | None) -> None:
        """For a client whose keys live at a JWKS URL: check ``jku`` and have the keys."""
        if not self.any_remote or not header or not header.startswith("Bearer "):
            return  # verify_bearer does the rest (and says what is wrong)
        token = header[7:].strip()
        try:
            head = jwt.get_unverified_header(token)
            iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            return
        client = self.settings.clients.get(iss) if isinstance(iss, str) else None
        if client is None or not client.jwks_url:
            return
        jku = head.get("jku")
        if jku is not None and jku != client.jwks_url:
            raise AuthError(f"jku {jku!r} is not the key set configured for issuer {iss!r}")
        remote = self.remote.get(client.jwks_url)
        if remote is None:
            remote = self.remote[client.jwks_url] = RemoteJwks(
                client.jwks_url, ttl_s=self.settings.jwks_ttl_s,
                min_refetch_s=self.settings.jwks_min_refetch_s)
        if self.key_session is None:
            self.key_session = aiohttp.ClientSession()
        kid = head.get("kid")
        client.use(await remote.keys(self.key_session, kid if isinstance(kid, str) else None))

    async def prefetch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        given = body.get("prefetch") or {}
        if not isinstance(given, Mapping):
            raise RequestError("prefetch must be an object")
        out = dict(given)
        context = body.get("context") or {}
        for key in self.settings.required_prefetch:
            if out.get(key) is not None:
                continue
            fhir_server = body.get("fhirServer")
            if not fhir_server or self.fetch is None:
                raise LookupError(f"prefetch {key!r} missing and no fhirServer to fetch it")
            template = _PREFETCH.get(key, "")
            missing = [m for m in _TEMPLATE.findall(template) if not context.get(m)]
            if missing:
                raise LookupError(f"prefetch {key!r} needs context.{missing[0]}")
            query = _TEMPLATE.sub(lambda m: str(context[m.group(1)]), template)
            try:
                out[key] = await self.fetch(str(fhir_server), query,
                                            body.get("fhirAuthorization"))
            except (LookupError, aiohttp.ClientError, TimeoutError) as exc:
                raise LookupError(f"prefetch {key!r} could not be fetched: {exc}") from exc
        return out

    async def discovery(self, request: web.Request) -> web.Response:
        return _json(services_document())

    async def hook(self, request: web.Request) -> web.Response:
        service_id = request.match_info["service_id"]
        hook = _HOOK_OF.get(service_id)
        if hook is None:
            return _json({"error": f"no service {service_id!r}"}, 404)
        try:
            hospital = await self.authenticate(request)
        except AuthError as exc:
            return _json({"error": str(exc)}, 401)
        except StoreError as exc:
            log.error("CDS token id not recorded: %s", exc)
            return _json({"error": "the token id could not be recorded; try again"}, 503)
        try:
            body = orjson.loads(await request.read())
            if not isinstance(body, dict):
                raise RequestError("request body must be a JSON object")
            if body.get("hook") != hook:
                raise RequestError(f"hook must be {hook!r} for service {service_id!r}")
            if not body.get("hookInstance"):
                raise RequestError("hookInstance is required")
            context = body.get("context")
            if not isinstance(context, dict):
                raise RequestError("context is required")
            try:
                prefetch = await self.prefetch(body)
            except LookupError as exc:
                return _json({"error": str(exc)}, 412)
            lines, resources = draft_lines(context, hook, hospital, self.settings.resolve_item,
                                           self.settings.national_systems)
        except (orjson.JSONDecodeError, RequestError) as exc:
            return _json({"error": str(exc)}, 400)
        now = self.settings.clock()
        ledger = self.ledger
        findings = ledger.evaluate_lines(hospital, lines, now)
        cards, issued = build_cards(findings, resources, ledger.rules)
        if issued:
            doctor = str(context.get("userId", ""))
            dept = department_of(prefetch.get("encounter"))
            await ledger.cds.save_cards([
                CardRow(c.uuid, service_id, hospital, doctor, dept, c.rule_id, c.national_code,
                        tuple(c.suggestion_ids), now) for c in issued])
            for c in issued:
                self.settings.on_card(c.rule_id)
        return _json({"cards": cards})

    async def feedback(self, request: web.Request) -> web.Response:
        try:
            return await self._feedback(request)
        except StoreError as exc:
            log.error("CDS feedback not recorded: %s", exc)
            return _json({"error": "feedback could not be stored; send it again"}, 503)

    async def _feedback(self, request: web.Request) -> web.Response:
        if request.match_info["service_id"] not in _HOOK_OF:
            return _json({"error": "no such service"}, 404)
        try:
            await self.authenticate(request, "/feedback")
        except AuthError as exc:
            return _json({"error": str(exc)}, 401)
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return _json({"error": str(exc)}, 400)
        items = body.get("feedback") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return _json({"error": "feedback must be a non-empty array"}, 400)
        cds = self.ledger.cds
        rows: list[FeedbackRow] = []
        rules: list[str] = []
        unknown: list[str] = []
        for i, fb in enumerate(items):
            if not isinstance(fb, dict) or fb.get("outcome") not in ("accepted", "overridden"):
                return _json({"error": f"feedback[{i}].outcome must be accepted or overridden"},
                             400)
            card_id = str(fb.get("card", ""))
            card = await cds.card(card_id)
            if card is None:
                unknown.append(card_id)
                continue
            rules.append(card.rule_id)
            reason = (fb.get("overrideReason") or {})
            coding = reason.get("reason") or {}
            accepted = tuple(str(s.get("id")) for s in fb.get("acceptedSuggestions") or []
                             if isinstance(s, dict))
            rows.append(FeedbackRow(
                card_id, fb["outcome"], str(coding.get("code", "")),
                str(coding.get("display", "")), str(reason.get("userComment", "")), accepted,
                str(fb.get("outcomeTimestamp") or self.settings.clock().isoformat())))
        if rows:
            await cds.save_feedback(rows)
            for rule_id, row in zip(rules, rows, strict=True):
                self.settings.on_feedback(rule_id, row.outcome)
        if unknown and not rows:
            return _json({"error": "unknown card", "cards": unknown}, 404)
        return _json({"recorded": len(rows), "unknown": unknown})


def cds_app(ledger: LedgerRef, settings: CdsSettings,
            fetch: PrefetchFetcher | None = None) -> web.Application:
    """The CDS Hooks sub-application, to mount at ``/cds-services``.

    Args:
        ledger: the ledger (its rules and in-memory view answer the hooks, its store
            keeps token ids, cards and feedback), or a function returning it.
        settings: authentication, required prefetch, public URL.
        fetch: how to get a missing prefetch (fhirServer, query, fhirAuthorization) →
            resource; by default an HTTP GET to the client's FHIR server.

    Returns:
        The application: ``GET /``, ``POST /{service_id}``, ``POST /{service_id}/feedback``.
    """
    app = web.Application()
    svc = _Service(ledger, settings)

    async def background(_: web.Application) -> AsyncIterator[None]:
        session = None
        if fetch is None:
            session = aiohttp.ClientSession()

            async def http_fetch(server: str, query: str, auth: Mapping[str, Any] | None
                                 ) -> Any:
                return await _default_fetch(session, server, query, auth,
                                            settings.fetch_timeout)
            svc.fetch = http_fetch
        else:
            svc.fetch = fetch
        yield
        if session is not None:
            await session.close()
        if svc.key_session is not None:
            await svc.key_session.close()

    app.cleanup_ctx.append(background)
    app.router.add_get("", svc.discovery)
    app.router.add_get("/", svc.discovery)
    app.router.add_post("/{service_id}", svc.hook)
    app.router.add_post("/{service_id}/feedback", svc.feedback)
    return app
