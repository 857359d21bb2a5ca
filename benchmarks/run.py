"""Run every benchmark and print one table: `python -m benchmarks.run [--quick]`.

The full run exits 1 when a target is missed; the quick run (for CI) always exits 0, since a shared
machine's noise must not fail a build: it only shows that every benchmark still runs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py` as well as `python -m benchmarks.run`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from benchmarks import fleet, latency, process, status  # noqa: E402
from benchmarks.harness import QUICK, Outcome, Scale, Stage  # noqa: E402


def failed(target: str, exc: BaseException) -> Outcome:
    return Outcome(target, "error", "-", False, f"{type(exc).__name__}: {str(exc)[:200]}")


def measure(scale: Scale, only: set[str] | None = None) -> tuple[list[Outcome], str]:
    """The outcomes, and what they were measured on."""
    outcomes: list[Outcome] = []

    def step(targets: list[str], run: Callable[[], Outcome | list[Outcome]]) -> None:
        if only is not None and not only & {target.split(".")[0] for target in targets}:
            return
        start = time.monotonic()
        try:
            made = run()
            done = made if isinstance(made, list) else [made]
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            done = [failed(target, exc) for target in targets]
        for outcome in done:
            print(f"  {outcome.target}: {outcome.figure} ({time.monotonic() - start:.0f} s)", file=sys.stderr)
        outcomes.extend(done)

    stage = Stage()
    setting = f"installed on {os.path.realpath(stage.python)}, {os.cpu_count()} cores"
    try:
        stage.start_server()
        agent = stage.activated_agent("main")
        step(["1. status, new connection", "2. status, keep-alive"], lambda: status.status_cpu(stage, agent, scale))
        step(["3. status while a validation hangs"], lambda: latency.stuck_validation(stage, agent, scale))
        step(["4. memory"], lambda: process.footprint(stage, scale))
        step(["5. start-up", "5b. collect-hardware"], lambda: process.startup(stage, scale))
        step(["6. idle", "6b. idle with a watchdog"], lambda: process.idle(stage, scale))
        step(["7. fleet"], lambda: fleet.fleet(scale.fleet_agents))
        step(["7b. Retry-After"], lambda: fleet.retry_after(stage))
    finally:
        stage.close()
    return outcomes, setting


def table(outcomes: list[Outcome]) -> str:
    rows = [("target", "figure", "limit", "result")]
    rows += [(o.target, o.figure, o.limit, "PASS" if o.passed else "FAIL") for o in outcomes]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = [f"- {o.target.split(' ', 1)[0]} {o.detail}" for o in outcomes if o.detail]
    return "\n".join(lines + [""] + notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="mikolicd benchmarks: every figure is a ratio or a count")
    parser.add_argument("--quick", action="store_true", help="a short run for CI; never fails on figures")
    parser.add_argument("--only", metavar="N", nargs="+", help="only the targets numbered N (5 runs 5 and 5b)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    outcomes, setting = measure(QUICK if args.quick else Scale(), set(args.only) if args.only else None)
    print(table(outcomes))
    print(f"\n{sum(o.passed for o in outcomes)}/{len(outcomes)} targets met in {time.monotonic() - start:.0f} s, "
          f"{setting}"
          f"{' (quick run: figures are indicative only)' if args.quick else ''}")
    return 0 if args.quick or all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
