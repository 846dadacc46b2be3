"""Shared test helpers: waiting, ports, configurations, MLLP clients, sample messages."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from canonical.model import Event
from gateway.app import SIMULATOR, STORE, Timings
from gateway.config import DestinationConfig, GatewayConfig, parse_config
from gateway.ingest.framing import END, START
from gateway.platforms.nhsa import NhsaInventoryProfile
from gateway.platforms.simulator import SimulatorState, validate_envelope
from gateway.store.base import Balance
from gateway.store.sqlite import SqliteStore
from mappings.crosswalk import Crosswalk, load_csv, map_event

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
HL7 = DATA / "hl7v2"
CROSSWALK = ROOT / "config" / "crosswalk.sample.csv"
HOSPITAL = "H33010200015"
# the HTTP listeners of the sample configuration, for the test hospital
HTTP_LISTENERS: list[dict[str, Any]] = [
    {"name": "his-fhir", "adapter": "fhir-r4", "transport": "http",
     "config": {"organizations": {"Organization/zjsrmyy": HOSPITAL}}},
    {"name": "his-xml", "adapter": "vendor-xml", "transport": "http",
     "config": {"profile": "his-prescription-xml"}},
    {"name": "spd-json", "adapter": "vendor-json", "transport": "http",
     "config": {"profile": "warehouse-stock-json"}},
]
# the gateway's background intervals, short: tests wait for what they cause, not for them
TIMINGS = Timings(stats_s=0.02, follow_up_s=0.02)

T = TypeVar("T")


async def eventually(predicate: Callable[[], T | Awaitable[T]], *, timeout: float = 5.0,
                     interval: float = 0.01, what: str = "condition") -> T:
    """Call ``predicate`` (plain or async) until it returns something truthy; return that.

    The one way tests wait for something to happen: no sleeping for a fixed time. After
    ``timeout`` seconds it raises ``AssertionError`` naming ``what`` and the last value
    the predicate returned. Exceptions from the predicate propagate at once.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() >= deadline:
            seen = repr(value)
            if len(seen) > 500:
                seen = seen[:500] + "…"
            raise AssertionError(f"{what}: not reached within {timeout:g} s "
                                 f"(last value: {seen})")
        await asyncio.sleep(interval)


async def settled(store: Any, *, timeout: float = 10.0) -> Balance:
    """Wait until no outbox row of ``store`` is waiting: every outcome is recorded, so the
    mirror has nothing left to send (held events have no rows yet). Returns the balance."""
    last: list[Balance] = []

    async def drained() -> bool:
        last[:] = [await store.balance()]
        return not last[0].queued
    try:
        await eventually(drained, timeout=timeout, interval=0.02, what="outbox drained")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; balance: {last[0]}") from None
    return last[0]


class FixedCrosswalk:
    """A crosswalk source that never changes: the ingest pipeline without a store."""

    def __init__(self, crosswalk: Crosswalk | None = None) -> None:
        self.current = crosswalk or Crosswalk()

    async def refresh(self) -> None:
        """Nothing to catch up with."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nhsa_profile(**dest: Any) -> NhsaInventoryProfile:
    """The national inventory profile of a destination ``nhsa`` (fields ``dest``) for the
    sample hospital (浙江省人民医院, 330100)."""
    fields = {"name": "nhsa", "url": "http://127.0.0.1:9/fsi/api", **dest}
    gw = GatewayConfig.model_validate({
        "hospitals": [{"code": HOSPITAL, "name": "浙江省人民医院", "admdvs": "330100"}],
        "destinations": [fields]})
    return NhsaInventoryProfile(DestinationConfig.model_validate(fields), gw)

@functools.cache
def sample_crosswalk() -> Crosswalk:
    """The sample crosswalk (``config/crosswalk.sample.csv``), loaded once."""
    return load_csv(CROSSWALK)


def mapped(events: Iterable[Event], day: date) -> list[Event]:
    """``events`` mapped with the sample crosswalk on ``day``; every line must map."""
    out = []
    for event in events:
        done, unmapped = map_event(event, sample_crosswalk(), day)
        assert not unmapped, unmapped
        out.append(done)
    return out


def accepted_body(profile: NhsaInventoryProfile, event: Event, unit: int,
                  now: datetime) -> dict[str, Any]:
    """The body the platform gets for one unit of ``event``, sent at ``now``, after the
    strict simulator's check of the whole envelope accepted it."""
    request = profile.build(event, unit, f"{HOSPITAL}{now:%Y%m%d%H%M%S}{unit:04d}",
                            now.timestamp())
    env = orjson.loads(request.body)
    assert validate_envelope(env) is None, validate_envelope(env)
    body: dict[str, Any] = next(iter(env["input"].values()))
    return body


