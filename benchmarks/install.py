"""The package as a box has it: a non-editable install in a fresh venv, bytecode as the .deb ships it.

An editable checkout measures something else: setuptools' import hook runs at every interpreter start,
and modules are compiled on first import. Like `packaging/debian/rules`, the venv is made with the
system's own interpreter of this Python version when there is one (Debian's python3.11 on the box),
and the bytecode is compiled with unchecked hashes, so no import stats a source file. The venv reaches
the running environment's dependencies through a `.pth` line: nothing is downloaded, and both run the
same library versions.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "mikolicd")
SYSTEM_PYTHON = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
TIMEOUT = 300


def _run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} … failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


def interpreter() -> str:
    """The system's interpreter when it can run the environment's dependencies, else the running one."""
    if SYSTEM_PYTHON.exists():
        paths = os.pathsep.join(dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]))
        probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import httptools, nacl.signing, urllib3"],
                               env=dict(os.environ, PYTHONPATH=paths), capture_output=True, timeout=60)
        if probe.returncode == 0:
            return str(SYSTEM_PYTHON)
    return sys.executable


def install(base: Path, revision: str | None = None) -> Path:
    """Build the working tree (or a git `revision`) and install it into `base`/venv; returns its bin
    directory (python, mikolicd, mikolic-server)."""
    src, venv = base / "src", base / "venv"
    src.mkdir(parents=True)
    if revision is None:  # from a copy: the checkout gets no build/ or egg-info from a benchmark
        for name in SOURCES:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(ROOT / name, src / name)
    else:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, *SOURCES], capture_output=True,
                                 check=True, timeout=TIMEOUT).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True, timeout=TIMEOUT)
    _run(interpreter(), "-m", "venv", "--without-pip", str(venv))
    python = str(venv / "bin" / "python")
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"))
    paths = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    (site / "mikolicd-benchmark-deps.pth").write_text("".join(f"{p}\n" for p in paths))
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-compile",
         "--disable-pip-version-check", str(src))
    _run(python, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(site / "mikolicd"))
    os.sync()  # else the first fsync of a daemon or of collect-hardware also writes out the whole install
    return venv / "bin"
