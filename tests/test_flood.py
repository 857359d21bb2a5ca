"""An unprivileged member of the socket group floods the real daemon with connections.

The daemon runs with systemd's default soft limit of 1,024 descriptors, the case where one peer holding
~1,000 kept-alive connections used to exhaust it: root's status and validation timed out and the log
filled with accept errors. With connections capped per uid and a reserve for privileged peers, the
flooder is refused beyond its cap and root is answered meanwhile.
"""
from __future__ import annotations

import json
import os
import re
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from agentproc import AgentProcess, box_agent, uds_call
from mikolicd.httpproto import Limits

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")

SEED = 9404
OPEN_FILES = 1024  # systemd's default soft limit when a unit sets none
FLOOD = 1100  # with the daemon's own files, beyond its 1,024 descriptors
STATUS_BOUND = 5.0  # generous: a status is answered from memory in well under a millisecond
VALIDATION_BOUND = 15.0  # a round trip to the licensing server, whose timeout is 3 s
MOST_ACCEPT_ERROR_LINES = 3

FLOODER = textwrap.dedent("""
    import json, select, socket, sys, time
    path, count = sys.argv[1], int(sys.argv[2])
    REQUEST = b"GET /v1/health HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n"

    def ask(s):
        # one request on a connection: the status of its answer
        try:
            s.sendall(REQUEST)
            return s.recv(65536)[9:12].decode() or "closed"
        except OSError:
            return "failed"

    def knock():
        # a new connection and one request: the connection if answered 200, and the status
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        try:
            s.connect(path)
        except OSError:
            status = "failed"
        else:
            status = ask(s)
        if status != "200":
            s.close()
            return None, status
        return s, status

    def alive(s):
        if ask(s) == "200":
            return True
        s.close()
        return False

    # all connections at once, each with one request, then their answers: the most a flood can hold
    opened, seen = [], {}
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        try:
            s.connect(path)
            s.send(REQUEST)
            opened.append(s)
        except OSError:
            s.close()
            seen["failed"] = seen.get("failed", 0) + 1
    # poll, not select: beyond 1,024 connections descriptors pass FD_SETSIZE
    poller, by_fd = select.poll(), {s.fileno(): s for s in opened}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    answers, deadline = {}, time.monotonic() + 5
    while len(answers) < len(opened) and time.monotonic() < deadline:
        for fd, _ in poller.poll(500):
            poller.unregister(fd)
            s = by_fd[fd]
            try:
                answers[s] = s.recv(65536)[9:12].decode() or "closed"
            except OSError:
                answers[s] = "failed"
    held = []
    for s in opened:
        status = answers.get(s, "unanswered")
        seen[status] = seen.get(status, 0) + 1
        if status == "200":
            s.setblocking(True)
            s.settimeout(10)
            held.append(s)
        else:
            s.close()
    print(json.dumps({"held": len(held), "seen": seen}), flush=True)
    refreshed = time.monotonic()
    while not select.select([sys.stdin], [], [], 0)[0]:  # until told to stop: keep knocking, keep held ones alive
        knock()
        if time.monotonic() - refreshed > 2:
            held = [s for s in held if alive(s)]
            refreshed = time.monotonic()
""")


@dataclass(frozen=True)
class Flooder:
    name: str
    uid: int
    gid: int


@pytest.fixture(scope="module")
def flooder() -> Iterator[Flooder]:
    """A throw-away system user whose primary group is the socket's group; removed afterwards."""
    name = f"mlflood{secrets.token_hex(3)}"
    try:
        subprocess.run(["groupadd", "--system", name], check=True, timeout=30)
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "-g", name, name],
                       check=True, timeout=30)
        uid, gid = (int(subprocess.run(["id", flag, name], capture_output=True, text=True, check=True).stdout)
                    for flag in ("-u", "-g"))
        yield Flooder(name, uid, gid)
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=30)
        subprocess.run(["groupdel", name], capture_output=True, timeout=30)


@contextmanager
def open_files_soft_limit(limit: int) -> Iterator[None]:
    """Processes started meanwhile inherit this soft limit on descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(scope="module")
def agent(flooder: Flooder, refserver) -> Iterator[AgentProcess]:
    """An activated daemon under 1,024 descriptors, its socket open to the flooder's group."""
    base = Path(tempfile.mkdtemp(prefix="mikolicd-flood-"))
    base.chmod(0o711)
    agent = box_agent(base, refserver, SEED)
    agent.config.write_text(agent.config.read_text().replace(
        "[api]\n", f'[api]\nsocket_mode = "0660"\nsocket_group = "{flooder.name}"\n'))
    try:
        with open_files_soft_limit(OPEN_FILES):
            agent.start()
        code, status = agent.call("POST", "/v1/activation", {"registration_number": refserver.issue()})
        assert code == 200 and status["state"] == "active", status
        yield agent
    finally:
        agent.stop()
        shutil.rmtree(base)


@contextmanager
def flooding(agent: AgentProcess, who: Flooder) -> Iterator[dict]:
    """The flooder holding what it could of FLOOD connections and knocking on; its report of the first round."""
    with subprocess.Popen(["setpriv", f"--reuid={who.uid}", f"--regid={who.gid}", "--clear-groups",
                           sys.executable, "-I", "-c", FLOODER, str(agent.sock), str(FLOOD)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        try:
            yield json.loads(proc.stdout.readline())
        finally:
            proc.stdin.close()  # tells it to stop
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def timed(agent: AgentProcess, method: str, path: str, bound: float) -> tuple[int, dict, float]:
    start = time.monotonic()
    code, body = uds_call(agent.sock, method, path, timeout=bound)
    return code, body, time.monotonic() - start


def test_one_unprivileged_user_flooding_connections_cannot_lock_root_out(agent, flooder):
    assert psutil.Process(agent.proc.pid).rlimit(psutil.RLIMIT_NOFILE)[0] == OPEN_FILES
    cap = Limits.for_open_files(OPEN_FILES).max_per_uid
    with flooding(agent, flooder) as report:
        status = timed(agent, "GET", "/v1/status", STATUS_BOUND)
        validation = timed(agent, "POST", "/v1/validation", VALIDATION_BOUND)
    print(f"flood of {FLOOD} connections by uid {flooder.uid}: held {report['held']} (cap {cap}), "
          f"answers {report['seen']}; root's status {status[2] * 1000:.1f} ms, "
          f"validation {validation[2] * 1000:.0f} ms")
    assert status[0] == 200 and status[2] < STATUS_BOUND
    assert validation[0] == 200 and validation[1]["state"] == "active" and validation[2] < VALIDATION_BOUND
    # beyond its cap the flooder is told so; some of its connects fail on the full listen backlog instead
    assert report["held"] <= cap and report["seen"].get("503", 0) > 0
    accept_errors = [line for line in agent.log_text().splitlines()
                     if re.search(r"accept\(\)|cannot accept", line)]
    assert len(accept_errors) <= MOST_ACCEPT_ERROR_LINES, accept_errors[:5]
