"""Local faults on the real daemon: kill -9 during writes, a full or read-only disk, corrupt files.

The license must survive anything the host can do to the process or its disk: the state on disk is
always the old license or the new one, a failed write says so and changes nothing, and a damaged file
is moved aside with a log line instead of stopping the daemon (or silently vanishing).
"""
from __future__ import annotations

import errno
import os
import random
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentproc import AgentProcess, running, stopped_at_end, uds_call
from hosts import pbx_box
from mikolicd import main as daemon_main
from mikolicd.jws import load_trusted_keys
from mikolicd.license import License, read_document
from mikolicd.refserver.cli import open_licensing
from mikolicd.store import PREVIOUS, STATE, State, Store
from mikolicd.trust import Outcome

SEED = 7301
KILL_ITERATIONS = {"activation": 40, "validation": 200, "coupon": 40}
FULL_START_EVERY = 25
FORK_START_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def host(base: Path) -> Path:
    """One fake box for the whole module: every agent here is the same host, so one number fits all."""
    return pbx_box(base / "hw", SEED).root


@pytest.fixture(scope="module")
def refserver(refserver_factory):
    """Hundreds of validations of one number from one box in a row: the per-number limit is off here."""
    return refserver_factory("--number-rps", "0").start()


@pytest.fixture(scope="module")
def number(refserver) -> str:
    return refserver.issue("--days", "365")


@pytest.fixture
def agents(base: Path, host: Path, refserver) -> Iterator[Callable[..., AgentProcess]]:
    """Daemons with their own state directory on the module's host; each is stopped by pid afterwards."""
    yield from stopped_at_end(lambda: AgentProcess(base, f"agent-{time.monotonic_ns()}", refserver.url,
                                                   refserver.trusted_keys, refserver.ca, host))


@pytest.fixture(scope="module")
def good_state(base: Path, host: Path, refserver, number: str) -> dict[str, bytes]:
    """A real activated state and its previous generation, as bytes, to plant in fresh state directories."""
    agent = AgentProcess(base, "good-state", refserver.url, refserver.trusted_keys, refserver.ca, host).start()
    try:
        assert agent.call("POST", "/v1/activation", {"registration_number": number})[0] == 200
        assert agent.call("POST", "/v1/validation")[0] == 200
    finally:
        agent.stop()
    return {name: (agent.state / name).read_bytes() for name in (STATE, PREVIOUS)}


def plant(agent: AgentProcess, files: dict[str, bytes]) -> None:
    agent.state.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, data in files.items():
        (agent.state / name).write_bytes(data)


def set_aside(agent: AgentProcess) -> list[Path]:
    return sorted(agent.state.glob("*.corrupt-*"))


