"""The box's Debian package, built, installed on this machine with dpkg, run, and purged.

Installing a package changes the machine, so these run only as root (as CI does). PID 1 here need not
be systemd: the units are checked with systemd's tools, and the installed daemon is run directly, as the
package's user, the way the service would run it.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentproc import uds_call, wait_for
from hosts import pbx_box
from mikolicd import journal

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging" / "debian"
SITE = Path("/usr/lib/mikolicd/lib/python3.11/site-packages")
STATE = Path("/var/lib/mikolicd")
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}  # nothing of the test's venv
BUILD_TIMEOUT = 300
STATE_CHANGED = journal.STATE_CHANGED  # one of the catalog's message ids

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="installs a package: root only"),
    pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed"),
    pytest.mark.timeout(BUILD_TIMEOUT + 120),
]


def run(*args: str | Path, timeout: float = 60, env: dict[str, str] | None = CLEAN_ENV) -> str:
    done = subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{' '.join(map(str, args))} exited {done.returncode}: {done.stdout}{done.stderr}"
    return done.stdout


def package_status() -> str:
    """dpkg's two-letter state of the package ("ii" installed, "rc" config files left), "" when unknown."""
    done = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "mikolicd"], capture_output=True,
                          text=True, timeout=30)
    return done.stdout.strip() if done.returncode == 0 else ""


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    done = subprocess.run([PACKAGING / "build-deb", out], capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    [package] = out.glob("mikolicd_*.deb")
    return package


@pytest.fixture(scope="module")
def installed(deb: Path) -> Iterator[list[str]]:
    """The package installed with dpkg -i; its file list. Purged at the end if a test has not done so."""
    if package_status():
        pytest.fail("a mikolicd package is already on this machine: the test installs and purges its own build")
    run("dpkg", "-i", deb, timeout=120)
    try:
        yield run("dpkg-query", "-L", "mikolicd").split()
    finally:
        if package_status():
            run("dpkg", "--purge", "mikolicd", timeout=120)


@dataclass(frozen=True)
class Activation:
    """What the installed daemon did against the reference server."""

    code: int
    status: dict
    daemon_uid: int
    ctl_status: dict
    state_owners: set[str]


def start_installed_daemon(config: Path, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(["setpriv", "--reuid", "mikolicd", "--regid", "mikolicd", "--init-groups",
                                 "/usr/bin/mikolicd", "run", "--config", str(config)],
                                stdout=out, stderr=subprocess.STDOUT, env=CLEAN_ENV, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def real_uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE).group(1))


@pytest.fixture(scope="module")
def activation(installed: list[str], refserver) -> Iterator[Activation]:
    """The installed daemon, run as its user with a socket in a temporary directory, activated through it."""
    with tempfile.TemporaryDirectory(prefix="mikolicd-package-") as name:
        home = Path(name)
        shutil.copy(refserver.trusted_keys, home / "trusted_keys.pem")
        shutil.copy(refserver.ca, home / "ca.pem")
        pbx_box(home / "hw", seed=41)
        sock, snapshot, config = home / "mikolicd.sock", home / "hardware.json", home / "mikolicd.toml"
        config.write_text(
            f'[server]\nurl = "{refserver.url}"\ntrusted_keys = "{home / "trusted_keys.pem"}"\n'
            f'ca_file = "{home / "ca.pem"}"\ntimeout = "5s"\n\n[api]\nsocket = "{sock}"\n\n'
            f'[hardware]\nroot = "{home / "hw"}"\ndmidecode = ""\nsnapshot = "{snapshot}"\n')
        user = pwd.getpwnam("mikolicd")
        for path in [home, *home.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
        # As the unit does: the root-only hardware snapshot first, then the daemon as its own user.
        run("/usr/bin/mikolicd", "collect-hardware", "--config", config, "--output", snapshot)
        proc = start_installed_daemon(config, home / "agent.log")
        try:
            wait_for(lambda: sock.exists() or proc.poll() is not None, 20, "the installed daemon's socket")
            assert proc.poll() is None, (home / "agent.log").read_text()[-2000:]
            wait_for(lambda: uds_call(sock, "GET", "/v1/health", timeout=2)[0] == 200, 20, "the daemon to answer")
            uid = real_uid(proc.pid)
            code, status = uds_call(sock, "POST", "/v1/activation", {"registration_number": refserver.issue()})
            ctl = json.loads(run("/usr/bin/mikolicctl", "--socket", sock, "--json", "status"))
            owners = {pwd.getpwuid(path.stat().st_uid).pw_name for path in STATE.rglob("*")}
        finally:
            stop(proc)
        yield Activation(code, status, uid, ctl, owners)


def test_package_version_is_the_project_version(deb):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert run("dpkg-deb", "--field", deb, "Version").strip() == project


def test_package_installs_the_commands_units_and_configuration(installed):
    assert {"/usr/bin/mikolicd", "/usr/bin/mikolicctl", "/lib/systemd/system/mikolicd.service",
            "/lib/systemd/system/mikolicd.socket", "/usr/lib/sysusers.d/mikolicd.conf",
            "/usr/lib/tmpfiles.d/mikolicd.conf", "/usr/lib/systemd/catalog/mikolicd.catalog",
            "/etc/mikolicd/mikolicd.toml", "/etc/mikolicd/trusted_keys.pem"} <= set(installed)


@pytest.mark.parametrize("source, target", [
    ("systemd/mikolicd.service", "/lib/systemd/system/mikolicd.service"),
    ("systemd/mikolicd.socket", "/lib/systemd/system/mikolicd.socket"),
    ("systemd/sysusers.d/mikolicd.conf", "/usr/lib/sysusers.d/mikolicd.conf"),
    ("systemd/tmpfiles.d/mikolicd.conf", "/usr/lib/tmpfiles.d/mikolicd.conf"),
    ("systemd/catalog/mikolicd.catalog", "/usr/lib/systemd/catalog/mikolicd.catalog"),
    ("etc/mikolicd.toml", "/etc/mikolicd/mikolicd.toml"),
    ("etc/trusted_keys.pem", "/etc/mikolicd/trusted_keys.pem"),
    ("clients/php/src/Client.php", "/usr/share/php/Mikolicd/Client.php"),
    ("clients/php/compat/License.php", "/usr/share/php/MikoPBX/Service/License.php"),
])
def test_installed_files_are_the_project_files_as_they_are(installed, source, target):
    assert Path(target).read_bytes() == (ROOT / source).read_bytes()


def test_configuration_is_kept_across_upgrades_as_conffiles(installed):
    conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "mikolicd").split()
    assert {"/etc/mikolicd/mikolicd.toml", "/etc/mikolicd/trusted_keys.pem"} <= set(conffiles)


def test_the_box_gets_no_reference_server_and_no_dev_pki(installed):
    assert [path for path in installed if re.search(r"mikolic-server|refserver|devpki|aiohttp|cryptography",
                                                    path)] == []


def test_bundled_libraries_are_the_pinned_releases(installed):
    pins = dict(line.split("==") for line in (PACKAGING / "constraints.txt").read_text().split()
                if "==" in line and not line.startswith("#"))
    bundled = dict(path.name.removesuffix(".dist-info").rsplit("-", 1) for path in SITE.glob("*.dist-info"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert {normalized(name): version for name, version in bundled.items()} == {
        **{normalized(name): version for name, version in pins.items()}, "mikolicd": project}


def test_copyright_names_every_bundled_library(installed):
    copyright_text = Path("/usr/share/doc/mikolicd/copyright").read_text()
    bundled = [path.name.removesuffix(".dist-info").rsplit("-", 1)[0] for path in SITE.glob("*.dist-info")]
    assert [name for name in map(normalized, bundled) if name != "mikolicd" and f" {name} " not in copyright_text] == []


def test_every_module_ships_its_bytecode(installed):
    """So the interpreter never compiles at run time, and never writes a file the package does not own."""
    missing = [str(source) for source in SITE.rglob("*.py")
               if not (source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc").exists()]
    assert missing == []


@pytest.mark.parametrize("command", ["/usr/bin/mikolicd", "/usr/bin/mikolicctl"])
def test_commands_run_on_the_bundled_environment_alone(installed, command):
    assert "usage:" in run(command, "--help")


def test_sysusers_and_tmpfiles_make_the_account_and_directories(installed):
    run("systemd-sysusers", "/usr/lib/sysusers.d/mikolicd.conf")
    run("systemd-tmpfiles", "--create", "/usr/lib/tmpfiles.d/mikolicd.conf")
    user = pwd.getpwnam("mikolicd")
    assert (user.pw_dir, user.pw_shell) == ("/var/lib/mikolicd", "/usr/sbin/nologin")
    config, state = os.stat("/etc/mikolicd"), os.stat(STATE)
    assert (stat.S_IMODE(config.st_mode), config.st_uid, config.st_gid) == (0o750, 0, user.pw_gid)
    assert (stat.S_IMODE(state.st_mode), state.st_uid, state.st_gid) == (0o700, user.pw_uid, user.pw_gid)


def test_installed_units_pass_systemd_analyze_verify(installed):
    assert run("systemd-analyze", "verify", "--man=no", "/lib/systemd/system/mikolicd.service",
               "/lib/systemd/system/mikolicd.socket") == ""


def test_installing_enables_the_service_and_its_socket(installed):
    assert Path("/etc/systemd/system/multi-user.target.wants/mikolicd.service").is_symlink()
    assert Path("/etc/systemd/system/sockets.target.wants/mikolicd.socket").is_symlink()


def test_installing_registers_the_journal_catalog(installed):
    assert STATE_CHANGED in run("journalctl", "--list-catalog")


def test_installed_daemon_activates_through_its_socket(activation):
    assert (activation.code, activation.status["state"]) == (200, "active"), activation.status


def test_installed_daemon_runs_as_its_own_user_and_owns_its_state(activation):
    assert activation.daemon_uid == pwd.getpwnam("mikolicd").pw_uid
    assert activation.state_owners == {"mikolicd"}


def test_installed_mikolicctl_reads_the_status(activation):
    assert activation.ctl_status["state"] == "active"


def test_an_upgrade_keeps_the_edited_configuration_and_the_state(deb, activation):
    config = Path("/etc/mikolicd/mikolicd.toml")
    shipped = config.read_text()
    state = sorted(STATE.rglob("*"))
    config.write_text(shipped + "# edited by the admin\n")
    try:
        run("dpkg", "-i", deb, timeout=120)
        assert config.read_text().endswith("# edited by the admin\n")
        assert sorted(STATE.rglob("*")) == state and state
    finally:
        config.write_text(shipped)


def test_purge_leaves_nothing_but_the_account(installed, activation):
    run("dpkg", "--purge", "mikolicd", timeout=120)
    assert package_status() == ""
    shared_dirs_only = [path for path in installed
                        if os.path.lexists(path) and (not os.path.isdir(path) or "mikolicd" in path)]
    assert shared_dirs_only == []
    assert not STATE.exists()
    enablement = [str(path) for base in ("/etc/systemd/system", "/var/lib/systemd/deb-systemd-helper-enabled")
                  for path in Path(base).rglob("mikolicd*")]
    assert enablement == []
    assert STATE_CHANGED not in run("journalctl", "--list-catalog")
    assert pwd.getpwnam("mikolicd").pw_dir == "/var/lib/mikolicd"  # Debian keeps system accounts
