"""The asyncio shell of the local HTTP server on real Unix sockets, and its pure helpers (routes, caps,
the accept-error log): ordering, keep-alive, half-close, 100-continue, 408, flow control, connection
caps, requests of clients that hung up, peer credentials."""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentproc import stopped_at_end, wait_for
from rawhttp import connect, read_until_closed, request
from mikolicd import httpserver
from mikolicd.httpserver import (Admission, HTTPError, Limits, Peer, Request, Response, Router, Server, Throttle,
                                 json_response, root_or_self)

AS_ROOT = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
ANSWER = 32 * 1024  # a few fill the kernel's socket buffers, and two the write buffer


def render(error: HTTPError, path: str) -> Response:
    return json_response({"error": error.message, "path": path}, error.status)


@dataclass
class Served:
    """A server on its own loop in a thread, with handlers that record what they ran; its peers are
    privileged while `privileged` is set."""

    path: Path
    limits: Limits
    ran: list[str] = field(default_factory=list)
    privileged: bool = False

    def __post_init__(self) -> None:
        self.server = Server(routes(self), render, limits=self.limits, privileged=lambda peer: self.privileged)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            self.loop.run_until_complete(self.server.listen_unix(str(self.path)))
            ready.set()
            self.loop.run_forever()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(5)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(0), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def inspect(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on the server's loop, where its state lives."""
        async def call() -> Any:
            return fn()
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(5)

    def wait_until_idle(self) -> None:
        """Until every connection is closed and every handler done."""
        wait_for(lambda: not self.inspect(lambda: self.server.connections or self.server.tasks), 5,
                 "the server to idle")

    def connection(self) -> httpserver.Connection:
        return self.inspect(lambda: next(iter(self.server.connections)))


def routes(served: Served) -> Router:
    router = Router()
    router.add("GET", "/plain", lambda request: json_response({"path": request.path, "q": request.query}))

    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.2)
        return json_response({"slow": True})

    async def write(request: Request) -> Response:
        served.ran.append(request.query["id"])
        return json_response({"done": request.query["id"]})

    def block(request: Request) -> Response:
        time.sleep(0.5)  # holds the whole loop: connections meanwhile wait in the listen backlog
        return json_response({})

    router.add("GET", "/slow", slow)
    router.add("POST", "/write", write)
    router.add("GET", "/block", block)
    router.add("POST", "/echo", lambda request: Response(200, request.body, "text/plain"))
    router.add("GET", "/peer", lambda request: json_response({"uid": request.peer.uid, "pid": request.peer.pid,
                                                              "groups": list(request.peer.groups)}))
    router.add("GET", "/items/{item}", lambda request: json_response(request.params))
    return router


@pytest.fixture
def serve(short_dir: Path) -> Iterator[Callable[..., Served]]:
    """Start servers with given limits; each is stopped when the test ends."""
    names = itertools.count()
    yield from stopped_at_end(lambda limits=Limits(): Served(short_dir / f"http{next(names)}.sock", limits))


@pytest.fixture
def served(serve: Callable[..., Served]) -> Served:
    return serve()


def talk(path: Path, data: bytes, half_close: bool = False) -> bytes:
    with connect(path) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        return read_until_closed(s)


def get(path: str, *headers: str) -> bytes:
    return request("GET", path, *headers)


def post(path: str, body: bytes = b"") -> bytes:
    return request("POST", path, f"Content-Length: {len(body)}", body=body)


