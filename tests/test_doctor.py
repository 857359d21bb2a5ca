"""`mikolicctl doctor` against real servers on 127.0.0.1: each fault fails its own check with its own message."""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agentproc import AgentProcess, free_port
from conftest import RefServer
from hosts import container, pbx_box
from mikolicd import ctl, doctor, protocol
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
    def make(url: str = refserver.url, ca: Path = refserver.ca, server_extra: str = "") -> Path:
        return write_config(tmp_path, url, ca, refserver.trusted_keys, hardware, server_extra)
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
    assert "no agent answers" in check.verdict


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
    check = doctor.judge_last_validation(Path("agent.sock"), (200, status))
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
