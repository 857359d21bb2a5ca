"""HTTP/1.1 as raw bytes over Unix sockets, for tests that must send what no client library would."""
from __future__ import annotations

import socket
from pathlib import Path


def request(method: str, target: str, *headers: str, body: bytes = b"", version: str = "1.1") -> bytes:
    head = "".join(f"{h}\r\n" for h in ("Host: localhost", *headers))
    return f"{method} {target} HTTP/{version}\r\n{head}\r\n".encode() + body


def connect(path: Path, timeout: float = 5) -> socket.socket:
    """A blocking connect, as curl's would wait, so a burst beyond the listen backlog queues instead of failing."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(path))
    conn.settimeout(timeout)
    return conn


def read_until_closed(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes; a connection still open at the socket timeout fails."""
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received
