"""The reference server at scale: a trial and a validation cost the same at 100,000 licenses as at 1,000.

`python -m benchmarks.refserver [--quick]`. Two server directories are filled, one with 1,000 licenses
and one with 100,000 (half of them trials registered from a host, every one activated on a host with an
installation's token chain). Both servers run at once and the rounds alternate between them, so the
noise of a shared machine lands on both; every call goes through the real protocol over HTTPS, and each
figure is the median of the per-round medians, printed beside its 1,000-license baseline and the floor
(a ping: TLS, HTTP and JSON without any licensing work). Rate limits are off: this measures cost.
The writes of a validation are counted as pages appended to the database's write-ahead log.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/refserver.py` as well as `python -m benchmarks.refserver`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from benchmarks.harness import BIN, median, serve, stop_process  # noqa: E402
from mikolicd.devpki import Pki, make_pki  # noqa: E402
from mikolicd.protocol import PBX_FEATURE, PBX_PRODUCT  # noqa: E402
from mikolicd.refserver.chain import TOKEN_BYTES, Chain  # noqa: E402
from mikolicd.refserver.db import Database, FeatureRow, Owner, ProductRow  # noqa: E402
from mikolicd.refserver.licensing import new_number  # noqa: E402
from refclient import Agent, Box, Connection, trial_form  # noqa: E402

SEED_TOKEN, SEED_PARENT = secrets.token_urlsafe(TOKEN_BYTES), secrets.token_urlsafe(TOKEN_BYTES)  # as after a while
NO_LIMITS = ("--max-rps", "0", "--address-rps", "0", "--guesses-per-minute", "0", "--number-rps", "0")
TARGET = 1.5


@dataclass(frozen=True)
class Sizes:
    small: int = 1_000
    large: int = 100_000
    rounds: int = 15
    calls: int = 30  # of each kind, per round and server


QUICK = Sizes(small=200, large=2_000, rounds=2, calls=5)


@dataclass(frozen=True)
class Seeded:
    number: str
    host: dict
    email: str  # "" for an issued number
    company: str


def _host() -> dict:
    part = {name: os.urandom(32).hex() for name in ("system_uuid", "system_serial", "board_serial", "disk_serial",
                                                    "machine_id")}
    return {**part, "nic": [os.urandom(32).hex()]}


def populate(directory: Path, count: int, agent: Agent) -> list[Seeded]:
    """`count` licenses written as the server writes them, each seat held by `agent` with SEED_TOKEN."""
    db = Database(directory / "licenses.db")
    now = int(time.time())
    ends = dt.date.today() + dt.timedelta(days=30)
    chain = Chain(agent.id, agent.public, SEED_TOKEN, SEED_PARENT)
    seeded = []
    with db.transaction():
        for i in range(count):
            number, host, trial = new_number(), _host(), i % 2 == 0
            owner = Owner(f"Company {i}", "Admin", f"owner{i}@example.test")
            db.add_license(number, f"lic-{count}-{i}", owner, PBX_FEATURE, host if trial else None, now)
            db.put_product(number, ProductRow(PBX_PRODUCT, trial, ends, (FeatureRow(PBX_FEATURE, 1),)))
            db.add_capture(secrets.token_hex(16), number, PBX_FEATURE, host, now, chain)
            seeded.append(Seeded(number, {"components": host}, owner.email if trial else "", owner.companyname))
    db.close()
    return seeded


@dataclass
class SeededServer:
    """A server directory filled with licenses and its `mikolic-server serve`."""

    directory: Path
    pki: Pki
    size: int
    agent: Agent = field(default_factory=Agent)
    trials: list[Seeded] = field(default_factory=list)
    issued: list[Seeded] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    connection: Connection | None = None

    def start(self) -> SeededServer:
        subprocess.run([str(BIN / "mikolic-server"), "init", "--dir", str(self.directory)], check=True,
                       capture_output=True, timeout=60)
        seeded = populate(self.directory, self.size, self.agent)
        random.shuffle(seeded)
        self.trials = [s for s in seeded if s.email]
        self.issued = [s for s in seeded if not s.email]
        self.proc, port = serve(BIN, self.directory, self.pki, self.directory.with_suffix(".log"), *NO_LIMITS)
        self.connection = Connection(port, self.pki.ca)
        return self

    def stop(self) -> None:
        if self.connection is not None:
            self.connection.close()
        if self.proc is not None:
            stop_process(self.proc)

    def box(self, seeded: Seeded) -> Box:
        """A box holding one of the seeded seats, with the token the server last gave it."""
        return Box(self.connection, seeded.host, Agent(self.agent.key, SEED_TOKEN))


def timed(call: Callable[[], tuple[int, dict]]) -> float:
    start = time.perf_counter()
    status, answer = call()
    elapsed = time.perf_counter() - start
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {answer}")
    return elapsed


def new_trial(server: SeededServer) -> float:
    return timed(lambda: Box(server.connection).call("trial", **trial_form()))


def trial_again(server: SeededServer) -> float:
    seeded = server.trials.pop()
    form = trial_form(seeded.email, seeded.company)
    return timed(lambda: server.box(seeded).call("trial", **form))


def validation(server: SeededServer) -> float:
    seeded = server.issued.pop()
    return timed(lambda: server.box(seeded).call("validation", registration_number=seeded.number))


def ping(server: SeededServer) -> float:
    def call() -> tuple[int, dict]:
        status, _, answer = server.connection.request("GET", "/api/v1/ping")
        return status, answer
    return timed(call)


KINDS: dict[str, Callable[[SeededServer], float]] = {"new trial": new_trial,
                                                     "trial again from its host": trial_again,
                                                     "validation": validation, "ping (floor)": ping}


def wal_pages_per_validation(server: SeededServer, count: int) -> float:
    """Pages the validations append to the write-ahead log, after the log was emptied."""
    wal = server.directory / "licenses.db-wal"
    conn = sqlite3.connect(server.directory / "licenses.db")
    try:
        empty_log(conn)
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    for _ in range(count):
        validation(server)
    return max(0, wal.stat().st_size - 32) / (page + 24) / count


Row = tuple[str, float, float]  # what, at the small size, at the large size


def empty_log(conn: sqlite3.Connection) -> None:
    """Checkpoint and truncate the write-ahead log, so no checkpoint runs inside what is measured next."""
    if conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]:
        raise RuntimeError("the write-ahead log could not be emptied")


def write_costs(servers: list[SeededServer], count: int) -> list[float]:
    """Median time, per server, of the one write a validation makes (one seat row, committed with fsync),
    made from connections of our own while the servers are idle, alternating between them."""
    conns = [sqlite3.connect(server.directory / "licenses.db", isolation_level=None) for server in servers]
    try:
        sessions = []
        for conn in conns:
            conn.execute("PRAGMA synchronous = FULL")
            empty_log(conn)
            sessions.append([s for (s,) in conn.execute("SELECT session FROM captures ORDER BY random() LIMIT ?",
                                                        (count,))])
        samples: list[list[float]] = [[] for _ in conns]
        for i in range(count):
            for conn, mine, out in zip(conns, sessions, samples):
                start = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("UPDATE captures SET seen_at = seen_at + 1 WHERE session = ?", (mine[i],))
                conn.execute("COMMIT")
                out.append(time.perf_counter() - start)
    finally:
        for conn in conns:
            conn.close()
    return [median(out) for out in samples]


def measure(scale: Sizes) -> tuple[list[Row], list[float]]:
    base = Path(tempfile.mkdtemp(prefix="mikolicd-refserver-bench-"))
    servers: list[SeededServer] = []
    try:
        pki = make_pki(base / "pki")
        for size in (scale.small, scale.large):
            print(f"  filling and starting a server with {size:,} licenses", file=sys.stderr)
            servers.append(SeededServer(base / f"server-{size}", pki, size))  # stopped below whatever happens
            servers[-1].start()
        samples: dict[tuple[str, int], list[float]] = {}
        for round_ in range(scale.rounds):
            for server in servers if round_ % 2 == 0 else servers[::-1]:
                for kind, run in KINDS.items():
                    calls = [run(server) for _ in range(scale.calls)]
                    samples.setdefault((kind, server.size), []).append(median(calls))
        rows = [(kind, median(samples[(kind, scale.small)]), median(samples[(kind, scale.large)])) for kind in KINDS]
        small, large = write_costs(servers, 10 * scale.calls)  # cheap: more samples against fsync noise
        rows.append(("the validation's one write (row + fsync)", small, large))
        return rows, [wal_pages_per_validation(server, scale.calls) for server in servers]
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def report(scale: Sizes, rows: list[Row], writes: list[float]) -> tuple[str, bool]:
    head = (f"reference server: {scale.rounds} rounds x {scale.calls} calls of each kind, medians of round "
            f"medians, ratio = {scale.large:,} / {scale.small:,} licenses")
    table = [("figure", f"{scale.small:,} licenses", f"{scale.large:,} licenses", "ratio", "target")]
    passed = True
    for kind, small, large in rows:
        ratio = large / small
        shown = kind.startswith(("ping", "the validation's"))
        target = "(shown)" if shown else f"<= {TARGET}x"
        ok = shown or ratio <= TARGET
        passed &= ok
        table.append((kind, f"{small * 1000:.2f} ms", f"{large * 1000:.2f} ms", f"{ratio:.2f}x",
                      target + ("" if ok else " MISSED")))
    ok = max(writes) <= 1.0
    passed &= ok
    table.append(("WAL pages written per validation", f"{writes[0]:.2f}", f"{writes[1]:.2f}", "-",
                  "<= 1 (the seat's row)" + ("" if ok else " MISSED")))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in table]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join([head, *lines]), passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="reference server cost at 1,000 and 100,000 licenses")
    parser.add_argument("--quick", action="store_true", help="a short run with small databases; never fails")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else Sizes()
    start = time.monotonic()
    text, passed = report(scale, *measure(scale))
    print(text)
    print(f"\n{'targets met' if passed else 'a target missed'} in {time.monotonic() - start:.0f} s"
          f"{' (quick run: figures are indicative only)' if args.quick else ''}")
    return 0 if args.quick or passed else 1


if __name__ == "__main__":
    sys.exit(main())
