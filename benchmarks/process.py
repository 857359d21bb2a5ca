"""Targets 4-6: what the daemon process costs the box: memory, start-up time, wake-ups when idle."""
from __future__ import annotations

import asyncio
import compileall
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

import mikolicd

from .harness import AgentProcess, NotifyListener, Outcome, Scale, Stage, hammer, median, stop_process

MIB = 1024 * 1024
WARM_UP_SHARE = 20  # 1/20 of the work first, so allocator and caches settle before the baseline reading
LOAD_CLIENTS = 8
DAEMON_MODULES = "import mikolicd.main, mikolicd.daemon, mikolicd.api, mikolicd.agent"
SETTLE = 1.0


def restarted(stage: Stage, source: AgentProcess, name: str) -> AgentProcess:
    """A second daemon holding `source`'s license, as a box does after a reboot."""
    made = stage.agent(name)
    shutil.copytree(source.state, made.state)
    return made


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


def _load(agent: AgentProcess, status: int, validations: int) -> int:
    """Status requests from several clients while validations run one after another; returns failures."""
    failed = 0

    def validate() -> None:
        nonlocal failed
        for _ in range(validations):
            if agent.call("POST", "/v1/validation")[0] != 200:
                failed += 1

    worker = threading.Thread(target=validate)
    worker.start()
    _done, errors = asyncio.run(hammer(agent.sock, LOAD_CLIENTS, total=status))
    worker.join()
    return failed + errors


def footprint(stage: Stage, source: AgentProcess, scale: Scale) -> Outcome:
    agent = restarted(stage, source, "footprint").start()
    try:
        time.sleep(SETTLE)
        started = rss(agent.proc.pid)
        failures = _load(agent, scale.memory_status // WARM_UP_SHARE, scale.memory_validations // WARM_UP_SHARE)
        before = rss(agent.proc.pid)
        failures += _load(agent, scale.memory_status, scale.memory_validations)
        after = rss(agent.proc.pid)
    finally:
        agent.stop()
    growth = (after - before) / MIB
    return Outcome(f"4. RSS after start-up; growth over {scale.memory_status} status + "
                   f"{scale.memory_validations} validations",
                   f"{started / MIB:.1f} MiB; +{growth:.2f} MiB", "<= 40 MiB; <= 2 MiB",
                   started <= 40 * MIB and growth <= 2 and failures == 0,
                   f"RSS after warm-up {before / MIB:.1f} MiB, after the load {after / MIB:.1f} MiB; "
                   f"{failures} failed requests")


def daemon_imports() -> list[str]:
    """Every module the daemon's code pulls in, its own excepted: what a bare interpreter must import too."""
    probe = (f"{DAEMON_MODULES}; import sys, json; print(json.dumps(sorted(m for m in sys.modules "
             f"if not m.startswith(('mikolicd', '__')))))")
    return json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                     check=True, timeout=60).stdout)


def bare_interpreter(modules: list[str]) -> str:
    """Import the same modules, then say READY=1 the same way the daemon does."""
    return ("import importlib, os, socket\n"
            f"for name in {modules!r}:\n"
            "    try:\n        importlib.import_module(name)\n    except Exception:\n        pass\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
            "s.sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])\n")


def startup(stage: Stage, source: AgentProcess, scale: Scale) -> Outcome:
    # An installed package carries its bytecode; a checkout run with PYTHONDONTWRITEBYTECODE would
    # otherwise recompile the daemon's own modules at every start while the libraries load cached code.
    compileall.compile_dir(str(Path(mikolicd.__file__).parent), quiet=1)
    code = bare_interpreter(daemon_imports())
    agent = restarted(stage, source, "startup")
    daemon_times: list[float] = []
    bare_times: list[float] = []
    with NotifyListener(stage.base / "notify-startup.sock") as notify:
        env = {"NOTIFY_SOCKET": str(notify.path)}
        for _ in range(scale.startup_runs + 1):  # the first pair only warms the page cache
            start = time.perf_counter()
            bare = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, **env))
            try:
                bare_times.append(notify.wait_for("READY=1") - start)
            finally:
                stop_process(bare)
            start = time.perf_counter()
            agent.start(env, wait=False)
            daemon_times.append(notify.wait_for("READY=1") - start)
            report = agent.call("GET", "/v1/fingerprint")[1]
            agent.stop()
            notify.drain()
        cached = fingerprint_cached(stage, agent, env, report)
    ratio = median(daemon_times[1:]) / median(bare_times[1:])
    return Outcome("5. exec -> READY=1 (vs bare interpreter, same imports); fingerprint cached",
                   f"{ratio:.2f}x; {'cached' if cached else 'NOT cached'}", "<= 1.3x; read once",
                   ratio <= 1.3 and cached,
                   f"daemon median {median(daemon_times[1:]) * 1000:.0f} ms, bare interpreter "
                   f"{median(bare_times[1:]) * 1000:.0f} ms, {scale.startup_runs} interleaved runs each")


def fingerprint_cached(stage: Stage, agent: AgentProcess, env: dict[str, str], report: dict) -> bool:
    """With the hardware root moved away after start-up, the daemon must still report the same host."""
    agent.start(env)
    moved = stage.hw.with_name("hw-away")
    stage.hw.rename(moved)
    try:
        same = agent.call("GET", "/v1/fingerprint")[1] == report
        validated = agent.call("POST", "/v1/validation")[1].get("last_validation", {}).get("outcome") == "ok"
    finally:
        moved.rename(stage.hw)
        agent.stop()
    return same and validated


def voluntary_switches(pid: int) -> dict[int, int]:
    """Per thread, since the process figure covers its main thread only."""
    counts = {}
    for thread in psutil.Process(pid).threads():
        try:
            counts[thread.id] = psutil.Process(thread.id).num_ctx_switches().voluntary
        except psutil.NoSuchProcess:
            continue
    return counts


def idle(stage: Stage, source: AgentProcess, scale: Scale) -> Outcome:
    agent = restarted(stage, source, "idle")
    period = scale.watchdog_usec / 2_000_000
    with NotifyListener(stage.base / "notify-idle.sock") as notify:
        agent.start({"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(scale.watchdog_usec)}, wait=False)
        try:
            notify.wait_for("READY=1")
            time.sleep(SETTLE)
            notify.drain()
            before = voluntary_switches(agent.proc.pid)
            time.sleep(scale.idle_seconds)
            after = voluntary_switches(agent.proc.pid)
            pings = sum("WATCHDOG=1" in m.split("\n") for m in notify.drain())
        finally:
            agent.stop()
    switches = sum(n - before.get(tid, 0) for tid, n in after.items())
    periods = scale.idle_seconds / period
    per_period = switches / periods
    return Outcome(f"6. idle voluntary context switches over {scale.idle_seconds:g} s",
                   f"{per_period:.1f} per watchdog period", "<= 2",
                   per_period <= 2,
                   f"{switches} switches in {len(after)} threads; watchdog ping every {period:g} s, "
                   f"{pings} pings received")

