"""What each change bought: start-up and memory of several revisions of the package, in one run.

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
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from benchmarks.harness import ROOT, NotifyListener, Stage, median  # noqa: E402
from benchmarks.install import install  # noqa: E402
from benchmarks.process import MIB, bare_ready, collect_seconds, daemon_ready, measure_footprint  # noqa: E402


def subject(revision: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s", revision], capture_output=True,
                          text=True, check=True, timeout=30).stdout.strip()[:72]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="start-up and memory of git revisions, interleaved")
    parser.add_argument("revisions", nargs="+")
    parser.add_argument("--rounds", type=int, default=3, help="memory rounds; start-up runs three times as many")
    parser.add_argument("--status", type=int, default=20_000, help="status requests of each memory round")
    parser.add_argument("--validations", type=int, default=100, help="validations of each memory round")
    args = parser.parse_args(argv)
    stage = Stage()
    try:
        stage.start_server()
        source = stage.activated_agent("main")
        bins = {rev: install(stage.base / f"rev-{i}", rev) for i, rev in enumerate(args.revisions)}
        paths = {rev: f"{path}{os.pathsep}{os.environ['PATH']}" for rev, path in bins.items()}
        agents = {rev: stage.restarted(source, f"rev-{i}") for i, rev in enumerate(args.revisions)}
        ready: dict[str, list[float]] = {rev: [] for rev in ["bare", *args.revisions]}
        collect: dict[str, list[float]] = {rev: [] for rev in args.revisions}
        memory: dict[str, list[tuple[int, int]]] = {rev: [] for rev in args.revisions}
        with NotifyListener(stage.base / "notify-changes.sock") as notify:
            for run in range(3 * args.rounds + 1):  # the first run only warms the page cache
                ready["bare"].append(bare_ready(stage, notify))
                for rev, agent in agents.items():
                    ready[rev].append(daemon_ready(agent, notify, {"PATH": paths[rev]}))
                    agent.stop()
                    notify.drain()
                    collect[rev].append(collect_seconds(stage, bins[rev], agent))
                    if run % 3 == 0 and run:
                        m = measure_footprint(stage, agent, args.status, args.validations, {"PATH": paths[rev]})
                        memory[rev].append((m.started, m.loaded))
        bare = median(ready["bare"][1:])
        print(f"| revision | exec -> READY=1 | collect-hardware | RSS 2 s after start | after 1 + "
              f"{args.validations} validations and {args.status:,} status |\n|---|---|---|---|---|")
        print(f"| bare interpreter | {bare * 1000:.0f} ms (1.00x) | | | |")
        for rev in args.revisions:
            t, c = median(ready[rev][1:]), median(collect[rev][1:])
            start, loaded = (median([pair[i] for pair in memory[rev]]) / MIB for i in (0, 1))
            print(f"| {subject(rev)} | {t * 1000:.0f} ms ({t / bare:.2f}x) | {c * 1000:.0f} ms ({c / bare:.2f}x) "
                  f"| {start:.1f} MiB | {loaded:.1f} MiB |")
        print(f"\n{3 * args.rounds} start-up runs and {args.rounds} memory rounds per revision, interleaved; "
              f"installed on {os.path.realpath(stage.python)}")
    finally:
        stage.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
