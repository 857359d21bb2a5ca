"""The real daemon as a subprocess, and a client for its Unix socket, for end-to-end tests."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from hosts import pbx_box
from mikolicd.agentclient import UnixConnection

T = TypeVar("T")


def uds_call(sock: Path, method: str, path: str, body: Any = None, timeout: float = 30,
             raw: bytes | None = None, headers: dict | None = None) -> tuple[int, dict]:
    conn = UnixConnection(sock, timeout)
    try:
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        response = conn.getresponse()
        text = response.read()
    finally:
        conn.close()
    return response.status, json.loads(text) if text else {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class AgentProcess:
    """`mikolicd run` with its own config, state directory, socket and hardware root."""

    def __init__(self, base: Path, name: str, server_url: str, trusted_keys: Path, ca: Path, hw_root: Path,
                 extra: str = "", schedule: str = 'check_interval = "1h"\nretry_max_delay = "2s"',
                 timeout: str = "3s"):
        self.dir = base / name
        self.hw_root = hw_root
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sock = self.dir / "mikolicd.sock"
        self.state = self.dir / "state"
        self.log = self.dir / "agent.log"
        self.config = self.dir / "mikolicd.toml"
        self.config.write_text(
            f'[server]\nurl = "{server_url}"\ntrusted_keys = "{trusted_keys}"\nca_file = "{ca}"\n'
            f'timeout = "{timeout}"\n\n'
            f'[storage]\nstate_dir = "{self.state}"\n\n[api]\nsocket = "{self.sock}"\n\n'
            f'[schedule]\n{schedule}\n\n[hardware]\nroot = "{hw_root}"\ndmidecode = ""\n{extra}')
        self.proc: subprocess.Popen | None = None

    def start(self, env: dict | None = None, wait: bool = True) -> "AgentProcess":
        full = dict(os.environ, **(env or {}))
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(["mikolicd", "run", "--config", str(self.config)], stdout=out,
                                         stderr=subprocess.STDOUT, env=full, start_new_session=True)
        if wait:
            try:
                wait_for(lambda: self.healthy() or self.proc.poll() is not None, 20, "the agent to answer")
            finally:
                if not self.healthy():
                    self.stop()  # a daemon that never answered must not outlive the test
            assert self.proc.poll() is None, f"mikolicd exited {self.proc.returncode}: {self.log_text()[-800:]}"
        return self

    def healthy(self) -> bool:
        try:
            return self.call("GET", "/v1/health", timeout=2)[0] == 200
        except OSError:
            return False

    def stop(self) -> int | None:
        """SIGTERM; a daemon still there after 10 s is killed and the test fails."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            raise

    def call(self, method: str, path: str, body: Any = None, timeout: float = 30) -> tuple[int, dict]:
        return uds_call(self.sock, method, path, body, timeout)

    def status(self) -> dict:
        code, body = self.call("GET", "/v1/status")
        assert code == 200, body
        return body

    def wait_state(self, states: set[str], timeout: float = 30) -> dict:
        return wait_for(lambda: (s := self.status())["state"] in states and s, timeout, f"state in {states}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def box_agent(base: Path, server: Any, seed: int, name: str = "agent", url: str | None = None,
              **options: Any) -> AgentProcess:
    """An agent (not yet started) on the fake PBX box `seed`, trusting `server`'s keys and CA."""
    hw = base / f"hw-{seed}"
    if not hw.exists():
        pbx_box(hw, seed)
    return AgentProcess(base, name, url or server.url, server.trusted_keys, server.ca, hw, **options)


def stopped_at_end(build: Callable[..., T]) -> Iterator[Callable[..., T]]:
    """For fixtures: hand out `build`, and stop (by pid) everything it made when the fixture ends."""
    made: list[T] = []

    def make(*args: Any, **kwargs: Any) -> T:
        made.append(build(*args, **kwargs))
        return made[-1]

    try:
        yield make
    finally:
        lingered = []
        for item in made:
            try:
                item.stop()  # type: ignore[attr-defined]
            except subprocess.TimeoutExpired as exc:
                lingered.append(exc)  # killed by stop(); the others are stopped before the test fails
        if lingered:
            raise lingered[0]


@contextmanager
def running(agent: AgentProcess) -> Iterator[AgentProcess]:
    """An agent started for a block (or a module fixture) and stopped after it, whatever happens."""
    try:
        yield agent.start()
    finally:
        agent.stop()
