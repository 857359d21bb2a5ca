"""The systemd units, sysusers/tmpfiles entries and message catalog, checked by systemd's own tools."""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mikolicd import journal

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
EXEC_PATH = re.compile(r"^(Exec\w*=[-+!@:]*)/usr/(?:local/)?bin/(mikolicd|mikolicctl|python3)\b", re.MULTILINE)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def daemon_script() -> str:
    """The installed console script; the interpreter stands in while the script is not installed."""
    scripts = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return shutil.which("mikolicd", path=scripts) or sys.executable


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """Copies whose Exec lines name binaries that exist here, as `systemd-analyze verify` requires."""
    service = (SYSTEMD / "mikolicd.service").read_text()
    (tmp_path / "mikolicd.service").write_text(EXEC_PATH.sub(lambda m: m.group(1) + daemon_script(), service))
    shutil.copy(SYSTEMD / "mikolicd.socket", tmp_path)
    return tmp_path


def settings(unit: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith(("#", ";")):
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_units_pass_systemd_analyze_verify(units):
    result = run(tool("systemd-analyze"), "verify", "--man=no",
                 str(units / "mikolicd.service"), str(units / "mikolicd.socket"))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_service_exposure_is_at_most_two(units):
    result = run(tool("systemd-analyze"), "security", "--offline=yes", str(units / "mikolicd.service"))
    score = re.search(r"exposure level for mikolicd\.service:\s*([0-9.]+)", result.stdout)
    assert score, result.stdout[-400:] + result.stderr[-400:]
    assert float(score.group(1)) <= 2.0, result.stdout


def test_service_runs_the_daemon_as_a_watched_notify_service():
    service = settings("mikolicd.service")
    assert service["Type"] == ["notify"] and service["NotifyAccess"] == ["main"]
    assert service["WatchdogSec"] == ["30s"] and service["Restart"] == ["on-failure"]
    assert service["ExecStart"] == ["/usr/bin/mikolicd run --config /etc/mikolicd/mikolicd.toml"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["ExecStartPre"] == ["+/usr/bin/mikolicd collect-hardware --config /etc/mikolicd/mikolicd.toml"
                                       " --output /run/mikolicd/hardware.json"]
    assert service["User"] == service["Group"] == ["mikolicd"]
    assert "PrivateNetwork" not in service


def test_socket_lives_outside_the_runtime_directory_for_the_web_admin_group():
    socket_unit = settings("mikolicd.socket")
    assert socket_unit["ListenStream"] == ["/run/mikolicd.sock"]
    assert socket_unit["SocketMode"] == ["0660"] and socket_unit["SocketGroup"] == ["www-data"]
    assert settings("mikolicd.service")["RuntimeDirectory"] == ["mikolicd"]


def test_sysusers_and_tmpfiles_create_the_account_and_private_directories(tmp_path):
    (tmp_path / "etc").mkdir()
    sysusers = run(tool("systemd-sysusers"), f"--root={tmp_path}", str(SYSTEMD / "sysusers.d/mikolicd.conf"))
    assert sysusers.returncode == 0, sysusers.stderr
    account = next(line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()
                   if line.startswith("mikolicd:"))
    uid, gid, shell = int(account[2]), int(account[3]), account[6]
    assert uid != 0 and shell == "/usr/sbin/nologin"
    tmpfiles = run(tool("systemd-tmpfiles"), f"--root={tmp_path}", "--create",
                   str(SYSTEMD / "tmpfiles.d/mikolicd.conf"))
    assert tmpfiles.returncode == 0, tmpfiles.stderr
    state, config = (tmp_path / "var/lib/mikolicd").stat(), (tmp_path / "etc/mikolicd").stat()
    assert (stat.S_IMODE(state.st_mode), state.st_uid, state.st_gid) == (0o700, uid, gid)
    assert (stat.S_IMODE(config.st_mode), config.st_uid, config.st_gid) == (0o750, 0, gid)


def test_catalog_documents_every_message_id(tmp_path):
    catalog_dir = tmp_path / "usr/lib/systemd/catalog"
    catalog_dir.mkdir(parents=True)
    shutil.copy(SYSTEMD / "catalog/mikolicd.catalog", catalog_dir)
    journalctl = tool("journalctl")
    update = run(journalctl, f"--root={tmp_path}", "--update-catalog")
    assert (update.returncode, update.stderr) == (0, "")
    listed = run(journalctl, f"--root={tmp_path}", "--list-catalog").stdout
    ids = {value for name, value in vars(journal).items() if name.isupper() and isinstance(value, str)
           and len(value) == 32 and all(c in "0123456789abcdef" for c in value)}
    assert len(ids) == 9
    assert {line.split()[0] for line in listed.splitlines()} == ids
