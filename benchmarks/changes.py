"""What each change bought: start-up, memory and status CPU of several revisions of the package, in one run.

    python -m benchmarks.changes REV [REV ...]        # e.g. main perf~2 perf~1 perf

Each revision is installed the way the working tree is (`install.py`) and its daemon runs on the same
stage: the same reference server, license, host and interpreter. Rounds interleave the revisions, so
each sees the same background noise. A revision runs with this environment's dependencies: one that
needs a package no longer installed here fails where it imports it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from benchmarks import native, status  # noqa: E402
from benchmarks.harness import ROOT, AgentProcess, NotifyListener, Scale, Stage, median  # noqa: E402
from benchmarks.install import install  # noqa: E402
from benchmarks.process import MIB, bare_ready, collect_seconds, daemon_ready, measure_footprint  # noqa: E402


@dataclass
class Revision:
    """One revision's install, its daemon, and what was measured of it."""

    name: str
    bin: Path
    agent: AgentProcess
    ready: list[float] = field(default_factory=list)
    collect: list[float] = field(default_factory=list)
    memory: list[tuple[int, int]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}"}

    def subject(self) -> str:
        return subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s", self.name],
                              capture_output=True, text=True, check=True, timeout=30).stdout.strip()[:72]


def startup_and_memory(stage: Stage, revisions: list[Revision], args: argparse.Namespace) -> list[float]:
    """Interleaved runs; every third also measures memory. Returns the bare interpreter's times."""
    bare: list[float] = []
    with NotifyListener(stage.base / "notify-changes.sock") as notify:
        for run in range(3 * args.rounds + 1):  # the first run only warms the page cache
            bare.append(bare_ready(stage, notify))
            for rev in revisions:
                rev.ready.append(daemon_ready(rev.agent, notify, rev.env))
                rev.agent.stop()
                notify.drain()
                rev.collect.append(collect_seconds(stage, rev.bin, rev.agent))
                if run and run % 3 == 0:
                    m = measure_footprint(stage, rev.agent, args.status, args.validations, rev.env)
                    if m.failures:
                        raise RuntimeError(f"{rev.name}: {m.failures} requests failed under the memory load")
                    rev.memory.append((m.started, m.loaded))
    return bare


def status_cpu(stage: Stage, revisions: list[Revision], rounds: int) -> dict[str, float]:
    """Each revision's daemon and the floors under the same load; returns the asyncio floor's figures."""
    for rev in revisions:
        rev.agent.start(rev.env)
    try:
        loadgen = native.compiled("loadgen", stage.base / "native")
        with status.floors(stage, revisions[0].agent) as floors:
            targets = [status.Target(rev.name, rev.agent.proc.pid, rev.agent.sock) for rev in revisions] + floors
            floor = {}
            for mode in status.MODES:
                samples = status.measure(loadgen, targets, mode, Scale(status_rounds=rounds, status_seconds=1.0))
                if any(samples.errors.values()):
                    raise RuntimeError(f"failed status requests ({mode}): {samples.errors}")
                for rev in revisions:
                    rev.cpu[mode] = samples.us(rev.name)
                floor[mode] = samples.us("asyncio")
    finally:
        for rev in revisions:
            rev.agent.stop()
    return floor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="start-up, memory and status CPU of git revisions, interleaved")
    parser.add_argument("revisions", nargs="+")
    parser.add_argument("--rounds", type=int, default=3, help="memory and status rounds; start-up runs 3x as many")
    parser.add_argument("--status", type=int, default=20_000, help="status requests of each memory round")
    parser.add_argument("--validations", type=int, default=100, help="validations of each memory round")
    args = parser.parse_args(argv)
    stage = Stage()
    try:
        stage.start_server()
        revisions = [Revision(name, install(stage.base / f"rev-{i}", name), stage.licensed_agent(f"rev-{i}"))
                     for i, name in enumerate(args.revisions)]
        bare = median(startup_and_memory(stage, revisions, args)[1:])
        floor = status_cpu(stage, revisions, args.rounds)
        print(f"| revision | exec -> READY=1 | collect-hardware | RSS 2 s after start | after 1 + "
              f"{args.validations} validations and {args.status:,} status | status CPU, new connection | "
              f"keep-alive |\n|---|---|---|---|---|---|---|")
        print(f"| floor: bare interpreter, asyncio server | {bare * 1000:.0f} ms | | | | {floor['close']:.0f} us | "
              f"{floor['keepalive']:.0f} us |")
        for rev in revisions:
            t, c = median(rev.ready[1:]), median(rev.collect[1:])
            start, loaded = (median([pair[i] for pair in rev.memory]) / MIB for i in (0, 1))
            close, keep = rev.cpu["close"], rev.cpu["keepalive"]
            print(f"| {rev.subject()} | {t * 1000:.0f} ms ({t / bare:.2f}x) | {c * 1000:.0f} ms ({c / bare:.2f}x) "
                  f"| {start:.1f} MiB | {loaded:.1f} MiB | {close:.0f} us ({close / floor['close']:.2f}x) "
                  f"| {keep:.0f} us ({keep / floor['keepalive']:.2f}x) |")
        print(f"\n{3 * args.rounds} start-up runs, {args.rounds} memory and status rounds per revision, "
              f"interleaved; installed on {os.path.realpath(stage.python)}")
    finally:
        stage.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
