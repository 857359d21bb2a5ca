"""Targets 1-3: status over the socket against a canned-reply server, while a validation hangs, under load."""
from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path

from .harness import (ROOT, AgentProcess, Outcome, Scale, Stage, hammer, median, percentile, request_once,
                      stop_process, timed_requests, wait_for)

WARM_UP = 100
THROUGHPUT_CLIENTS = 50


@contextmanager
def canned_server(stage: Stage, reply: bytes) -> Iterator[Path]:
    """The minimal server, in its own process like the daemon, serving the daemon's own status reply."""
    sock, reply_file = stage.base / "canned.sock", stage.base / "canned.reply"
    reply_file.write_bytes(reply)
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.canned", str(sock), str(reply_file)], cwd=ROOT)
    try:
        wait_for(lambda: sock.exists() or proc.poll() is not None, 10, "the canned server")
        yield sock
    finally:
        stop_process(proc)
        sock.unlink(missing_ok=True)


def interleaved(subject: Path, baseline: Path, scale: Scale) -> tuple[list[float], list[float]]:
    """Alternate blocks of requests so both sides see the same background noise."""
    timed_requests(subject, WARM_UP)
    timed_requests(baseline, WARM_UP)
    a: list[float] = []
    b: list[float] = []
    for _ in range(scale.latency_rounds):
        a += timed_requests(subject, scale.latency_block)
        b += timed_requests(baseline, scale.latency_block)
    return a, b


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def status_latency(stage: Stage, agent: AgentProcess, scale: Scale) -> Outcome:
    with canned_server(stage, request_once(agent.sock)) as canned:
        daemon, base = interleaved(agent.sock, canned, scale)
    ratio = median(daemon) / median(base)
    return Outcome("1. status latency, new connection (median vs canned server)", f"{ratio:.2f}x", "<= 1.5x",
                   ratio <= 1.5,
                   f"daemon median {ms(median(daemon))} p99 {ms(percentile(daemon, 0.99))}; canned median "
                   f"{ms(median(base))} p99 {ms(percentile(base, 0.99))}; p99 ratio "
                   f"{percentile(daemon, 0.99) / percentile(base, 0.99):.2f}x; {len(daemon)} requests each")


class BlackHole:
    """A TCP server that accepts connections and never says a word, so TLS handshakes hang until timeout."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                self.held.append(self.listener.accept()[0])
            except socket.timeout:
                continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.held:
            conn.close()
        self.listener.close()


def stuck_validation(stage: Stage, idle: AgentProcess, scale: Scale) -> Outcome:
    """The same license on a second daemon whose server never answers; validations kept in flight throughout."""
    hole = BlackHole()
    stuck = stage.agent("stuck", url=hole.url)
    shutil.copytree(idle.state, stuck.state)
    stuck.start()
    done = threading.Event()
    rounds: list[float] = []

    def validate_forever() -> None:
        while not done.is_set():
            start = time.monotonic()
            try:
                stuck.call("POST", "/v1/validation", timeout=60)
            except OSError:
                return  # the daemon is being stopped with a round in flight
            rounds.append(time.monotonic() - start)

    worker = threading.Thread(target=validate_forever, daemon=True)
    worker.start()
    try:
        wait_for(lambda: hole.held, 10, "the validation to reach the silent server")
        quiet, busy = interleaved(idle.sock, stuck.sock, scale)
    finally:
        done.set()
        stuck.stop()
        hole.close()
        worker.join(10)
    ratio = percentile(busy, 0.99) / percentile(quiet, 0.99)
    return Outcome("2. status p99 while a validation hangs (vs idle p99)", f"{ratio:.2f}x", "<= 1.5x",
                   ratio <= 1.5,
                   f"stuck p99 {ms(percentile(busy, 0.99))}, idle p99 {ms(percentile(quiet, 0.99))}; "
                   f"{len(hole.held)} connections held by the silent server, "
                   f"{len(rounds)} validation rounds ended while measuring")


def throughput(stage: Stage, agent: AgentProcess, scale: Scale) -> Outcome:
    def rate(path: Path) -> tuple[float, int]:
        start = time.monotonic()
        done, errors = asyncio.run(hammer(path, THROUGHPUT_CLIENTS, seconds=scale.throughput_seconds))
        return done / (time.monotonic() - start), errors

    with canned_server(stage, request_once(agent.sock)) as canned:
        base_rps, base_errors = rate(canned)
    rps, errors = rate(agent.sock)
    return Outcome(f"3. {THROUGHPUT_CLIENTS} concurrent clients for {scale.throughput_seconds:g} s",
                   f"{rps:.0f} req/s, {errors} errors", "0 errors", errors == 0 and rps > 0,
                   f"{rps / base_rps:.2f}x the canned server's {base_rps:.0f} req/s ({base_errors} errors there)")
