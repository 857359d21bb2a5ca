"""`mikolicctl doctor` against real servers on 127.0.0.1: each fault fails its own check with its own message."""
from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from agentproc import AgentProcess, free_port, running, uds_call, wait_for
from conftest import RefServer
from hosts import container, pbx_box
from mikolicd import ctl, doctor, protocol
from mikolicd.config import DEFAULT_PATH, ConfigError
from mikolicd.devpki import Pki, make_pki

SKEW = 2 * 3600
TRIAL = {"companyname": "Example LLC", "email": "doctor@example.test", "contact": "Ann Admin"}


def write_config(directory: Path, url: str, ca: Path, trusted_keys: Path, hardware: Path,
                 server_extra: str = "") -> Path:
    """A private state directory and a socket path of its own, so only the fault under test shows."""
    state = directory / "state"
    state.mkdir(mode=0o700)
    config = directory / "mikolicd.toml"
    config.write_text(
        f'[server]\nurl = "{url}"\ntrusted_keys = "{trusted_keys}"\nca_file = "{ca}"\ntimeout = "3s"\n'
        f'{server_extra}\n[storage]\nstate_dir = "{state}"\n\n[api]\nsocket = "{directory / "agent.sock"}"\n\n'
        f'[hardware]\nroot = "{hardware}"\ndmidecode = ""\n')
    return config


@pytest.fixture(scope="module")
def hardware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pbx_box(tmp_path_factory.mktemp("hw"), 41).root


@pytest.fixture
def configure(tmp_path: Path, refserver: RefServer, hardware: Path):
    def make(url: str = refserver.url, ca: Path = refserver.ca, server_extra: str = "",
             trusted_keys: Path = refserver.trusted_keys) -> Path:
        return write_config(tmp_path, url, ca, trusted_keys, hardware, server_extra)
    return make


def by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


class SkewedPing(BaseHTTPRequestHandler):
    """Answers the ping like the reference server, but from a clock two hours slow."""

    def do_GET(self) -> None:
        if self.path != protocol.PING:
            self.send_error(404)
            return
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def date_time_string(self, timestamp: float | None = None) -> str:
        return super().date_time_string(time.time() - SKEW)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test asserts on the doctor's verdicts, not on access lines."""


@pytest.fixture
def skewed_server(pki: Pki) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SkewedPing)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert, pki.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_network_checks_pass_against_the_reference_server(configure):
    checks = by_name(doctor.run(configure()))
    assert {n: checks[n].status for n in doctor.NETWORK} == dict.fromkeys(doctor.NETWORK, "pass")
    assert "mikolicd development CA" in checks["tls"].verdict


def test_last_validation_is_skipped_not_failed_when_no_agent_runs(configure):
    check = by_name(doctor.run(configure()))["last_validation"]
    assert check.ok is None
    assert "no last validation to show: no agent socket at" in check.verdict


def test_closed_port_fails_tcp_connect(configure):
    checks = by_name(doctor.run(configure(url=f"https://127.0.0.1:{free_port()}")))
    assert checks["dns"].ok is True
    assert checks["tcp"].ok is False
    assert "refused" in checks["tcp"].verdict
    assert [checks[n].status for n in ("tls", "http_ping", "clock")] == ["skip"] * 3


def test_wrong_ca_fails_tls_showing_the_issuer_as_likely_interception(configure, tmp_path):
    other = make_pki(tmp_path / "other-ca")
    check = by_name(doctor.run(configure(ca=other.ca)))["tls"]
    assert check.ok is False
    assert 'issued by "mikolicd development CA"' in check.verdict
    assert "TLS interception is likely" in check.verdict
    assert check.detail["issuer"] == "mikolicd development CA"


def test_unresolvable_name_fails_dns(configure):
    checks = by_name(doctor.run(configure(url="https://licensing.mikolicd-doctor.invalid")))
    assert checks["dns"].ok is False
    assert "licensing.mikolicd-doctor.invalid does not resolve" in checks["dns"].verdict
    assert checks["tcp"].ok is None


def test_server_clock_two_hours_off_fails_the_clock_check_with_the_offset(configure, skewed_server):
    checks = by_name(doctor.run(configure(url=skewed_server)))
    assert checks["http_ping"].ok is True
    assert checks["clock"].ok is False
    assert "2 h 00 min ahead" in checks["clock"].verdict
    assert abs(checks["clock"].detail["offset_seconds"] - SKEW) <= 60


