"""A whole gateway, restartable on the same data directory, with an API client."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from helpers import (
    TIMINGS,
    MLLPClient,
    RunningGateway,
    ack_fields,
    free_port,
    make_config,
    sample,
)

from gateway.app import build_app
from gateway.security.identity import hash_token, new_token

API = "/api/mappings"
OPERATOR = {"X-Operator": "药剂科 李娜"}


@dataclass
class Gateway(RunningGateway):
    session: aiohttp.ClientSession

    async def api(self, method: str, path: str, *, expect: int | None = None,
                  **kw: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.url(API + path), **kw) as r:
            body = await r.json() if r.content_type == "application/json" else await r.read()
            if expect is not None:
                assert r.status == expect, body
            return r.status, body

    async def send(self, *messages: bytes) -> None:
        client = await MLLPClient.connect(self.mllp_port)
        try:
            for raw in messages:
                assert ack_fields(await client.send(raw))["MSA"][1] == "AA"
        finally:
            await client.close()

    def received(self) -> list[dict[str, Any]]:
        """What the platform accepted, in arrival order (selinfo of each 3505)."""
        sim = self.simulator
        return [sim.accepted[m]["input"]["selinfo"] for m in sim.order]


def held_dispense(n: int) -> bytes:
    """The sample dispense of an item the crosswalk does not know, numbered."""
    return (sample("rds_o13_unmapped_item.hl7")
            .replace(b"RDS20261123000888", f"RDSHELD{n:05d}".encode())
            .replace(b"CF20261123000888", f"CFHELD{n:05d}".encode()))


@dataclass
class Launcher:
    tmp: Path
    mllp_port: int = field(default_factory=free_port)
    sim_port: int = field(default_factory=free_port)
    running: list[tuple[TestServer, aiohttp.ClientSession]] = field(default_factory=list)

    async def start(self, **overrides: Any) -> Gateway:
        cfg = make_config(self.tmp, mllp_port=self.mllp_port, http_port=0,
                          simulator_port=self.sim_port,
                          platform_url=f"http://127.0.0.1:{self.sim_port}/fsi/api/inventory",
                          **overrides)
        app = build_app(cfg, timings=TIMINGS)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        session = aiohttp.ClientSession()
        self.running.append((server, session))
        return Gateway(app, server, self.mllp_port, session)

    async def stop(self, gw: Gateway) -> None:
        await gw.session.close()
        await gw.server.close()
        self.running = [(s, c) for s, c in self.running if s is not gw.server]




# people with their own tokens, for the tests of who is recorded as the author of a change
# (start the gateway with ``security=SECURITY`` and send ``headers=as_("李娜")``)
ROLE_OF = {"李娜": "pharmacist", "王强": "pharmacist", "张伟": "admin", "陈静": "auditor"}
TOKENS = {name: new_token() for name in ROLE_OF}
SECURITY = {"identities": [{"name": n, "role": r, "token_sha256": hash_token(TOKENS[n])}
                           for n, r in ROLE_OF.items()]}


def as_(name: str, **headers: str) -> dict[str, str]:
    """Request headers proving ``name``'s identity."""
    return {"Authorization": f"Bearer {TOKENS[name]}", **headers}
