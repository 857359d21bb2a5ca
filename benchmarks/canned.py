"""The baseline for status latency: a minimal asyncio server on a Unix socket, one canned reply per connection.

It runs on the same event loop machinery as the daemon, so the ratio shows what the daemon adds per request
(HTTP parsing, routing, building the status). Run as `python -m benchmarks.canned SOCKET REPLY_FILE`.
"""
from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

HEADER_END = b"\r\n\r\n"


class Canned(asyncio.Protocol):
    """Answer as soon as the request's header block is complete, then close, as for `Connection: close`."""

    def __init__(self, reply: bytes):
        self.reply = reply
        self.request = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.request += data
        if HEADER_END in self.request:
            self.transport.write(self.reply)
            self.transport.close()


async def serve(path: Path, reply: bytes) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await loop.create_unix_server(lambda: Canned(reply), str(path))
    async with server:
        await stop.wait()


def main() -> None:
    asyncio.run(serve(Path(sys.argv[1]), Path(sys.argv[2]).read_bytes()))


if __name__ == "__main__":
    main()
