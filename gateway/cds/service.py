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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt
import orjson
from aiohttp import web

from canonical.errors import StoreError
from gateway.cds.auth import (
    AuthError,
    TrustedClient,
    bearer_token,
    refuse_replay,
    verify_bearer,
)
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

__all__ = ["MAX_FHIR_BYTES", "CdsSettings", "PrefetchFetcher", "allowed_fhir_server", "cds_app",
           "services_document"]

log = logging.getLogger(__name__)

PrefetchFetcher = Callable[[str, str, Mapping[str, Any] | None], Awaitable[Any]]

_PREFETCH = {"encounter": "Encounter/{{context.encounterId}}"}
# FHIR's id type; "." and ".." match it but a URL normaliser reads them as path steps
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
MAX_FHIR_BYTES = 1_000_000  # an Encounter is a few KB; more is not what was asked for


@dataclass(frozen=True, slots=True)
class CdsSettings:
    """How the CDS service authenticates, what it requires and where it says it lives."""

    clients: Mapping[str, TrustedClient] = field(default_factory=dict)
    # the public URL of the mount point, e.g. https://gw.hospital.local/cds-services; the JWT
    # aud must equal this plus the path called
    public_base_url: str = "http://127.0.0.1:8080/cds-services"
    require_auth: bool = True
    default_hospital_id: str = ""  # only when require_auth is False (tests, demos)
    default_fhir_servers: tuple[str, ...] = ()  # likewise: the FHIR servers then allowed
    required_prefetch: tuple[str, ...] = ("encounter",)
    fetch_timeout: float = 2.0
    fetch_max_bytes: int = MAX_FHIR_BYTES
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


def allowed_fhir_server(fhir_server: str, bases: Sequence[str]) -> bool:
    """Whether ``fhir_server`` is one of the configured base URLs (a trailing slash aside):
    the service sends the client's access token to no other server."""
    wanted = fhir_server.rstrip("/")
    return bool(wanted) and any(wanted == b.rstrip("/") for b in bases)


