"""HTTP/1.1 for the local API as a state machine fed bytes: no sockets, no event loop, no clock of its own.

The shell (`httpserver`) hands each `ServerConnection` what it reads and the time, acts on the events it
gets back strictly in order, passes each answer through `respond`, and calls `expire` at `deadline`. So
every rule a peer meets (limits, pipelining, `Expect: 100-continue`, the 408 decision, refusals) is
decided here and tested with plain bytes in milliseconds. Framing is llhttp's (httptools), a well-kept
C parser; this module only bounds and interprets what it reports.
"""
from __future__ import annotations

import json
from collections import deque
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import httptools

MAX_CONNECTIONS = 8192  # beyond this, memory rather than descriptors would run out first


def connection_caps(open_files: int) -> tuple[int, int, int]:
    """(total, reserve, per uid) for a process allowed `open_files` descriptors.

    An eighth of them (at least 32) stays for the daemon's own files: state, journal, the licensing
    server's TLS connections, listeners. An eighth of the rest is the reserve only privileged peers
    may take, and one uid may hold a quarter of what is left, so a single peer fills neither.
    """
    total = max(8, min(MAX_CONNECTIONS, open_files - max(32, open_files // 8)))
    reserve = max(2, total // 8)
    return total, reserve, max(1, (total - reserve) // 4)


_TOTAL, _RESERVE, _PER_UID = connection_caps(1024)  # systemd's default soft limit


class Limits(NamedTuple):
    """Every bound a peer meets, in one place."""

    max_body: int = 64 * 1024
    max_headers: int = 64
    max_head_bytes: int = 16 * 1024
    # From connect, or from its last answer, a peer has this long to send a whole request (head and
    # body); an idle kept-alive connection ends after it too, and so does one whose peer reads nothing.
    request_timeout: float = 10.0
    max_pipelined: int = 16  # requests read and not yet answered; more arriving in one read is 429
    linger: float = 2.0  # after a refusal, how long what the peer still sends is read and ignored
    write_buffer: int = 64 * 1024  # answers held for a peer before its connection stops being read
    backlog: int = 512  # a burst of PHP workers connecting at once must queue, not be refused
    max_connections: int = _TOTAL
    reserve: int = _RESERVE  # of max_connections, the slots only privileged peers may take
    max_per_uid: int = _PER_UID

    @classmethod
    def for_open_files(cls, open_files: int) -> Limits:
        total, reserve, per_uid = connection_caps(open_files)
        return cls(max_connections=total, reserve=reserve, max_per_uid=per_uid)


class Peer(NamedTuple):
    """Who is on the other end, as the kernel told at connect time: a Unix-socket peer's process and
    credentials with its supplementary groups, or a TCP peer's address."""

    pid: int | None = None
    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] = ()
    address: str | None = None


class Request:
    """One request as the parser saw it; the router sets `params`, the route's `{name}` segments."""

    __slots__ = ("method", "path", "query", "headers", "body", "peer", "params")

    def __init__(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes,
                 peer: Peer = Peer()):
        self.method, self.path, self.query, self.body, self.peer = method, path, query, body, peer
        self.headers = headers  # names in lower case
        self.params: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Request({self.method} {self.path} from {self.peer})"

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


class Response(NamedTuple):
    status: int
    body: bytes = b""
    content_type: str = "application/json"


def json_response(data: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(data, ensure_ascii=False).encode())


class HTTPError(Exception):
    """A request refused before or instead of a handler: rendered by the app's error hook."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _Signal:
    """An event without fields: every one of a kind is equal to every other."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Continue(_Signal):
    """Send `100 Continue`: the head of a request that waits before sending its body was accepted."""

    __slots__ = ()


class Refusal(NamedTuple):
    """Answer this error in place of the rest of the stream, which is out of step, then hang up."""

    error: HTTPError
    path: str  # as far as it arrived: the app renders legacy paths' errors in their own shape


class Close(_Signal):
    """End the connection: nothing is owed to the peer."""

    __slots__ = ()


Event = Request | Continue | Refusal | Close
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_REASONS = {status.value: status.phrase for status in HTTPStatus}


def serialise(response: Response, keep_alive: bool, head: bool = False) -> bytes:
    """The answer's bytes; a HEAD request's answer announces the body's length but carries none."""
    content_type = response.content_type if ";" in response.content_type else f"{response.content_type}; charset=utf-8"
    preamble = (f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Status')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(response.body)}\r\n"
                f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n").encode()
    return preamble if head else preamble + response.body


class ServerConnection:
    """The server's side of one connection.

    `receive` and `receive_eof` return events in the order they must be acted on; each Request is
    answered with `respond` and a Refusal with `refuse`, in that same order. After an answer that
    `finished` the connection, nothing more is sent. `expire` is due at `deadline`.
    """

    def __init__(self, limits: Limits, peer: Peer, now: float):
        self.limits = limits
        self.peer = peer
        self.finished = False  # the last answer handed out ends the connection
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[Event] = []
        self._owed: deque[tuple[bool, bool]] = deque()  # keep-alive and HEAD of each request not yet answered
        self._refusing = False  # a Refusal is out: the rest of the stream is ignored
        self._linger_until: float | None = None  # set once the refusal is sent
        self._peer_done = False
        self._idle_since = now
        self._begin()

    # ------------------------------------------------------------------------------- input
    def receive(self, data: bytes) -> list[Event]:
        if not self._refusing:
            try:
                self._parser.feed_data(data)
            except httptools.HttpParserCallbackError as exc:
                cause = exc.__context__
                self._refuse(cause if isinstance(cause, HTTPError) else HTTPError(400, "malformed HTTP request"))
            except httptools.HttpParserError:
                self._refuse(HTTPError(400, "malformed HTTP request"))
        return self._take()

    def receive_eof(self) -> list[Event]:
        """The peer sends no more: answers still owed are given, the last one closing; else close now."""
        self._peer_done = True
        if self._linger_until is not None or not (self._owed or self._refusing):
            return [Close()]
        return []

    # ------------------------------------------------------------------------------- time
    @property
    def deadline(self) -> float | None:
        """When `expire` is due; None while the peer waits for answers owed to it."""
        if self._linger_until is not None:
            return self._linger_until
        if self._owed or self._refusing:
            return None
        return self._idle_since + self.limits.request_timeout

    def expire(self, now: float) -> list[Event]:
        """At the deadline: a request begun and not finished gets 408; an idle connection just ends."""
        deadline = self.deadline
        if deadline is None or now < deadline:
            return []
        if self._linger_until is not None or not self._started:
            return [Close()]
        self._refuse(HTTPError(408, f"the request did not arrive whole within {self.limits.request_timeout:g} s"))
        return self._take()

    # ------------------------------------------------------------------------------- output
    def respond(self, response: Response, now: float, close: bool = False) -> bytes:
        """The answer to the oldest request still owed; `close` ends the connection after it."""
        keep_alive, head = self._owed.popleft()
        keep_alive = keep_alive and not close and not (self._peer_done and not self._owed and not self._refusing)
        self.finished = not keep_alive
        self._idle_since = now
        return serialise(response, keep_alive, head)

    def refuse(self, response: Response, now: float) -> bytes:
        """The answer to a Refusal: the last thing sent, after which the peer's bytes are drained a while."""
        self.finished = True
        self._linger_until = now if self._peer_done else now + self.limits.linger
        return serialise(response, keep_alive=False)

    # ------------------------------------------------------------------------------- parser callbacks
    def _begin(self) -> None:
        self._started = False
        self._url = b""
        self._headers: dict[str, str] = {}
        self._head_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0

    def on_message_begin(self) -> None:
        self._begin()
        self._started = True

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """Called for every header of every request: the counting is inline, it is the hot path."""
        self._head_bytes += len(name) + len(value)
        headers = self._headers
        if self._head_bytes > self.limits.max_head_bytes or len(headers) >= self.limits.max_headers:
            self._count(0)  # raises the 431 that says which limit
            raise HTTPError(431, f"more than {self.limits.max_headers} headers")
        headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self._parser.should_upgrade():
            raise HTTPError(400, "protocol upgrades are not supported")
        length = self._headers.get("content-length", "0")
        if not length.isdigit() or int(length) > self.limits.max_body:
            raise self._too_large()
        expect = self._headers.get("expect")
        if expect is not None and self._parser.get_http_version() == "1.1":  # HTTP/1.0 expectations are ignored
            if expect.strip().lower() != "100-continue":
                raise HTTPError(417, "the only expectation supported is 100-continue")
            self._events.append(Continue())

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body:
            raise self._too_large()
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._drop_unsent_continue()  # the body is here already
        if len(self._owed) >= self.limits.max_pipelined:
            raise HTTPError(429, "too many pipelined requests")
        path, _, query = self._url.decode("latin-1").partition("?")
        if not path.startswith("/") or "#" in path:  # an absolute URL or a fragment: the rare case
            path = urlsplit(path).path or "/"
        request = Request(self._parser.get_method().decode("latin-1"), path,
                          dict(parse_qsl(query, keep_blank_values=True)) if query else {}, self._headers,
                          b"".join(self._body), self.peer)
        self._owed.append((self._parser.should_keep_alive(), request.method == "HEAD"))
        self._events.append(request)
        self._started = False

    # ------------------------------------------------------------------------------- helpers
    def _refuse(self, error: HTTPError) -> None:
        self._drop_unsent_continue()
        self._refusing = True
        self._events.append(Refusal(error, self._url.decode("latin-1")))

    def _drop_unsent_continue(self) -> None:
        if self._events and isinstance(self._events[-1], Continue):
            self._events.pop()

    def _take(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_head_bytes:
            raise HTTPError(431, f"request line and headers are limited to {self.limits.max_head_bytes // 1024} KiB")

    def _too_large(self) -> HTTPError:
        return HTTPError(413, f"request bodies are limited to {self.limits.max_body // 1024} KiB")