def answer_of(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def exchange(s: socket.socket, data: bytes) -> bytes:
    """One request on a kept-alive connection, and its whole answer."""
    s.sendall(data)
    received = b""
    while b"\r\n\r\n" not in received:
        received += (chunk := s.recv(65536))
        assert chunk, f"closed before the head ended: {received!r}"
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += (chunk := s.recv(65536))
        assert chunk, f"closed before the body ended: {received!r}"
    return head + b"\r\n\r\n" + body


# ------------------------------------------------------------------------------------------- order and framing
def test_pipelined_requests_are_answered_in_order(served):
    answer = talk(served.path, get("/slow") + get("/plain") + get("/plain?a=1", "Connection: close"))
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.index(b'"slow"') < answer.index(b'"q": {}') < answer.index(b'"a": "1"')


def test_a_peer_that_half_closes_still_gets_its_answer(served):
    assert b'{"slow": true}' in talk(served.path, get("/slow"), half_close=True)


def test_unknown_path_is_404_and_wrong_method_405(served):
    assert talk(served.path, get("/nothing", "Connection: close")).startswith(b"HTTP/1.1 404")
    answer = talk(served.path, b"DELETE /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405") and b"allowed: GET" in answer


def test_a_path_segment_can_be_a_parameter(served):
    assert b'{"item": "42"}' in talk(served.path, get("/items/42", "Connection: close"))


def test_garbage_gets_400_and_the_connection_ends(served):
    answer = talk(served.path, b"\x16\x03\x01 this is not http\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b"Connection: close" in answer


def test_a_refusal_is_sent_after_the_answers_owed_before_it(served):
    answer = talk(served.path, get("/slow") + b"garbage\r\n\r\n")
    assert answer.index(b'{"slow": true}') < answer.index(b"HTTP/1.1 400")


# ------------------------------------------------------------------------------------------- routes
def noop(request: Request) -> Response:
    return Response(200)


def other(request: Request) -> Response:
    return Response(201)


def test_placeholders_may_stand_in_any_segment():
    router = Router()
    router.add("POST", "/v1/products/{id}/trial", noop)
    router.add("DELETE", "/v1/features/{id}/captures/{session}", noop)
    assert router.resolve("POST", "/v1/products/12/trial") == (noop, {"id": "12"})
    assert router.resolve("DELETE", "/v1/features/33/captures/s-1") == (noop, {"id": "33", "session": "s-1"})


@pytest.mark.parametrize("path", ["/v1/products/12", "/v1/products//trial", "/v1/products/12/trial/x"])
def test_a_path_of_another_shape_is_404(path):
    router = Router()
    router.add("POST", "/v1/products/{id}/trial", noop)
    with pytest.raises(HTTPError) as refused:
        router.resolve("POST", path)
    assert refused.value.status == 404


def test_an_exact_path_wins_over_a_placeholder():
    router = Router()
    router.add("GET", "/v1/offline/{what}", noop)
    router.add("GET", "/v1/offline/request", other)
    assert router.resolve("GET", "/v1/offline/request") == (other, {})


def test_the_method_picks_among_routes_that_match_and_405_lists_them_all():
    router = Router()
    router.add("GET", "/v1/{kind}/33", noop)
    router.add("POST", "/v1/features/{id}", other)
    assert router.resolve("POST", "/v1/features/33")[0] is other
    with pytest.raises(HTTPError) as refused:
        router.resolve("DELETE", "/v1/features/33")
    assert refused.value.status == 405 and "allowed: GET, POST" in refused.value.message


def test_a_placeholder_inside_a_segment_is_refused_when_routes_are_made():
    with pytest.raises(ValueError):
        Router().add("GET", "/v1/item-{id}", noop)


# ------------------------------------------------------------------------------------------- 100-continue and 408
@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_curl_waiting_for_100_continue_gets_it_and_then_sends_its_body(served):
    """PHP's curl asks for bodies over 1 KiB (newer curl over 1 MiB): without the 100 it waits a second."""
    body = served.path.with_name("body.json")
    body.write_bytes(b"x" * 2048)
    done = subprocess.run(["curl", "-sS", "-v", "--unix-socket", str(served.path), "-H", "Expect: 100-continue",
                           "--data-binary", f"@{body}", "http://localhost/echo"],
                          capture_output=True, timeout=30)
    assert b"< HTTP/1.1 100 Continue" in done.stderr, done.stderr.decode(errors="replace")
    assert b"Done waiting for 100-continue" not in done.stderr
    assert done.stdout == b"x" * 2048


def test_a_body_too_large_is_refused_at_its_head_without_a_100_continue(served):
    with connect(served.path) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n")
        answer = read_until_closed(s)
    assert answer.startswith(b"HTTP/1.1 413") and b"100 Continue" not in answer


def test_a_request_not_finished_in_time_gets_a_408_error_body_and_the_connection_ends(serve):
    served = serve(Limits(request_timeout=0.3))
    with connect(served.path) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"half")
        status, body = answer_of(read_until_closed(s))
    assert status == 408 and "0.3 s" in body["error"] and body["path"] == "/echo"


def test_an_idle_kept_alive_connection_is_closed_without_an_answer(serve):
    served = serve(Limits(request_timeout=0.3))
    with connect(served.path) as s:
        assert exchange(s, get("/plain")).startswith(b"HTTP/1.1 200")
        assert read_until_closed(s) == b""


# ------------------------------------------------------------------------------------------- flow control
def send_until_blocked(s: socket.socket) -> int:
    """Echo requests of ANSWER bytes, never reading the answers, until the daemon stops reading them."""
    sent = 0
    try:
        while sent < 10_000:
            s.sendall(post("/echo", b"e" * ANSWER))
            sent += 1
    except socket.timeout:
        pass
    assert sent < 10_000
    return sent


def test_a_peer_that_does_not_read_its_answers_is_no_longer_read(served):
    with connect(served.path, timeout=0.5) as s:
        sent = send_until_blocked(s)
        conn = served.connection()
        reading, buffered = served.inspect(lambda: (conn.transport.is_reading(),
                                                    conn.transport.get_write_buffer_size()))
        assert not reading and buffered <= served.server.limits.write_buffer + ANSWER
        s.settimeout(10)
        s.shutdown(socket.SHUT_WR)
        assert read_until_closed(s).count(b"HTTP/1.1 200 OK") == sent  # once it reads, every answer comes, in order


def test_a_peer_that_reads_none_of_its_answers_is_cut_off_after_the_request_timeout(serve, caplog):
    caplog.set_level(logging.DEBUG, logger="mikolicd.http")
    served = serve(Limits(request_timeout=0.5))
    with connect(served.path, timeout=0.2) as s:
        send_until_blocked(s)
        served.wait_until_idle()
    assert "it read none of its answers for 0.5 s" in caplog.text


# ------------------------------------------------------------------------------------------- connection caps
@contextmanager
def holding(served: Served, count: int) -> Iterator[list[socket.socket]]:
    """Connections each admitted (answered once) and kept open; more may be added to the list."""
    held: list[socket.socket] = []
    try:
        held += admitted(served, count)
        yield held
    finally:
        for s in held:
            s.close()


def admitted(served: Served, count: int) -> list[socket.socket]:
    connections = [connect(served.path) for _ in range(count)]
    for s in connections:
        assert exchange(s, get("/plain")).startswith(b"HTTP/1.1 200")
    return connections


def refused_with(served: Served) -> tuple[int, dict]:
    """The answer to a connection over a cap: sent unasked as it is accepted, then the server closes it."""
    with connect(served.path) as s:
        return answer_of(read_until_closed(s))


def test_one_uid_over_its_cap_gets_503_naming_the_limit_until_one_of_its_connections_ends(serve):
    served = serve(Limits(max_connections=100, reserve=10, max_per_uid=2))
    with holding(served, 2) as held:
        status, body = refused_with(served)
        assert status == 503 and "2 connections, the most one user may" in body["error"]
        held.pop().close()
        wait_for(lambda: len(served.inspect(lambda: served.server.connections)) == 1, 5, "the slot to be freed")
        held += admitted(served, 1)


def test_the_reserve_is_kept_for_privileged_peers(serve):
    served = serve(Limits(max_connections=3, reserve=1, max_per_uid=10))
    with holding(served, 2) as held:
        status, body = refused_with(served)
        assert status == 503 and "other than root and admins" in body["error"]
        served.privileged = True
        held += admitted(served, 1)
        assert refused_with(served)[0] == 503


def test_caps_count_per_uid_and_keep_the_reserve():
    admission = Admission(Limits(max_connections=5, reserve=2, max_per_uid=2))
    assert [admission.admit(1000, lambda: False), admission.admit(1000, lambda: False)] == [None, None]
    assert "one user" in admission.admit(1000, lambda: False)
    assert admission.admit(1001, lambda: False) is None
    assert "other than root" in admission.admit(1002, lambda: False)
    assert [admission.admit(0, lambda: True), admission.admit(0, lambda: True)] == [None, None]
    assert admission.admit(33, lambda: True) is not None
    for uid in (0, 0, 1000):
        admission.release(uid)
    assert admission.admit(1002, lambda: False) is None


def test_root_and_the_daemons_own_uid_are_privileged_by_default():
    assert root_or_self(Peer(uid=0)) and root_or_self(Peer(uid=os.getuid()))
    assert not root_or_self(Peer(uid=os.getuid() + 1)) and not root_or_self(Peer(address="127.0.0.1"))


# ------------------------------------------------------------------------------------------- clients that hung up
def test_a_write_whose_client_hung_up_while_it_waited_in_the_backlog_is_not_run(served, caplog):
    caplog.set_level(logging.DEBUG, logger="mikolicd.http")
    with connect(served.path) as blocker, connect(served.path, timeout=10) as patient:
        blocker.sendall(get("/block"))
        time.sleep(0.1)  # the loop is held: both requests below wait unread
        with connect(served.path) as gone:
            gone.sendall(post("/write?id=gone"))
        patient.sendall(post("/write?id=patient"))
        patient.shutdown(socket.SHUT_WR)  # only half-closed: it still waits for the answer
        assert answer_of(read_until_closed(patient)) == (200, {"done": "patient"})
    served.wait_until_idle()
    assert served.ran == ["patient"]
    assert "dropped POST /write: its client hung up before it started" in caplog.text


def test_a_queued_write_whose_client_hung_up_is_not_run(served):
    with connect(served.path) as gone:
        gone.sendall(get("/slow") + post("/write?id=queued"))
    served.wait_until_idle()
    assert served.ran == []


# ------------------------------------------------------------------------------------------- peer credentials
PEER_CLIENT = textwrap.dedent("""
    import socket, sys
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.sendall(b"GET /peer HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    sys.stdout.write(data.partition(b"\\r\\n\\r\\n")[2].decode())
""")


def peer_as(served: Served, uid: int, groups: list[int]) -> dict:
    done = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", f"--groups={','.join(map(str, groups))}",
                           sys.executable, "-I", "-c", PEER_CLIENT, str(served.path)],
                          capture_output=True, text=True, timeout=30, check=True)
    return json.loads(done.stdout)


