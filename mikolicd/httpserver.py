"""The local API's HTTP server: asyncio transports, timers and handlers around `httpproto`.

The agent answers a handful of short JSON requests from local peers. A general web framework cost this
daemon more memory than all its other imports together and doubled the time of a status request, so the
server is this: the protocol rules in `httpproto`, and here only what needs the kernel or the loop —
peer credentials read at connect time, connection caps per uid, one request handled at a time per
connection (plain functions answered at once, coroutines in a task), reading paused while an answer is
being made or is not being read, and a request whose client has gone not started at all.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import pwd
import resource
import select
import socket
import struct
import time
from collections import Counter, deque
from typing import Any, Awaitable, Callable

from .httpproto import (CONTINUE, Close, Continue, Event, HTTPError, Limits, Peer, Refusal, Request, Response,
                        ServerConnection, json_response, serialise)

__all__ = ["Admission", "HTTPError", "Limits", "Peer", "Request", "Response", "Router", "Server", "Throttle",
           "json_response", "peer_of", "root_or_self"]

log = logging.getLogger("mikolicd.http")

Handler = Callable[[Request], "Response | Awaitable[Response]"]  # plain functions answer without a task
ErrorRenderer = Callable[[Exception, str], "Response | None"]  # an error and the path it answers
Privileged = Callable[[Peer], bool]


# ---------------------------------------------------------------------------------------------- routes
class _Route:
    def __init__(self, segments: tuple[str, ...]):
        self.segments = segments
        self.methods: dict[str, Handler] = {}

    @property
    def placeholders(self) -> int:
        return sum(s.startswith("{") for s in self.segments)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        if len(parts) != len(self.segments):
            return None
        params = {}
        for want, got in zip(self.segments, parts):
            if want.startswith("{"):
                if not got:
                    return None
                params[want[1:-1]] = got
            elif want != got:
                return None
        return params


class Router:
    """Paths by method (`*` for any): exact, or with `{name}` standing for any one segment anywhere in
    the path. The most literal route that matches and takes the method wins; 404 and 405 are told apart."""

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, Handler]] = {}
        self._routes: list[_Route] = []  # fewest placeholders first

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        if "{" not in pattern:
            self._exact.setdefault(pattern, {})[method] = handler
            return
        segments = tuple(pattern.split("/"))
        if any("{" in s and not (s.startswith("{") and s.endswith("}") and len(s) > 2) for s in segments):
            raise ValueError(f"a placeholder must be a whole path segment such as {{id}}: {pattern}")
        route = next((r for r in self._routes if r.segments == segments), None)
        if route is None:
            route = _Route(segments)
            self._routes.append(route)
            self._routes.sort(key=lambda r: r.placeholders)
        route.methods[method] = handler

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        exact = self._exact.get(path)
        if exact is not None and (method in exact or "*" in exact):  # the common case: one lookup
            return exact.get(method) or exact["*"], {}
        found = [(exact, {})] if exact is not None else []
        parts = path.split("/")
        found += [(route.methods, params) for route in self._routes if (params := route.match(parts)) is not None]
        if not found:
            raise HTTPError(404, f"no such path: {path[:80]}")
        for methods, params in found:
            handler = methods.get(method) or methods.get("*")
            if handler is not None:
                return handler, params
        allowed = sorted({name for methods, _ in found for name in methods})
        raise HTTPError(405, f"{method[:10]} is not allowed here; allowed: {', '.join(allowed)}")


# ---------------------------------------------------------------------------------------------- peers
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux 4.13+; Python 3.11's socket module lacks the name
PEERGROUPS_BYTES = 1024  # the most Python's getsockopt reads: 256 groups
_CRED = struct.Struct("3i")


def root_or_self(peer: Peer) -> bool:
    """The privilege every server grants unless told otherwise: root and the daemon's own uid."""
    return peer.uid in (0, os.getuid())


