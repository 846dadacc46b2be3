"""Starting the gateway: a resource that fails to start closes what was started before it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from helpers import free_port, make_config

from gateway.app import build_app
from gateway.keys import MIRROR, STORE


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def test_a_listener_that_cannot_bind_unwinds_the_started_resources(
        tmp_path: Path) -> None:
    sim_port = free_port()
    with socket.socket() as taken:  # another program holds the MLLP port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        mllp_port = taken.getsockname()[1]
        cfg = make_config(tmp_path, mllp_port=mllp_port, http_port=0, simulator_port=sim_port,
                          platform_url=f"http://127.0.0.1:{sim_port}/fsi/api/inventory")
        app = build_app(cfg)
        server = TestServer(app, host="127.0.0.1")
        with pytest.raises(OSError):
            await server.start_server()
        await server.close()
    # started before the listeners, stopped when they failed: in reverse order
    assert app[STORE].closed  # type: ignore[attr-defined]
    assert not app[MIRROR].running
    assert _port_is_free(sim_port)  # the simulator's socket is closed again
    # and nothing was left half-open: the same configuration starts once the port is free
    cfg = make_config(tmp_path, mllp_port=free_port(), http_port=0, simulator_port=sim_port,
                      platform_url=f"http://127.0.0.1:{sim_port}/fsi/api/inventory")
    server = TestServer(build_app(cfg), host="127.0.0.1")
    await server.start_server()
    await server.close()