@pytest.fixture
def open_socket(served: Served) -> Served:
    """The served socket reachable by any uid."""
    served.path.parent.chmod(0o711)
    served.path.chmod(0o666)
    return served


@AS_ROOT
def test_the_peers_supplementary_groups_are_its_own(open_socket):
    groups = list(range(70_000, 70_200))
    peer = peer_as(open_socket, 61_234, groups)
    assert peer["uid"] == 61_234 and sorted(peer["groups"]) == groups


@AS_ROOT
def test_a_peer_in_more_groups_than_can_be_read_gets_its_users_groups(open_socket):
    assert peer_as(open_socket, 61_234, list(range(70_000, 70_300)))["groups"] == [61_234]  # no such user: its gid


@AS_ROOT
def test_groups_are_read_on_every_connection_not_remembered(open_socket):
    assert peer_as(open_socket, 61_234, [70_001])["groups"] == [70_001]
    assert peer_as(open_socket, 61_234, [70_002])["groups"] == [70_002]


def test_without_so_peergroups_the_users_groups_stand_in(served, monkeypatch):
    monkeypatch.setattr(httpserver, "SO_PEERGROUPS", 9999)  # an option this kernel does not know
    answer = answer_of(talk(served.path, get("/peer", "Connection: close")))[1]
    assert answer["uid"] == os.getuid() and answer["pid"] == os.getpid()
    name = httpserver.pwd.getpwuid(os.getuid()).pw_name
    assert answer["groups"] == os.getgrouplist(name, os.getgid())


