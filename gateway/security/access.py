"""Who may call which HTTP route: one policy table, enforced by one middleware.

Each route of the application is matched by its template (``/api/mappings/entries/
{hospital}/{item}``) and method against :data:`POLICY`, first match wins. A route no rule
names is open to ``admin`` only, so a route added without a rule is closed rather than
open. ``/healthz``, ``/readyz``, ``/metrics`` and ``/openapi.json`` are public unless
``http.public_probes`` is false; the CDS Hooks service checks its clients' JWTs itself;
the console's static pages (``/console``) are public, the API they call is not.

A caller proves an identity with ``Authorization: Bearer <token>`` or a TLS client
certificate (HTTPS with ``http.tls.client_ca_file``). On a gateway with no identities
configured every caller is :data:`~gateway.security.identity.LOCAL`, which ``serve``
allows only on loopback; the middleware refuses non-loopback peers there all the same.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.security.identity import (
    IDENTITY,
    LOCAL,
    Identities,
    Identity,
    peer_certificate_cn,
)

__all__ = ["CDS", "POLICY", "PUBLIC", "Rule", "access_middleware", "allowed_roles"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC = frozenset({"*public*"})
CDS = frozenset({"*cds*"})
ADMIN_ONLY = frozenset({"admin"})
_READ = ("GET", "HEAD")
_WRITE = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True, slots=True)
class Rule:
    """Roles that may use the routes whose template matches ``pattern`` with a method in
    ``methods``."""

    methods: tuple[str, ...]
    pattern: str
    roles: frozenset[str]

    def matches(self, method: str, template: str) -> bool:
        return method in self.methods and re.fullmatch(self.pattern, template) is not None


def _r(methods: tuple[str, ...], pattern: str, *roles: str) -> Rule:
    return Rule(methods, pattern, frozenset(roles))


POLICY: tuple[Rule, ...] = (
    Rule(_READ, r"/healthz|/readyz|/metrics", PUBLIC),
    # the interface's description names no data, only what to send and who may
    Rule(_READ, r"/openapi.json", PUBLIC),
    Rule(_READ + _WRITE, r"/cds-services(/.*)?", CDS),
    # the console's pages and assets hold no data: every datum comes through the API,
    # with the token the user logs in with
    Rule(_READ, r"/console(/.*)?", PUBLIC),
    # ingest: what the HIS, EMR and warehouse systems send
    _r(("POST",), r"/ingest/\{listener\}|/fhir|/fhir/\{type\}", "sender", "admin"),
    _r(_READ, r"/fhir/metadata", "sender", "admin", "auditor"),
    # 对码: pharmacists keep the crosswalk; catalogs change what every mapping means
    _r(_WRITE, r"/api/mappings/catalogs", "admin"),
    _r(_WRITE, r"/api/mappings/.*", "pharmacist", "admin"),
    _r(_READ, r"/api/unmapped|/api/held|/api/mappings/.*", "pharmacist", "procurement",
       "admin", "auditor"),
    # held events go out once complete: whoever keeps the crosswalk may let them go
    _r(("POST",), r"/api/held/release", "pharmacist", "admin"),
    # the 集采 ledger: procurement staff import contracts and read progress
    _r(("POST",), r"/ledger/contracts", "procurement", "admin"),
    # payments, reminders and manual closes: what procurement and finance staff do
    _r(("POST",), r"/ledger/payments|/ledger/deadlines/reminders|/ledger/deadlines/close",
       "procurement", "admin"),
    _r(_WRITE, r"/ledger/poison/.*", "admin"),
    _r(_READ, r"/ledger/poison", "admin", "auditor"),
    _r(_READ, r"/ledger/.*", "procurement", "pharmacist", "admin", "auditor"),
    # the mirror: replay and dead letters are the administrator's
    _r(_WRITE, r"/api/replay|/api/deadletters.*|/api/outbox/.*", "admin"),
    _r(_READ, r"/api/deadletters.*|/api/outbox/.*|/api/mirror/.*", "admin", "auditor"),
    _r(_READ, r"/api/audit-log.*", "admin", "auditor"),
    # the message browser: patient fields masked for all but admin (gateway/browser/)
    _r(_READ, r"/api/messages.*", "admin", "auditor", "pharmacist", "procurement"),
    # who am I: the console shows the logged-in identity and its role
    _r(_READ, r"/api/whoami", "sender", "pharmacist", "procurement", "admin", "auditor"),
)


def allowed_roles(method: str, template: str, *, public_probes: bool = True) -> frozenset[str]:
    """The roles that may call ``method template`` (or :data:`PUBLIC` / :data:`CDS`)."""
    for rule in POLICY:
        if rule.matches(method, template):
            if rule.roles is PUBLIC and not public_probes:
                return frozenset({"admin", "auditor"})
            return rule.roles
    return ADMIN_ONLY


def _template(request: web.Request) -> str | None:
    route = request.match_info.route
    resource = route.resource
    if resource is None or isinstance(request.match_info.http_exception, web.HTTPException):
        return None
    return resource.canonical


def _is_loopback(remote: str | None) -> bool:
    if remote is None:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


def _hospitals_named(request: web.Request) -> set[str]:
    named = {request.match_info.get(k, "") for k in ("hospital", "hospital_id")}
    named |= {v for k in ("hospital", "hospital_id") for v in request.query.getall(k, [])}
    return {h for h in named if h}


def _deny(status: int, text: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="jicai-gateway"'} if status == 401 else None
    return web.json_response({"error": text}, status=status, headers=headers)


class _Authenticator:
    def __init__(self, identities: Identities, on_failure: Callable[[str], None]) -> None:
        self.identities = identities
        self.on_failure = on_failure
        self._checked = 0.0
        self._logged: dict[tuple[str, str], float] = {}

    def refresh(self) -> None:
        # rotation without restart: one stat a second at most, whatever the request rate
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._checked = now
            self.identities.reload_if_changed()

    def who(self, request: web.Request) -> Identity | None:
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return self.identities.by_token(token.strip())
        transport = request.transport
        cert = transport.get_extra_info("peercert") if transport is not None else None
        return self.identities.by_certificate(peer_certificate_cn(cert))

    def refused(self, request: web.Request, reason: str, status: int, text: str) -> web.Response:
        self.on_failure(reason)
        key, now = (request.remote or "?", reason), time.monotonic()
        if now - self._logged.get(key, -60.0) >= 60.0:  # an attacker must not flood the log
            self._logged[key] = now
            if len(self._logged) > 10_000:
                self._logged.clear()
            log.warning("HTTP %s %s from %s refused (%s): %s", request.method, request.path,
                        request.remote, reason, text)
        return _deny(status, text)


def access_middleware(identities: Identities, *, public_probes: bool,
                      on_failure: Callable[[str], None] = lambda _: None) -> Middleware:
    """The middleware that authenticates every request and checks :data:`POLICY`."""
    auth = _Authenticator(identities, on_failure)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        template = _template(request)
        if template is None:  # no such route: the router answers 404 / 405
            return await handler(request)
        method = "GET" if request.method == "HEAD" else request.method
        roles = allowed_roles(method, template, public_probes=public_probes)
        if roles is PUBLIC or roles is CDS:
            return await handler(request)
        auth.refresh()
        if not identities.configured:
            if not _is_loopback(request.remote):
                return auth.refused(request, "no_identities", 401,
                                    "this gateway has no identities configured and answers "
                                    "loopback only (security.identities)")
            request[IDENTITY] = LOCAL
            return await handler(request)
        ident = auth.who(request)
        if ident is None:
            return auth.refused(request, "unauthenticated", 401,
                                "authentication required: send Authorization: Bearer <token> "
                                "(or a client certificate)")
        if ident.role not in roles:
            return auth.refused(request, "forbidden_role", 403,
                                f"identity {ident.name!r} (role {ident.role}) may not "
                                f"{request.method} {template}; roles allowed: "
                                f"{', '.join(sorted(roles))}")
        for hospital in _hospitals_named(request):
            if not ident.may_act_for(hospital):
                return auth.refused(request, "forbidden_hospital", 403,
                                    f"identity {ident.name!r} may not act for hospital "
                                    f"{hospital}")
        request[IDENTITY] = ident
        return await handler(request)

    return guard
