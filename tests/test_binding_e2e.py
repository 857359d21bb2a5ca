"""The host binding on the real daemon: survives Docker and one replaced part, refuses a copied state."""
from __future__ import annotations

import shutil

import pytest

from agentproc import AgentProcess, running
from hosts import FakeHost, pbx_box


@pytest.fixture(scope="module")
def activated(tmp_path_factory, refserver):
    """One box activated once; each test gets a fresh copy of its hardware and state to change."""
    base = tmp_path_factory.mktemp("binding")
    pbx_box(base / "hw", 901)
    with running(AgentProcess(base, "origin", refserver.url, refserver.trusted_keys, refserver.ca,
                              base / "hw")) as agent:
        code, body = agent.call("POST", "/v1/activation", {"registration_number": refserver.issue("--seats", "1")})
    assert code == 200, body
    return agent


@pytest.fixture
def box(tmp_path, activated, refserver):
    """A copy of the activated box: same hardware, same state."""
    shutil.copytree(activated.dir.parent / "hw", tmp_path / "hw", symlinks=True)
    agent = AgentProcess(tmp_path, "box", refserver.url, refserver.trusted_keys, refserver.ca, tmp_path / "hw")
    shutil.copytree(activated.state, agent.state)
    yield agent, FakeHost(tmp_path / "hw")
    agent.stop()


def states(fp: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in fp["components"]}


def test_docker_veth_and_bridges_appearing_change_nothing(box):
    agent, hw = box
    hw.docker(veths=3, networks=2)
    hw.virtual_nic("virbr0", "52:54:00:aa:bb:cc", kind="bridge")
    agent.start()
    assert agent.status()["state"] == "active"
    assert "changed" not in states(agent.call("GET", "/v1/fingerprint")[1]).values()


def test_one_replaced_nic_still_holds_and_says_changed(box):
    agent, hw = box
    hw.write("sys/devices/pci0000:00/0000:00:03.0/net/eth0/address", "00:1b:21:99:99:99\n")
    agent.start()
    assert agent.status()["state"] == "active"
    assert states(agent.call("GET", "/v1/fingerprint")[1])["nic"] == "changed"


def test_two_replaced_parts_break_the_binding(box):
    agent, hw = box
    hw.dmi(board_serial="BRD-NEW-0001")
    hw.write("sys/devices/pci0000:00/0000:00:03.0/net/eth0/address", "00:1b:21:99:99:99\n")
    agent.start()
    status = agent.status()
    assert status["state"] == "invalid" and "binding mismatch" in status["reason"]


def test_state_copied_to_another_host_is_invalid_with_binding_mismatch(box, tmp_path):
    agent, _ = box
    shutil.rmtree(tmp_path / "hw")
    pbx_box(tmp_path / "hw", 902)
    agent.start()
    status = agent.status()
    assert status["state"] == "invalid" and "binding mismatch" in status["reason"]
    assert agent.call("GET", "/v1/features/33")[1]["available"] is False
