"""A small HTTP/1.1 server for the local API: asyncio transports and the llhttp parser (httptools).

The agent answers a handful of short JSON requests from local peers. A general web framework cost this
daemon more memory than all its other imports together and doubled the time of a status request, so the
server is this: parse with a well-kept C parser, bound everything a peer controls (header size and count,
body size, time to send the headers, idle keep-alive), route, and write one response per request in order.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl, urlsplit

import httptools

log = logging.getLogger("mikolicd.http")

MAX_BODY = 64 * 1024
MAX_HEADERS = 64
MAX_HEAD_BYTES = 16 * 1024
# From connect, or from its last answer, a peer has this long to send a whole request (head and body);
# idle keep-alive connections end after it too.
REQUEST_TIMEOUT = 10.0
MAX_PIPELINED = 16
LINGER = 2.0  # after the last answer, how long a peer that keeps sending is read and ignored
BACKLOG = 512  # a burst of PHP workers connecting at once must queue, not be refused


@dataclass(frozen=True)
class Peer:
    """Who is on the other end: credentials for a Unix-socket peer, an address for a TCP one."""

    uid: int | None = None
    gid: int | None = None
    address: str | None = None
    pid: int | None = None
    groups: frozenset[int] = frozenset()


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    connection: "Connection"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def peer(self) -> Peer:
        return self.connection.peer

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data, ensure_ascii=False).encode())


class HTTPError(Exception):
    """A request the server refuses before or instead of a handler: rendered by the app's error hook."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[[Request], "Response | Awaitable[Response]"]  # plain functions answer without a task
ErrorRenderer = Callable[[Exception, str], "Response | None"]  # an error and the path it answers


class Router:
    """Exact paths, or one trailing `{name}` segment, by method (`*` for any); 404 and 405 are told apart."""

    def __init__(self) -> None:
        self.exact: dict[str, dict[str, Handler]] = {}
        self.prefixed: list[tuple[str, str, dict[str, Handler]]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        if pattern.endswith("}"):
            prefix, _, name = pattern[:-1].rpartition("{")
            entry = next((e for e in self.prefixed if e[0] == prefix), None)
            if entry is None:
                entry = (prefix, name, {})
                self.prefixed.append(entry)
            entry[2][method] = handler
        else:
            self.exact.setdefault(pattern, {})[method] = handler

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        methods, params = self.exact.get(path), {}
        if methods is None:
            for prefix, name, candidates in self.prefixed:
                rest = path[len(prefix):]
                if path.startswith(prefix) and rest and "/" not in rest:
                    methods, params = candidates, {name: rest}
                    break
        if methods is None:
            raise HTTPError(404, f"no such path: {path[:80]}")
        handler = methods.get(method) or methods.get("*")
        if handler is None:
            raise HTTPError(405, f"{method[:10]} is not allowed here; allowed: {', '.join(sorted(methods))}")
        return handler, params


def _peer(transport: asyncio.BaseTransport) -> Peer:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_UNIX:
        try:
            pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                struct.calcsize("3i")))
            raw = sock.getsockopt(socket.SOL_SOCKET, getattr(socket, "SO_PEERGROUPS", 59), 4 * 256)
            return Peer(uid, gid, pid=pid, groups=frozenset(struct.unpack(f"{len(raw) // 4}I", raw)))
        except OSError:
            return Peer()
    name = transport.get_extra_info("peername")
    return Peer(address=name[0] if isinstance(name, tuple) else None)


_REASONS = {status.value: status.phrase for status in HTTPStatus}


def _head(status: int, length: int, content_type: str, keep_alive: bool) -> bytes:
    reason = _REASONS.get(status, "Status")
    full = content_type if ";" in content_type else f"{content_type}; charset=utf-8"
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {full}\r\n"
            f"Content-Length: {length}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n").encode()


