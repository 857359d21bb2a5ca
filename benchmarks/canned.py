"""The baseline for status latency: the least a Unix-socket server can do, one canned reply per connection.

Run as `python -m benchmarks.canned SOCKET REPLY_FILE`; it serves until SIGTERM.
"""
from __future__ import annotations

import signal
import socket
import sys
from pathlib import Path

HEADER_END = b"\r\n\r\n"
MAX_REQUEST = 64 * 1024


def serve(path: Path, reply: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(128)
        while True:
            conn, _ = listener.accept()
            with conn:
                request = b""
                while HEADER_END not in request and len(request) < MAX_REQUEST:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    request += chunk
                conn.sendall(reply)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    serve(Path(sys.argv[1]), Path(sys.argv[2]).read_bytes())


if __name__ == "__main__":
    main()
