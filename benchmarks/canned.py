"""The asyncio floor for status requests: a minimal server on a Unix socket answering a canned reply.

It runs on the same event loop machinery as the daemon, so the ratio shows what the daemon adds per
request (HTTP parsing, routing, building the status). A request saying `Connection: close` gets the
first reply and the connection ends; any other gets the second and the connection stays open, as the
C floor (`cserver.c`) does. Run as `python -m benchmarks.canned SOCKET CLOSE_REPLY KEEPALIVE_REPLY`.
"""
from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

HEADER_END = b"\r\n\r\n"
CLOSE = b"\r\nconnection: close"


class Canned(asyncio.Protocol):
    """Answer each request as soon as its header block is complete."""

    def __init__(self, close_reply: bytes, keep_reply: bytes):
        self.close_reply = close_reply
        self.keep_reply = keep_reply
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(HEADER_END)) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + len(HEADER_END):]
            if CLOSE in head.lower():
                self.transport.write(self.close_reply)
                self.transport.close()
                return
            self.transport.write(self.keep_reply)


async def serve(path: Path, close_reply: bytes, keep_reply: bytes) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await loop.create_unix_server(lambda: Canned(close_reply, keep_reply), str(path), backlog=512)
    async with server:
        await stop.wait()


def main() -> None:
    asyncio.run(serve(Path(sys.argv[1]), Path(sys.argv[2]).read_bytes(), Path(sys.argv[3]).read_bytes()))


if __name__ == "__main__":
    main()
