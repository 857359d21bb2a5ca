"""The local HTTP server on a real Unix socket: ordering, keep-alive, half-close, routing."""
from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mikolicd.httpserver import HTTPError, Request, Response, Router, Server, json_response


def render(error: HTTPError, path: str) -> Response:
    return json_response({"error": error.message}, error.status)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    """A server with a plain and a slow handler, on its own loop in a thread."""
    router = Router()
    router.add("GET", "/plain", lambda request: json_response({"path": request.path, "q": request.query}))

    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.2)
        return json_response({"slow": True})
    router.add("GET", "/slow", slow)
    router.add("GET", "/items/{item}", lambda request: json_response(request.params))
    server = Server(router, render)
    path = tmp_path / "http.sock"
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        loop.run_until_complete(server.listen_unix(str(path)))
        ready.set()
        loop.run_forever()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    yield path
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def talk(path: Path, data: bytes, half_close: bool = False) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := s.recv(65536):
            received += chunk
        return received


def get(path: str, *headers: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: x\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n").encode()


def test_pipelined_requests_are_answered_in_order(served):
    answer = talk(served, get("/slow") + get("/plain") + get("/plain?a=1", "Connection: close"))
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.index(b'"slow"') < answer.index(b'"q": {}') < answer.index(b'"a": "1"')


def test_a_peer_that_half_closes_still_gets_its_answer(served):
    assert b'{"slow": true}' in talk(served, get("/slow"), half_close=True)


def test_unknown_path_is_404_and_wrong_method_405(served):
    assert talk(served, get("/nothing", "Connection: close")).startswith(b"HTTP/1.1 404")
    answer = talk(served, b"DELETE /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 405") and b"allowed: GET" in answer


def test_a_trailing_path_segment_is_a_parameter(served):
    assert b'{"item": "42"}' in talk(served, get("/items/42", "Connection: close"))


def test_garbage_gets_400_and_the_connection_ends(served):
    answer = talk(served, b"\x16\x03\x01 this is not http\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400") and b"Connection: close" in answer