def peer_of(sock: socket.socket) -> Peer:
    """Read once, at accept: credentials of a Unix-socket peer, the address of a TCP one."""
    if sock.family == socket.AF_UNIX:
        try:
            pid, uid, gid = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
            return Peer(pid, uid, gid, _peer_groups(sock, uid, gid))
        except OSError:
            return Peer()  # gone already: a peer without credentials is allowed nothing
    try:
        return Peer(address=sock.getpeername()[0])
    except OSError:
        return Peer()


def _peer_groups(sock: Any, uid: int, gid: int) -> tuple[int, ...]:
    """The supplementary groups the peer itself holds (SO_PEERGROUPS), not what /etc/group says now."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, PEERGROUPS_BYTES)
    except OSError as exc:
        # A kernel before 4.13, or a peer in more groups than Python can read: its user's groups stand in.
        if exc.errno in (errno.ENOPROTOOPT, errno.ERANGE):
            return _groups_of_user(uid, gid)
        raise
    return struct.unpack(f"{len(raw) // 4}I", raw)


def _groups_of_user(uid: int, gid: int) -> tuple[int, ...]:
    try:
        return tuple(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except KeyError:
        return (gid,)


SAFE = frozenset({"GET", "HEAD"})  # a read whose client has gone costs an answer nobody reads, nothing more


def _hung_up(sock: Any) -> bool:
    """A Unix-socket peer that closed its end shows POLLHUP; one that only stopped sending does not."""
    poll = select.poll()
    poll.register(sock, 0)  # POLLHUP and POLLERR are reported whatever the mask
    return bool(poll.poll(0))


# ---------------------------------------------------------------------------------------------- caps
class Admission:
    """Open connections counted per peer uid against the caps in `Limits`: one uid holds at most
    `max_per_uid`, and the last `reserve` of `max_connections` are only for privileged peers, so no
    unprivileged peer, nor all of them together, can lock root out. TCP peers share one count (no uid)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._by_uid: Counter[int | None] = Counter()
        self._total = 0

    def admit(self, uid: int | None, privileged: Callable[[], bool]) -> str | None:
        """Count the connection in and answer None, or answer which limit it is over. `privileged` is
        asked only once the reserve is reached: it may look groups up, which most connections never need."""
        if self._by_uid[uid] >= self.limits.max_per_uid:
            return f"this user already holds {self.limits.max_per_uid} connections, the most one user may"
        room, whom = self.limits.max_connections - self.limits.reserve, " from users other than root and admins"
        if self._total >= room and privileged():
            room, whom = self.limits.max_connections, ""
        if self._total >= room:
            return f"the daemon already holds {room} connections, the most it takes{whom}"
        self._by_uid[uid] += 1
        self._total += 1
        return None

    def release(self, uid: int | None) -> None:
        self._by_uid[uid] -= 1
        if not self._by_uid[uid]:
            del self._by_uid[uid]
        self._total -= 1