# ------------------------------------------------------------------------------------------- accept errors
def test_a_throttle_lets_one_report_through_per_interval_and_counts_the_rest():
    now = [0.0]
    throttle = Throttle(60, clock=lambda: now[0])
    due = []
    for now[0] in (0, 1, 2, 59, 60, 61):
        due.append(throttle.due())
    assert due == [0, None, None, None, 3, None]


RUN_OUT_OF_FILES = textwrap.dedent("""
    import asyncio, logging, resource, sys
    from mikolicd.httpserver import Limits, Router, Server, json_response
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    resource.setrlimit(resource.RLIMIT_NOFILE, (48, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    async def main():
        server = Server(Router(), lambda e, p: json_response({}, e.status),
                        limits=Limits(max_connections=10_000, reserve=1, max_per_uid=10_000))
        await server.listen_unix(sys.argv[1])
        print("ready", flush=True)
        await asyncio.sleep(60)
    asyncio.run(main())
""")


def test_a_server_out_of_descriptors_logs_it_once_per_interval_without_a_traceback(short_dir):
    sock = short_dir / "starved.sock"
    proc = subprocess.Popen([sys.executable, "-c", RUN_OUT_OF_FILES, str(sock)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    held = []
    try:
        assert proc.stdout.readline() == "ready\n"
        held = [connect(sock) for _ in range(100)]  # beyond 48 descriptors: the rest wait in the backlog
        time.sleep(2)  # accept() is retried every 0.1 s meanwhile
    finally:
        for s in held:
            s.close()
        proc.kill()
        _, log = proc.communicate(timeout=10)
    assert log.count("cannot accept connections: Too many open files") == 1, log
    assert "Traceback" not in log


def test_whether_a_peer_is_privileged_is_asked_only_once_the_reserve_is_reached():
    admission, asked = Admission(Limits(max_connections=3, reserve=1, max_per_uid=10)), []
    ask = lambda: asked.append(1) or False  # noqa: E731
    assert [admission.admit(1000, ask), admission.admit(1000, ask)] == [None, None] and asked == []
    assert "other than root" in admission.admit(1000, ask) and asked == [1]
