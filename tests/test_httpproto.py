"""The HTTP protocol core fed plain bytes and times: no sockets, no event loop, milliseconds per rule."""
from __future__ import annotations


import pytest

from rawhttp import request
from mikolicd.httpproto import (CONTINUE, Close, Continue, Event, Limits, Peer, Refusal, Request, Response,
                                ServerConnection, connection_caps)

PEER = Peer(pid=4242, uid=1000, gid=1000, groups=(27, 1000))
LIMITS = Limits()
TIMEOUT = LIMITS.request_timeout


def connect(limits: Limits = LIMITS, now: float = 0.0) -> ServerConnection:
    return ServerConnection(limits, PEER, now)


def post(target: str, body: bytes, *headers: str) -> bytes:
    return request("POST", target, f"Content-Length: {len(body)}", *headers, body=body)


def only(events: list[Event]) -> Event:
    assert len(events) == 1, events
    return events[0]


def refusal(events: list[Event]) -> tuple[int, str]:
    event = only(events)
    assert isinstance(event, Refusal), event
    return event.error.status, event.error.message


# ------------------------------------------------------------------------------------------- requests
def test_a_whole_request_is_one_request_event_carrying_the_peer():
    event = only(connect().receive(request("POST", "/v1/x?a=1&b=", "Content-Type: application/json; charset=utf-8",
                                           "Content-Length: 2", body=b"{}")))
    assert isinstance(event, Request)
    assert (event.method, event.path, event.query, event.body) == ("POST", "/v1/x", {"a": "1", "b": ""}, b"{}")
    assert event.headers["host"] == "localhost" and event.content_type == "application/json"
    assert event.peer == PEER


def test_a_request_split_across_reads_is_one_event_when_its_last_byte_arrives():
    conn, data = connect(), post("/v1/x", b'{"k": "v"}')
    assert [conn.receive(data[i:i + 1]) for i in range(len(data) - 1)] == [[]] * (len(data) - 1)
    assert only(conn.receive(data[-1:])).body == b'{"k": "v"}'


def test_pipelined_requests_come_out_in_order():
    events = connect().receive(request("GET", "/a") + post("/b", b"x") + request("GET", "/c"))
    assert [(e.method, e.path) for e in events] == [("GET", "/a"), ("POST", "/b"), ("GET", "/c")]


def test_more_unanswered_requests_than_the_pipelining_limit_are_refused_with_429():
    events = connect().receive(request("GET", "/a") * (LIMITS.max_pipelined + 1))
    assert [type(e) for e in events] == [Request] * LIMITS.max_pipelined + [Refusal]
    assert events[-1].error.status == 429


def test_answered_requests_no_longer_count_against_the_pipelining_limit():
    conn = connect()
    for _ in range(3 * LIMITS.max_pipelined):
        only(conn.receive(request("GET", "/a")))
        conn.respond(Response(200), 0)
    assert not conn.finished


# ------------------------------------------------------------------------------------------- answers
def first_answer(data: bytes, response: Response = Response(200), close: bool = False) -> tuple[bytes, bool]:
    """The answer to the first request in `data`, and whether it ends the connection."""
    conn = connect()
    conn.receive(data)
    return conn.respond(response, 0, close=close), conn.finished


def test_an_answer_carries_status_type_length_and_keep_alive():
    answer, finished = first_answer(request("GET", "/a"), Response(404, b'{"e": 1}'))
    assert answer == (b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json; charset=utf-8\r\n"
                      b"Content-Length: 8\r\nConnection: keep-alive\r\n\r\n" + b'{"e": 1}')
    assert not finished


@pytest.mark.parametrize("data", [request("GET", "/a", "Connection: close"), request("GET", "/a", version="1.0")],
                         ids=["connection-close", "http-1.0"])
def test_a_request_that_does_not_keep_alive_ends_the_connection_with_its_answer(data):
    answer, finished = first_answer(data)
    assert b"Connection: close" in answer and finished


def test_the_server_closing_ends_the_connection_with_the_next_answer():
    answer, finished = first_answer(request("GET", "/a"), close=True)
    assert b"Connection: close" in answer and finished


