"""The reference server benchmark still runs end to end; its figures are noise on a shared machine, so only
the shape of its report is checked. It runs in process: the servers it starts are stopped by its own
`finally`, a timeout included."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import refserver as benchmark  # noqa: E402

FIGURES = ["new trial", "trial again from its host", "validation", "ping (floor)",
           "the validation's one write (row + fsync)", "WAL pages written per validation"]


@pytest.mark.timeout(120)
def test_the_quick_run_prints_every_figure_beside_its_baseline(capsys):
    assert benchmark.main(["--quick"]) == 0
    stdout = capsys.readouterr().out
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| figure")]
    assert [row[0] for row in rows] == FIGURES, stdout
    assert all(re.fullmatch(r"[\d.]+( ms)?", cell) for row in rows for cell in row[1:3]), stdout
