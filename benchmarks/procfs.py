"""What the kernel says about a process: resident memory, CPU time, wake-ups, what it is blocked in.

Read from /proc directly, so a figure means exactly what the kernel counts and nothing is sampled.
"""
from __future__ import annotations

import os
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
# x86-64 system call numbers of the event loop's wait (select.epoll.poll), with the argument holding the
# timeout in milliseconds
EPOLL_TIMEOUT_ARG = {232: 4, 281: 4}  # epoll_wait, epoll_pwait


def _tasks(pid: int) -> list[Path]:
    return sorted(Path(f"/proc/{pid}/task").iterdir())


def rss(pid: int) -> int:
    """Resident bytes, shared library pages included: what the box's memory actually holds for it."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def cpu_seconds(pid: int) -> float:
    """CPU time of every live thread, in nanosecond resolution (schedstat), user and system together."""
    total = 0
    for task in _tasks(pid):
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def voluntary_switches(pid: int) -> int:
    """Times any thread went to sleep of its own accord: one per wake-up of an idle thread."""
    total = 0
    for task in _tasks(pid):
        try:
            status = (task / "status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += next(int(line.split()[1]) for line in status.splitlines()
                      if line.startswith("voluntary_ctxt_switches:"))
    return total


def planned_sleep(pid: int) -> float | None:
    """Seconds the main thread's event loop asked to sleep in the wait it is blocked in; None when it is
    not blocked in one (or waits without a timeout, which is reported as infinity)."""
    fields = Path(f"/proc/{pid}/syscall").read_text().split()
    if not fields or not fields[0].isdigit() or int(fields[0]) not in EPOLL_TIMEOUT_ARG:
        return None
    timeout = int(fields[EPOLL_TIMEOUT_ARG[int(fields[0])]], 16)
    if timeout >= 1 << 31:  # a negative int: no timeout
        return float("inf")
    return timeout / 1000