def test_configured_proxy_is_the_first_hop(configure):
    port = free_port()
    check = by_name(doctor.run(configure(server_extra=f'proxy = "http://127.0.0.1:{port}"\n')))["tcp"]
    assert check.ok is False
    assert f"the proxy 127.0.0.1:{port}" in check.verdict


def test_proxy_check_says_the_daemon_ignores_the_environment(configure, monkeypatch):
    monkeypatch.setenv("https_proxy", "http://user:secret@proxy.example:3128")
    check = by_name(doctor.run(configure()))["proxy"]
    assert check.ok is True
    assert "http://user:***@proxy.example:3128 is ignored by the daemon" in check.verdict
    assert "secret" not in json.dumps(check.to_json())


def test_invalid_config_fails_naming_the_key_and_skips_the_rest(tmp_path):
    config = tmp_path / "mikolicd.toml"
    config.write_text('[server]\ntimeout = "soon"\n')
    checks = doctor.run(config)
    assert checks[0].ok is False and "[server] timeout" in checks[0].verdict
    assert [c.name for c in checks] == list(doctor.CHECKS)
    assert {c.status for c in checks[1:]} == {"skip"}


def test_state_directory_readable_by_others_fails(configure):
    config = configure()
    state = config.parent / "state"
    (state / "state.json").write_text("{}")
    state.chmod(0o755)
    check = by_name(doctor.run(config))["state_dir"]
    assert check.ok is False
    assert f"{state} is 0755" in check.verdict


def test_socket_with_another_mode_than_configured_fails(configure):
    config = configure()
    path = config.parent / "agent.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        listener.listen()
        path.chmod(0o666)
        check = by_name(doctor.run(config))["socket"]
    assert check.ok is False
    assert "mode 0666 where [api] socket_mode is 0660" in check.verdict


def test_fingerprint_with_fewer_than_two_strong_ids_fails(tmp_path, refserver):
    config = write_config(tmp_path, refserver.url, refserver.ca, refserver.trusted_keys,
                          container(tmp_path / "hw").root)
    check = by_name(doctor.run(config))["fingerprint"]
    assert check.ok is False
    assert check.verdict.startswith("0 of 6 strong host ids readable")


def test_clock_within_five_minutes_passes():
    assert doctor.judge_clock(1_000_000.0, 1_000_120.0).ok is True


def test_failed_last_validation_fails_with_the_server_message():
    status = {"last_validation": {"at": "2025-01-01T00:00:00Z", "outcome": "refused", "server_code": 2008,
                                  "message": "(2008) No free license features seat"}}
    check = doctor.judge_last_validation(doctor.AgentFacts(Path("agent.sock"), {"ok": True}, (200, status)))
    assert check.ok is False
    assert "(2008) No free license features seat" in check.verdict


def test_json_output_lists_every_check_and_exits_1_on_a_failure(configure, capsys):
    code = ctl.main(["--json", "doctor", "--config", str(configure(url=f"https://127.0.0.1:{free_port()}"))])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["ok"] is False
    assert [c["name"] for c in report["checks"]] == list(doctor.CHECKS)
    assert set(report["checks"][0]) == {"name", "ok", "status", "verdict", "fix", "detail"}
    assert next(c for c in report["checks"] if c["name"] == "tcp")["fix"]


def test_doctor_exits_0_when_everything_passes_with_the_agent_running(tmp_path, refserver, capsys):
    hw = pbx_box(tmp_path / "hw", 42).root
    agent = AgentProcess(tmp_path, "agent", refserver.url, refserver.trusted_keys, refserver.ca, hw)
    agent.start()
    try:
        assert agent.call("POST", "/v1/registration", TRIAL)[0] == 200
        code = ctl.main(["doctor", "--config", str(agent.config)])
    finally:
        agent.stop()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [["PASS", name] for name in doctor.CHECKS]
    assert lines[-1] == "all checks passed"
    assert code == 0


# ------------------------------------------------------------------ finding the agent and its configuration


