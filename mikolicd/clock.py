"""The two clocks the agent reads: the wall clock, which the box's owner can set, and CLOCK_BOOTTIME,
which nobody can set and which keeps counting through suspend. `trust` decides what they mean."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from .trust import Reading

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class Clock(Protocol):
    def read(self) -> Reading: ...


class SystemClock:
    """The kernel's clocks; the boot id is read once, since it cannot change while the process lives."""

    def __init__(self, boot_id_file: Path = BOOT_ID):
        try:
            self.boot_id = boot_id_file.read_text().strip()
        except OSError:
            self.boot_id = ""  # no procfs: every start counts as a new boot, which only shortens trust

    def read(self) -> Reading:
        return Reading(time.time(), time.clock_gettime(time.CLOCK_BOOTTIME), self.boot_id)

