"""Every object the gateway application shares, behind a typed ``web.AppKey``.

Each is set by the cleanup context that starts it (``gateway/app.py``) and read by
handlers through ``request.config_dict``, which sub-applications see too. (The bundled
platform simulator is an application of its own, also run alone by
``simulate-platform``; its one key stays beside it.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from adapters.base import Adapter
    from gateway.config import GatewayConfig
    from gateway.crosswalk.holder import CrosswalkHolder
    from gateway.crosswalk.service import MappingService
    from gateway.ingest.mllp import MLLPListener
    from gateway.ingest.pipeline import Ingestor
    from gateway.ledger.calendar_watch import CalendarWatch
    from gateway.ledger.ledger import Ledger
    from gateway.ledger.wiring import LedgerFeed, WarningPusher
    from gateway.loop_lag import LoopLag
    from gateway.metrics import Metrics
    from gateway.mirror.worker import Mirror
    from gateway.platforms.simulator import SimulatorState
    from gateway.security.identity import Identities
    from gateway.store.base import Store
    from gateway.timings import Timings

__all__ = [
    "CALENDAR_WATCH",
    "CONFIG",
    "CROSSWALK",
    "HTTP_ADAPTERS",
    "IDENTITIES",
    "INGESTOR",
    "LEDGER",
    "LEDGER_FEED",
    "LOOP_LAG",
    "MAPPINGS",
    "METRICS",
    "MIRROR",
    "MLLP_SERVERS",
    "PUSHER",
    "SIMULATOR",
    "STORE",
    "TIMINGS",
]

CONFIG: web.AppKey[GatewayConfig] = web.AppKey("config")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
IDENTITIES: web.AppKey[Identities] = web.AppKey("identities")
TIMINGS: web.AppKey[Timings] = web.AppKey("timings")
LOOP_LAG: web.AppKey[LoopLag] = web.AppKey("loop_lag")
STORE: web.AppKey[Store] = web.AppKey("store")
CROSSWALK: web.AppKey[CrosswalkHolder] = web.AppKey("crosswalk")
MAPPINGS: web.AppKey[MappingService] = web.AppKey("mappings")
LEDGER: web.AppKey[Ledger] = web.AppKey("ledger")
LEDGER_FEED: web.AppKey[LedgerFeed] = web.AppKey("ledger_feed")
CALENDAR_WATCH: web.AppKey[CalendarWatch] = web.AppKey("calendar_watch")
PUSHER: web.AppKey[WarningPusher] = web.AppKey("webhook_pusher")
SIMULATOR: web.AppKey[SimulatorState] = web.AppKey("simulator")
MIRROR: web.AppKey[Mirror] = web.AppKey("mirror")
INGESTOR: web.AppKey[Ingestor] = web.AppKey("ingestor")
HTTP_ADAPTERS: web.AppKey[dict[str, Adapter]] = web.AppKey("http_adapters")
MLLP_SERVERS: web.AppKey[dict[str, MLLPListener]] = web.AppKey("mllp_servers")
