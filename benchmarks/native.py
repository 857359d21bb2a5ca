"""The C tools, compiled into the stage: the load generator and the canned-reply server (the C floor)."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMPILER = os.environ.get("CC", "cc")


@dataclass(frozen=True)
class Load:
    """What one load generator run did."""

    requests: int
    errors: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def compiled(name: str, out_dir: Path) -> Path:
    """`benchmarks/<name>.c` built with optimisation; a missing compiler is an error the run reports."""
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / name
    if not binary.exists():
        subprocess.run([COMPILER, "-O2", "-o", str(binary), str(HERE / f"{name}.c")], check=True,
                       capture_output=True, timeout=120)
    return binary


def generate(loadgen: Path, sock: Path, mode: str, connections: int, seconds: float,
             max_requests: int | None = None) -> Load:
    """Run the load generator to its end: `mode` is "close" (a connection per request) or "keepalive"."""
    args = [str(loadgen), str(sock), mode, str(connections), str(seconds)]
    if max_requests is not None:
        args.append(str(max_requests))
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    fields = dict(item.split("=") for item in out.split())
    return Load(int(fields["requests"]), int(fields["errors"]), float(fields["seconds"]))
