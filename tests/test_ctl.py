"""mikolicctl against the real daemon: what the admin at a terminal sees, and exit codes for scripts."""
from __future__ import annotations

import json
import subprocess

import pytest

from agentproc import AgentProcess, box_agent, running


@pytest.fixture(scope="module")
def agent(tmp_path_factory, refserver):
    with running(box_agent(tmp_path_factory.mktemp("ctl"), refserver, 6060)) as agent:
        yield agent


def ctl(agent: AgentProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mikolicctl", "--socket", str(agent.sock), *args], capture_output=True, text=True,
                          timeout=60)


def test_status_reads_as_words_for_the_admin(agent):
    done = ctl(agent, "status")
    assert done.returncode == 0 and done.stdout.startswith("state:          unlicensed")


def test_json_output_is_the_api_answer(agent):
    done = ctl(agent, "--json", "fingerprint")
    assert done.returncode == 0
    assert {c["name"] for c in json.loads(done.stdout)["components"]} >= {"system_uuid", "nic", "machine_id"}


def test_a_refusal_exits_1_with_the_message(agent):
    done = ctl(agent, "activate", "MIKO-1")
    assert done.returncode == 1 and "not a registration number" in done.stderr


def test_no_agent_on_the_socket_exits_3_with_a_hint(tmp_path):
    done = subprocess.run(["mikolicctl", "--socket", str(tmp_path / "none.sock"), "status"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 3 and "is mikolicd running?" in done.stderr


def test_register_then_license_shows_the_owner_and_the_trial(agent):
    done = ctl(agent, "register", "--company", "Ctl LLC", "--email", "ctl@example.test", "--contact", "Carl")
    assert done.returncode == 0 and "trial" in done.stdout
    shown = ctl(agent, "license").stdout
    assert "Ctl LLC, Carl <ctl@example.test>" in shown and "product 11 MikoPBX: trial" in shown
