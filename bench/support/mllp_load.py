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


class _PacedConn(asyncio.Protocol):
    """Sends on a fixed schedule whether or not the previous ACK came (MLLP allows a
    sender to pipeline); an ACK's latency counts from when its message was due, so a
    stall is measured in full rather than hidden by a sender that waited."""

    def __init__(self, latencies: list[float]) -> None:
        self.latencies = latencies
        self.buf = b""
        self.due: list[float] = []
        self.next_ack = 0
        self.acks = 0
        self.naks = 0
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, message: bytes, due: float) -> None:
        assert self.transport is not None
        self.due.append(due)
        self.transport.write(START + message + END)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while END in self.buf:
            frame, _, self.buf = self.buf.partition(END)
            self.latencies.append(time.perf_counter() - self.due[self.next_ack])
            self.next_ack += 1
            if b"MSA|AA|" in frame:
                self.acks += 1
            else:
                self.naks += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


async def drive_paced(port: int, make: Callable[[int], bytes], rate: float, seconds: float,
                      connections: int) -> dict[str, float]:
    """Offer ``rate`` messages a second for ``seconds`` over ``connections`` connections
    (round robin), then wait for every ACK; return figures."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    conns: list[_PacedConn] = []
    for _ in range(connections):
        _, proto = await loop.create_connection(lambda: _PacedConn(latencies),
                                                "127.0.0.1", port)
        conns.append(proto)
    total = int(rate * seconds)
    start = time.perf_counter()
    for n in range(total):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        conns[n % connections].send(make(n), due)
    deadline = time.perf_counter() + 120
    while len(latencies) < total and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    for c in conns:
        if c.transport:
            c.transport.close()
    if len(latencies) < total:
        raise TimeoutError(f"{total - len(latencies)} of {total} messages unanswered")
    latencies.sort()
    return {
        "msgs_per_s": sum(c.acks for c in conns) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "max_ms": latencies[-1] * 1000,
        "acks": sum(c.acks for c in conns),
        "naks": sum(c.naks for c in conns),
        "elapsed_s": elapsed,
    }
