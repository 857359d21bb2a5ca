"""Server-side and TLS faults on the real daemon: whatever the licensing server (or what sits in front of
it) does short of an explicit refusal, the stored license stays, the box runs in grace, and the status
tells the admin what went wrong."""
from __future__ import annotations

import datetime as dt

import pytest

from agentproc import free_port
from badserver import (RETRY_MAX_DELAY, Hang, Huge, Reply, assert_kept_in_grace, stalled_listener,
                       stored_document, validate)
from conftest import RefServer
from mikolicd import protocol

VALIDATION = protocol.VALIDATION


def at(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


@pytest.mark.parametrize("behaviour,message", [
    (Hang(), "did not answer in time"),
    (Reply(500, b'{"error": {"code": null, "message": "internal"}}'), "HTTP 500"),
    (Reply(502, b"<html>Bad Gateway</html>", "text/html"), "HTTP 502"),
    (Reply(503, b"<html>Service Unavailable</html>", "text/html"), "HTTP 503"),
    (Reply(500, b'{"error": {"code": 2009, "message": "License key error"}}'), "HTTP 500"),
    (Reply(200, b'{"document": "eyJhbGciOiJFZERTQSJ9', length=4096), "broke off"),
    (Reply(200, b"<html>It works!</html>"), "not valid JSON"),
    (Reply(200, b'["document"]'), "not a JSON object"),
    (Huge(), "larger than 1 MiB"),
    (Reply(200, b'{"document": "x"}', "text/html"), "not JSON"),
    (Reply(403, b'{"error": "forbidden by proxy policy"}'), "without an error code"),
], ids=["read-timeout", "500", "502-from-proxy", "503", "500-with-business-code", "truncated-body",
        "non-json-body", "json-array", "huge-body", "wrong-content-type",
        "403-without-code"])
def test_bad_answer_keeps_the_license_in_grace_and_says_why(licensed_agent, badserver, behaviour, message):
    document = stored_document(licensed_agent)
    badserver.on(VALIDATION, behaviour)
    assert_kept_in_grace(licensed_agent, validate(licensed_agent), document, message)


def test_redirect_is_not_followed(licensed_agent, badserver):
    """The target answers with a trusted certificate, so a client that followed would be counted there."""
    document = stored_document(licensed_agent)
    badserver.on(VALIDATION, Reply(302, b"", headers={"Location": f"https://127.0.0.1:{badserver.port}/stolen"}))
    assert_kept_in_grace(licensed_agent, validate(licensed_agent), document, "redirect")
    assert badserver.hits["/stolen"] == 0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_by_the_schedule_not_by_blocking_the_caller(licensed_agent, badserver, status):
    document = stored_document(licensed_agent)
    before = badserver.hits[VALIDATION]
    badserver.on(VALIDATION, Reply(status, b'{"error": {"code": null}}', headers={"Retry-After": "600"}))
    answer = validate(licensed_agent)
    assert_kept_in_grace(licensed_agent, answer, document, f"HTTP {status}")
    assert badserver.hits[VALIDATION] == before + 1
    assert at(answer["next_validation"]) >= at(answer["last_validation"]["at"]) + 600 - 1


def test_repeated_transport_failures_never_make_the_license_invalid(licensed_agent, badserver):
    document = stored_document(licensed_agent)
    badserver.on(VALIDATION, Reply(503, b"{}"))
    for _ in range(2):
        assert_kept_in_grace(licensed_agent, validate(licensed_agent), document, "HTTP 503")


def test_retry_backoff_stays_within_retry_max_delay(licensed_agent, badserver):
    badserver.on(VALIDATION, Reply(502, b"{}"))
    status = validate(licensed_agent)
    # ISO timestamps are whole seconds, hence one second of slack; the check interval is an hour
    assert at(status["next_validation"]) - at(status["last_validation"]["at"]) <= RETRY_MAX_DELAY + 1


@pytest.mark.parametrize("mode,message", [
    ("self_signed", "not trusted"),
    ("other_name", "for another name"),
    ("expired", "has expired"),
    ("unknown_ca", "TLS interception is likely"),
])
def test_untrusted_tls_certificate_keeps_the_license_and_names_the_cause(licensed_agent, badserver, mode, message):
    document = stored_document(licensed_agent)
    badserver.tls = mode
    assert_kept_in_grace(licensed_agent, validate(licensed_agent), document, message)


@pytest.mark.parametrize("url,message", [
    (f"https://127.0.0.1:{free_port()}", "connection refused"),
    ("https://licensing.invalid", "does not resolve (DNS)"),
], ids=["connection-refused", "dns-failure"])
def test_unreachable_address_keeps_the_license_in_grace(seeded, url, message):
    agent = seeded(url)
    assert_kept_in_grace(agent, validate(agent), stored_document(agent), message)


@pytest.mark.parametrize("accepting,message", [(False, "connection to the licensing server timed out"),
                                                (True, "did not answer in time")],
                         ids=["connect-timeout", "accepts-and-never-answers"])
def test_server_stuck_below_http_keeps_the_license_in_grace(seeded, accepting, message):
    with stalled_listener(accepting) as url:
        agent = seeded(url)
        assert_kept_in_grace(agent, validate(agent), stored_document(agent), message)


def test_a_server_that_comes_back_is_used_by_the_very_next_attempt(fault_agents, refserver_factory):
    server: RefServer = refserver_factory().start()
    agent = fault_agents(server=server, seed=8).start()
    assert agent.call("POST", "/v1/activation", {"registration_number": server.issue()})[1]["state"] == "active"
    document = stored_document(agent)
    server.stop()
    assert_kept_in_grace(agent, validate(agent), document, "connection refused")
    server.start()
    status = validate(agent)
    assert status["state"] == "active" and status["last_validation"]["outcome"] == "ok"
    assert stored_document(agent) != document
