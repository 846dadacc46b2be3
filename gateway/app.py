"""Wiring: the gateway as one aiohttp application, one cleanup context per resource.

Each long-lived resource (store, crosswalk, ledger, simulator, mirror, ingest
listeners, statistics) starts in its own cleanup context and is stopped after the
``yield``; aiohttp runs the contexts in order and unwinds the ones already started, in
reverse, when a later one fails to start, so a failed start closes what it opened.
Shared objects sit behind the typed keys of :mod:`gateway.keys`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from adapters.base import Adapter
from adapters.registry import create as create_adapter
from canonical.model import CHINA_TZ, Event
from gateway.browser.http import add_browser_routes
from gateway.cds import cds_app
from gateway.config import GatewayConfig
from gateway.console import add_console_routes
from gateway.crosswalk.holder import CrosswalkHolder
from gateway.crosswalk.http import mappings_api, unmapped_queue
from gateway.crosswalk.legacy import import_legacy_catalogs, import_legacy_crosswalk
from gateway.crosswalk.service import MappingService
from gateway.gauges import refresh_circuits, refresh_contracts, refresh_store_files, set_build_info
from gateway.ingest.held import add_held_routes
from gateway.ingest.http import add_ingest_routes
from gateway.ingest.limits import Limits
from gateway.ingest.mllp import MLLPListener, start_mllp_server
from gateway.ingest.offload import ParseWorkers
from gateway.ingest.pipeline import Ingestor, Route
from gateway.keys import (
    CALENDAR_WATCH,
    CONFIG,
    CROSSWALK,
    HTTP_ADAPTERS,
    IDENTITIES,
    INGESTOR,
    LEDGER,
    LEDGER_FEED,
    LOOP_LAG,
    MAPPINGS,
    METRICS,
    MIRROR,
    MLLP_SERVERS,
    PUSHER,
    SIMULATOR,
    STORE,
    TIMINGS,
)
from gateway.ledger import Ledger, ledger_app
from gateway.ledger.calendar_watch import CalendarWatch
from gateway.ledger.ledger import Evaluation
from gateway.ledger.wiring import (
    LedgerFeed,
    WarningPusher,
    cds_settings,
    item_resolver,
    open_ledger,
    prescription_advisor,
)
from gateway.loop_lag import LoopLag
from gateway.metrics import Metrics
from gateway.mirror.http import add_mirror_routes
from gateway.mirror.worker import Destination, Mirror
from gateway.openapi import add_openapi_route
from gateway.platforms.registry import profile_for
from gateway.platforms.simulator import SimulatorState, simulator_app
from gateway.retention import run_retention
from gateway.security.access import access_middleware
from gateway.security.audit_log import RECORDER, Recorder, add_audit_routes, record_start
from gateway.security.http_limits import body_deadline
from gateway.security.identity import Identities
from gateway.store.base import Store
from gateway.store.files import private_dir
from gateway.store.sqlite import SqliteStore
from gateway.timings import Timings
from gateway.webhooks import WebhookSender, WebhookTarget
from mappings.crosswalk import Crosswalk

__all__ = [
    "CONFIG",
    "DRAIN_SHARE",
    "HTTP_SHARE",
    "INGESTOR",
    "LEDGER",
    "LEDGER_FEED",
    "METRICS",
    "MIRROR",
    "SIMULATOR",
    "STORE",
    "Timings",
    "build_app",
    "make_store",
]

log = logging.getLogger(__name__)


def make_store(cfg: GatewayConfig, metrics: Metrics | None = None) -> Store:
    """The store the configuration names."""
    on_batch = metrics.commit_batch.observe if metrics else None
    if cfg.store.backend == "sqlite":
        return SqliteStore(cfg.store.sqlite_path, group_commit_max=cfg.store.group_commit_max,
                           on_batch=on_batch, quarantine_max_bytes=cfg.store.quarantine_max_bytes)
    from gateway.store.postgres import PostgresStore

    assert cfg.store.postgres_dsn is not None  # the config validator requires it
    return PostgresStore(cfg.store.postgres_dsn.get_secret_value(),
                         schema=cfg.store.postgres_schema,
                         group_commit_max=cfg.store.group_commit_max, lease_s=cfg.store.lease_s,
                         pool_max=cfg.store.postgres_pool_max, on_batch=on_batch,
                         quarantine_max_bytes=cfg.store.quarantine_max_bytes)


# --- one cleanup context per resource, in start order ----------------------------------

async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    private_dir(cfg.data_dir)  # uploads and an earlier release's files: the gateway's only
    store = make_store(cfg, app[METRICS])
    await store.start()
    try:
        # a data directory of an earlier release: its files move into the store once
        await import_legacy_crosswalk(cfg.data_dir, store)
        await import_legacy_catalogs(cfg.data_dir, store)
        await record_start(store.audit_log, cfg, app[RECORDER].config_file)
    except BaseException:
        await store.close()
        raise
    app[STORE] = store
    yield
    await app[RECORDER].drain()
    await store.close()


async def _crosswalk_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    store = app[STORE]
    holder = CrosswalkHolder(store.crosswalk)
    await holder.load()
    service = MappingService(store, holder)
    if cfg.crosswalk.csv is not None:
        await service.seed(cfg.crosswalk.csv)
    app[CROSSWALK] = holder
    app[MAPPINGS] = service
    await store.listen(holder.on_change)
    await store.listen(service.on_change)
    holder.start()
    yield
    await holder.stop()


async def _ledger_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    if not cfg.ledger.enabled:
        yield
        return
    store = app[STORE]
    holder = app[CROSSWALK]
    ledger = await open_ledger(cfg, store, item_resolver(lambda: holder.current))
    app[LEDGER] = ledger
    poison = app[METRICS].ledger_poison
    feed = LedgerFeed(store, ledger, on_poison=lambda seq, reason: poison.inc())
    app[LEDGER_FEED] = feed
    store.committed_listeners.append(feed.committed)
    await store.listen(feed.on_change)  # other replicas' folds and contracts, at once
    task = asyncio.create_task(feed.run(), name="ledger-feed")
    gauge = app[METRICS].ledger_provisional
    watch = CalendarWatch(cfg.ledger.calendar_dir, ledger, app[TIMINGS].calendar_s,
                          on_count=gauge.set)
    app[CALENDAR_WATCH] = watch
    watching = asyncio.create_task(watch.run(), name="calendar-watch")
    yield
    watching.cancel()
    await asyncio.gather(watching, return_exceptions=True)
    await feed.stop(task)


async def _webhooks_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    if not cfg.webhooks or LEDGER not in app:
        yield
        return
    pusher = WarningPusher(WebhookSender([
        WebhookTarget(w.url, w.secret.get_secret_value().encode(), frozenset(w.events))
        for w in cfg.webhooks]), app[LEDGER])
    app[PUSHER] = pusher
    task = asyncio.create_task(pusher.run(), name="deadline-webhooks")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await pusher.close()


async def _simulator_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    if not cfg.simulator.enabled:
        yield
        return
    state = SimulatorState()
    app[SIMULATOR] = state
    runner = web.AppRunner(simulator_app(state), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, cfg.simulator.host, cfg.simulator.port).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("platform simulator on http://%s:%d/fsi/api/", cfg.simulator.host,
             cfg.simulator.port)
    yield
    await runner.cleanup()


async def _loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    lag = app[LOOP_LAG] = LoopLag(app[METRICS].registry)
    lag.start()
    yield
    await lag.stop()


async def _mirror_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    store = app[STORE]
    async with aiohttp.ClientSession() as session:
        destinations = [Destination(d, profile_for(d.profile)(d, cfg)) for d in cfg.destinations]
        mirror = Mirror(store, destinations, app[METRICS], session, lag=app[LOOP_LAG])
        app[MIRROR] = mirror
        await store.listen(mirror.on_change)  # rows other replicas commit wake it too
        mirror.start()
        yield
        await mirror.stop()


async def _ingest_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    store = app[STORE]
    mirror = app[MIRROR]
    holder = app[CROSSWALK]
    lim = cfg.limits
    workers = ParseWorkers(lim.parse_offload_bytes, lim.parse_timeout_s, lim.parse_workers)
    ingestor = Ingestor(store, holder, [Route(d.name, d.profile) for d in mirror.destinations],
                        app[METRICS], notify=mirror.notify,
                        limits=Limits(lim.max_lines, lim.max_trace_codes,
                                      Decimal(str(lim.max_quantity)),
                                      Decimal(str(lim.max_price)),
                                      long_trace_codes=lim.long_trace_codes),
                        workers=workers,
                        hospitals=frozenset(h.code for h in cfg.hospitals) or None,
                        products=lambda: app[MAPPINGS].products)
    app[INGESTOR] = ingestor
    if LEDGER in app:
        pusher = app.get(PUSHER)
        ingestor.advisors.append(prescription_advisor(
            app[LEDGER], _counting_warnings(app[METRICS], None),
            pusher.prescription_warning if pusher else None))
    follow_ups: set[asyncio.Task[None]] = set()

    async def release(hospitals: frozenset[str]) -> int:
        released = 0
        for hospital in sorted(hospitals):
            released += await ingestor.release_held(hospital)
        return released

    async def release_later(hospitals: frozenset[str]) -> None:
        # after any crosswalk change, made here or by another replica: a message mapped
        # with the old crosswalk may have committed, held, just after the author's release
        task = asyncio.create_task(
            _release_later(ingestor, hospitals, app[TIMINGS].follow_up_s))
        follow_ups.add(task)
        task.add_done_callback(follow_ups.discard)

    app[MAPPINGS].release = release
    # a catalog version may give what held events lack (rx_flag): release them
    app[MAPPINGS].on_catalog = ingestor.release_held
    await app[MAPPINGS].load_products()
    holder.on_applied.append(release_later)
    # a change stored just before a crash (or by another replica) may not have released
    # its events yet
    await ingestor.release_held()
    servers: dict[str, MLLPListener] = {}
    http_adapters: dict[str, Adapter] = {}
    app[MLLP_SERVERS] = servers
    app[HTTP_ADAPTERS] = http_adapters
    try:
        for listener in cfg.listeners:
            adapter = create_adapter(listener.adapter, listener.config)
            workers.register(adapter, listener.adapter, listener.config)
            if listener.transport == "mllp":
                assert listener.port is not None
                servers[listener.name] = await start_mllp_server(
                    ingestor, adapter, listener, metrics=app[METRICS],
                    identities=app[IDENTITIES])
            else:
                http_adapters[listener.name] = adapter
        yield
    finally:
        holder.on_applied.remove(release_later)
        for server in servers.values():
            server.close()
            await server.wait_closed()
        for task in follow_ups:
            task.cancel()
        await asyncio.gather(*follow_ups, return_exceptions=True)
        await workers.close()


async def _drain_listeners(app: web.Application) -> None:
    """On shutdown, before the HTTP requests in flight are waited for and the contexts
    unwind: MLLP listeners stop accepting, and each open connection is answered what it
    is owed (its commits finish first) and closed — within most of the grace period, so
    that the HTTP side and the store's close still fit in it."""
    servers = app.get(MLLP_SERVERS)
    if not servers:
        return
    budget = app[CONFIG].shutdown_grace_s * DRAIN_SHARE
    await asyncio.gather(*(s.drain(budget) for s in servers.values()))


