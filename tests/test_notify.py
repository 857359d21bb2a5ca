"""sd_notify and socket activation, against real datagram listeners and a real systemd-socket-activate."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentproc import wait_for
from mikolicd.notify import Notifier, listen_fds, listen_fds_with_names, watchdog_interval


@pytest.fixture
def listener(short_dir: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(short_dir / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        yield path, sock


@pytest.fixture
def abstract_listener() -> Iterator[tuple[str, socket.socket]]:
    name = f"mikolicd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        yield "@" + name, sock


def received(sock: socket.socket) -> list[str]:
    return sock.recv(65536).decode().split("\n")


def test_ready_sends_ready_and_status_in_one_message(listener):
    address, sock = listener
    assert Notifier.from_env({"NOTIFY_SOCKET": address}).ready("active, license valid until 2030-01-01")
    assert received(sock) == ["READY=1", "STATUS=active, license valid until 2030-01-01"]


def test_abstract_notify_socket_is_reached(abstract_listener):
    address, sock = abstract_listener
    Notifier.from_env({"NOTIFY_SOCKET": address}).watchdog()
    assert received(sock) == ["WATCHDOG=1"]


def test_status_is_flattened_to_one_line(listener):
    address, sock = listener
    Notifier.from_env({"NOTIFY_SOCKET": address}).status("grace:\nserver unreachable")
    assert received(sock) == ["STATUS=grace: server unreachable"]


def test_stopping_is_announced(listener):
    address, sock = listener
    Notifier.from_env({"NOTIFY_SOCKET": address}).stopping()
    assert received(sock) == ["STOPPING=1"]


def test_reloading_carries_the_monotonic_clock(listener):
    address, sock = listener
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier.from_env({"NOTIFY_SOCKET": address}).reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = received(sock)
    assert first == "RELOADING=1"
    key, _, usec = second.partition("=")
    assert key == "MONOTONIC_USEC" and before <= int(usec) <= after


def test_reloaded_reports_ready_again_with_status(listener):
    address, sock = listener
    Notifier.from_env({"NOTIFY_SOCKET": address}).reloaded("active")
    assert received(sock) == ["READY=1", "STATUS=active"]


def test_without_notify_socket_nothing_is_sent():
    assert Notifier.from_env({}).ready("active") is False


def test_unreachable_notify_socket_reports_failure_without_raising(short_dir):
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(short_dir / "gone.sock")})
    assert notifier.ready("active") is False


@pytest.mark.parametrize(("env", "expected"), [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
    ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": ""}, 1.0),
    ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
], ids=["half-of-timeout", "own-pid", "empty-pid", "other-pid", "zero", "garbage", "unset"])
def test_watchdog_interval_is_half_the_timeout_for_this_process_only(env, expected):
    assert watchdog_interval(env, os.getpid()) == expected


def test_notifier_exposes_the_watchdog_interval():
    assert Notifier.from_env({"WATCHDOG_USEC": "4000000"}).watchdog_interval == 2.0


def test_listen_fds_without_activation_is_empty():
    assert listen_fds({}) == []


def test_listen_fds_meant_for_another_process_are_ignored_and_unset():
    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDNAMES": "api"}
    assert listen_fds_with_names(env) == []
    assert env == {}


CHILD = textwrap.dedent("""
    import json, os
    from mikolicd.notify import listen_fds_with_names
    passed = listen_fds_with_names()
    conn, _ = passed[0][1].accept()
    conn.sendall(json.dumps({
        "names": [name for name, _ in passed],
        "fds": [sock.fileno() for _, sock in passed],
        "kinds": [[sock.family, sock.type] for _, sock in passed],
        "inheritable": [os.get_inheritable(sock.fileno()) for _, sock in passed],
        "left_in_env": sorted(key for key in os.environ if key.startswith("LISTEN_")),
    }).encode())
    conn.close()
""")


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None, reason="systemd-socket-activate is absent")
def test_socket_activated_child_serves_on_the_passed_sockets(short_dir):
    api, compat = short_dir / "api.sock", short_dir / "compat.sock"
    proc = subprocess.Popen(["systemd-socket-activate", "-l", str(api), "-l", str(compat),
                             "--fdname=api:compat", sys.executable, "-c", CHILD],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: api.exists() or proc.poll() is not None, 10, f"{api} to appear")
        assert proc.poll() is None, "systemd-socket-activate exited early"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(20)
            client.connect(str(api))
            reply = json.loads(b"".join(iter(lambda: client.recv(4096), b"")))
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    stream = [socket.AF_UNIX, socket.SOCK_STREAM]
    assert reply == {"names": ["api", "compat"], "fds": [3, 4], "kinds": [stream, stream],
                     "inheritable": [False, False], "left_in_env": []}
