"""Several gateway replicas in one test: each a whole application with its own MLLP port,
HTTP server and connection pool, all on one PostgreSQL schema, all mirroring to one
platform simulator (a city-level deployment on one machine)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from helpers import MLLPClient, RunningGateway, ack_fields, free_port, make_config
from pg import PG_DSN

from gateway.app import build_app
from gateway.keys import STORE
from gateway.platforms.simulator import SimulatorState, simulator_app
from gateway.security.identity import hash_token, new_token
from gateway.store.postgres import PostgresStore

API = "/api/mappings"
OPERATOR = {"X-Operator": "药剂科 李娜"}
# two pharmacists with tokens, for the tests of who is recorded (start with security=PEOPLE)
TOKENS = {"李娜": new_token(), "王强": new_token()}
PEOPLE = {"identities": [{"name": n, "role": "pharmacist", "token_sha256": hash_token(t)}
                         for n, t in TOKENS.items()]}


def as_(name: str) -> dict[str, str]:
    """Request headers proving ``name``'s identity."""
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@dataclass
class Replica(RunningGateway):
    name: str = ""
    session: aiohttp.ClientSession | None = None

    @property
    def store(self) -> PostgresStore:  # type: ignore[override]
        store = self.app[STORE]
        assert isinstance(store, PostgresStore)
        return store

    async def api(self, method: str, path: str, *, expect: int | None = None,
                  **kw: Any) -> tuple[int, Any]:
        assert self.session is not None
        async with self.session.request(method, self.url(path), **kw) as r:
            body = await r.json() if r.content_type == "application/json" else await r.read()
            if expect is not None:
                assert r.status == expect, body
            return r.status, body

    async def send(self, raw: bytes) -> dict[str, list[str]]:
        """Send one HL7 v2 message over MLLP; the ACK's segments."""
        client = await MLLPClient.connect(self.mllp_port)
        try:
            return ack_fields(await client.send(raw))
        finally:
            await client.close()


@dataclass
class Replicas:
    tmp: Path
    schema: str
    platform: SimulatorState = field(default_factory=SimulatorState)
    running: list[Replica] = field(default_factory=list)
    _platform_server: TestServer | None = None

    async def start_platform(self) -> None:
        self._platform_server = TestServer(simulator_app(self.platform), host="127.0.0.1")
        await self._platform_server.start_server()

    @property
    def platform_url(self) -> str:
        assert self._platform_server is not None
        return str(self._platform_server.make_url("/fsi/api/inventory"))

    async def start(self, name: str, **overrides: Any) -> Replica:
        """One more replica; the first seeds the shared crosswalk from the sample CSV."""
        cfg = make_config(self.tmp / name, mllp_port=free_port(), http_port=0,
                          platform_url=self.platform_url,
                          store={"backend": "postgres", "postgres_dsn": PG_DSN,
                                 "postgres_schema": self.schema}, **overrides)
        app = build_app(cfg)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        replica = Replica(app, server, cfg.listeners[0].port or 0, name=name,
                          session=aiohttp.ClientSession())
        self.running.append(replica)
        return replica

    def received(self) -> list[dict[str, Any]]:
        """What the platform accepted, in arrival order (selinfo of each 3505)."""
        return [self.platform.accepted[m]["input"]["selinfo"] for m in self.platform.order]

    async def close(self) -> None:
        for replica in reversed(self.running):
            if replica.session is not None:
                await replica.session.close()
            await replica.server.close()
        if self._platform_server is not None:
            await self._platform_server.close()
