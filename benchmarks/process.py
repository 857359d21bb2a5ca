"""Targets 4-6: what the daemon process costs the box: memory, start-up time, wake-ups when idle."""
from __future__ import annotations

import datetime as dt
import json
import os
import select
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mikolicd.agent import CHECKPOINT_EVERY as CHECKPOINT  # a wake-up the trust rules need

from . import native, procfs
from .harness import AgentProcess, NotifyListener, Outcome, Scale, Stage, median, stop_process

MIB = 1024 * 1024
AFTER_START = 2.0  # seconds from exec to the first reading
WARM_UP_SHARE = 20  # 1/20 of the status work (and one validation) first, so allocator and caches settle
LOAD_CONNECTIONS = 8
RSS_LIMITS = (27, 31, 1)  # MiB: after start, after the load, growth over the load
STARTUP_LIMIT, COLLECT_LIMIT = 5.0, 4.0  # times the bare interpreter
# What only the daemon's serving needs; `collect-hardware` must import none of it.
SERVING = ("asyncio", "ssl", "urllib3", "nacl", "httptools", "email", "mikolicd.daemon",
           "mikolicd.agent", "mikolicd.api", "mikolicd.httpserver", "mikolicd.client", "mikolicd.legacy",
           "mikolicd.build", "mikolicd.store", "mikolicd.jws", "mikolicd.trust", "mikolicd.lifecycle")
BARE = """import os, socket, sys
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
listener.listen()
socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])
"""


def _load(stage: Stage, agent: AgentProcess, status: int, validations: int) -> int:
    """Status requests from the C generator while validations run one after another; returns failures."""
    failed = 0

    def validate() -> None:
        nonlocal failed
        for _ in range(validations):
            code, body = agent.call("POST", "/v1/validation")
            if code != 200 or body.get("last_validation", {}).get("outcome") != "ok":
                failed += 1

    loadgen = native.compiled("loadgen", stage.base / "native")
    worker = threading.Thread(target=validate)
    worker.start()
    try:
        load = native.generate(loadgen, agent.sock, "close", LOAD_CONNECTIONS, 600.0, status)
    finally:
        worker.join()
    return failed + load.errors + status - load.requests


@dataclass(frozen=True)
class Footprint:
    """RSS in bytes: AFTER_START after exec, after the warm-up, after the load; and failed requests."""

    started: int
    warm: int
    loaded: int
    failures: int


