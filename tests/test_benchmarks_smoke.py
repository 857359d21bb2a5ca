"""The quick benchmark run still works end to end; its figures are noise on a shared machine, so only the
shape of the report is checked."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ["1.", "2.", "3.", "4.", "5.", "5b.", "6.", "6b.", "7.", "7b."]


@pytest.mark.timeout(180)
def test_quick_run_prints_a_table_row_with_a_verdict_for_every_target():
    run = subprocess.Popen([sys.executable, "-m", "benchmarks.run", "--quick"], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = run.communicate(timeout=150)
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGINT)  # its `finally` stops the servers and daemons it started
            try:
                run.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
    assert run.returncode == 0, stderr[-2000:]
    rows = [line for line in stdout.splitlines() if re.match(r"\| \d", line)]
    assert [row.split()[1] for row in rows] == TARGETS, stdout
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[3] in ("PASS", "FAIL") and cells[1] != "error", row
    for row in rows[:2]:  # the status figures are read against both floors, measured in the same run
        assert re.search(r"asyncio \d+ us, C \d+ us", row), row
    assert re.search(rf"\d+/{len(TARGETS)} targets met", stdout)
