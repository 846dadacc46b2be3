"""Baseline: a bare asyncio MLLP server that parses with python-hl7 and ACKs (no storage)."""

from __future__ import annotations

import asyncio
import sys

import hl7

START, END = b"\x0b", b"\x1c\r"


class Baseline(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while END in self.buf:
            frame, _, self.buf = self.buf.partition(END)
            msg = hl7.parse(frame[frame.index(START) + 1:].decode("utf-8"))
            ack = msg.create_ack("AA")
            self.transport.write(START + str(ack).encode("utf-8") + END)  # type: ignore[attr-defined]


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Baseline, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
