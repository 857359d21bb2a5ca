"""Trust against the box's owner and whoever sits on the network path, on the real daemon and the real
reference server over TLS: copies of one installation, a reinstall, an intercepting proxy that replays
documents or forges refusals, and hand edits of the state."""
from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from agentproc import AgentProcess, box_agent, stopped_at_end, wait_for
from badserver import BadServer, Reply
from mikolicd import protocol

MAX_VALIDATIONS_TO_2060 = 4


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("trust")


@pytest.fixture(scope="module")
def refserver(refserver_factory):
    return refserver_factory("--number-rps", "0").start()


@pytest.fixture
def agents(base, refserver):
    """Agents on fake hosts (`seed` picks the host); every one is stopped by pid at the end of the test."""
    names = itertools.count()

    def make(seed: int, **options) -> AgentProcess:
        return box_agent(base, refserver, seed, f"agent-{seed}-{next(names)}-{time.monotonic_ns()}", **options)

    yield from stopped_at_end(make)


def activated(agent: AgentProcess, number: str) -> AgentProcess:
    code, status = agent.start().call("POST", "/v1/activation", {"registration_number": number})
    assert code == 200 and status["state"] == "active", status
    return agent


def validation(agent: AgentProcess) -> dict:
    code, status = agent.call("POST", "/v1/validation")
    assert code == 200, status
    return status


def copy_of(agent: AgentProcess, other: AgentProcess) -> AgentProcess:
    """`other` gets `agent`'s whole state directory, installation key included: a copy of one installation."""
    shutil.copytree(agent.state, other.state)
    return other.start()


def test_two_live_copies_of_one_installation_are_told_apart_within_a_few_validations(agents, refserver):
    number = refserver.issue("--seats", "1")
    first = activated(agents(501), number)
    second = copy_of(first, agents(501))  # the same hardware: a cloned VM, a container image with state
    turns = 0
    for turn, box in zip(range(2 * MAX_VALIDATIONS_TO_2060), itertools.cycle((first, second))):
        turns = turn + 1
        status = validation(box)
        if status["state"] == "invalid":
            break
    assert status["state"] == "invalid" and status["last_validation"]["server_code"] == 2060, status
    assert "keep it on one machine" in status["reason"].lower() and "mikolicctl activate" in status["reason"]
    assert turns <= MAX_VALIDATIONS_TO_2060
    print(f"two copies validating in turn: 2060 at validation {turns}")


def test_the_copy_that_should_hold_the_seat_takes_it_back_by_activating_again(agents, refserver):
    number = refserver.issue("--seats", "1")
    first = activated(agents(502), number)
    second = copy_of(first, agents(502))
    told = None
    for box in itertools.islice(itertools.cycle((first, second)), 2 * MAX_VALIDATIONS_TO_2060):
        if validation(box)["state"] == "invalid":
            told = box
            break
    assert told is not None
    code, status = told.call("POST", "/v1/activation", {"registration_number": number})
    assert code == 200 and status["state"] == "active", status
    other = second if told is first else first
    assert validation(other)["last_validation"]["server_code"] == 2060


def test_a_reinstall_on_the_same_host_takes_the_seat_and_the_old_installation_is_told(agents, refserver):
    number = refserver.issue("--seats", "1")
    old = activated(agents(503), number)
    new = activated(agents(503), number)  # same hardware, a new state directory: a new installation
    assert validation(new)["state"] == "active"
    status = validation(old)
    assert status["state"] == "invalid" and status["last_validation"]["server_code"] == 2008, status
    assert "another installation" in status["reason"]


# --------------------------------------------------------------------------- the network path lies
@pytest.fixture(scope="module")
def interceptor(tmp_path_factory):
    """A TLS server the box trusts (its CA is in the box's ca_file), answering in the licensing server's place."""
    server = BadServer(tmp_path_factory.mktemp("interceptor")).start()
    yield server
    server.stop()


