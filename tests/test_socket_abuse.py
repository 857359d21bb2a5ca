"""Abuse of the daemon's Unix socket: whatever a local process sends, the daemon answers or closes the
connection, keeps serving everyone else, and its memory stays bounded.

Any local user the socket mode admits can connect, so malformed, oversized, stalled and flooding clients
are part of the threat model, not exotic cases.
"""
from __future__ import annotations

import fcntl
import http.client
import json
import shutil
import socket
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from agentproc import AgentProcess, box_agent, running, uds_call
from rawhttp import connect, read_until_closed, request
from mikolicd import legacy
from mikolicd.httpproto import Limits

LIMITS = Limits()

RSS_HEADROOM = 64 * 1024 * 1024
CONCURRENT = 500


@dataclass
class Target:
    """The daemon under abuse and its resident memory before any abuse."""

    agent: AgentProcess
    baseline_rss: int

    def rss(self) -> int:
        return psutil.Process(self.agent.proc.pid).memory_info().rss

    def assert_serving(self) -> None:
        """Still alive, still answering a well-behaved client, memory within bounds."""
        assert self.agent.proc.poll() is None, self.agent.log_text()[-800:]
        assert uds_call(self.agent.sock, "GET", "/v1/health", timeout=5)[0] == 200
        assert self.rss() < self.baseline_rss + RSS_HEADROOM


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, refserver) -> Iterator[Target]:
    with running(box_agent(tmp_path_factory.mktemp("abuse"), refserver, 9101)) as agent:
        yield Target(agent, psutil.Process(agent.proc.pid).memory_info().rss)


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: the daemon closed the connection without an answer
    body: bytes


def read_answer(conn: socket.socket) -> Answer:
    response = http.client.HTTPResponse(conn)
    try:
        response.begin()
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return Answer(None, b"")
    return Answer(response.status, response.read())


def exchange(sock: Path, data: bytes, timeout: float = 10) -> Answer:
    """Send raw bytes, read one answer; a daemon that refuses the rest of a big request may reset the send."""
    with connect(sock, timeout) as conn:
        try:
            conn.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_answer(conn)


