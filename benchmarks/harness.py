"""What every benchmark needs: a stage with the reference server and real daemons, clients, statistics.

The daemons and the reference server run from a non-editable install in the stage (`install.py`). All
traffic stays on 127.0.0.1 and Unix sockets; every process started here is stopped by its pid.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from .install import ROOT, install

sys.path.insert(0, str(ROOT / "tests"))
BIN = Path(sys.executable).parent  # the running environment's scripts, for benchmarks/refserver.py

from agentproc import AgentProcess, free_port, listening, wait_for  # noqa: E402  (test helpers live beside the tests)
from hosts import pbx_box  # noqa: E402

from mikolicd.devpki import Pki, make_pki  # noqa: E402

# systemd starts the daemon without these; set here (a CI image's CA bundle, say) they would load a whole
# CA file into every daemon of the run
UNIT_LACKS = ("SSL_CERT_FILE", "SSL_CERT_DIR")
STATUS_REQUEST = b"GET /v1/status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
IO_TIMEOUT = 10.0
START_TIMEOUT = 20.0


@dataclass(frozen=True)
class Scale:
    """How much work each benchmark does: the full run, or the short one CI runs."""

    status_rounds: int = 5
    status_seconds: float = 1.5
    latency_rounds: int = 10
    latency_block: int = 400
    memory_status: int = 100_000
    memory_validations: int = 1_000
    startup_runs: int = 15
    idle_seconds: float = 60.0
    watchdog_usec: int = 30_000_000
    fleet_agents: int = 100_000


QUICK = Scale(status_rounds=2, status_seconds=0.3, latency_rounds=3, latency_block=150, memory_status=3_000,
              memory_validations=30, startup_runs=2, idle_seconds=3.0, watchdog_usec=2_000_000,
              fleet_agents=5_000)


@dataclass
class Outcome:
    """One target: the figure shown, whether it meets the target, and the numbers behind it."""

    target: str
    figure: str
    limit: str
    passed: bool
    detail: str = ""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def request_once(path: Path, request: bytes = STATUS_REQUEST) -> bytes:
    """One request on a new connection, read to EOF: how the PHP admin's curl calls the socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(IO_TIMEOUT)
        sock.connect(str(path))
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    reply = b"".join(chunks)
    if not reply.startswith(b"HTTP/1.1 200"):
        raise OSError(f"unexpected reply: {reply[:80]!r}")
    return reply


def timed_requests(path: Path, count: int) -> list[float]:
    """Latency of `count` sequential new-connection requests, in seconds."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        request_once(path)
        samples.append(time.perf_counter() - start)
    return samples


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout)


class NotifyListener(AbstractContextManager):
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def wait_for(self, assignment: str, timeout: float = START_TIMEOUT) -> float:
        """perf_counter() when a message carrying `assignment` arrives."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            message = self.sock.recv(4096).decode(errors="replace")
            if assignment in message.split("\n"):
                return time.perf_counter()
        raise TimeoutError(f"no {assignment} within {timeout}s")

    def drain(self) -> list[str]:
        self.sock.settimeout(0)
        messages = []
        try:
            while True:
                messages.append(self.sock.recv(4096).decode(errors="replace"))
        except BlockingIOError:
            return messages

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


def serve(bin_dir: Path, directory: Path, pki: Pki, log: Path, *args: str) -> tuple[subprocess.Popen, int]:
    """`mikolic-server serve` of `directory` over TLS on a free port of 127.0.0.1, once it listens."""
    port = free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "mikolic-server"), "serve", "--dir", str(directory), "--listen", f"127.0.0.1:{port}",
             "--tls-cert", str(pki.cert), "--tls-key", str(pki.key), *args],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(lambda: listening(port) or proc.poll() is not None, START_TIMEOUT, "the server")
    if proc.poll() is not None:
        raise RuntimeError(f"mikolic-server exited {proc.returncode}")
    return proc, port


@dataclass
class Stage:
    """A scratch directory with the installed package, a test CA, the reference server, and daemons on a
    fake PBX host. While the stage is open the installed bin directory leads PATH and the environment
    is a unit's (UNIT_LACKS)."""

    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mikolicd-bench-")))
    url: str = ""
    servers: list[subprocess.Popen] = field(default_factory=list)
    agents: list[AgentProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.saved = {name: os.environ.get(name) for name in ("PATH", *UNIT_LACKS)}
        try:
            self.bin = install(self.base / "install")
            os.environ["PATH"] = f"{self.bin}{os.pathsep}{self.saved['PATH'] or ''}"
            for name in UNIT_LACKS:
                os.environ.pop(name, None)
            self.pki = make_pki(self.base / "pki")
            self.server_dir = self.base / "server"
            self.admin("init")
            self.hw = self.base / "hw"
            pbx_box(self.hw, 7)
        except BaseException:
            self.close()
            raise

    @property
    def python(self) -> Path:
        """The installed environment's interpreter, for baselines that must start exactly as the daemon does."""
        return self.bin / "python"

    def admin(self, *args: str) -> str:
        done = subprocess.run([str(self.bin / "mikolic-server"), args[0], "--dir", str(self.server_dir), *args[1:]],
                              capture_output=True, text=True, timeout=30, check=True)
        return done.stdout.strip()

    def start_server(self, *serve_args: str) -> str:
        """A `mikolic-server serve` on a free port; the first one is the server the stage's agents use.
        Benchmarks that need the real server's limits pass them (7b); for the others boxes on one address
        validating a thousand times in a row are the point, not callers to slow down."""
        serve_args = serve_args or ("--number-rps", "0", "--address-rps", "0")
        proc, port = serve(self.bin, self.server_dir, self.pki, self.base / "server.log", *serve_args)
        self.servers.append(proc)
        self.url = self.url or f"https://127.0.0.1:{port}"
        return f"https://127.0.0.1:{port}"

    def agent(self, name: str, url: str | None = None, extra: str = "") -> AgentProcess:
        """A daemon configured like a box in the field: 6-hour checks, on the stage's PBX host."""
        made = AgentProcess(self.base, name, url or self.url, self.server_dir / "trusted_keys.pem", self.pki.ca,
                            self.hw, extra=extra, schedule='check_interval = "6h"')
        self.agents.append(made)
        return made

    def activated_agent(self, name: str) -> AgentProcess:
        made = self.agent(name).start()
        number = self.admin("issue", "--seats", "1")
        code, body = made.call("POST", "/v1/activation", {"registration_number": number})
        if code != 200:
            raise RuntimeError(f"activation failed: {body}")
        return made

    def licensed_agent(self, name: str) -> AgentProcess:
        """A box of its own, stopped: activated with its own number, its own installation and token chain.
        Copies of one state that all talk to the server are told apart and refused (2060), as clones are."""
        made = self.activated_agent(name)
        made.stop()
        return made

    def restarted(self, source: AgentProcess, name: str, url: str | None = None) -> AgentProcess:
        """A second daemon holding a copy of `source`'s state: only for one that never reaches the server
        at `source`'s URL (see licensed_agent)."""
        made = self.agent(name, url)
        shutil.copytree(source.state, made.state)
        return made

    def close(self) -> None:
        for made in self.agents:
            try:
                made.stop()
            except Exception:  # a stuck agent was killed by stop(); the rest must still be stopped
                pass
        for proc in self.servers:
            stop_process(proc)
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(self.base, ignore_errors=True)


__all__ = ["BIN", "QUICK", "AgentProcess", "NotifyListener", "Outcome", "Scale", "Stage", "median", "percentile",
           "request_once", "stop_process", "timed_requests", "wait_for"]
