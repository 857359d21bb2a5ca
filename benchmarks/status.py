"""Targets 1-2: the server's CPU time per `GET /v1/status`, against the asyncio and the C floor.

Three servers answer the same reply on Unix sockets: the daemon, a minimal asyncio server (`canned.py`,
the floor for anything on asyncio) and a C server (`cserver.c`, the floor of the kernel's own work). The
load generator is C too (`loadgen.c`); its rate against the C server, shown in the same run, is the
ceiling below which every other rate is the server's own. CPU time is the server process's, read from
the kernel before and after each run, so it does not depend on how the two cores are shared.
"""
from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from . import native, procfs
from .harness import ROOT, IO_TIMEOUT, AgentProcess, Outcome, Scale, Stage, median, request_once, stop_process, wait_for

CONNECTIONS = 8
MODES = ("close", "keepalive")
KEEP_ALIVE_REQUEST = b"GET /v1/status HTTP/1.1\r\nHost: localhost\r\n\r\n"
LIMIT = 1.3


@dataclass(frozen=True)
class Target:
    name: str
    pid: int
    sock: Path


def keep_alive_reply(sock: Path) -> bytes:
    """The daemon's status reply to a request that keeps its connection: head, then Content-Length bytes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(IO_TIMEOUT)
        conn.connect(str(sock))
        conn.sendall(KEEP_ALIVE_REQUEST)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += conn.recv(65536)
        head = reply.split(b"\r\n\r\n", 1)[0]
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(reply) < len(head) + 4 + length:
            reply += conn.recv(65536)
    return reply


@contextmanager
def floors(stage: Stage, agent: AgentProcess) -> Iterator[list[Target]]:
    """The asyncio and C servers, each in its own process like the daemon, serving the daemon's replies."""
    replies = [stage.base / "status-close.reply", stage.base / "status-keepalive.reply"]
    replies[0].write_bytes(request_once(agent.sock))
    replies[1].write_bytes(keep_alive_reply(agent.sock))
    cserver = native.compiled("cserver", stage.base / "native")
    commands = {"asyncio": [str(stage.python), "-m", "benchmarks.canned"], "C": [str(cserver)]}
    procs: list[subprocess.Popen] = []
    try:
        targets = []
        for name, command in commands.items():
            sock = stage.base / f"floor-{name}.sock"
            sock.unlink(missing_ok=True)
            procs.append(subprocess.Popen([*command, str(sock), *map(str, replies)], cwd=ROOT))
            wait_for(lambda: sock.exists() or procs[-1].poll() is not None, 10, f"the {name} server")
            if procs[-1].poll() is not None:
                raise RuntimeError(f"the {name} server exited {procs[-1].returncode}")
            targets.append(Target(name, procs[-1].pid, sock))
        yield targets
    finally:
        for proc in procs:
            stop_process(proc)


@dataclass
class Samples:
    """Per server: CPU seconds per request and requests per second, one of each per run, and the failed
    requests of every run (the warm-up's too: a server that fails there has failed)."""

    cpu: dict[str, list[float]]
    rate: dict[str, list[float]]
    errors: dict[str, int]

    def us(self, name: str) -> float:
        return median(self.cpu[name]) * 1e6


def measure(loadgen: Path, targets: list[Target], mode: str, scale: Scale) -> Samples:
    """Rounds that rotate the servers' order, so each sees the same background noise."""
    samples = Samples({t.name: [] for t in targets}, {t.name: [] for t in targets}, {t.name: 0 for t in targets})
    for round_ in range(scale.status_rounds + 1):  # the first round warms caches and is dropped
        for target in targets[round_ % len(targets):] + targets[:round_ % len(targets)]:
            before = procfs.cpu_seconds(target.pid)
            load = native.generate(loadgen, target.sock, mode, CONNECTIONS, scale.status_seconds)
            spent = procfs.cpu_seconds(target.pid) - before
            samples.errors[target.name] += load.errors if load.requests else max(load.errors, 1)
            if round_ and load.requests:
                samples.cpu[target.name].append(spent / load.requests)
                samples.rate[target.name].append(load.rate)
    return samples


def status_cpu(stage: Stage, agent: AgentProcess, scale: Scale) -> list[Outcome]:
    loadgen = native.compiled("loadgen", stage.base / "native")
    with floors(stage, agent) as floor:
        targets = [Target("daemon", agent.proc.pid, agent.sock), *floor]
        measured = {mode: measure(loadgen, targets, mode, scale) for mode in MODES}
    return [outcome(number, mode, measured[mode], scale) for number, mode in enumerate(MODES, 1)]


def outcome(number: int, mode: str, s: Samples, scale: Scale) -> Outcome:
    ratio = s.us("daemon") / s.us("asyncio")
    rates = ", ".join(f"{name} {median(r):,.0f} req/s" for name, r in s.rate.items())
    what = "a new connection per request" if mode == "close" else "keep-alive"
    return Outcome(f"{number}. status, {what}: server CPU per request vs the asyncio floor",
                   f"{ratio:.2f}x (daemon {s.us('daemon'):.0f} us, asyncio {s.us('asyncio'):.0f} us, "
                   f"C {s.us('C'):.0f} us)", f"<= {LIMIT}x", ratio <= LIMIT and not any(s.errors.values()),
                   f"C load generator, {CONNECTIONS} connections, {scale.status_rounds} rounds of "
                   f"{scale.status_seconds:g} s per server; {rates} (the C server's rate is the generator's "
                   f"ceiling shown in this run); errors: "
                   + ", ".join(f"{name} {count}" for name, count in s.errors.items()))
