"""A mirror with its store and a platform simulator, all in the test's event loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from factory import HOSPITALS
from helpers import settled

from canonical.model import Event
from gateway.config import GatewayConfig, parse_config
from gateway.metrics import Metrics
from gateway.mirror.worker import Destination, Mirror
from gateway.platforms.registry import profile_for
from gateway.platforms.simulator import SimulatorState, simulator_app
from gateway.store.base import Incoming, PlannedDelivery

HASH_SECRET = "h-secret-0015-不外传"


def gateway_config(destinations: list[dict[str, Any]]) -> GatewayConfig:
    """Hospitals with hash secrets and the given destinations."""
    return parse_config({
        "hospitals": [{"code": h, "name": f"测试医院{i}", "admdvs": "330100",
                       "hash_secret": f"{HASH_SECRET}-{i}"} for i, h in enumerate(HOSPITALS)],
        "destinations": destinations,
    }, "mirror-test.yaml")


def destination(name: str, url: str, **kw: Any) -> dict[str, Any]:
    """A destination tuned for tests: short timeouts and back-off."""
    d: dict[str, Any] = {"name": name, "url": url, "timeout_s": 1.0, "backoff_initial_s": 0.02,
                         "backoff_max_s": 0.2, "idle_poll_s": 0.05, "max_attempts": 5,
                         "breaker_cooldown_s": 0.1, "breaker_cooldown_max_s": 0.5}
    d.update(kw)
    return d


class ShiftedClock:
    """Wall-clock time plus an offset the test moves forward: a time budget or a back-off
    passes at once instead of being waited out."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Rig:
    store: Any
    cfg: GatewayConfig
    mirror: Mirror
    session: aiohttp.ClientSession
    sims: dict[str, SimulatorState] = field(default_factory=dict)
    servers: list[TestServer] = field(default_factory=list)
    control: int = 0

    async def send(self, events: list[Event]) -> tuple[int, ...]:
        """Commit one message per event, planned like the ingest path plans them."""
        ids: list[int] = []
        for ev in events:
            self.control += 1
            deliveries = tuple(PlannedDelivery(0, d.name, u, d.profile.order_key(ev, u))
                               for d in self.mirror.destinations
                               for u in range(d.profile.units(ev)))
            res = await self.store.commit(Incoming(
                adapter="hl7v2", sender="HIS^WINNING", control_id=f"M{self.control:09d}",
                message_type="RDS^O13", raw=b"MSH|...", received_at=ev.occurred_at,
                events=(ev,), held=(False,), deliveries=deliveries))
            ids.extend(res.outbox_ids)
        self.mirror.notify()
        return tuple(ids)

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until no outbox row is pending."""
        await settled(self.store, timeout=timeout)


async def start_simulator(state: SimulatorState) -> TestServer:
    server = TestServer(simulator_app(state), host="127.0.0.1")
    await server.start_server()
    return server


async def make_rig(store: Any, dests: list[dict[str, Any]], sims: dict[str, SimulatorState],
                   *, clock: Callable[[], float] = time.time,
                   quick_wait_s: float = 0.002) -> Rig:
    """Start one simulator per entry of ``sims`` (url placeholders ``{name}``), and the mirror
    (reading the time from ``clock``, short waits between its quick tries by default)."""
    servers = {}
    for name, state in sims.items():
        servers[name] = await start_simulator(state)
    for d in dests:
        for name, server in servers.items():
            d["url"] = d["url"].replace("{" + name + "}", f"http://127.0.0.1:{server.port}")
    cfg = gateway_config(dests)
    session = aiohttp.ClientSession()
    destinations = [Destination(d, profile_for(d.profile)(d, cfg)) for d in cfg.destinations]
    mirror = Mirror(store, destinations, Metrics(), session, clock=clock,
                    quick_wait_s=quick_wait_s)
    mirror.start()
    return Rig(store, cfg, mirror, session, dict(sims), list(servers.values()))


async def stop_rig(rig: Rig) -> None:
    await rig.mirror.stop()
    await rig.session.close()
    for s in rig.servers:
        await s.close()