def measure_footprint(stage: Stage, agent: AgentProcess, status: int, validations: int,
                      env: dict[str, str] | None = None) -> Footprint:
    """Start `agent` (with `env`), read its RSS, warm it up, load it, read again; it is stopped after."""
    exec_at = time.monotonic()
    agent.start(env)
    try:
        time.sleep(max(0.0, exec_at + AFTER_START - time.monotonic()))
        started = procfs.rss(agent.proc.pid)
        failures = _load(stage, agent, status // WARM_UP_SHARE, 1)
        warm = procfs.rss(agent.proc.pid)
        failures += _load(stage, agent, status, validations)
        return Footprint(started, warm, procfs.rss(agent.proc.pid), failures)
    finally:
        agent.stop()


def footprint(stage: Stage, scale: Scale) -> Outcome:
    m = measure_footprint(stage, stage.licensed_agent("footprint"), scale.memory_status, scale.memory_validations)
    growth = (m.loaded - m.warm) / MIB
    limit_start, limit_after, limit_growth = RSS_LIMITS
    return Outcome(f"4. RSS {AFTER_START:g} s after start; after a validation + {scale.memory_status:,} status "
                   f"+ {scale.memory_validations:,} validations; growth after warm-up",
                   f"{m.started / MIB:.1f} MiB; {m.loaded / MIB:.1f} MiB; {growth:+.2f} MiB",
                   f"<= {limit_start} MiB; <= {limit_after} MiB; <= {limit_growth} MiB",
                   m.started <= limit_start * MIB and m.loaded <= limit_after * MIB and growth <= limit_growth
                   and m.failures == 0,
                   f"after the warm-up (one validation, {scale.memory_status // WARM_UP_SHARE:,} status) "
                   f"{m.warm / MIB:.1f} MiB; {m.failures} failed requests; floor: the bare interpreter "
                   f"{bare_rss(stage) / MIB:.1f} MiB")


def bare_rss(stage: Stage) -> int:
    """The installed interpreter doing nothing: what no daemon written in Python can go below."""
    proc = subprocess.Popen([str(stage.python), "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        time.sleep(0.5)
        return procfs.rss(proc.pid)
    finally:
        proc.communicate(timeout=10)


def _timed(command: list[str], notify: NotifyListener | None, env: dict[str, str]) -> float:
    """Seconds from exec to READY=1 (with `notify`) or else to exit."""
    os.sync()  # an fsync of the command's own must not also write out what other processes left dirty
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=dict(os.environ, **env), stdout=subprocess.DEVNULL)
    try:
        if notify is not None:
            return notify.wait_for("READY=1") - start
        end = exited_at(proc, 60)
        if proc.returncode != 0:
            raise RuntimeError(f"{command[1]} exited {proc.returncode}")
        return end - start
    finally:
        stop_process(proc)


def exited_at(proc: subprocess.Popen, timeout: float) -> float:
    """The perf_counter reading when `proc` exits, to the system call: `Popen.wait(timeout)` polls with
    sleeps that double up to 50 ms, so an exit at 33 ms would be seen at 63 ms."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        exited = select.select([pidfd], [], [], timeout)[0]
        end = time.perf_counter()
    finally:
        os.close(pidfd)
    if not exited:
        raise subprocess.TimeoutExpired(proc.args, timeout)
    proc.wait()
    return end


def bare_ready(stage: Stage, notify: NotifyListener) -> float:
    """Seconds from exec to READY=1 of the floor: the installed interpreter binding a socket, saying READY."""
    sock = stage.base / "bare.sock"
    sock.unlink(missing_ok=True)
    return _timed([str(stage.python), "-c", BARE, str(sock)], notify, {"NOTIFY_SOCKET": str(notify.path)})


def daemon_ready(agent: AgentProcess, notify: NotifyListener, env: dict[str, str] | None = None) -> float:
    """Seconds from exec to READY=1 of `agent` (started with `env`), which is left running."""
    os.sync()
    start = time.perf_counter()
    agent.start({"NOTIFY_SOCKET": str(notify.path), **(env or {})}, wait=False)
    return notify.wait_for("READY=1") - start


def collect_seconds(stage: Stage, bin_dir: Path, agent: AgentProcess) -> float:
    """Seconds from exec to exit of `mikolicd collect-hardware` for `agent`'s configuration."""
    snapshots = stage.base / "snapshots"
    snapshots.mkdir(mode=0o700, exist_ok=True)
    return _timed([str(bin_dir / "mikolicd"), "collect-hardware", "--config", str(agent.config), "--output",
                   str(snapshots / f"{agent.dir.name}.json")], None, {})


def foreign_imports(stage: Stage, agent: AgentProcess, output: Path) -> list[str]:
    """The serving modules `mikolicd collect-hardware` loads, run through its real entry point."""
    probe = ("import json, sys\nfrom mikolicd.main import main\n"
             f"main(['collect-hardware', '--config', {str(agent.config)!r}, '--output', {str(output)!r}])\n"
             "print(json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([str(stage.python), "-c", probe], capture_output=True, text=True, check=True,
                          timeout=60, cwd=stage.base)
    loaded = json.loads(done.stdout.splitlines()[-1])
    return [m for m in loaded if m in SERVING or m.startswith(tuple(f"{s}." for s in SERVING))]


def startup(stage: Stage, scale: Scale) -> list[Outcome]:
    agent = stage.licensed_agent("startup")
    times: dict[str, list[float]] = {"bare": [], "daemon": [], "collect": []}
    with NotifyListener(stage.base / "notify-startup.sock") as notify:
        env = {"NOTIFY_SOCKET": str(notify.path)}
        for _ in range(scale.startup_runs + 1):  # the first round only warms the page cache
            times["bare"].append(bare_ready(stage, notify))
            times["daemon"].append(daemon_ready(agent, notify))
            report = agent.call("GET", "/v1/fingerprint")[1]
            agent.stop()
            times["collect"].append(collect_seconds(stage, stage.bin, agent))
            notify.drain()
        cached = fingerprint_cached(stage, agent, env, report)
    foreign = foreign_imports(stage, agent, stage.base / "snapshots" / "probe.json")
    ms = {name: median(samples[1:]) * 1000 for name, samples in times.items()}
    ready, collected = ms["daemon"] / ms["bare"], ms["collect"] / ms["bare"]
    runs = f"{scale.startup_runs} interleaved runs each, installed bytecode"
    return [
        Outcome("5. exec -> READY=1 vs a bare interpreter binding a socket and sending READY; fingerprint cached",
                f"{ready:.2f}x; {'cached' if cached else 'NOT cached'}", f"<= {STARTUP_LIMIT:g}x; read once",
                ready <= STARTUP_LIMIT and cached,
                f"daemon median {ms['daemon']:.0f} ms, bare interpreter {ms['bare']:.0f} ms; {runs}"),
        Outcome("5b. mikolicd collect-hardware, exec -> exit vs the bare interpreter; serving modules imported",
                f"{collected:.2f}x; {len(foreign)} imported", f"<= {COLLECT_LIMIT:g}x; 0",
                collected <= COLLECT_LIMIT and not foreign,
                f"collect-hardware median {ms['collect']:.0f} ms; {runs}; serving modules checked: "
                f"{', '.join(SERVING)}{'; imported: ' + ', '.join(foreign[:12]) if foreign else ''}"),
    ]


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


def _seconds_until(stamp: str | None) -> float:
    return dt.datetime.fromisoformat(stamp).timestamp() - time.time() if stamp else float("inf")


def idle(stage: Stage, scale: Scale) -> list[Outcome]:
    """Two daemons side by side over the same window: one without a watchdog, one with WATCHDOG_USEC."""
    quiet, watched = stage.licensed_agent("idle"), stage.licensed_agent("idle-watchdog")
    period = scale.watchdog_usec / 2_000_000  # sd_watchdog_enabled(): ping at half the timeout
    with NotifyListener(stage.base / "notify-idle.sock") as notify:
        try:
            quiet.start({"NOTIFY_SOCKET": str(notify.path)}, wait=False)
            notify.wait_for("READY=1")
            watched.start({"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(scale.watchdog_usec)},
                          wait=False)
            notify.wait_for("READY=1")
            time.sleep(1.0)  # start-up work and the first ping are over
            notify.drain()
            pids = {"quiet": quiet.proc.pid, "watched": watched.proc.pid}
            before = {name: procfs.voluntary_switches(pid) for name, pid in pids.items()}
            time.sleep(scale.idle_seconds)
            woke = {name: procfs.voluntary_switches(pid) - before[name] for name, pid in pids.items()}
            pings = sum("WATCHDOG=1" in m.split("\n") for m in notify.drain())
            planned = procfs.planned_sleep(pids["quiet"])
            status = quiet.status()
        finally:
            quiet.stop()
            watched.stop()
    minutes = scale.idle_seconds / 60
    expected = 60 / period
    # the loop's wait began before the window: the next event, seen from then, was at most this far off
    due = min(CHECKPOINT, _seconds_until(status.get("next_validation")),
              _seconds_until(status.get("offline_until"))) + scale.idle_seconds + 2
    in_time = planned is not None and planned <= due
    return [
        Outcome(f"6. idle wake-ups a minute without a watchdog, over {scale.idle_seconds:g} s",
                f"{woke['quiet'] / minutes:.1f}/min; next wake-up planned in {planned or 0:.0f} s",
                "0 observed; by the next event", woke["quiet"] == 0 and in_time,
                f"the wait the event loop is blocked in, read from the kernel, ends at the agent's next event: "
                f"the trusted-time checkpoint every {CHECKPOINT:g} s, so 0.1/min by design, with the next check "
                f"({status.get('next_validation')}) and the offline limit ({status.get('offline_until')}) later"),
        Outcome(f"6b. idle wake-ups a minute with WATCHDOG_USEC={scale.watchdog_usec / 1e6:g} s",
                f"{woke['watched'] / minutes:.1f}/min ({pings / minutes:.1f} pings/min)",
                f"<= {expected:g}/min (the pings)", woke["watched"] / minutes <= expected,
                f"ping every {period:g} s; {woke['watched']} voluntary switches, {pings} pings received"),
    ]