@pytest.fixture
def dev_setup(short_dir: Path) -> Iterator[Path]:
    """`mikolicd dev` as the README starts it; its socket once the agent answers. Stopped by pid, its
    reference server too."""
    proc = subprocess.Popen(["mikolicd", "dev", "--dir", str(short_dir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    sock, children = short_dir / "mikolicd.sock", []
    try:
        wait_for(lambda: proc.poll() is not None or healthy(sock), 60, "mikolicd dev to answer")
        assert proc.poll() is None, f"mikolicd dev exited {proc.returncode}"
        children = psutil.Process(proc.pid).children(recursive=True)  # taken while dev runs: it may die
        yield sock
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        finally:
            for child in children:
                if child.is_running():
                    child.kill()


def healthy(sock: Path) -> bool:
    try:
        return uds_call(sock, "GET", "/v1/health", timeout=2)[0] == 200
    except OSError:
        return False


def test_doctor_finds_the_dev_setups_configuration_through_its_socket(dev_setup):
    done = subprocess.run(["mikolicctl", "--socket", str(dev_setup), "doctor", "--json"], capture_output=True,
                          text=True, timeout=60)
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["config"]["status"] == "pass", checks["config"]
    assert checks["config"]["detail"]["path"] == str(dev_setup.with_name("mikolicd.toml"))
    assert checks["socket"]["status"] == "pass" and checks["http_ping"]["status"] == "pass"


def test_doctor_asks_the_running_agent_for_its_configuration(tmp_path, refserver):
    agent = AgentProcess(tmp_path, "agent", refserver.url, refserver.trusted_keys, refserver.ca,
                         pbx_box(tmp_path / "hw", 43).root)
    with running(agent):
        check = by_name(doctor.run(sock=agent.sock))["config"]
    assert check.ok is True
    assert check.detail == {"path": str(agent.config), "origin": f"named by the agent on {agent.sock}"}


def test_without_an_agent_or_config_the_fix_says_to_pass_config(tmp_path):
    nobody = doctor.probe_agent(tmp_path / "none.sock", 1)
    located = doctor.Located(DEFAULT_PATH, "the default", nobody)
    check = doctor.judge_unloadable(located, ConfigError(f"{DEFAULT_PATH}: cannot read the configuration"))
    assert check.ok is False
    assert "pass --config FILE (for mikolicd dev: --config DIR/mikolicd.toml)" in check.fix


def test_stale_socket_fails_the_socket_check(configure):
    config = configure()
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(config.parent / "agent.sock"))  # never listening, and left behind: a killed agent's socket
    check = by_name(doctor.run(config))["socket"]
    assert check.ok is False
    assert "is a stale socket: no agent accepts connections on it" in check.verdict
    assert check.fix.startswith("start mikolicd")


# --------------------------------------------------------------------------- files the daemon would refuse


def test_trusted_keys_without_a_key_fail_the_config_check_as_the_daemon_would(configure, tmp_path):
    placeholder = tmp_path / "placeholder.pem"
    placeholder.write_text("# install the licensing server's public key here\n")
    check = by_name(doctor.run(configure(trusted_keys=placeholder)))["config"]
    assert check.ok is False
    assert f"[server] trusted_keys {placeholder}: no Ed25519 public key found" in check.verdict


def test_a_missing_ca_file_fails_the_config_check_naming_the_key(configure, tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    check = by_name(doctor.run(configure(ca=missing)))["config"]
    assert check.ok is False
    assert f"[server] ca_file {missing}: No such file or directory" in check.verdict


def test_doctor_runs_without_the_cryptography_package(configure):
    """The box does not install `cryptography`; doctor must still judge TLS with the `ssl` module alone."""
    script = ("import sys, json\n"
              "class Blocked:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name.split('.')[0] == 'cryptography': raise ImportError('blocked for the test')\n"
              "sys.meta_path.insert(0, Blocked())\n"
              "from mikolicd import doctor\n"
              f"checks = doctor.run(doctor.Path({str(configure())!r}))\n"
              "print(json.dumps({c.name: [c.status, c.verdict] for c in checks}))\n"
              "assert 'cryptography' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    checks = json.loads(done.stdout)
    assert checks["tls"][0] == "pass" and 'issued by "mikolicd development CA"' in checks["tls"][1]
    assert checks["config"][0] == "pass"


def test_without_cryptography_an_untrusted_issuer_still_reads_as_likely_interception():
    found = doctor.TlsFacts(None, "unable to get local issuer certificate", 20)
    check = doctor.judge_tls("lic.example", found, dt.datetime.now(dt.timezone.utc))
    assert check.ok is False and "TLS interception is likely" in check.verdict


def test_the_last_validation_is_still_shown_after_a_release(tmp_path, refserver):
    agent = AgentProcess(tmp_path, "agent", refserver.url, refserver.trusted_keys, refserver.ca,
                         pbx_box(tmp_path / "hw", 44).root)
    with running(agent):
        assert agent.call("POST", "/v1/activation", {"registration_number": refserver.issue()})[0] == 200
        assert agent.call("POST", "/v1/validation")[0] == 200
        assert agent.call("DELETE", "/v1/activation")[0] == 200
        check = by_name(doctor.run(agent.config))["last_validation"]
    assert check.ok is True and "succeeded" in check.verdict
