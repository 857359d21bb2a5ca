"""The quick benchmark run still works end to end; its figures are noise on a shared machine, so only the
shape of the report is checked."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ["1.", "2.", "3.", "4.", "5.", "6.", "7.", "7b."]


@pytest.mark.timeout(180)
def test_quick_run_prints_a_table_row_with_a_verdict_for_every_target():
    done = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if re.match(r"\| \d", line)]
    assert [row.split()[1] for row in rows] == TARGETS, done.stdout
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[3] in ("PASS", "FAIL") and cells[1] != "error", row
    assert re.search(r"\d+/8 targets met", done.stdout)
