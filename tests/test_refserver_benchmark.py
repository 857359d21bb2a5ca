"""The reference server benchmark still runs end to end; its figures are noise on a shared machine, so only
the shape of its report is checked."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ["new trial", "trial again from its host", "validation", "ping (floor)",
           "the validation's one write (row + fsync)", "WAL pages written per validation"]


@pytest.mark.timeout(150)
def test_the_quick_run_prints_every_figure_beside_its_baseline():
    run = subprocess.Popen([sys.executable, "-m", "benchmarks.refserver", "--quick"], cwd=ROOT, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGINT)  # its `finally` stops the servers it started
            try:
                run.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
    assert run.returncode == 0, stderr[-2000:]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| figure")]
    assert [row[0] for row in rows] == FIGURES, stdout
    assert all(re.fullmatch(r"[\d.]+( ms)?", cell) for row in rows for cell in row[1:3]), stdout
