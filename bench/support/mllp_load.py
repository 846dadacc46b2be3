"""A load generator for MLLP servers: N connections, each sending and awaiting its ACK."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

START, END = b"\x0b", b"\x1c\r"


class _Conn(asyncio.Protocol):
    def __init__(self, make: Callable[[int], bytes], counter: list[int], total: int,
                 latencies: list[float], done: asyncio.Future[None]) -> None:
        self.make = make
        self.counter = counter
        self.total = total
        self.latencies = latencies
        self.done = done
        self.buf = b""
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.acks = 0
        self.naks = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._next()

    def _next(self) -> None:
        n = self.counter[0]
        if n >= self.total:
            if not self.done.done():
                self.done.set_result(None)
            return
        self.counter[0] = n + 1
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(START + self.make(n) + END)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while END in self.buf:
            frame, _, self.buf = self.buf.partition(END)
            self.latencies.append(time.perf_counter() - self.sent_at)
            if b"MSA|AA|" in frame:
                self.acks += 1
            else:
                self.naks += 1
            self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"connection lost: {exc}"))


async def drive(port: int, make: Callable[[int], bytes], total: int,
                connections: int) -> dict[str, float]:
    """Send ``total`` messages over ``connections`` sequential connections; return figures."""
    loop = asyncio.get_running_loop()
    counter = [0]
    latencies: list[float] = []
    done: asyncio.Future[None] = loop.create_future()
    conns: list[_Conn] = []
    start = time.perf_counter()
    for _ in range(connections):
        _, proto = await loop.create_connection(
            lambda: _Conn(make, counter, total, latencies, done), "127.0.0.1", port)
        conns.append(proto)
    await asyncio.wait_for(done, timeout=600)
    while len(latencies) < total:  # the last ACKs of the other connections
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - start
    for c in conns:
        if c.transport:
            c.transport.close()
    latencies.sort()
    acks = sum(c.acks for c in conns)
    return {
        "msgs_per_s": acks / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "acks": acks,
        "naks": sum(c.naks for c in conns),
        "elapsed_s": elapsed,
    }
