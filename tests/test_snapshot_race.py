"""`mikolicd collect-hardware` runs as root and writes into a directory the daemon's user owns: that user
must not be able to turn the write, or the chown that hands the file over, onto any other file."""
from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hosts import pbx_box

ROUNDS = 20
ATTACKER = r'''
import os, sys, time
directory, victim, stop = sys.argv[1], sys.argv[2], sys.argv[3]
while not os.path.exists(stop):
    try:
        names = os.listdir(directory)
    except OSError:
        continue
    for name in names + ["hardware.json"]:
        path = os.path.join(directory, name)
        try:
            if not os.path.islink(path):
                os.replace(path, path + ".moved") if os.path.exists(path) else None
                os.symlink(victim, path)
        except OSError:
            pass
'''

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")


@pytest.fixture
def daemon_user() -> Iterator[tuple[str, int, int]]:
    name = f"mlsnap{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True,
                   timeout=30)
    try:
        yield name, int(subprocess.check_output(["id", "-u", name])), int(subprocess.check_output(["id", "-g", name]))
    finally:
        subprocess.run(["userdel", name], capture_output=True, timeout=30)


def collect(config: Path, output: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("mikolicd")), "collect-hardware", "--config",
                           str(config), "--output", str(output)], capture_output=True, text=True, timeout=60)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    root = pbx_box(tmp_path / "hw", 77).root
    config = tmp_path / "c.toml"
    config.write_text(f'[hardware]\nroot = "{root}"\ndmidecode = ""\n')
    return config, tmp_path


def test_a_planted_symlink_never_redirects_the_write_or_the_chown(setup, daemon_user):
    config, tmp_path = setup
    name, uid, gid = daemon_user
    base = Path(tempfile.mkdtemp(prefix="mikolicd-race-"))
    try:
        base.chmod(0o711)
        run = base / "run"
        run.mkdir(mode=0o700)
        os.chown(run, uid, gid)
        victim = base / "victim"
        victim.write_text("root's file\n")
        os.chmod(victim, 0o644)
        stop = base / "stop"
        attacker = subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", sys.executable,
                                     "-c", ATTACKER, str(run), str(victim), str(stop)])
        try:
            results = [collect(config, run / "hardware.json") for _ in range(ROUNDS)]
        finally:
            stop.touch()
            attacker.wait(10)
        st = victim.lstat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o644)
        assert victim.read_text() == "root's file\n"
        assert all("Traceback" not in r.stderr for r in results)
        written = [p for p in run.iterdir() if p.is_file() and not p.is_symlink() and p.stat().st_uid == uid]
        assert written, [r.stderr for r in results][:3]
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_symlinked_output_directory_is_refused(setup):
    config, tmp_path = setup
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    done = collect(config, tmp_path / "link" / "hardware.json")
    assert done.returncode != 0 and list((tmp_path / "real").iterdir()) == []


def test_an_output_directory_others_may_write_is_refused(setup):
    config, tmp_path = setup
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    done = collect(config, shared / "hardware.json")
    assert done.returncode != 0 and list(shared.iterdir()) == []