def sample(name: str) -> bytes:
    """A sample message's bytes."""
    return (HL7 / name).read_bytes()


def numbered_dispense(n: int, control_prefix: str = "RDS") -> bytes:
    """The sample dispense with its own MSH-10 and prescription number (ORC-2)."""
    raw = sample("rds_o13_dispense_utf8.hl7")
    return (raw.replace(b"RDS20261123000001", f"{control_prefix}{n:012d}".encode())
               .replace(b"CF20261123000123", f"CF{control_prefix}{n:010d}".encode()))


def many_lines(n: int, count: int) -> bytes:
    """A sample dispense with ``count`` order groups (lines), each its own codes."""
    segs = numbered_dispense(n, "LINES").rstrip(b"\r").split(b"\r")
    group = [s for s in segs if s[:3] in (b"ORC", b"RXE", b"RXD", b"ZJC")]
    head = [s for s in segs if s[:3] not in (b"ORC", b"RXE", b"RXD", b"ZJC")]
    lines = [s.replace(b"81234567890123456789~81234567890123456790",
                       f"8{i:019d}~8{i + 50_000:019d}".encode())
             for i in range(count) for s in group]
    return b"\r".join(head + lines) + b"\r"


def config_dict(tmp: Path, *, mllp_port: int, http_port: int, platform_url: str,
                simulator_port: int | None = None, max_frame: int = 1_048_576,
                **extra: Any) -> dict[str, Any]:
    """A full configuration as YAML data, everything on loopback and under ``tmp``."""
    cfg: dict[str, Any] = {
        "data_dir": str(tmp / "var"),
        "log_level": "INFO",
        "hospitals": [{"code": HOSPITAL, "name": "浙江省人民医院", "admdvs": "330100"}],
        "store": {"backend": "sqlite", "sqlite_path": str(tmp / "var" / "gateway.db")},
        "listeners": [{"name": "his-mllp", "adapter": "hl7v2", "transport": "mllp",
                       "host": "127.0.0.1", "port": mllp_port, "max_frame_bytes": max_frame,
                       "config": {"facilities": {"ZJSRMYY": HOSPITAL}}}],
        "http": {"host": "127.0.0.1", "port": http_port},
        "crosswalk": {"csv": str(CROSSWALK)},
        "destinations": [{"name": "nhsa", "profile": "nhsa-inventory", "url": platform_url,
                          "timeout_s": 2, "backoff_initial_s": 0.05, "backoff_max_s": 0.5}],
        "ledger": {"calendar_dir": str(ROOT / "config" / "calendar"),
                   "rules": str(ROOT / "config" / "rules.yaml"),
                   "contracts": str(ROOT / "config" / "contracts.sample.csv"),
                   "path": str(tmp / "var" / "ledger.db")},
        "cds": {"require_auth": False, "default_hospital_id": HOSPITAL},
        "simulator": {"enabled": simulator_port is not None, "host": "127.0.0.1",
                      "port": simulator_port or 0},
    }
    cfg.update(extra)
    return cfg


def make_config(tmp: Path, **kw: Any) -> GatewayConfig:
    """A validated configuration (see :func:`config_dict`)."""
    return parse_config(config_dict(tmp, **kw), "test.yaml")


def write_config(tmp: Path, **kw: Any) -> Path:
    """The configuration written as a YAML file."""
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp, **kw), allow_unicode=True), "utf-8")
    return path