async def _default_fetch(session: aiohttp.ClientSession, fhir_server: str, query: str,
                         auth: Mapping[str, Any] | None, timeout: float,
                         max_bytes: int = MAX_FHIR_BYTES) -> Any:
    headers = {"Accept": "application/fhir+json"}
    if auth and auth.get("access_token"):
        headers["Authorization"] = f"{auth.get('token_type', 'Bearer')} {auth['access_token']}"
    url = fhir_server.rstrip("/") + "/" + query
    # no redirects: a redirect would carry the token to a server nobody configured
    async with session.get(url, headers=headers, allow_redirects=False,
                           timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        if resp.status != 200:
            raise LookupError(f"FHIR server answered {resp.status} for {query}")
        if resp.content_length is not None and resp.content_length > max_bytes:
            raise LookupError(f"FHIR server's answer for {query} exceeds {max_bytes} bytes")
        body = bytearray()
        async for chunk in resp.content.iter_chunked(65536):
            body += chunk
            if len(body) > max_bytes:
                raise LookupError(f"FHIR server's answer for {query} exceeds {max_bytes} bytes")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise LookupError(f"FHIR server's answer for {query} is not JSON: {exc}") from exc


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

    async def authenticate(self, request: web.Request, suffix: str = ""
                           ) -> tuple[str, tuple[str, ...]]:
        """The hospital the verified caller acts for and the FHIR servers configured for it;
        the JWT aud must name this endpoint."""
        if not self.settings.require_auth:
            return self.settings.default_hospital_id, self.settings.default_fhir_servers
        header = request.headers.get("Authorization")
        await self._load_remote_keys(header)
        service_id = request.match_info.get("service_id", "")
        audience = f"{self.settings.public_base_url.rstrip('/')}/{service_id}{suffix}"
        v = verify_bearer(header, audience=audience, clients=self.settings.clients,
                          leeway=self.settings.leeway)
        # a StoreError (the id not recorded, so a replay not ruled out) refuses the call
        await refuse_replay(v, self.ledger.cds.claim_jti)
        client = self.settings.clients.get(v.iss)
        return v.hospital_id, client.fhir_servers if client is not None else ()

    async def _load_remote_keys(self, header: str | None) -> None:
        """For a client whose keys live at a JWKS URL: check ``jku`` and have the keys."""
        token = bearer_token(header)
        if not self.any_remote or token is None:
            return  # verify_bearer does the rest (and says what is wrong)
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

    async def prefetch(self, body: Mapping[str, Any], fhir_servers: Sequence[str]
                       ) -> dict[str, Any]:
        """The prefetch the rules read: what the client sent, a missing key fetched from
        the client's FHIR server when that server is configured for it.

        CDS Hooks: a key sent as ``null`` means the client has no such data (an order
        outside an encounter), so it is not fetched and the cards carry no department;
        likewise when the context lacks the template's token (``encounterId`` is optional).

        Raises:
            RequestError: prefetch, fhirServer or fhirAuthorization has the wrong type, or
                a context id to be fetched is not a FHIR id.
            LookupError: a key is missing and cannot be fetched (answered 412).
        """
        given = body.get("prefetch")
        if given is None:
            given = {}
        if not isinstance(given, Mapping):
            raise RequestError("prefetch must be an object")
        out = dict(given)
        context = body.get("context") or {}
        for key in self.settings.required_prefetch:
            if key in out:
                continue
            template = _PREFETCH.get(key, "")
            tokens = _TEMPLATE.findall(template)
            for t in tokens:
                if context.get(t) is not None and not isinstance(context[t], str):
                    raise RequestError(f"context.{t} must be a string")
                # CDS Hooks answers a malformed request with 400. Escaping is not enough:
                # quote() keeps dots and the client normalises "Encounter/.." to the FHIR
                # base, which would then be fetched with the client's token.
                if context.get(t) and (not _FHIR_ID.fullmatch(context[t])
                                       or context[t] in (".", "..")):
                    raise RequestError(f"context.{t} must be a FHIR id"
                                       " ([A-Za-z0-9-.]{1,64}, not . or ..)")
            if any(not context.get(t) for t in tokens):
                out[key] = None
                continue
            fhir_server = body.get("fhirServer")
            if fhir_server is not None and not isinstance(fhir_server, str):
                raise RequestError("fhirServer must be a string")
            auth = body.get("fhirAuthorization")
            if auth is not None and not isinstance(auth, Mapping):
                raise RequestError("fhirAuthorization must be an object")
            for name in ("access_token", "token_type"):
                # both go into the Authorization header, where a number or an object would
                # be sent as its Python repr
                if auth is not None and auth.get(name) is not None \
                        and not isinstance(auth[name], str):
                    raise RequestError(f"fhirAuthorization.{name} must be a string")
            if not fhir_server or self.fetch is None:
                raise LookupError(f"prefetch {key!r} missing and no fhirServer to fetch it")
            if not allowed_fhir_server(fhir_server, fhir_servers):
                raise LookupError(f"prefetch {key!r} missing, and fhirServer {fhir_server!r} is"
                                  " not a FHIR server configured for this client")
            # each token is one path segment: an id cannot climb out of Encounter/ or add a
            # query
            query = _TEMPLATE.sub(lambda m: quote(str(context[m.group(1)]), safe=""), template)
            try:
                out[key] = await self.fetch(fhir_server, query, auth)
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
            hospital, fhir_servers = await self.authenticate(request)
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
                prefetch = await self.prefetch(body, fhir_servers)
            except LookupError as exc:
                return _json({"error": str(exc)}, 412)
            lines, resources = draft_lines(context, hook, hospital, self.settings.resolve_item,
                                           self.settings.national_systems, prefetch)
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
            hospital, _ = await self.authenticate(request, "/feedback")
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
        try:
            parsed = [_feedback_item(i, fb, self.settings.clock) for i, fb in enumerate(items)]
        except RequestError as exc:
            return _json({"error": str(exc)}, 400)
        rows: list[FeedbackRow] = []
        rules: list[str] = []
        unknown: list[str] = []
        for row in parsed:
            card = await cds.card(row.card)
            # another hospital's card is answered like a missing one: a client that knows a
            # uuid learns nothing of the other hospital, and cannot answer for its doctors
            if card is None or card.hospital_id != hospital:
                unknown.append(row.card)
                continue
            rules.append(card.rule_id)
            rows.append(row)
        if rows:
            await cds.save_feedback(rows)
            for rule_id, row in zip(rules, rows, strict=True):
                self.settings.on_feedback(rule_id, row.outcome)
        if unknown and not rows:
            return _json({"error": "unknown card", "cards": unknown}, 404)
        return _json({"recorded": len(rows), "unknown": unknown})


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RequestError(f"{where} must be a string")
    return value


def _feedback_item(i: int, fb: Any, clock: Callable[[], datetime]) -> FeedbackRow:
    """One feedback entry checked and read, before anything is stored.

    Raises:
        RequestError: naming the entry and the field of the wrong type.
    """
    where = f"feedback[{i}]"
    if not isinstance(fb, Mapping) or fb.get("outcome") not in ("accepted", "overridden"):
        raise RequestError(f"{where}.outcome must be accepted or overridden")
    card = _text(fb.get("card"), f"{where}.card")
    reason = fb.get("overrideReason")
    if reason is None:
        reason = {}
    if not isinstance(reason, Mapping):
        raise RequestError(f"{where}.overrideReason must be an object")
    coding = reason.get("reason")
    if coding is None:
        coding = {}
    if not isinstance(coding, Mapping):
        raise RequestError(f"{where}.overrideReason.reason must be a Coding object")
    suggestions = fb.get("acceptedSuggestions")
    if suggestions is not None and not isinstance(suggestions, list):
        raise RequestError(f"{where}.acceptedSuggestions must be an array")
    accepted = tuple(str(s.get("id")) for s in suggestions or [] if isinstance(s, Mapping))
    at = _text(fb.get("outcomeTimestamp"), f"{where}.outcomeTimestamp")
    return FeedbackRow(card, fb["outcome"], _text(coding.get("code"), f"{where} reason code"),
                       _text(coding.get("display"), f"{where} reason display"),
                       _text(reason.get("userComment"), f"{where}.overrideReason.userComment"),
                       accepted, at or clock().isoformat())


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
                                            settings.fetch_timeout, settings.fetch_max_bytes)
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