def test_a_peer_that_stopped_sending_gets_every_answer_owed_and_the_last_one_closes():
    conn = connect()
    conn.receive(request("GET", "/a") + request("GET", "/b"))
    assert conn.receive_eof() == []
    assert b"keep-alive" in conn.respond(Response(200), 0) and not conn.finished
    assert b"Connection: close" in conn.respond(Response(200), 0) and conn.finished


def test_the_answer_to_head_announces_the_length_but_carries_no_body():
    answer, _ = first_answer(request("HEAD", "/a"), Response(200, b"0123456789"))
    assert b"Content-Length: 10\r\n" in answer and answer.endswith(b"\r\n\r\n")


# ------------------------------------------------------------------------------------------- limits and malformed input
def test_a_body_announced_over_the_limit_is_refused_with_413_before_it_arrives():
    status, message = refusal(connect().receive(request("POST", "/a", f"Content-Length: {LIMITS.max_body + 1}")))
    assert status == 413 and "64 KiB" in message


def test_a_chunked_body_over_the_limit_is_refused_with_413():
    body = b"a" * (LIMITS.max_body + 1)
    data = request("POST", "/a", "Transfer-Encoding: chunked", body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    assert refusal(connect().receive(data))[0] == 413


def test_more_headers_than_the_limit_are_refused_with_431():
    headers = (f"X-{i}: {i}" for i in range(LIMITS.max_headers + 1))
    assert refusal(connect().receive(request("GET", "/a", *headers)))[0] == 431


def test_a_head_over_the_byte_limit_is_refused_with_431():
    status, message = refusal(connect().receive(request("GET", "/a", "X-Big: " + "a" * LIMITS.max_head_bytes)))
    assert status == 431 and "16 KiB" in message


@pytest.mark.parametrize("data", [b"\x16\x03\x01 this is not http\r\n\r\n", b"BREW /pot HTTP/1.1\r\n\r\n",
                                  request("GET", "/a", "no colon here"),
                                  request("POST", "/a", "Content-Length: 4", "Transfer-Encoding: chunked"),
                                  request("POST", "/a", "Transfer-Encoding: chunked", body=b"zz\r\n\r\n")],
                         ids=["tls-hello", "unknown-method", "header-without-colon", "length-and-chunked",
                              "bad-chunk-size"])
def test_malformed_input_is_refused_with_400(data):
    assert refusal(connect().receive(data))[0] == 400


@pytest.mark.parametrize("data", [request("GET", "/a", "Connection: Upgrade", "Upgrade: h2c"),
                                  b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n"],
                         ids=["h2c", "connect"])
def test_protocol_upgrades_are_refused_with_400_and_their_request_never_reaches_a_handler(data):
    status, message = refusal(connect().receive(data))
    assert status == 400 and "upgrades" in message


def test_after_a_refusal_nothing_more_is_read():
    conn = connect()
    assert refusal(conn.receive(b"garbage\r\n\r\n"))[0] == 400
    assert conn.receive(request("GET", "/a")) == []


def test_a_refusal_follows_the_requests_before_it():
    events = connect().receive(request("GET", "/a") + b"garbage\r\n\r\n")
    assert [type(e) for e in events] == [Request, Refusal]


def test_a_refusal_names_the_path_as_far_as_it_arrived():
    event = only(connect().receive(request("GET", "/license.api/ping", "X-Big: " + "a" * LIMITS.max_head_bytes)))
    assert isinstance(event, Refusal) and event.path == "/license.api/ping"


def test_limits_are_one_frozen_value():
    with pytest.raises(AttributeError):
        LIMITS.max_body = 1  # type: ignore[misc]


# ------------------------------------------------------------------------------------------- Expect: 100-continue
def test_expect_100_continue_asks_for_the_body_once_the_head_is_accepted():
    conn, data = connect(), post("/a", b"x" * 2048, "Expect: 100-continue")
    head = data[:data.index(b"\r\n\r\n") + 4]
    assert conn.receive(head) == [Continue()]
    assert only(conn.receive(data[len(head):])).body == b"x" * 2048


def test_no_100_continue_when_the_body_came_with_the_head():
    assert [type(e) for e in connect().receive(post("/a", b"x" * 2048, "Expect: 100-continue"))] == [Request]


def test_a_body_too_large_for_100_continue_is_refused_at_once_without_asking_for_it():
    status, _ = refusal(connect().receive(request("POST", "/a", f"Content-Length: {LIMITS.max_body + 1}",
                                                  "Expect: 100-continue")))
    assert status == 413


def test_an_expectation_other_than_100_continue_is_refused_with_417():
    assert refusal(connect().receive(request("POST", "/a", "Content-Length: 1", "Expect: teapot")))[0] == 417


def test_an_http_1_0_expectation_is_ignored():
    data = request("POST", "/a", "Content-Length: 1", "Expect: 100-continue", version="1.0")
    assert connect().receive(data) == []


def test_the_100_continue_comes_after_the_answers_owed_before_it():
    head = request("POST", "/b", "Content-Length: 1", "Expect: 100-continue")
    events = connect().receive(request("GET", "/a") + head)
    assert [type(e) for e in events] == [Request, Continue]
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"


# ------------------------------------------------------------------------------------------- time: 408 and idle
def test_a_request_begun_and_not_finished_in_time_gets_408_naming_the_limit():
    conn = connect(now=100.0)
    conn.receive(b"GET /v1/sta")
    assert conn.deadline == 100.0 + TIMEOUT
    status, message = refusal(conn.expire(100.0 + TIMEOUT))
    assert status == 408 and f"{TIMEOUT:g} s" in message


def test_a_stalled_body_gets_408():
    conn = connect()
    conn.receive(request("POST", "/a", "Content-Length: 100", body=b'{"regist'))
    assert refusal(conn.expire(TIMEOUT))[0] == 408


def test_an_idle_connection_whose_time_is_up_is_closed_without_an_answer():
    assert connect().expire(TIMEOUT) == [Close()]


def test_nothing_happens_before_the_deadline():
    conn = connect()
    conn.receive(b"GET /v1/sta")
    assert conn.expire(TIMEOUT - 0.001) == []


def test_there_is_no_deadline_while_an_answer_is_owed():
    conn = connect()
    conn.receive(request("GET", "/a"))
    assert conn.deadline is None and conn.expire(10 * TIMEOUT) == []


def test_the_deadline_restarts_at_each_answer():
    conn = connect()
    conn.receive(request("GET", "/a"))
    conn.respond(Response(200), 8.0)
    assert conn.deadline == 8.0 + TIMEOUT


def test_the_deadline_runs_through_a_100_continue():
    conn = connect()
    assert conn.receive(request("POST", "/a", "Content-Length: 5000", "Expect: 100-continue")) == [Continue()]
    assert refusal(conn.expire(TIMEOUT))[0] == 408


# ------------------------------------------------------------------------------------------- after a refusal, and EOF
def test_after_a_refusal_is_sent_the_peer_is_drained_for_the_linger_time_then_closed():
    conn = connect()
    conn.receive(b"garbage\r\n\r\n")
    answer = conn.refuse(Response(400, b"{}"), 4.0)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request") and b"Connection: close" in answer and conn.finished
    assert conn.deadline == 4.0 + LIMITS.linger
    assert conn.expire(4.0 + LIMITS.linger) == [Close()]


def test_a_refused_peer_that_stops_sending_is_closed_at_once():
    conn = connect()
    conn.receive(b"garbage\r\n\r\n")
    conn.refuse(Response(400), 0)
    assert conn.receive_eof() == [Close()]


def test_eof_on_an_idle_connection_closes_it():
    assert connect().receive_eof() == [Close()]


def test_eof_in_the_middle_of_a_request_closes_without_an_answer():
    conn = connect()
    conn.receive(b"GET /v1/sta")
    assert conn.receive_eof() == [Close()]


# ------------------------------------------------------------------------------------------- connection caps
@pytest.mark.parametrize("open_files", [64, 1024, 4096, 524288])
def test_connection_caps_leave_room_for_the_daemons_own_files_and_a_privileged_reserve(open_files):
    total, reserve, per_uid = connection_caps(open_files)
    assert total <= open_files - 32
    assert 0 < reserve < total and 0 < per_uid <= (total - reserve) // 4


def test_the_caps_for_the_units_soft_limit():
    assert connection_caps(4096) == (3584, 448, 784)
    limits = Limits.for_open_files(4096)
    assert (limits.max_connections, limits.reserve, limits.max_per_uid) == (3584, 448, 784)
    assert limits.max_body == LIMITS.max_body
