"""Shared fixtures: a test CA, and the reference licensing server as a real HTTPS subprocess."""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agentproc import AgentProcess, free_port, listening, running, stopped_at_end
from badserver import NUMBER, TTL, BadServer, fault_agent, seed_state, validate
from mikolicd import regnum
from mikolicd.devpki import Pki, make_pki

SERVER_SCRIPT = Path(sys.executable).with_name("mikolic-server")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


@dataclass
class RefServer:
    """One server directory and, while started, its `mikolic-server serve` process."""

    dir: Path
    pki: Pki
    serve_args: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def trusted_keys(self) -> Path:
        return self.dir / "trusted_keys.pem"

    @property
    def ca(self) -> Path:
        return self.pki.ca

    @property
    def log(self) -> Path:
        return self.dir.with_name(self.dir.name + ".log")

    def cli(self, command: str, *args: str) -> subprocess.CompletedProcess:
        """Run `mikolic-server COMMAND --dir DIR ARGS...`, whatever its exit status."""
        return subprocess.run([str(SERVER_SCRIPT), command, "--dir", str(self.dir), *args], capture_output=True,
                              text=True, timeout=30)

    def admin(self, command: str, *args: str) -> str:
        done = self.cli(command, *args)
        assert done.returncode == 0, f"mikolic-server {command} exited {done.returncode}: {done.stderr}"
        return done.stdout

    def issue(self, *args: str) -> str:
        number = self.admin("issue", *args).strip()
        assert regnum.REGNUM_RE.fullmatch(number), number
        return number

    def coupon(self, *args: str) -> str:
        coupon = self.admin("coupon", *args).strip()
        assert regnum.COUPON_RE.fullmatch(coupon), coupon
        return coupon

    def start(self) -> RefServer:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(SERVER_SCRIPT), "serve", "--dir", str(self.dir), "--listen", f"127.0.0.1:{self.port}",
                 "--tls-cert", str(self.pki.cert), "--tls-key", str(self.pki.key), *self.serve_args],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"mikolic-server serve did not start: {self.log.read_text()[-800:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it lingers; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(STOP_TIMEOUT)
        return self.proc.returncode


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def refserver_factory(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Callable[..., RefServer]]:
    """Make initialised, not yet started servers; every one is stopped when the module ends."""
    def make(*serve_args: str) -> RefServer:
        server = RefServer(tmp_path_factory.mktemp("refserver") / "server", pki, list(serve_args))
        server.admin("init")
        return server

    yield from stopped_at_end(make)


@pytest.fixture(scope="module")
def refserver(refserver_factory: Callable[..., RefServer]) -> RefServer:
    return refserver_factory().start()


@pytest.fixture(scope="module")
def badserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BadServer]:
    """One misbehaving server per module; `reset()` makes it an honest licensing server again."""
    server = BadServer(tmp_path_factory.mktemp("badserver")).start()
    yield server
    server.stop()


@pytest.fixture
def fault_agents(tmp_path_factory: pytest.TempPathFactory,
                 badserver: BadServer) -> Iterator[Callable[..., AgentProcess]]:
    """Daemons for fault tests, made but not started; every one is stopped (by pid) when the test ends."""
    base = tmp_path_factory.mktemp("fault-agents")
    names = itertools.count()

    def make(server: BadServer | RefServer = badserver, url: str | None = None, seed: int = 7) -> AgentProcess:
        return fault_agent(base, f"agent-{next(names)}", server, url, seed)

    yield from stopped_at_end(make)


@pytest.fixture(scope="module")
def licensed_daemon(tmp_path_factory: pytest.TempPathFactory, badserver: BadServer) -> Iterator[AgentProcess]:
    """One daemon per module, activated against the honest badserver, shared by parametrized fault tests."""
    with running(fault_agent(tmp_path_factory.mktemp("licensed"), "agent", badserver)) as agent:
        code, status = agent.call("POST", "/v1/activation", {"registration_number": NUMBER})
        assert code == 200 and status["state"] == "active", status
        yield agent


@pytest.fixture
def licensed_agent(licensed_daemon: AgentProcess, badserver: BadServer) -> Iterator[AgentProcess]:
    """The module's daemon, just validated against an honest server; the server is honest again afterwards."""
    badserver.reset()
    assert validate(licensed_daemon)["state"] == "active"
    yield licensed_daemon
    badserver.reset()


@pytest.fixture
def seeded(fault_agents: Callable[..., AgentProcess], badserver: BadServer) -> Callable[..., AgentProcess]:
    """A started daemon holding a good license issued a minute ago; `url` points it elsewhere (faults below
    HTTP), `exp_in` says how long its offline window still runs."""
    def make(url: str | None = None, exp_in: float = TTL, env: dict | None = None) -> AgentProcess:
        agent = fault_agents(url=url)
        now = time.time()
        seed_state(agent.state, badserver.signer, agent.hw_root, NUMBER, iat=now - 60, exp=now + exp_in)
        return agent.start(env)
    return make


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer."""
    with tempfile.TemporaryDirectory(prefix="mikolicd-") as name:
        yield Path(name)
