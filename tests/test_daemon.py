"""The daemon under systemd's eyes: sd_notify, watchdog, reload, stop, socket activation, journal."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agentproc import AgentProcess, box_agent, free_port, stopped_at_end, uds_call, wait_for
from hosts import pbx_box
from mikolicd import journal
from mikolicd.devpki import make_pki
from mikolicd.refserver.cli import init


class Listener:
    """A datagram socket standing in for systemd (NOTIFY_SOCKET) or journald; keeps every datagram."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self.running = True
        self.thread = threading.Thread(target=self._collect, daemon=True)
        self.thread.start()

    def _collect(self) -> None:
        while self.running:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            self.messages.append((time.monotonic(), data.decode(errors="replace")))

    def texts(self) -> list[str]:
        return [m for _, m in list(self.messages)]

    def seen(self, needle: str) -> bool:
        return any(needle in m for m in self.texts())

    def stop(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def listener(tmp_path):
    yield from stopped_at_end(lambda name: Listener(tmp_path / name))


@pytest.fixture
def agent(tmp_path, refserver):
    agent = box_agent(tmp_path, refserver, 777)
    yield agent
    agent.stop()


def test_ready_is_sent_only_once_the_socket_serves(agent, listener):
    notify = listener("notify.sock")
    agent.start(env={"NOTIFY_SOCKET": str(notify.path)}, wait=False)
    wait_for(lambda: notify.seen("READY=1"), 20, "READY=1")
    assert uds_call(agent.sock, "GET", "/v1/status")[0] == 200


def test_status_line_tells_the_license_state_after_a_change(agent, listener):
    notify = listener("notify.sock")
    agent.start(env={"NOTIFY_SOCKET": str(notify.path)})
    assert any("STATUS=license unlicensed" in m for m in notify.texts())
    agent.call("POST", "/v1/registration", {"companyname": "Status LLC", "email": "st@example.test",
                                            "contact": "Sam"})
    wait_for(lambda: notify.seen("STATUS=license trial"), 10, "STATUS with the trial state")


def test_watchdog_pings_keep_coming_but_not_faster_than_half_the_period(agent, listener):
    """The interval itself is half of WATCHDOG_USEC (test_notify); here the daemon keeps to it: six pings
    arrive, and never in less than the five half-periods between them (load can only slow them)."""
    notify = listener("notify.sock")
    agent.start(env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"})
    wait_for(lambda: sum("WATCHDOG=1" in m for m in notify.texts()) >= 6, 30, "six WATCHDOG=1")
    times = [t for t, m in notify.messages if "WATCHDOG=1" in m]
    assert times[5] - times[0] >= 5 * 0.5 * 0.95


def test_watchdog_for_another_pid_is_not_ours(agent, listener):
    notify = listener("notify.sock")
    agent.start(env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    wait_for(lambda: notify.seen("READY=1"), 10, "READY=1")
    agent.call("GET", "/v1/status")
    assert not notify.seen("WATCHDOG=1")


def test_sighup_reloads_the_config_between_reloading_and_ready(agent, listener):
    notify = listener("notify.sock")
    agent.start(env={"NOTIFY_SOCKET": str(notify.path)})
    os.kill(agent.proc.pid, signal.SIGHUP)
    wait_for(lambda: notify.seen("RELOADING=1"), 10, "RELOADING=1")
    wait_for(lambda: sum("READY=1" in m for m in notify.texts()) >= 2, 10, "READY=1 after the reload")
    assert "configuration reloaded" in agent.log_text()


def test_bad_config_on_reload_keeps_the_old_one_running(agent):
    agent.start()
    agent.config.write_text(agent.config.read_text().replace("[schedule]\n", "[schedule]\nbogus = 1\n"))
    os.kill(agent.proc.pid, signal.SIGHUP)
    wait_for(lambda: "reload refused" in agent.log_text(), 10, "the refusal in the log")
    assert "[schedule] bogus: unknown key" in agent.log_text()
    assert agent.status()["state"] == "unlicensed"


def test_sigterm_says_stopping_and_exits_zero_promptly(agent, listener):
    notify = listener("notify.sock")
    agent.start(env={"NOTIFY_SOCKET": str(notify.path)})
    os.kill(agent.proc.pid, signal.SIGTERM)
    assert agent.proc.wait(5) == 0
    wait_for(lambda: notify.seen("STOPPING=1"), 5, "STOPPING=1")


def test_a_clean_stop_checkpoints_the_trusted_time_so_a_reboot_loses_none_of_it(agent):
    agent.start()
    clock = agent.state / "clock.json"
    first = wait_for(lambda: clock.exists() and json.loads(clock.read_text()), 10, "the first checkpoint")
    time.sleep(0.2)  # boot time and the wall clock move on
    agent.stop()
    last = json.loads(clock.read_text())
    assert last["boottime"] > first["boottime"] and last["trusted"] > first["trusted"]


def test_sigterm_during_a_hung_server_call_still_exits_zero(tmp_path, listener):
    """A server that accepts and never answers must not hold the shutdown hostage."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    hw = tmp_path / "hw"
    pbx_box(hw, 778)
    init(tmp_path / "srv")
    pki = make_pki(tmp_path / "pki")
    agent = AgentProcess(tmp_path, "hung", f"https://127.0.0.1:{silent.getsockname()[1]}",
                         tmp_path / "srv" / "trusted_keys.pem", pki.ca, hw).start()
    try:
        threading.Thread(target=lambda: _quietly(agent.call, "POST", "/v1/activation",
                                                 {"registration_number": "MIKO-AAAAA-BBBBB-CCCCC-DDDDD"}),
                         daemon=True).start()
        time.sleep(0.5)
        os.kill(agent.proc.pid, signal.SIGTERM)
        assert agent.proc.wait(5) == 0
    finally:
        agent.stop()
        silent.close()


def _quietly(fn, *args):
    try:
        fn(*args)
    except OSError:
        pass


@contextmanager
def socket_activated(agent: AgentProcess, *listen: str) -> Iterator[None]:
    """`mikolicd run` under systemd-socket-activate, which binds `listen` and passes the sockets; stopped by
    its process group afterwards."""
    with open(agent.log, "ab") as out:
        proc = subprocess.Popen(["systemd-socket-activate", *(a for spec in listen for a in ("-l", spec)), "mikolicd",
                                 "run", "--config", str(agent.config)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise


needs_socket_activate = pytest.mark.skipif(not shutil.which("systemd-socket-activate"),
                                           reason="systemd-socket-activate not installed")


@needs_socket_activate
def test_socket_activation_serves_on_the_passed_socket(agent, tmp_path):
    passed = tmp_path / "activated.sock"
    with socket_activated(agent, str(passed)):
        wait_for(lambda: passed.exists(), 10, "the activation socket")
        code, status = uds_call(passed, "GET", "/v1/status", timeout=20)
        assert code == 200 and status["state"] == "unlicensed"
        assert not agent.sock.exists()  # the daemon used the passed socket, not its own
        assert "passed by systemd" in agent.log_text()


def test_journal_entries_carry_fields_and_never_a_raw_number(agent, listener, refserver):
    journald = listener("journal.sock")
    agent.log.touch()
    st = agent.log.stat()
    agent.start(env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}", journal.JOURNAL_SOCKET_ENV: str(journald.path)})
    number = refserver.issue()
    agent.call("POST", "/v1/activation", {"registration_number": number})
    wait_for(lambda: journald.seen("LICENSE_STATE=active"), 10, "a state-change entry")
    entries = journald.texts()
    change = next(e for e in entries if "LICENSE_STATE=active" in e)
    assert f"MESSAGE_ID={journal.STATE_CHANGED}" in change
    assert f"REGISTRATION_NUMBER={number[:10]}-*****-*****-*****" in change
    assert not any(number in e for e in entries)


@needs_socket_activate
def test_a_tcp_socket_passed_by_systemd_serves_license_api_but_never_the_json_api(agent, tmp_path):
    passed, port = tmp_path / "activated.sock", free_port()
    with socket_activated(agent, str(passed), f"127.0.0.1:{port}"):
        wait_for(lambda: passed.exists(), 10, "the activation socket")
        assert uds_call(passed, "GET", "/v1/status", timeout=20)[0] == 200
        tcp = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        tcp.request("GET", "/v1/license")
        assert tcp.getresponse().status == 404  # the owner's details are not for every local user
        tcp.close()
        tcp = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        tcp.request("GET", "/license.api/featureavailable?feature=33")
        assert tcp.getresponse().status == 403  # served: no license here, so not available
        tcp.close()


def test_a_second_agent_on_the_same_state_and_socket_is_refused_naming_the_first(agent, tmp_path):
    agent.start()
    second = subprocess.run(["mikolicd", "run", "--config", str(agent.config)], capture_output=True, text=True,
                            timeout=30)
    assert second.returncode == 1 and f"pid {agent.proc.pid}" in second.stderr
    assert agent.healthy() and agent.sock.exists()


def test_a_second_agent_on_the_same_socket_with_its_own_state_is_refused(agent, tmp_path):
    agent.start()
    other = tmp_path / "other.toml"
    other.write_text(agent.config.read_text().replace(str(agent.state), str(tmp_path / "other-state")))
    second = subprocess.run(["mikolicd", "run", "--config", str(other)], capture_output=True, text=True, timeout=30)
    assert second.returncode == 1 and "socket" in second.stderr and f"pid {agent.proc.pid}" in second.stderr
    assert agent.healthy()
