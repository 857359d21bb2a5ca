"""The agent's socket API as its local clients call it: mikolicctl, doctor and the support bundle.

Kept apart from both so that neither imports the other, and so every caller words an unreachable agent
the same way.
"""
from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from .config import ApiSection

DEFAULT_SOCKET = ApiSection().socket


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


class AgentUnreachable(OSError):
    """No answer on the socket; the message says why and what to do."""

    def __init__(self, sock: Path, cause: OSError | http.client.HTTPException, timeout: float):
        super().__init__(describe(sock, cause, timeout))
        self.sock, self.cause = sock, cause

    @property
    def stale(self) -> bool:
        """The socket file is there but nobody accepts: an agent died without removing it."""
        return isinstance(self.cause, ConnectionRefusedError)


# Why nothing answered, and what to do: the first entry the cause is an instance of.
_WHY = (
    (FileNotFoundError, "no agent socket at {sock}: is mikolicd running? (systemctl status mikolicd); for another "
                        "agent pass --socket"),
    (ConnectionRefusedError, "{sock} is a stale socket: no agent accepts connections on it (it stopped without "
                             "removing it); start mikolicd (systemctl start mikolicd), which replaces it"),
    (PermissionError, "not allowed to connect to {sock}: run as root, or as a member of the socket's group "
                      "([api] socket_group)"),
    (TimeoutError, "the agent on {sock} did not answer within {timeout:g} s: it may be stuck; see journalctl -u "
                   "mikolicd, or restart it (systemctl restart mikolicd)"),
    (http.client.HTTPException, "the program on {sock} does not answer like mikolicd ({kind}): check --socket"),
)


def describe(sock: Path, cause: OSError | http.client.HTTPException, timeout: float) -> str:
    text = next((text for kind, text in _WHY if isinstance(cause, kind)),
                "talking to the agent on {sock} failed: {reason}; see journalctl -u mikolicd")
    return text.format(sock=sock, timeout=timeout, kind=type(cause).__name__,
                       reason=getattr(cause, "strerror", None) or cause)


def call(sock: Path, method: str, path: str, body: dict | None = None, timeout: float = 120) -> tuple[int, Any]:
    """(HTTP status, decoded JSON body); AgentUnreachable when the socket gives no HTTP answer."""
    conn = UnixConnection(sock, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        response = conn.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise AgentUnreachable(sock, exc, timeout) from None
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw or b"{}")
    except ValueError:
        return response.status, {"error": {"code": "bad_answer", "message": raw[:200].decode(errors="replace"),
                                           "server_code": None}}