# of shutdown_grace_s: MLLP connections' answers, then HTTP requests (serve's
# shutdown_timeout), the rest for closing the store and the workers
DRAIN_SHARE = 0.6
HTTP_SHARE = 0.25


def _counting_warnings(m: Metrics, then: Callable[[Event, Evaluation], None] | None
                       ) -> Callable[[Event, Evaluation], None]:
    """The ACK warnings' hook, counting each finding by rule before ``then`` (webhooks)."""
    def on_warning(event: Event, evaluation: Evaluation) -> None:
        for finding in evaluation.findings:
            m.labelled(m.warnings_fired, finding.rule_id, "ack").inc()
        if then is not None:
            then(event, evaluation)
    return on_warning


async def _release_later(ingestor: Ingestor, hospitals: frozenset[str],
                         delay_s: float) -> None:
    await asyncio.sleep(delay_s)
    for hospital in sorted(hospitals):
        try:
            await ingestor.release_held(hospital)
        except Exception:  # the next change or restart releases them
            log.exception("follow-up release of held events failed for %s", hospital)


async def _stats_ctx(app: web.Application) -> AsyncIterator[None]:
    set_build_info(app[METRICS])
    task = asyncio.create_task(_refresh_stats(app), name="outbox-stats")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _retention_ctx(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(run_retention(app[STORE], app[CONFIG].store, app[METRICS],
                                             app[TIMINGS].retention_s), name="retention")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _refresh_stats(app: web.Application) -> None:
    """Keep the outbox gauges current (a scrape must not wait on the database)."""
    m = app[METRICS]
    store = app[STORE]
    names = [d.name for d in app[CONFIG].destinations]
    interval_s = app[TIMINGS].stats_s
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
        _refresh_operating(app)
        await asyncio.sleep(interval_s)


def _refresh_operating(app: web.Application) -> None:
    """Circuits, contract progress and store files: each on its own, so that one failing
    leaves the others current."""
    m = app[METRICS]
    cfg = app[CONFIG]
    sqlite_path = cfg.store.sqlite_path if cfg.store.backend == "sqlite" else None
    steps: list[tuple[str, Callable[[], None]]] = [
        ("circuit states", lambda: refresh_circuits(m, app[MIRROR].breakers, app[MIRROR].clock())),
        ("store file sizes", lambda: refresh_store_files(m, sqlite_path))]
    if LEDGER in app:
        steps.append(("contract progress", lambda: refresh_contracts(
            m, app[LEDGER], datetime.now(CHINA_TZ))))
    for what, step in steps:
        try:
            step()
        except Exception:
            log.exception("could not refresh the %s gauges", what)


# --- health and metrics ----------------------------------------------------------------

async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the store takes writes and every platform was reachable at the last try.

    Degraded (still 200: messages are taken and mirrored) while the ledger holds events it
    could not fold, with their reasons: warnings and reports miss them until they are
    folded again (``jicai-gateway ledger-poison --refold``), and while deadlines are
    provisional: counted without their year's working-day calendar file, they may be due
    later than shown until the file is added.
    """
    app = request.app
    store = app[STORE]
    writable = await store.writable()
    reachable = app[MIRROR].reachable
    ok = writable and all(reachable.values())
    body: dict[str, object] = {"status": "ready" if ok else "not ready",
                               "store_writable": writable, "platforms_reachable": reachable}
    if app[CONFIG].security.demo:
        body["demo"] = ("demo mode (security.demo): not for purchases; the platform may be "
                        "the bundled simulator")
    if ok and LEDGER in app:
        poisoned = await store.ledger.poisoned()
        if poisoned:
            body["status"] = "degraded"
            body["ledger_poison_events"] = [{"seq": s, "reason": r} for s, r, _ in poisoned[:20]]
            body["ledger_poison_total"] = len(poisoned)
        watch = app.get(CALENDAR_WATCH)
        if watch is not None and watch.provisional:
            body["status"] = "degraded"
            body["ledger_provisional_deadlines"] = watch.provisional
            body["ledger_provisional_reason"] = watch.reason()
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition."""
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _mount_ledger(app: web.Application, cfg: GatewayConfig) -> None:
    """The ledger's and the CDS service's routes; the ledger they answer from opens with
    the store (``_ledger_ctx``)."""
    def ledger() -> Ledger:
        return app[LEDGER]

    def current_crosswalk() -> Crosswalk:
        return app[CROSSWALK].current
    # reports and deadlines are read in China time, as the hospital reads them
    app.add_subapp("/ledger", ledger_app(ledger, clock=lambda: datetime.now(CHINA_TZ)))
    if cfg.cds.enabled:
        m = app[METRICS]
        settings = replace(
            cds_settings(cfg, current_crosswalk),
            on_card=lambda rule: m.labelled(m.warnings_fired, rule, "cds").inc(),
            on_feedback=lambda rule, outcome: m.labelled(m.warning_feedback, rule,
                                                         outcome).inc())
        app.add_subapp("/cds-services", cds_app(ledger, settings))


def build_app(cfg: GatewayConfig, metrics_: Metrics | None = None, *,
              timings: Timings | None = None,
              config_file: str | Path | None = None) -> web.Application:
    """The gateway as an aiohttp application (HTTP side plus every listener and worker);
    ``timings`` overrides the intervals of its background work (default :class:`Timings`);
    ``config_file``, the file ``cfg`` was read from, is named (with its hash) in the audit
    log at start."""
    recorder = Recorder(lambda: app[STORE].audit_log if STORE in app else None, config_file)
    identities = Identities(
        cfg.security, None if cfg.http.api_token is None else cfg.http.api_token.get_secret_value(),
        on_reload=recorder.identities_reloaded)
    metrics_ = metrics_ or Metrics()
    refused = metrics_.http_refused
    guard = access_middleware(identities, public_probes=cfg.http.public_probes,
                              on_failure=lambda reason: refused.labels(reason).inc())
    app = web.Application(client_max_size=cfg.http.max_body_bytes,
                          middlewares=[guard, body_deadline(cfg.http.read_timeout_s)])
    app[CONFIG] = cfg
    app[IDENTITIES] = identities
    app[RECORDER] = recorder
    app[METRICS] = metrics_
    app[TIMINGS] = timings or Timings()
    app.on_shutdown.append(_drain_listeners)
    for ctx in (_loop_lag_ctx, _store_ctx, _crosswalk_ctx, _ledger_ctx, _webhooks_ctx,
                _simulator_ctx, _mirror_ctx, _ingest_ctx, _stats_ctx, _retention_ctx):
        app.cleanup_ctx.append(ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    add_ingest_routes(app)
    app.router.add_get("/api/unmapped", unmapped_queue)
    add_held_routes(app)
    app.add_subapp("/api/mappings", mappings_api())
    if cfg.ledger.enabled:
        _mount_ledger(app, cfg)
    add_mirror_routes(app)
    add_browser_routes(app)
    add_audit_routes(app)
    add_console_routes(app)
    add_openapi_route(app)
    return app