CLOSED = None
MALFORMED: dict[str, tuple[bytes, set[int | None]]] = {
    "binary garbage": (bytes(range(256)) * 4, {400, CLOSED}),
    "NUL bytes": (b"\0" * 4096 + b"\r\n\r\n", {400, CLOSED}),
    "an HTTP/0.9 request": (b"GET /v1/status\r\n\r\n", {200, 400, CLOSED}),
    "the HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400, 505, CLOSED}),
    "an h2c upgrade": (request("GET", "/v1/health", "Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
                               "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"), {200, 400, CLOSED}),
    "a flood of 10000 headers": (request("GET", "/v1/health", *(f"X-Flood-{i}: {i}" for i in range(10_000))),
                                 {400, 431, CLOSED}),
    "a 1 MiB header": (request("GET", "/v1/health", "X-Big: " + "a" * (1 << 20)), {400, 431, CLOSED}),
    "a 1 MiB request line": (request("GET", "/v1/" + "a" * (1 << 20)), {400, 414, 431, CLOSED}),
    "a header without a colon": (request("GET", "/v1/health", "no colon here"), {400, CLOSED}),
    "a negative content length": (request("POST", "/v1/validation", "Content-Length: -5"), {400, CLOSED}),
    "content length and chunked together": (
        request("POST", "/v1/validation", "Content-Length: 4", "Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
        {400, CLOSED}),
    "a bad chunk size": (request("POST", "/v1/validation", "Transfer-Encoding: chunked", body=b"zz\r\n\r\n"),
                         {400, CLOSED}),
    "an unknown method": (request("BREW", "/v1/status"), {400, 405, 501, CLOSED}),
    "TRACE": (request("TRACE", "/v1/status"), {405}),
    "PROPFIND": (request("PROPFIND", "/v1/status"), {405}),
    "CONNECT": (b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n", {400, 404, 405, CLOSED}),
    "PUT on a read endpoint": (request("PUT", "/v1/status", "Content-Length: 2", body=b"{}"), {405}),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_requests_get_an_error_or_a_closed_connection(name, target):
    payload, allowed = MALFORMED[name]
    assert exchange(target.agent.sock, payload).status in allowed
    target.assert_serving()


@pytest.mark.parametrize("path", [
    "/../../../../etc/passwd",
    "/v1/../../etc/passwd",
    "/v1/features/..%2F..%2F..%2Fetc%2Fpasswd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/v1/status/../../../etc/shadow",
    "/license.api/..%2F..%2Fetc%2Fpasswd",
    "//etc/passwd",
])
def test_path_traversal_reaches_no_file(path, target):
    answer = exchange(target.agent.sock, request("GET", path))
    assert answer.status in {400, 404}
    assert b"root:" not in answer.body
    target.assert_serving()


@pytest.mark.parametrize("path", ["/v1/activation", "/license.api/changekey"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_bodies_over_64_kib_are_refused_with_413(framing, path, target):
    body = b"a" * (LIMITS.max_body + 1)
    if framing == "chunked":
        payload = request("POST", path, "Transfer-Encoding: chunked",
                          body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    else:
        payload = request("POST", path, f"Content-Length: {len(body)}", body=body)
    answer = exchange(target.agent.sock, payload)
    assert answer.status == 413
    assert "64 KiB" in json.dumps(json.loads(answer.body))
    target.assert_serving()


STALLS: dict[str, bytes] = {
    "an idle connection": b"",
    "half a request line": b"GET /v1/sta",
    "an HTTP/0.9 request line": b"GET /v1/status\r\n",
    "headers without their end": b"GET /v1/status HTTP/1.1\r\nHost: localhost\r\n",
    "a stalled body": request("POST", "/v1/activation", "Content-Type: application/json", "Content-Length: 100",
                              body=b'{"regist'),
}


def test_stalled_requests_get_408_and_idle_connections_are_closed_without_blocking_others(target):
    bound = 3 * LIMITS.request_timeout
    stalled = {name: connect(target.agent.sock, bound) for name in STALLS}
    try:
        for name, conn in stalled.items():
            conn.sendall(STALLS[name])
        assert uds_call(target.agent.sock, "GET", "/v1/status", timeout=5)[0] == 200
        received = {name: read_until_closed(conn) for name, conn in stalled.items()}
    finally:
        for conn in stalled.values():
            conn.close()
    assert {name: data[:12] for name, data in received.items()} == {
        name: b"" if name == "an idle connection" else b"HTTP/1.1 408" for name in STALLS}
    target.assert_serving()


def test_500_concurrent_connections_are_all_answered(target):
    conns = [connect(target.agent.sock, 30) for _ in range(CONCURRENT)]
    try:
        for conn in conns:
            conn.sendall(request("GET", "/v1/health", "Connection: close"))
        assert uds_call(target.agent.sock, "GET", "/v1/status", timeout=10)[0] == 200
        statuses = [read_answer(conn).status for conn in conns]
    finally:
        for conn in conns:
            conn.close()
    assert statuses == [200] * CONCURRENT
    target.assert_serving()


PIPELINED = 100_000  # a daemon without flow control holds all their answers: tens of MiB
PIPELINE_RSS_BOUND = 16 * 1024 * 1024
ATTACK_SECONDS = 60


def unread_by_peer(conn: socket.socket) -> int:
    """What this socket sent that its peer has not read yet (SIOCOUTQ)."""
    return struct.unpack("i", fcntl.ioctl(conn, termios.TIOCOUTQ, b"\0\0\0\0"))[0]


def read_by_peer(conn: socket.socket, within: float) -> bool:
    end = time.monotonic() + within
    while unread_by_peer(conn):
        if time.monotonic() > end:
            return False
        time.sleep(0.001)
    return True


def test_a_peer_pipelining_status_without_reading_is_paused_and_memory_stays_bounded(target):
    batch = request("GET", "/v1/status") * 8  # within the pipelining limit per read
    before = target.rss()
    with connect(target.agent.sock, timeout=5) as conn:
        sent, paused, end = 0, False, time.monotonic() + ATTACK_SECONDS
        while sent < PIPELINED and not paused and time.monotonic() < end:
            conn.sendall(batch)
            sent += 8
            paused = not read_by_peer(conn, within=2)
        growth = target.rss() - before
    print(f"pipelined {sent} status requests without reading answers: daemon paused={paused}, "
          f"RSS grew {growth / 2**20:.2f} MiB (bound {PIPELINE_RSS_BOUND / 2**20:.0f} MiB)")
    assert paused and growth < PIPELINE_RSS_BOUND
    target.assert_serving()


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_curl_expecting_100_continue_for_a_legacy_form_gets_it(target):
    form = "feature=33&pad=" + "x" * 2048  # PHP's curl asks before a body over 1 KiB
    done = subprocess.run(["curl", "-sS", "-v", "--unix-socket", str(target.agent.sock), "-H", "Expect: 100-continue",
                           "-H", f"Content-Type: {legacy.FORM}", "--data-binary", form,
                           "http://localhost/license.api/featureavailable"], capture_output=True, timeout=30)
    assert b"< HTTP/1.1 100 Continue" in done.stderr and b"Done waiting" not in done.stderr, done.stderr
    assert json.loads(done.stdout)