class Throttle:
    """At most one report per `interval`; each report tells how many were passed over since the last."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self._quiet_until = -math.inf
        self._passed_over = 0

    def due(self) -> int | None:
        """How many were passed over since the last report if one is due now; else None (and one more)."""
        now = self.clock()
        if now < self._quiet_until:
            self._passed_over += 1
            return None
        passed, self._quiet_until, self._passed_over = self._passed_over, now + self.interval, 0
        return passed


def open_files_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------------------------------------- connections
class Connection(asyncio.Protocol):
    """One peer: its `ServerConnection`'s events acted on strictly in order, one request at a time.
    Reading stops while an answer is being made or is not being read, so what a peer can make the daemon
    hold is one read, the requests in it, and `Limits.write_buffer` of answers."""

    def __init__(self, server: Server, peer: Peer):
        self.server = server
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.http: ServerConnection | None = None
        self.events: deque[Event] = deque()
        self.worker: asyncio.Task | None = None
        self.lost = False  # its slot in the server's admission is kept until its handler is done too
        self.blocked_since: float | None = None  # when the peer stopped reading its answers
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        self.loop = asyncio.get_running_loop()

    # ---------------------------------------------------------------- transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(high=self.server.limits.write_buffer)
        self.http = ServerConnection(self.server.limits, self.peer, self._now())
        self._settle()

    def connection_lost(self, exc: Exception | None) -> None:
        """A handler already running is not cancelled: a write half done would leave the state behind."""
        self.lost = True
        self.events.clear()
        self._disarm()
        if self.worker is None:
            self.server.release(self)

    def data_received(self, data: bytes) -> None:
        self.events.extend(self._http.receive(data))
        self._pump()

    def eof_received(self) -> bool:
        """A peer that half-closes after its request still gets the answer; then the connection ends."""
        self.events.extend(self._http.receive_eof())
        self._pump()
        return True

    def pause_writing(self) -> None:
        self.blocked_since = self._now()
        self._settle()

    def resume_writing(self) -> None:
        self.blocked_since = None
        self._pump()

    # ---------------------------------------------------------------- acting on events
    def _pump(self) -> None:
        assert self.transport is not None
        while (self.events and self.worker is None and self.blocked_since is None
               and not self.transport.is_closing()):
            match self.events.popleft():
                case Request() as request:
                    self._dispatch(request)
                case Continue():
                    self.transport.write(CONTINUE)
                case Refusal(error, path):
                    self.transport.write(self._http.refuse(self.server.render(error, path), self._now()))
                    if self.transport.can_write_eof():
                        self.transport.write_eof()  # then drain: an answer closed on unread bytes may be reset
                case Close():
                    self.transport.close()
        self._settle()

    def _dispatch(self, request: Request) -> None:
        assert self.transport is not None
        if request.method not in SAFE and _hung_up(self.transport.get_extra_info("socket")):
            log.debug("dropped %s %s: its client hung up before it started", request.method[:10],
                      request.path[:80])
            self.transport.close()
            return
        result = self.server.start(request)
        if isinstance(result, Response):
            self._answer(result)
        else:
            self.worker = self.server.spawn(self._finish(result))

    async def _finish(self, pending: Awaitable[Response]) -> None:
        response = await pending
        self.worker = None
        if self.lost:
            self.server.release(self)
            return
        self._answer(response)
        self._pump()

    def _answer(self, response: Response) -> None:
        assert self.transport is not None
        self.transport.write(self._http.respond(response, self._now(), close=self.server.closing))
        if self._http.finished:
            self.transport.close()

    # ---------------------------------------------------------------- reading and time follow the state
    def _settle(self) -> None:
        assert self.transport is not None
        if self.transport.is_closing():
            return
        if self.worker is None and self.blocked_since is None:
            self.transport.resume_reading()
        else:
            self.transport.pause_reading()
        if self.blocked_since is not None:
            self._arm(self.blocked_since + self.server.limits.request_timeout)
        else:
            self._arm(self._http.deadline)

    def _arm(self, when: float | None) -> None:
        """Lazily: a timer already due no later stays, and re-arms when it fires (`_expire`), so a kept-alive
        connection does not cancel and re-make a timer for every request it sends."""
        if when is None or (self.timer is not None and self.timer_at is not None and self.timer_at <= when):
            return
        self._disarm()
        self.timer = self.loop.call_at(when, self._expire)
        self.timer_at = when

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.timer_at = None

    def _expire(self) -> None:
        assert self.transport is not None
        self.timer = self.timer_at = None
        if self.blocked_since is not None:
            cutoff = self.blocked_since + self.server.limits.request_timeout
            if self._now() < cutoff:
                self._arm(cutoff)
                return
            log.debug("cut off pid %s uid %s: it read none of its answers for %g s", self.peer.pid, self.peer.uid,
                      self.server.limits.request_timeout)
            self.transport.abort()
            return
        self.events.extend(self._http.expire(self._now()))
        self._pump()

    @property
    def _http(self) -> ServerConnection:
        assert self.http is not None
        return self.http

    def _now(self) -> float:
        return self.loop.time()


# ---------------------------------------------------------------------------------------------- server
ACCEPT_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
ACCEPT_PAUSE = 0.1  # after accept() ran out of descriptors or memory: the peer waits in the backlog meanwhile
ACCEPT_ERROR_INTERVAL = 60.0


class _Listener:
    """A listening socket accepted from by the server itself rather than by asyncio, so a connection over
    a cap is answered and closed before the next one is accepted: a flood never holds more descriptors
    than the caps allow, and accept errors are logged by the server's own throttle."""

    def __init__(self, server: Server, sock: socket.socket):
        self.server = server
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        sock.setblocking(False)
        sock.listen(server.limits.backlog)
        self.start()

    def start(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.add_reader(self.sock, self._ready)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock)
            self.sock.close()

    def _ready(self) -> None:
        for _ in range(self.server.limits.backlog):  # then let other work run
            try:
                sock, _address = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in ACCEPT_RESOURCE_ERRORS:
                    raise
                self._starved(exc)
                return
            self.server.accepted(sock)

    def _starved(self, exc: OSError) -> None:
        passed = self.server.accept_errors.due()
        if passed is not None:
            since = f"; {passed} more times since the last report" if passed else ""
            log.error("cannot accept connections: %s%s (reported at most every %g s)", exc.strerror, since,
                      self.server.accept_errors.interval)
        self.loop.remove_reader(self.sock)
        self.loop.call_later(ACCEPT_PAUSE, self.start)


