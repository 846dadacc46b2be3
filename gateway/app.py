"""Wiring: every long-lived resource is one cleanup context of the aiohttp app."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapters.base import Adapter
from adapters.fhir import capability_statement
from adapters.registry import create as create_adapter
from canonical.model import CHINA_TZ
from gateway.cds import cds_app
from gateway.config import GatewayConfig
from gateway.crosswalk.http import mappings_api, open_mappings
from gateway.ingest.mllp import start_mllp_server
from gateway.ingest.pipeline import Ingestor, Route
from gateway.ledger import Ledger, ledger_app
from gateway.ledger.wiring import (
    LedgerFeed,
    WarningPusher,
    cds_settings,
    make_ledger,
    prescription_advisor,
)
from gateway.metrics import Metrics
from gateway.mirror.http import add_mirror_routes
from gateway.mirror.worker import Destination, Mirror
from gateway.platforms import profile_for
from gateway.platforms.simulator import SimulatorState, simulator_app
from gateway.store.base import Store
from gateway.store.sqlite import SqliteStore
from gateway.webhooks import WebhookSender, WebhookTarget
from mappings.crosswalk import Crosswalk

__all__ = [
    "CONFIG",
    "INGESTOR",
    "LEDGER",
    "LEDGER_FEED",
    "METRICS",
    "MIRROR",
    "SIMULATOR",
    "STORE",
    "build_app",
    "make_store",
]

log = logging.getLogger(__name__)

CONFIG: web.AppKey[GatewayConfig] = web.AppKey("config", GatewayConfig)
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
STORE: web.AppKey[Store] = web.AppKey("store", Store)
INGESTOR: web.AppKey[Ingestor] = web.AppKey("ingestor", Ingestor)
MIRROR: web.AppKey[Mirror] = web.AppKey("mirror", Mirror)
SIMULATOR: web.AppKey[SimulatorState] = web.AppKey("simulator", SimulatorState)
CROSSWALK: web.AppKey[Crosswalk] = web.AppKey("crosswalk", Crosswalk)
LEDGER: web.AppKey[Ledger] = web.AppKey("ledger", Ledger)
LEDGER_FEED: web.AppKey[LedgerFeed] = web.AppKey("ledger_feed", LedgerFeed)
PUSHER: web.AppKey[WarningPusher] = web.AppKey("webhook_pusher", WarningPusher)
HTTP_ADAPTERS: web.AppKey[dict[str, Adapter]] = web.AppKey("http_adapters")
MLLP_SERVERS: web.AppKey[dict[str, asyncio.Server]] = web.AppKey("mllp_servers")


def make_store(cfg: GatewayConfig, metrics: Metrics | None = None) -> Store:
    """The store the configuration names."""
    on_batch = metrics.commit_batch.observe if metrics else None
    if cfg.store.backend == "sqlite":
        return SqliteStore(cfg.store.sqlite_path, group_commit_max=cfg.store.group_commit_max,
                           on_batch=on_batch)
    from gateway.store.postgres import PostgresStore

    assert cfg.store.postgres_dsn is not None  # the config validator requires it
    return PostgresStore(cfg.store.postgres_dsn.get_secret_value(),
                         schema=cfg.store.postgres_schema,
                         group_commit_max=cfg.store.group_commit_max, lease_s=cfg.store.lease_s,
                         pool_max=cfg.store.postgres_pool_max, on_batch=on_batch)


async def _simulator_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    runner: web.AppRunner | None = None
    if cfg.simulator.enabled:
        state = SimulatorState()
        app[SIMULATOR] = state
        runner = web.AppRunner(simulator_app(state), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, cfg.simulator.host, cfg.simulator.port).start()
        log.info("platform simulator on http://%s:%d/fsi/api/", cfg.simulator.host,
                 cfg.simulator.port)
    yield
    if runner is not None:
        await runner.cleanup()


async def _core_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    metrics = app[METRICS]
    store = make_store(cfg, metrics)
    await store.start()
    app[STORE] = store
    session = aiohttp.ClientSession()
    destinations = [Destination(d, profile_for(d.profile)(d, cfg)) for d in cfg.destinations]
    mirror = Mirror(store, destinations, metrics, session)
    app[MIRROR] = mirror
    await store.listen(mirror.on_change)  # rows other replicas commit wake this mirror too
    ingestor = Ingestor(store, app[CROSSWALK],
                        [Route(d.name, d.profile) for d in destinations], metrics,
                        notify=mirror.notify)
    app[INGESTOR] = ingestor
    feed_task: asyncio.Task[None] | None = None
    pusher_task: asyncio.Task[None] | None = None
    feed: LedgerFeed | None = None
    if LEDGER in app:
        ledger = app[LEDGER]
        pusher: WarningPusher | None = None
        if cfg.webhooks:
            pusher = WarningPusher(WebhookSender([
                WebhookTarget(w.url, w.secret.get_secret_value().encode(), frozenset(w.events))
                for w in cfg.webhooks]), ledger)
            app[PUSHER] = pusher
            pusher_task = asyncio.create_task(pusher.run(), name="deadline-webhooks")
        ingestor.advisors.append(prescription_advisor(
            ledger, pusher.prescription_warning if pusher else None))
        feed = LedgerFeed(store, ledger)
        app[LEDGER_FEED] = feed
        store.committed_listeners.append(feed.committed)
        feed_task = asyncio.create_task(feed.run(), name="ledger-feed")
    servers: dict[str, asyncio.Server] = {}
    http_adapters: dict[str, Adapter] = {}
    for listener in cfg.listeners:
        adapter = create_adapter(listener.adapter, listener.config)
        if listener.transport == "mllp":
            assert listener.port is not None
            servers[listener.name] = await start_mllp_server(
                ingestor, adapter, listener.host, listener.port, listener.max_frame_bytes)
        else:
            http_adapters[listener.name] = adapter
    app[MLLP_SERVERS] = servers
    app[HTTP_ADAPTERS] = http_adapters
    mirror.start()
    stats_task = asyncio.create_task(_refresh_stats(app))
    yield
    stats_task.cancel()
    if pusher_task is not None:
        pusher_task.cancel()
        await asyncio.gather(pusher_task, return_exceptions=True)
        await app[PUSHER].close()
    if feed_task is not None and feed is not None:
        feed_task.cancel()
        await asyncio.gather(feed_task, return_exceptions=True)
    for server in servers.values():
        server.close()
        await server.wait_closed()
    await mirror.stop()
    await session.close()
    await store.close()


async def _refresh_stats(app: web.Application) -> None:
    """Keep the outbox gauges current (a scrape must not wait on the database)."""
    m = app[METRICS]
    store = app[STORE]
    names = [d.name for d in app[CONFIG].destinations]
    while True:
        try:
            s = await store.stats(time.time())
            for n in names:
                m.outbox_depth.labels(n).set(s.depth.get(n, 0))
                m.outbox_oldest.labels(n).set(s.oldest_age_s.get(n, 0.0))
                m.dead_letters.labels(n).set(s.dead.get(n, 0))
            m.held_events.set(s.held_events)
            b = await store.balance()
            for n in names:
                for state, value in (("received", b.received(n)),
                                     ("delivered", b.delivered.get(n, 0)),
                                     ("queued", b.queued.get(n, 0)),
                                     ("dead_lettered", b.dead.get(n, 0)),
                                     ("held_unmapped", b.held_events)):
                    m.mirror_units.labels(n, state).set(value)
        except Exception:
            log.exception("could not refresh outbox statistics")
        await asyncio.sleep(1.0)


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the store takes writes and every platform was reachable at the last try."""
    app = request.app
    writable = await app[STORE].writable()
    reachable = app[MIRROR].reachable
    ok = writable and all(reachable.values())
    return web.json_response({"status": "ready" if ok else "not ready",
                              "store_writable": writable, "platforms_reachable": reachable},
                             status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition."""
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _ingest(request: web.Request, adapter: Adapter) -> web.Response:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CONFIG].http.max_body_bytes
        log.warning("refused a body over %d bytes from %s for %s (%s bytes announced)",
                    limit, request.remote, adapter.name, request.content_length)
        return web.json_response(
            {"error": f"message body exceeds http.max_body_bytes ({limit} bytes)"}, status=413)
    reply = await request.app[INGESTOR].handle(adapter, raw, request.remote or "?")
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


async def unmapped(request: web.Request) -> web.Response:
    """GET /api/unmapped: the unmapped-item queue."""
    store = request.app[STORE]
    items = await store.unmapped(request.query.get("hospital"))
    # orjson keeps Chinese names readable for an operator using curl
    return web.Response(body=orjson.dumps([dataclasses.asdict(i) for i in items]),
                        content_type="application/json")


_PROTECTED = ("/api/", "/ledger/")


def _token_guard(token: str) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Require ``Authorization: Bearer <token>`` on the operator API."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def guard(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if request.path.startswith(_PROTECTED):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.json_response(
                    {"error": "operator API: send Authorization: Bearer <http.api_token>"},
                    status=401)
        return await handler(request)
    return guard


def build_app(cfg: GatewayConfig, metrics_: Metrics | None = None) -> web.Application:
    """The gateway as an aiohttp application (HTTP side plus every listener and worker)."""
    middlewares = []
    if cfg.http.api_token is not None:
        middlewares.append(_token_guard(cfg.http.api_token.get_secret_value()))
    app = web.Application(client_max_size=cfg.http.max_body_bytes, middlewares=middlewares)
    app[CONFIG] = cfg
    app[METRICS] = metrics_ or Metrics()
    app.cleanup_ctx.append(_simulator_ctx)
    app.cleanup_ctx.append(_core_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/ingest/{listener}", ingest_http)
    app.router.add_post("/fhir", fhir_post)
    app.router.add_post("/fhir/{type}", fhir_post)
    app.router.add_get("/fhir/metadata", fhir_metadata)
    app.router.add_get("/api/unmapped", unmapped)
    mappings = open_mappings(cfg)  # <data_dir>/crosswalk.db, seeded once from crosswalk.csv
    crosswalk = mappings.crosswalk
    app[CROSSWALK] = crosswalk
    app.add_subapp("/api/mappings", mappings_api(mappings, app))
    if cfg.ledger.enabled:
        def current_crosswalk() -> Crosswalk:
            return mappings.crosswalk
        ledger = make_ledger(cfg, current_crosswalk)
        app[LEDGER] = ledger
        # reports and deadlines are read in China time, as the hospital reads them
        app.add_subapp("/ledger", ledger_app(ledger, clock=lambda: datetime.now(CHINA_TZ)))
        if cfg.cds.enabled:
            app.add_subapp("/cds-services",
                           cds_app(ledger, cds_settings(cfg, current_crosswalk)))

        async def close_ledger(_: web.Application) -> None:
            ledger.store.close()  # after the CDS sub-app flushed its cards
        app.on_cleanup.append(close_ledger)
    add_mirror_routes(app, STORE, MIRROR)
    return app