# ---------------------------------------------------------------------------------------------- kill -9
@dataclass
class ForkedDaemon:
    """`mikolicd run` forked from this already-initialised interpreter, ready when it says READY=1.

    Importing the daemon costs most of a second; forking after the import, and waiting for its sd_notify
    readiness instead of polling, brings two hundred kill -9 rounds within the time budget while running
    the very same entry point in a separate process.
    """

    agent: AgentProcess
    pid: int = 0

    def start(self) -> None:
        notify_path = self.agent.dir / "notify.sock"
        notify_path.unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(FORK_START_TIMEOUT)
            pid = os.fork()
            if pid == 0:
                try:
                    os.setsid()
                    os.environ["NOTIFY_SOCKET"] = str(notify_path)
                    out = os.open(self.agent.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                    os.dup2(out, 1)
                    os.dup2(out, 2)
                    daemon_main.main(["run", "--config", str(self.agent.config)])
                finally:
                    os._exit(70)
            self.pid = pid
            while b"READY=1" not in notify.recv(4096):
                continue

    def kill(self) -> None:
        """SIGKILL and reap; nothing to do when no fork is running."""
        if self.pid:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = 0


def request_bytes(method: str, path: str, body: bytes) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def send_and_kill(daemon: ForkedDaemon, request: bytes, delay: float) -> bool:
    """Send a write, SIGKILL the daemon after `delay`; True when the answer came back before the kill."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(daemon.agent.sock))
        conn.sendall(request)
        time.sleep(delay)
        daemon.kill()
        conn.setblocking(False)
        try:
            return conn.recv(16).startswith(b"HTTP/1.1 200")
        except OSError:  # nothing came back, or the kill reset the connection
            return False


def seat_token(licensing, number: str) -> str | None:
    """The token the server issued last for the number's seat on this module's host."""
    lic = licensing.db.license(number)
    seat = next((c for c in lic.captures if c.feature == lic.seat_feature), None) if lic else None
    return seat.chain.current if seat is not None and seat.chain is not None else None


def license_of(state: State, keys: dict) -> License:
    assert state.document, "the state holds no license"
    return read_document(state.document, keys)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", sorted(KILL_ITERATIONS))
def test_kill_9_during_a_write_leaves_the_old_or_the_new_license(kind, agents, refserver, number, record_property):
    agent = agents()
    with running(agent):  # its own installation, activated here: a copied state would be a copy (2060)
        assert agent.call("POST", "/v1/activation", {"registration_number": number})[0] == 200
    keys = load_trusted_keys(refserver.trusted_keys)
    store = Store(agent.state)
    daemon = ForkedDaemon(agent)
    licensing = open_licensing(refserver.dir)
    paths = {"activation": "/v1/activation", "validation": "/v1/validation", "coupon": "/v1/coupons"}

    def body() -> bytes:
        if kind == "activation":
            return b'{"registration_number": "%s"}' % number.encode()
        if kind == "coupon":
            return b'{"coupon": "%s"}' % licensing.new_coupon(11, 1).encode()
        return b"{}"

    outcomes: Counter[str] = Counter()
    try:
        daemon.start()
        started = time.monotonic()
        assert uds_call(agent.sock, "POST", paths[kind], raw=body(),
                        headers={"Content-Type": "application/json"})[0] == 200
        window = 1.5 * (time.monotonic() - started)  # kills land before, during and after the write
        daemon.kill()
        for iteration in range(1, KILL_ITERATIONS[kind] + 1):
            before = store.load()
            daemon.start()
            answered = send_and_kill(daemon, request_bytes("POST", paths[kind], body()),
                                     random.uniform(0, window))
            after = store.load()
            assert set_aside(agent) == [], f"iteration {iteration}: a state file was damaged"
            assert after.registration_number == number
            assert after.validation is not None and after.validation.outcome is not Outcome.ENDED, after.validation
            old, new = license_of(before, keys), license_of(after, keys)
            assert after.document == before.document or new.issued_at >= old.issued_at
            outcomes["new" if after != before else "old"] += 1
            outcomes["answered"] += answered
            outcomes["left_on_parent"] += seat_token(licensing, number) != new.token  # the server is a token ahead
            if iteration % FULL_START_EVERY == 0:
                assert agent.start().status()["state"] == "active", agent.log_text()[-800:]
                agent.stop()
        with running(agent):  # a kill between the server's answer and the local write is never a copy
            assert agent.call("POST", "/v1/validation")[1]["last_validation"]["outcome"] == "ok"
    finally:
        daemon.kill()
        licensing.db.close()
    iterations = outcomes["old"] + outcomes["new"]
    record_property("kill9_iterations", iterations)
    print(f"kill -9 during {kind}: {iterations} iterations, {dict(outcomes)}, window {window:.3f}s")


# ---------------------------------------------------------------------------------------- failing disk
@dataclass
class Mounts:
    """Mounts made by a test, undone in reverse order (lazily, so a busy one cannot leak)."""

    points: list[Path]

    def run(self, *args: str) -> None:
        subprocess.run(["mount", *args], check=True, capture_output=True, timeout=10)

    def tmpfs(self, point: Path, size: str) -> None:
        self.run("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point))
        self.points.append(point)

    def bind(self, point: Path) -> None:
        self.run("--bind", str(point), str(point))
        self.points.append(point)

    def read_only(self, point: Path) -> None:
        self.run("-o", "remount,bind,ro", str(point))


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    if os.geteuid() != 0:
        pytest.skip("mounting a full or read-only state directory needs root")
    made = Mounts([])
    yield made
    for point in reversed(made.points):
        subprocess.run(["umount", "--lazy", str(point)], check=True, timeout=10)


def fill(directory: Path) -> None:
    """Write until the file system says ENOSPC."""
    chunk = b"\0" * 4096
    with open(directory / "filler", "wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                return


@dataclass(frozen=True)
class DiskFault:
    prepare: Callable[[Mounts, Path], None]
    strike: Callable[[Mounts, Path], None]
    strerror: str


DISK_FAULTS = {
    "full disk": DiskFault(lambda m, p: m.tmpfs(p, "64k"), lambda m, p: fill(p), os.strerror(errno.ENOSPC)),
    "read-only": DiskFault(lambda m, p: m.bind(p), lambda m, p: m.read_only(p), os.strerror(errno.EROFS)),
}


@pytest.mark.parametrize("write", ["activation", "coupon", "validation"])
@pytest.mark.parametrize("fault", sorted(DISK_FAULTS))
def test_a_write_the_disk_refuses_keeps_the_old_state_and_says_why(fault, write, agents, mounts, refserver,
                                                                     number):
    agent = agents()
    agent.state.mkdir(mode=0o700)
    DISK_FAULTS[fault].prepare(mounts, agent.state)
    agent.start()
    assert agent.call("POST", "/v1/activation", {"registration_number": number})[0] == 200
    kept = (agent.state / STATE).read_bytes()
    DISK_FAULTS[fault].strike(mounts, agent.state)
    request = {"activation": ("/v1/activation", {"registration_number": refserver.issue(), "replace": True}),
               "coupon": ("/v1/coupons", {"coupon": refserver.coupon("--days", "1")}),
               "validation": ("/v1/validation", {})}[write]
    code, body = agent.call("POST", *request)
    assert (code, body["error"]["code"]) == (507, "storage_failed")
    assert DISK_FAULTS[fault].strerror in body["error"]["message"]
    assert (agent.state / STATE).read_bytes() == kept
    assert any(DISK_FAULTS[fault].strerror in line and "previous state is kept" in line
               for line in agent.log_text().splitlines())
    assert agent.status()["state"] == "active"


# ---------------------------------------------------------------------------------------- corrupt files
CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "garbage": lambda data: bytes(random.Random(SEED).randrange(256) for _ in range(len(data))),
    "not a state object": lambda data: b'["registration_number"]',
}


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupt_state_file_is_moved_aside_and_the_previous_generation_restored(corruption, agents,
                                                                                   good_state):
    agent = agents()
    damaged = CORRUPTIONS[corruption](good_state[STATE])
    plant(agent, {STATE: damaged, PREVIOUS: good_state[PREVIOUS]})
    status = agent.start().status()
    assert status["state"] == "active"
    [aside] = set_aside(agent)
    assert aside.read_bytes() == damaged
    log = agent.log_text()
    assert f"moved aside to {aside.name}" in log and "restored the previous good state" in log


def test_a_corrupt_state_file_without_a_previous_generation_leaves_the_daemon_running_unlicensed(agents,
                                                                                                good_state):
    agent = agents()
    plant(agent, {STATE: CORRUPTIONS["truncated"](good_state[STATE])})
    assert agent.start().status()["state"] == "unlicensed"
    [aside] = set_aside(agent)
    assert f"moved aside to {aside.name}" in agent.log_text()


# ---------------------------------------------------------------------------------------- corrupt config
@pytest.mark.parametrize("section,line,named", [
    pytest.param("server", 'proxy = "ftp://proxy.example"', '[server] proxy: expected "" or a proxy URL',
                 id="bad proxy"),
    pytest.param("api", 'socket_mode = "rw-rw----"', "[api] socket_mode: expected a file mode", id="bad mode"),
    pytest.param("schedule", "jitter = 2", "[schedule] jitter: expected a fraction", id="bad jitter"),
    pytest.param("storage", 'state_directory = "/srv"', "[storage] state_directory: unknown key",
                 id="unknown key"),
])
def test_a_corrupt_config_is_refused_naming_the_key_and_its_line(section, line, named, agents):
    agent = agents()
    text = agent.config.read_text().replace(f"[{section}]\n", f"[{section}]\n{line}\n")
    agent.config.write_text(text)
    line_number = text.splitlines().index(line) + 1
    done = subprocess.run(["mikolicd", "run", "--config", str(agent.config)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2
    assert f"{agent.config}:{line_number}: {named}" in done.stderr
