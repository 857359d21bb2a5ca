"""The legacy license.api as the PBX's PHP code uses it: real php-cli with curl, the real daemon, the real
reference server over TLS; over loopback TCP and over the Unix socket alike."""
from __future__ import annotations

import http.client
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests

from agentproc import AgentProcess, free_port, stopped_at_end, wait_for
from refclient import Agent as RefAgent, new_nonce
from conftest import RefServer
from hosts import pbx_box
from mikolicd.config import CompatSection
from mikolicd.agentclient import UnixConnection
from mikolicd.legacy import FORM, compat_listen, license_xml

PHP = Path(__file__).with_name("php")
NOBODY = 65534
TRIAL = {"companyname": 'Ромашка & Co "<Test>"', "email": "owner@romashka.example", "contact": "Анна Admin",
         "tel": "+7 495 000-00-00", "inn": "7701234567", "description": "office PBX"}
OTHER_HOST = {"components": {"system_uuid": "a1" * 32, "board_serial": "b2" * 32, "machine_id": "c3" * 32}}

pytestmark = pytest.mark.skipif(shutil.which("php") is None, reason="php-cli is not installed (.ci/run installs it)")


@dataclass
class Legacy:
    """One way to reach license.api: the PHP client, or raw HTTP for what no well-behaved client sends."""

    kind: str  # "tcp" or "unix"
    where: str  # HOST:PORT, or the socket path
    php_dir: Path = PHP
    user: int | None = None

    def php(self, method: str, **fields: str) -> dict:
        done = subprocess.run(
            ["php", str(self.php_dir / "licensectl.php"), self.kind, self.where, method,
             *(f"{name}={value}" for name, value in fields.items())],
            capture_output=True, text=True, timeout=30, user=self.user, group=self.user,
            extra_groups=[] if self.user is not None else None)
        assert done.returncode == 0, done.stderr + done.stdout
        return json.loads(done.stdout)

    def http(self, verb: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict]:
        if self.kind == "unix":
            conn: http.client.HTTPConnection = UnixConnection(Path(self.where), 30)
        else:
            host, port = self.where.rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request(verb, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()


def ok(answer: dict) -> dict:
    assert answer["success"], answer
    return answer


def refused(answer: dict) -> dict:
    assert not answer["success"] and answer["status"] != 200, answer
    return answer


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    """Traversable by everyone, so a PHP client running as another user can reach the socket."""
    path = Path(tempfile.mkdtemp(prefix="mikolicd-legacy-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def daemons(base: Path, refserver: RefServer) -> Iterator:
    """Agents on distinct fake hosts; every one is stopped (by pid) when the module ends."""
    def make(name: str, seed: int, compat: str, timeout: str = "3s") -> AgentProcess:
        return AgentProcess(base, name, refserver.url, refserver.trusted_keys, refserver.ca,
                            pbx_box(base / f"hw-{name}", seed).root, extra=f"\n[compat]\n{compat}\n",
                            timeout=timeout)

    yield from stopped_at_end(make)


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def pbx(daemons, port: int) -> AgentProcess:
    """The PBX's own agent, on loopback TCP too. Its server timeout outlasts the PHP client's, so a call
    that waited for the licensing server would make the client give up."""
    return daemons("pbx", 41, f'listen = "127.0.0.1:{port}"', timeout="60s").start()


@pytest.fixture(scope="module")
def tcp(pbx: AgentProcess, port: int) -> Legacy:
    return Legacy("tcp", f"127.0.0.1:{port}")


@pytest.fixture(params=["tcp", "unix"])
def legacy(request: pytest.FixtureRequest, pbx: AgentProcess, tcp: Legacy) -> Legacy:
    return tcp if request.param == "tcp" else Legacy("unix", str(pbx.sock))


@pytest.fixture(scope="module")
def trial_key(tcp: Legacy) -> str:
    """This host's trial, taken once through the PHP client as the PBX's first-run wizard does."""
    ok(tcp.php("changekey", key=""))
    key = ok(tcp.php("gettrial", **TRIAL))["key"]
    ok(tcp.php("changekey", key=key))
    return key


def licensed(legacy: Legacy, key: str) -> None:
    ok(legacy.php("changekey", key=key))


def bind_elsewhere(refserver: RefServer, number: str) -> None:
    """Another PBX activates the number first, straight at the licensing server."""
    response = requests.post(refserver.url + "/api/v1/activation", timeout=10, verify=str(refserver.ca),
                             json={"registration_number": number, "host": OTHER_HOST, "nonce": new_nonce(),
                                   "installation": RefAgent().field()})
    assert response.status_code == 200, response.text


@contextmanager
def server_stopped(refserver: RefServer) -> Iterator[None]:
    refserver.stop()
    try:
        yield
    finally:
        refserver.start()


# ---------------------------------------------------------------------- the PBX's flows
def test_trial_key_switched_in_by_changekey_shows_the_pbx_seat_in_license_info(legacy, trial_key):
    ok(legacy.php("changekey", key=""))
    assert ok(legacy.php("gettrial", **TRIAL))["key"] == trial_key  # same host and company: the same trial
    ok(legacy.php("changekey", key=trial_key))
    license_ = ok(legacy.php("getlicenseinfo", key=trial_key))["license"]
    assert {k: license_[k] for k in ("companyname", "contact", "email", "tel", "key")} == {
        "companyname": TRIAL["companyname"], "contact": TRIAL["contact"], "email": TRIAL["email"],
        "tel": TRIAL["tel"], "key": trial_key}
    [pbx_product] = [p for p in license_["products"] if p["id"] == "11"]
    assert pbx_product["name"] == "MikoPBX" and pbx_product["trial"] == "1"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", pbx_product["expired"])
    assert pbx_product["features"] == [{"id": "33", "name": "MikoPBX", "count": "1", "counteach": "0",
                                        "captured": "1"}]


def test_license_info_asked_without_the_key_masks_it(legacy, trial_key):
    licensed(legacy, trial_key)
    key = ok(legacy.php("getlicenseinfo"))["license"]["key"]
    assert key != trial_key and key.startswith(trial_key[:10]) and "*" in key


def test_license_info_for_a_newly_entered_key_activates_it_first(legacy, trial_key, refserver):
    licensed(legacy, trial_key)
    other = refserver.issue()
    assert ok(legacy.php("getlicenseinfo", key=other))["license"]["key"] == other
    assert ok(legacy.php("getlicenseinfo"))["license"]["key"].startswith(other[:10])


def test_license_info_for_a_refused_key_says_the_seat_could_not_be_captured(legacy, trial_key, refserver):
    licensed(legacy, trial_key)
    other = refserver.issue()
    refserver.admin("revoke", other)
    answer = refused(legacy.php("getlicenseinfo", key=other))
    assert answer["error"].startswith("Failed to capture feature 33, (2009)") and other not in answer["error"]


def test_captured_session_is_released_once(legacy, trial_key):
    licensed(legacy, trial_key)
    session = ok(legacy.php("capturefeature", feature="33"))["session"]
    assert session
    assert ok(legacy.php("releasefeature", session=session, feature="33"))["result"] == "ok"
    gone = refused(legacy.php("releasefeature", session=session, feature="33"))
    assert gone["status"] == 404 and "session" in gone["error"]


def test_feature_in_the_license_is_available(legacy, trial_key):
    licensed(legacy, trial_key)
    assert ok(legacy.php("featureavailable", feature="33"))["result"] == "ok"


def test_feature_not_in_the_license_is_not_available(legacy, trial_key):
    licensed(legacy, trial_key)
    answer = refused(legacy.php("featureavailable", feature="4242"))
    assert answer["status"] == 403 and "4242" in answer["error"]


def test_addtrial_adds_a_module_product_to_the_key(legacy, refserver):
    licensed(legacy, refserver.issue())
    products = ok(legacy.php("addtrial", product="1001"))["license"]["products"]
    [module] = [p for p in products if p["id"] == "1001"]
    assert module["trial"] == "1" and [f["id"] for f in module["features"]] == ["1001"]


def test_coupon_makes_the_license_termless_and_works_once(legacy, refserver):
    licensed(legacy, refserver.issue("--days", "30"))
    coupon = refserver.coupon("--termless")
    [pbx_product] = [p for p in ok(legacy.php("activatecoupon", coupon=coupon))["license"]["products"]
                     if p["id"] == "11"]
    assert pbx_product["trial"] == "0" and pbx_product["expired"] == ""
    again = refused(legacy.php("activatecoupon", coupon=coupon))
    assert again["code"] == 2041 and coupon not in again["error"]


def test_unknown_coupon_is_2040_and_not_echoed(legacy, refserver):
    licensed(legacy, refserver.issue())
    coupon = "MIKOUPD-NOSUC-HCOUP-ON000-00000"
    answer = refused(legacy.php("activatecoupon", coupon=coupon))
    assert answer["code"] == 2040 and coupon not in answer["error"], answer


def test_key_bound_to_another_host_is_2008_and_not_echoed(legacy, refserver):
    number = refserver.issue("--seats", "1")
    bind_elsewhere(refserver, number)
    answer = refused(legacy.php("changekey", key=number))
    assert answer["code"] == 2008 and number not in answer["error"]


def test_unknown_key_is_2026_and_not_echoed(legacy):
    number = "MIKO-NOSUC-HKEY0-00000-00000"
    answer = refused(legacy.php("changekey", key=number))
    assert answer["code"] == 2026 and number not in answer["error"]


def test_malformed_key_is_2026_refused_here_and_not_echoed(legacy):
    answer = refused(legacy.php("changekey", key="miko-typo-7"))
    assert answer["status"] == 400 and answer["code"] == 2026 and "typo" not in answer["error"].lower()


def test_second_trial_for_another_company_on_this_host_is_2051(legacy, trial_key):
    ok(legacy.php("changekey", key=""))
    answer = refused(legacy.php("gettrial", **dict(TRIAL, companyname="Other LLC", email="it@other.example")))
    assert answer["code"] == 2051 and answer["error"].startswith("Failed to get trial key: (2051)")


def test_ping_says_the_server_answers(legacy):
    assert ok(legacy.php("ping"))["result"] == "ok"


def test_ping_says_the_server_does_not_answer(tcp, refserver):
    with server_stopped(refserver):  # the agent asks afresh at most once a second
        answer = wait_for(lambda: (a := tcp.php("ping"))["success"] is False and a, 10, "ping to fail")
    assert answer["status"] == 503 and "does not answer" in answer["error"]


def test_feature_availability_is_answered_with_the_server_stopped(tcp, trial_key, refserver):
    licensed(tcp, trial_key)
    with server_stopped(refserver):
        assert ok(tcp.php("featureavailable", feature="33"))["result"] == "ok"


def test_metrics_are_answered_while_the_server_is_frozen_and_sent_once_a_day(tcp, pbx, trial_key, refserver):
    licensed(tcp, trial_key)
    metrics = {"PBXname": "office-pbx", "CountSipExtensions": "12", "Hypervisor": "KVM"}
    os.kill(refserver.proc.pid, signal.SIGSTOP)
    try:
        first = ok(tcp.php("sendmetrics", key=trial_key, **metrics))
    finally:
        os.kill(refserver.proc.pid, signal.SIGCONT)
    second = ok(Legacy("unix", str(pbx.sock)).php("sendmetrics", key=trial_key, **metrics))
    assert first["queued"] is True and second["queued"] is False

    def received() -> list[dict]:
        with sqlite3.connect(f"file:{refserver.dir / 'licenses.db'}?mode=ro", uri=True) as db:
            return [json.loads(row[0]) for row in db.execute("SELECT fields FROM metrics")]
    assert wait_for(received, 20, "the metrics at the licensing server") == [metrics]


# ---------------------------------------------------------------------- the wire
def test_unknown_method_is_404_with_an_error_text(legacy):
    status, body = legacy.http("POST", "/license.api/getlicence", b"key=x",
                               {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 404 and "getlicenseinfo" in body["error"]


@pytest.mark.parametrize("verb, headers", [("GET", {}), ("POST", {}), ("POST", {"Content-Type": "text/plain"})],
                         ids=["get", "post-without-content-type", "post-text-plain"])
def test_query_parameters_without_a_body_are_accepted(legacy, trial_key, verb, headers):
    licensed(legacy, trial_key)
    assert legacy.http(verb, "/license.api/featureavailable?feature=33", None, headers) == (200, {"result": "ok"})


def test_form_body_is_accepted(legacy, trial_key):
    licensed(legacy, trial_key)
    assert legacy.http("POST", "/license.api/featureavailable", b"feature=33",
                       {"Content-Type": "application/x-www-form-urlencoded"}) == (200, {"result": "ok"})


def test_json_body_is_refused_with_400(legacy):
    status, body = legacy.http("POST", "/license.api/featureavailable", b'{"feature": 33}',
                               {"Content-Type": "application/json"})
    assert status == 400 and "application/x-www-form-urlencoded" in body["error"]


@pytest.mark.parametrize("content_type, raw", [
    ("application/x-www-form-urlencoded", b"feature"),
    ("application/x-www-form-urlencoded", b"feature=%FF%FE"),
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nnot a header line\r\n\r\n33\r\n--xyz--\r\n"),
], ids=["no-equals-sign", "not-utf8", "broken-multipart"])
def test_malformed_form_body_is_refused_with_400(legacy, content_type, raw):
    status, body = legacy.http("POST", "/license.api/featureavailable", raw, {"Content-Type": content_type})
    assert status == 400 and "malformed" in body["error"]


def test_other_http_verbs_are_refused_with_405(legacy):
    status, body = legacy.http("PUT", "/license.api/ping", b"")
    assert status == 405 and "GET and POST" in body["error"]


# ---------------------------------------------------------------------- who may change the license
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the PHP client as another user")
def test_changes_over_the_socket_need_an_admin_while_reads_do_not(pbx, base, trial_key):
    php_copy = base / "php"
    shutil.copytree(PHP, php_copy, dirs_exist_ok=True)
    outsider = Legacy("unix", str(pbx.sock), php_copy, user=NOBODY)
    pbx.sock.chmod(0o666)
    try:
        assert ok(outsider.php("featureavailable", feature="33"))["result"] == "ok"
        answer = refused(outsider.php("capturefeature", feature="33"))
    finally:
        pbx.sock.chmod(0o660)
    assert answer["status"] == 403 and "admin_groups" in answer["error"]


def _outside_address() -> str | None:
    return next((a.address for addrs in psutil.net_if_addrs().values() for a in addrs
                 if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback), None)


@pytest.mark.skipif(_outside_address() is None, reason="this machine has no non-loopback IPv4 address")
def test_changes_over_tcp_from_another_address_are_refused_while_reads_are_served(daemons):
    address, port = _outside_address(), free_port()
    daemons("remote", 42, f'listen = "{address}:{port}"\nallow_remote = true').start()
    remote = Legacy("tcp", f"{address}:{port}")
    assert ok(remote.php("ping"))["result"] == "ok"
    answer = refused(remote.php("changekey", key=""))
    assert answer["status"] == 403 and "loopback" in answer["error"]


def test_non_loopback_listen_is_refused_and_logged_while_the_socket_serves(daemons):
    port = free_port()
    agent = daemons("exposed", 43, f'listen = "0.0.0.0:{port}"').start()
    assert Legacy("unix", str(agent.sock)).http("GET", "/license.api/ping") == (200, {"result": "ok"})
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), 2).close()
    assert "allow_remote" in agent.log_text() and "0.0.0.0" in agent.log_text()


@pytest.mark.parametrize("listen, allow_remote, bound", [
    ("127.0.0.1:8223", False, ("127.0.0.1", 8223)),
    ("[::1]:8223", False, ("::1", 8223)),
    ("localhost:8223", False, ("localhost", 8223)),
    ("0.0.0.0:8223", False, None),
    ("192.0.2.10:8223", False, None),
    ("0.0.0.0:8223", True, ("0.0.0.0", 8223)),
    ("127.0.0.1:70000", False, None),
])
def test_compat_listen_keeps_to_loopback_unless_remote_is_allowed(listen, allow_remote, bound, caplog):
    with caplog.at_level(logging.WARNING, "mikolicd.legacy"):
        assert compat_listen(CompatSection(listen, allow_remote)) == bound
    assert bool(caplog.records) == (bound is None or allow_remote)


def test_license_xml_escapes_markup_and_drops_characters_xml_cannot_carry():
    view = {"owner": {"companyname": 'A & B <"C">\x07', "contact": "", "email": "", "tel": ""},
            "products": [{"id": 11, "name": "MikoPBX", "trial": False, "expires": None,
                          "features": [{"id": 33, "name": "MikoPBX", "count": 5, "counteach": 0, "captured": 2}]}]}
    root = ET.fromstring(license_xml(view, "MIKO-AAAAA-*****-*****-*****"))
    assert root.get("companyname") == 'A & B <"C">'
    assert root.find("product").attrib == {"id": "11", "name": "MikoPBX", "trial": "0", "expired": ""}
    assert root.find("product/feature").get("count") == "5"


def test_tcp_listener_serves_only_the_legacy_api(pbx, port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/v1/status")
        assert conn.getresponse().status == 404
    finally:
        conn.close()


# ---------------------------------------------------------------------- web pages cannot drive it
@pytest.mark.parametrize("headers, refused_for", [
    ({"Host": "attacker.example:8223"}, "Host"),
    ({"Host": "attacker.example"}, "Host"),
    ({"Host": "127.0.0.1", "Origin": "http://attacker.example"}, "Origin"),
    ({"Host": "127.0.0.1", "Origin": "null"}, "Origin"),
    ({"Host": "localhost", "Referer": "http://attacker.example/page"}, "Referer"),
], ids=["dns-rebinding", "dns-rebinding-no-port", "cross-site-form", "sandboxed-page", "cross-site-referer"])
def test_what_a_web_page_makes_a_browser_send_is_refused_over_tcp(tcp, headers, refused_for):
    for method, body in (("getlicenseinfo", None), ("changekey", b"key="), ("capturefeature?feature=33", b"")):
        status, answer = tcp.http("POST", f"/license.api/{method}", body,
                                  dict(headers, **{"Content-Type": FORM}))
        assert status == 403 and refused_for in answer["error"], answer


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "127.0.0.1"])
def test_a_local_program_naming_this_host_is_served_over_tcp(tcp, port, host):
    status, answer = tcp.http("GET", "/license.api/featureavailable?feature=1", None,
                              {"Host": host.format(port=port), "Referer": f"http://127.0.0.1:{port}/admin"})
    assert status == 403 and answer["error"].startswith("Feature 1 is not available")