def through(agent: AgentProcess, interceptor: BadServer, refserver) -> None:
    """Point the running agent at the interceptor, trusting both CAs, and reload (SIGHUP)."""
    bundle = agent.dir / "ca-bundle.pem"
    bundle.write_text(refserver.ca.read_text() + interceptor.ca.read_text())
    text = agent.config.read_text()
    text = text.replace(f'url = "{refserver.url}"', f'url = "{interceptor.url}"')
    text = text.replace(f'ca_file = "{refserver.ca}"', f'ca_file = "{bundle}"')
    agent.config.write_text(text)
    os.kill(agent.proc.pid, signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in agent.log_text(), 10, "the reload")


def replaying(document: str) -> Reply:
    return Reply(200, json.dumps({"document": document}).encode())


def test_a_replayed_document_does_not_undo_a_revocation(agents, refserver, interceptor):
    number = refserver.issue("--seats", "1")
    box = activated(agents(504), number)
    earlier = json.loads((box.state / "state.json").read_text())["document"]
    refserver.admin("revoke", number)
    assert validation(box)["state"] == "invalid"
    through(box, interceptor, refserver)
    interceptor.on(protocol.VALIDATION, replaying(earlier))
    interceptor.on(protocol.ACTIVATION, replaying(earlier))
    code, body = box.call("POST", "/v1/activation", {"registration_number": number})
    assert code == 502 and "nonce" in body["error"]["message"], body
    assert box.status()["state"] == "invalid"
    assert box.call("GET", "/v1/features/33")[1]["available"] is False


def test_a_replayed_document_confirms_nothing_and_moves_no_clock(agents, refserver, interceptor):
    number = refserver.issue("--seats", "1")
    box = activated(agents(505), number)
    earlier = json.loads((box.state / "state.json").read_text())["document"]
    clock = (box.state / "clock.json").read_text()
    through(box, interceptor, refserver)
    interceptor.on(protocol.VALIDATION, replaying(earlier))
    status = validation(box)
    assert status["state"] == "grace" and status["last_validation"]["outcome"] == "unconfirmed"
    assert (box.state / "clock.json").read_text() == clock
    assert "answering in the licensing server's place" in box.log_text()


@pytest.mark.parametrize("code", [2008, 2009, 2011, 2060])
def test_an_unsigned_refusal_on_the_path_cannot_switch_features_off(agents, refserver, interceptor, code):
    number = refserver.issue("--seats", "1")
    box = activated(agents(506 + code), number)
    through(box, interceptor, refserver)
    interceptor.on(protocol.VALIDATION, Reply(403, json.dumps(
        {"error": {"code": code, "message": protocol.SERVER_TEXT[code]}}).encode()))
    status = validation(box)
    assert status["state"] == "grace" and box.call("GET", "/v1/features/33")[1]["available"] is True
    assert "answering in the licensing server's place" in box.log_text()


def test_editing_the_state_after_a_revocation_extends_nothing(agents, refserver):
    number = refserver.issue("--seats", "1")
    box = activated(agents(507), number)
    refserver.admin("revoke", number)
    assert validation(box)["state"] == "invalid"
    box.stop()
    state = json.loads((box.state / "state.json").read_text())
    state["validation"]["outcome"] = "ok"
    (box.state / "state.json").write_text(json.dumps(state))
    (box.state / "clock.json").write_text(json.dumps({"trusted": 0, "boottime": 0, "boot_id": ""}))
    box.start()
    assert box.status()["state"] in ("pending", "invalid")
    assert box.call("GET", "/v1/features/33")[1]["available"] is False


def test_containers_sharing_one_machine_id_cannot_share_a_seat(base, refserver):
    """No DMI, no disk, veth only: the machine-id is all each container reports, and it is the same."""
    number = refserver.issue("--seats", "1")
    roots = [base / f"container-{i}" for i in range(2)]
    for root in roots:
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "machine-id").write_text("5f0c7a3e9b2d4c8aa1b2c3d4e5f60718\n")
    agents = [AgentProcess(base, f"container-agent-{i}", refserver.url, refserver.trusted_keys, refserver.ca, root)
              for i, root in enumerate(roots)]
    try:
        first, second = (activated(agent, number) for agent in agents)
        assert validation(second)["state"] == "active"
        status = validation(first)
        assert status["state"] == "invalid" and status["last_validation"]["server_code"] == 2008
        assert any(w["code"] == "fingerprint_degraded" for w in second.status()["warnings"])
    finally:
        for agent in agents:
            agent.stop()