class Server:
    """Routes and listeners; one instance may listen on several sockets. Limits default to those for the
    process's descriptor limit at construction; servers that must share the connection caps share one
    `Admission`. `privileged` says which peers may use the reserve of connections."""

    def __init__(self, router: Router, render: ErrorRenderer, *, limits: Limits | None = None,
                 privileged: Privileged = root_or_self, admission: Admission | None = None):
        self.router = router
        self.render = render
        self.limits = limits or (admission.limits if admission else Limits.for_open_files(open_files_limit()))
        self.admission = admission or Admission(self.limits)
        self.privileged = privileged
        self.accept_errors = Throttle(ACCEPT_ERROR_INTERVAL)
        self.connections: set[Connection] = set()
        self.tasks: set[asyncio.Task] = set()
        self.listeners: list[_Listener] = []
        self.closing = False

    def accepted(self, sock: socket.socket) -> None:
        """Admit the connection, or tell the peer which cap it is over and close it at once."""
        sock.setblocking(False)
        peer = peer_of(sock)
        refusal = self.admission.admit(peer.uid, lambda: self.privileged(peer))
        if refusal is not None:
            log.debug("refused a connection of pid %s uid %s: %s", peer.pid, peer.uid, refusal)
            with contextlib.suppress(OSError):  # a small answer fits the socket's buffer, or the peer is gone
                sock.send(serialise(self.render(HTTPError(503, refusal), ""), keep_alive=False))
            sock.close()
            return
        connection = Connection(self, peer)
        self.connections.add(connection)
        self.spawn(asyncio.get_running_loop().connect_accepted_socket(lambda: connection, sock))

    def release(self, connection: Connection) -> None:
        """Once per connection: when it is closed and its handler, if any, is done."""
        self.connections.discard(connection)
        self.admission.release(connection.peer.uid)

    def spawn(self, work: Awaitable[Any]) -> asyncio.Task:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

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
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
        except OSError:
            sock.close()
            raise
        self.listeners.append(_Listener(self, sock))

    async def listen_tcp(self, host: str, port: int) -> None:
        """Every address the host name resolves to, as asyncio's create_server would."""
        bound = []
        try:
            for family, kind, proto, _name, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                          flags=socket.AI_PASSIVE):
                sock = socket.socket(family, kind, proto)
                bound.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
        except OSError:
            for sock in bound:
                sock.close()
            raise
        self.listeners += [_Listener(self, sock) for sock in bound]

    async def listen_socket(self, sock: socket.socket) -> None:
        """A listening socket handed over by systemd (socket activation), Unix or TCP."""
        self.listeners.append(_Listener(self, sock))

    async def close(self, grace: float) -> None:
        """Stop accepting; let answers in progress finish for `grace` seconds, then cut the rest."""
        self.closing = True
        for listener in self.listeners:
            listener.close()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=grace)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