class MLLPClient:
    """A sequential MLLP client, as a HIS interface engine behaves."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> MLLPClient:
        r, w = await asyncio.open_connection(host, port)
        return cls(r, w)

    async def send(self, payload: bytes, timeout: float = 10.0) -> bytes:
        """Send one message and return the ACK payload."""
        self.writer.write(START + payload + END)
        await self.writer.drain()
        return await self.read_ack(timeout)

    async def read_ack(self, timeout: float = 10.0) -> bytes:
        data = await asyncio.wait_for(self.reader.readuntil(END), timeout)
        return data[data.index(START) + 1: -2]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


_ESCAPES = {"\\F\\": "|", "\\S\\": "^", "\\T\\": "&", "\\R\\": "~"}


def _unescape_text(field: str) -> str:
    if "^" in field:  # a composite (ERR-2, ERR-3): keep its components apart
        return field
    for k, v in _ESCAPES.items():
        field = field.replace(k, v)
    return field.replace("\\E\\", "\\")


def ack_fields(ack: bytes, codec: str = "utf-8") -> dict[str, list[str]]:
    """Segments of an ACK by name → fields, text fields unescaped (first ERR as "ERR")."""
    out: dict[str, list[str]] = {}
    for seg in ack.decode(codec).split("\r"):
        if seg:
            parts = [_unescape_text(p) for p in seg.split("|")]
            if parts[0] == "ERR" and "ERR" in out:
                out.setdefault("ERR2", parts)
                continue
            out.setdefault(parts[0], parts)
    return out


@dataclass
class RunningGateway:
    """A gateway app served on loopback by a test server, with its MLLP port."""

    app: web.Application
    server: TestServer
    mllp_port: int

    @property
    def simulator(self) -> SimulatorState:
        return self.app[SIMULATOR]

    @property
    def store(self) -> SqliteStore:
        store = self.app[STORE]
        assert isinstance(store, SqliteStore)
        return store

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def delivered(self, count: int, timeout: float = 5.0) -> list[str]:
        """Wait until the platform simulator accepted ``count`` events (no more); returns
        their msgids in arrival order."""
        order = self.simulator.order
        await eventually(lambda: len(order) >= count, timeout=timeout,
                         what=f"{count} event(s) accepted by the platform")
        assert len(order) == count, f"expected {count} accepted events, got {len(order)}"
        return list(order)


@contextlib.asynccontextmanager
async def gateway_with_http_listeners(tmp: Path, **overrides: Any
                                      ) -> AsyncIterator[RunningGateway]:
    """A whole gateway on loopback with the HL7 v2 MLLP listener and the sample FHIR and
    vendor HTTP listeners (``HTTP_LISTENERS``); ``overrides`` go to :func:`config_dict`."""
    from gateway.app import build_app

    mllp_port, sim_port = free_port(), free_port()
    listeners = [{"name": "his-mllp", "adapter": "hl7v2", "transport": "mllp",
                  "host": "127.0.0.1", "port": mllp_port,
                  "config": {"facilities": {"ZJSRMYY": HOSPITAL}}}, *HTTP_LISTENERS]
    cfg = make_config(tmp, mllp_port=mllp_port, http_port=0, simulator_port=sim_port,
                      platform_url=f"http://127.0.0.1:{sim_port}/fsi/api/inventory",
                      listeners=listeners, **overrides)
    server = TestServer(build_app(cfg, timings=TIMINGS), host="127.0.0.1")
    await server.start_server()
    try:
        yield RunningGateway(server.app, server, mllp_port)
    finally:
        await server.close()


async def post_to_listener(gateway: RunningGateway, listener: str,
                           body: bytes) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to ``/ingest/<listener>``: (status, JSON answer)."""
    import orjson
    from aiohttp import ClientSession

    async with ClientSession() as http, http.post(gateway.url(f"/ingest/{listener}"),
                                                  data=body) as r:
        return r.status, orjson.loads(await r.read())


async def send_for_ack(gateway: RunningGateway, raw: bytes) -> dict[str, list[str]]:
    """Send ``raw`` over the gateway's MLLP listener: its ACK's fields."""
    client = await MLLPClient.connect(gateway.mllp_port)
    try:
        return ack_fields(await client.send(raw))
    finally:
        await client.close()


async def stored_events(gateway: RunningGateway) -> int:
    """How many events the gateway's store holds."""
    [(events,)] = await gateway.store.query("SELECT count(*) FROM events")
    return int(events)