class Connection(asyncio.Protocol):
    """One peer: parse requests as they arrive, answer them one at a time, in order."""

    def __init__(self, server: "Server"):
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._peer: Peer | None = None
        self.pending: deque[tuple[Request, bool]] = deque()
        self.worker: asyncio.Task | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.hanging_up = False
        self.peer_done = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.head_bytes = 0
        self.body: list[bytes] = []
        self.body_bytes = 0

    @property
    def peer(self) -> Peer:
        """Asked for only by handlers that check access, so reads skip the system call."""
        if self._peer is None and self.transport is not None:
            self._peer = _peer(self.transport)
        return self._peer or Peer()

    # ---------------------------------------------------------------- transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        self._arm(REQUEST_TIMEOUT)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self._disarm()
        if self.worker is not None:
            self.worker.cancel()

    def eof_received(self) -> bool:
        """A peer that half-closes after its request still gets the answer; then the connection ends."""
        self.peer_done = True
        return bool(self.pending)

    def data_received(self, data: bytes) -> None:
        if self.hanging_up:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            self._refuse(exc.__context__ if isinstance(exc.__context__, HTTPError)
                         else HTTPError(400, "malformed HTTP request"))
        except httptools.HttpParserUpgrade:
            self._refuse(HTTPError(400, "protocol upgrades are not supported"))
        except httptools.HttpParserError:
            self._refuse(HTTPError(400, "malformed HTTP request"))

    # ---------------------------------------------------------------- parser callbacks
    def on_message_begin(self) -> None:
        self._reset()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        if len(self.headers) >= MAX_HEADERS:
            raise HTTPError(431, f"more than {MAX_HEADERS} headers")
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        length = self.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY:
            raise HTTPError(413, f"request bodies are limited to {MAX_BODY // 1024} KiB")

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.body_bytes > MAX_BODY:
            raise HTTPError(413, f"request bodies are limited to {MAX_BODY // 1024} KiB")
        self.body.append(body)

    def on_message_complete(self) -> None:
        self._disarm()
        if len(self.pending) >= MAX_PIPELINED:
            raise HTTPError(429, "too many pipelined requests")
        path, _, query = self.url.decode("latin-1").partition("?")
        request = Request(self.parser.get_method().decode("latin-1"), urlsplit(path).path or "/",
                          dict(parse_qsl(query, keep_blank_values=True)) if query else {}, self.headers,
                          b"".join(self.body), self)
        self.pending.append((request, self.parser.should_keep_alive()))
        if self.worker is None or self.worker.done():
            self._drain()

    # ---------------------------------------------------------------- answering
    def _open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing() and not self.hanging_up

    def _drain(self) -> None:
        """Answer queued requests in order: plain handlers at once, coroutines in a task."""
        while self.pending and self._open():
            result = self.server.start(self.pending[0][0])
            if not isinstance(result, Response):
                self.worker = asyncio.get_running_loop().create_task(self._finish(result))
                return
            if not self._answer(result):
                return
        if self._open():
            self._arm(REQUEST_TIMEOUT)

    async def _finish(self, pending: Awaitable[Response]) -> None:
        if self._answer(await pending):
            self._drain()

    def _answer(self, response: Response) -> bool:
        """Write the answer to the oldest request; False when the connection ends with it."""
        _request, keep_alive = self.pending.popleft()
        keep_alive = keep_alive and not self.server.closing and not self.peer_done
        if self._open():
            self._write(response, keep_alive)
        return keep_alive

    def _send(self, response: Response, keep_alive: bool) -> None:
        assert self.transport is not None
        self.transport.write(_head(response.status, len(response.body), response.content_type, keep_alive)
                             + response.body)

    def _write(self, response: Response, keep_alive: bool) -> None:
        self._send(response, keep_alive)
        if not keep_alive:
            self.transport.close()

    def _hang_up(self) -> None:
        """Half-close, then drain: closing with unread bytes would reset the answer before the peer reads it."""
        assert self.transport is not None
        self.hanging_up = True
        self.pending.clear()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(LINGER)

    def _refuse(self, error: HTTPError) -> None:
        """Answer a request that cannot be parsed or accepted, then hang up: the stream is out of step."""
        if self._open():
            self._send(self.server.render(error, self.url.decode("latin-1")), keep_alive=False)
            self._hang_up()

    def _count(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > MAX_HEAD_BYTES:
            raise HTTPError(431, f"request line and headers are limited to {MAX_HEAD_BYTES // 1024} KiB")

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.timer = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self) -> None:
        if self.transport is not None and not self.pending:
            self.transport.close()


class Server:
    """Routes and listeners; one instance may listen on several sockets."""

    def __init__(self, router: Router, render: ErrorRenderer):
        self.router = router
        self.render = render
        self.connections: set[Connection] = set()
        self.listeners: list[asyncio.AbstractServer] = []
        self.closing = False

    def start(self, request: Request) -> Response | Awaitable[Response]:
        try:
            handler, request.params = self.router.resolve(request.method, request.path)
            result = handler(request)
        except Exception as exc:  # noqa: BLE001 - every failure becomes an answer, never a dropped peer
            return self._failure(request, exc)
        return result if isinstance(result, Response) else self._guard(request, result)

    async def _guard(self, request: Request, pending: Awaitable[Response]) -> Response:
        try:
            return await pending
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            return self._failure(request, exc)

    def _failure(self, request: Request, exc: Exception) -> Response:
        """The app renders the errors it knows (`render` answers None for the others, which are bugs)."""
        response = self.render(exc, request.path)
        if response is not None:
            return response
        log.error("unexpected error while serving %s %s", request.method, request.path[:80], exc_info=exc)
        return self.render(HTTPError(500, "internal error; see the journal of mikolicd"), request.path)

    async def listen_unix(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        self.listeners.append(await loop.create_unix_server(lambda: Connection(self), path, backlog=BACKLOG))

    async def listen_tcp(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.listeners.append(await loop.create_server(lambda: Connection(self), host, port, backlog=BACKLOG))

    async def listen_socket(self, sock: socket.socket) -> None:
        """A listening socket handed over by systemd (socket activation), Unix or TCP."""
        loop = asyncio.get_running_loop()
        factory = loop.create_unix_server if sock.family == socket.AF_UNIX else loop.create_server
        self.listeners.append(await factory(lambda: Connection(self), sock=sock, backlog=BACKLOG))

    async def close(self, grace: float) -> None:
        """Stop accepting; let answers in progress finish for `grace` seconds, then cut the rest."""
        self.closing = True
        for listener in self.listeners:
            listener.close()
        busy = [c.worker for c in self.connections if c.worker is not None and not c.worker.done()]
        if busy:
            await asyncio.wait(busy, timeout=grace)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
