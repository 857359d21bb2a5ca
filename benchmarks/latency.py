"""Target 3: status latency on one daemon while another, holding the same license, waits on a silent server."""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from .harness import AgentProcess, Outcome, Scale, Stage, percentile, timed_requests, wait_for

WARM_UP = 100


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
    stuck = stage.restarted(idle, "stuck", hole.url).start()
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
    return Outcome("3. status p99 while a validation hangs (vs idle p99)", f"{ratio:.2f}x", "<= 1.5x",
                   ratio <= 1.5,
                   f"stuck p99 {ms(percentile(busy, 0.99))}, idle p99 {ms(percentile(quiet, 0.99))}; "
                   f"{len(hole.held)} connections held by the silent server, "
                   f"{len(rounds)} validation rounds ended while measuring")
