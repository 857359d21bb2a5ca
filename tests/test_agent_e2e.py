"""The agent end to end: real reference server over HTTPS, the real daemon, its real Unix socket."""
from __future__ import annotations

import collections
import itertools
import json
import re
import shutil
import subprocess
import threading
import time

import pytest

from agentproc import AgentProcess, box_agent, free_port, stopped_at_end, wait_for
from mikolicd.agentclient import UnixConnection
from hosts import pbx_box

NO_SERVER = f"https://127.0.0.1:{free_port()}"  # nothing listens: any server call fails with 503
TRIAL = {"companyname": "Example LLC", "email": "admin@example.test", "contact": "Ann Admin",
         "tel": "+7 495 000-00-00", "inn": "7701234567"}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture
def agent_factory(base, refserver):
    """Agents on distinct fake hosts; every one is stopped (by pid) at the end of the test."""
    names = itertools.count()

    def make(server=refserver, seed: int | None = None, **kw) -> AgentProcess:
        seed = seed if seed is not None else int(time.monotonic_ns() % 1_000_000)
        return box_agent(base, server, seed, f"agent-{seed}-{next(names)}", **kw)

    yield from stopped_at_end(make)


def server_code(body: dict):
    return (body.get("error") or {}).get("server_code")


def test_trial_gives_trial_state_with_the_pbx_seat_for_30_days(agent_factory):
    agent = agent_factory().start()
    code, status = agent.call("POST", "/v1/registration", TRIAL)
    assert code == 200, status
    assert status["state"] == "trial"
    pbx = next(p for p in status["products"] if p["id"] == 11)
    assert pbx["trial"] and [f["id"] for f in pbx["features"]] == [33]
    expires = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 30 * 86400))
    assert pbx["expires"] == expires
    assert agent.call("GET", "/v1/features/33")[1]["available"] is True


def test_activation_of_an_issued_number_is_active(agent_factory, refserver):
    number = refserver.issue("--seats", "1")
    agent = agent_factory().start()
    code, status = agent.call("POST", "/v1/activation", {"registration_number": number.lower()})
    assert code == 200 and status["state"] == "active", status
    assert status["registration_number"].startswith(number[:10]) and number not in json.dumps(status)


def test_second_host_gets_2008_telling_the_admin_to_reset_then_succeeds_after_reset(agent_factory, refserver):
    number = refserver.issue("--seats", "1")
    first, second = agent_factory().start(), agent_factory().start()
    assert first.call("POST", "/v1/activation", {"registration_number": number})[0] == 200
    code, body = second.call("POST", "/v1/activation", {"registration_number": number})
    assert code == 409 and server_code(body) == 2008
    assert "(2008)" in body["error"]["message"] and "reset" in body["error"]["message"]
    refserver.admin("reset", number)
    code, body = second.call("POST", "/v1/activation", {"registration_number": number})
    assert code == 200 and body["state"] == "active"


def test_second_trial_on_the_same_hardware_with_another_email_gets_2051(agent_factory):
    agent = agent_factory(seed=4242).start()
    assert agent.call("POST", "/v1/registration", TRIAL)[0] == 200
    agent.stop()
    shutil.rmtree(agent.state)  # a reinstall on the same hardware
    agent.start()
    code, body = agent.call("POST", "/v1/registration", dict(TRIAL, email="other@example.test"))
    assert server_code(body) == 2051 and "(2051)" in body["error"]["message"]
    assert agent.status()["state"] == "unlicensed"


def test_coupon_works_once(agent_factory, refserver):
    agent = agent_factory().start()
    agent.call("POST", "/v1/activation", {"registration_number": refserver.issue("--days", "10")})
    coupon = refserver.coupon()
    code, status = agent.call("POST", "/v1/coupons", {"coupon": coupon})
    assert code == 200 and next(p for p in status["products"] if p["id"] == 11)["expires"] is None
    code, body = agent.call("POST", "/v1/coupons", {"coupon": coupon})
    assert server_code(body) == 2041


def test_restart_brings_the_license_back_without_the_server(agent_factory, refserver_factory):
    server = refserver_factory().start()
    agent = agent_factory(server=server).start()
    agent.call("POST", "/v1/activation", {"registration_number": server.issue()})
    server.stop()
    agent.stop()
    agent.start()
    assert agent.status()["state"] == "active"
    assert agent.call("GET", "/v1/license")[1]["products"][0]["id"] == 11


def test_unreachable_server_gives_grace_with_features_available(agent_factory, refserver_factory):
    server = refserver_factory().start()
    agent = agent_factory(server=server).start()
    agent.call("POST", "/v1/activation", {"registration_number": server.issue()})
    server.stop()
    status = agent.call("POST", "/v1/validation", timeout=60)[1]
    assert status["state"] == "grace" and status["grace_until"]
    assert agent.call("GET", "/v1/features/33")[1]["available"] is True


def test_past_the_offline_limit_the_license_is_expired(agent_factory, refserver_factory):
    server = refserver_factory("--document-ttl", "3s").start()
    agent = agent_factory(server=server).start()
    agent.call("POST", "/v1/activation", {"registration_number": server.issue()})
    server.stop()
    status = agent.wait_state({"expired"}, timeout=20)
    assert "in time" in status["reason"]
    assert agent.call("GET", "/v1/features/33")[1]["available"] is False


def test_revoked_number_is_invalid_at_the_next_validation(agent_factory, refserver):
    number = refserver.issue()
    agent = agent_factory().start()
    agent.call("POST", "/v1/activation", {"registration_number": number})
    refserver.admin("revoke", number)
    status = agent.call("POST", "/v1/validation")[1]
    assert status["state"] == "invalid" and "2009" in status["reason"]


@pytest.mark.parametrize("body,code", [
    ({"registration_number": "MIKO-123"}, "invalid_registration_number"),
    ({"registration_number": "MIKO-ABCDE-ABCDE-ABCDE-ABCD!"}, "invalid_registration_number"),
    ({"registration_number": 12345}, "invalid_registration_number"),
])
def test_malformed_numbers_are_refused_locally(agent_factory, body, code):
    agent = agent_factory(url=NO_SERVER).start()  # a server call would answer 503, not 400
    status, answer = agent.call("POST", "/v1/activation", body)
    assert status == 400 and answer["error"]["code"] == code and answer["error"]["server_code"] is None


def test_malformed_coupon_is_refused_before_any_server_call(agent_factory):
    agent = agent_factory(url=NO_SERVER).start()
    status, answer = agent.call("POST", "/v1/coupons", {"coupon": "MIKOUPD-NOPE"})
    assert status == 400 and answer["error"]["code"] == "invalid_coupon"


@pytest.mark.parametrize("raw,code", [(b"{not json", "invalid_json"), (b"[1, 2]", "invalid_json"),
                                      (b'{"registration_number": "x", "extra": 1}', "unknown_field")])
def test_bad_json_on_the_socket_gets_400_with_the_error_body(agent_factory, raw, code):
    agent = agent_factory().start()
    from agentproc import uds_call
    status, answer = uds_call(agent.sock, "POST", "/v1/activation", raw=raw,
                              headers={"Content-Type": "application/json"})
    assert status == 400 and answer["error"]["code"] == code and answer["error"]["message"]


def test_unknown_path_is_404_with_the_error_body(agent_factory):
    status, answer = agent_factory().start().call("GET", "/v1/nothing-here")
    assert status == 404 and answer["error"]["code"] == "not_found"


def test_bad_config_stops_start_up_naming_file_key_and_expectation(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[schedule]\ncheck_interval = "every now and then"\n')
    done = subprocess.run(["mikolicd", "run", "--config", str(config)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert f"{config}:2: [schedule] check_interval: expected a duration" in done.stderr


def test_socket_is_created_with_the_configured_mode(agent_factory):
    agent = agent_factory().start()
    assert oct(agent.sock.stat().st_mode & 0o777) == oct(0o660)


def test_unreadable_ca_file_stops_start_up_with_its_name(tmp_path, refserver):
    pbx_box(tmp_path / "hw", 5150)
    agent = AgentProcess(tmp_path, "ca", refserver.url, refserver.trusted_keys, tmp_path / "no-such-ca.pem",
                         tmp_path / "hw")
    done = subprocess.run(["mikolicd", "run", "--config", str(agent.config)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and "[server] ca_file" in done.stderr and "No such file" in done.stderr


def test_a_license_ending_soon_warns_and_each_threshold_is_journaled_once(agent_factory, refserver):
    number = refserver.issue("--days", "4")  # ends on the 4th day from today: 5 days left, counting today
    agent = agent_factory().start()
    status = agent.call("POST", "/v1/activation", {"registration_number": number})[1]
    warning = next(w for w in status["warnings"] if w["code"] == "expires_soon")
    assert (warning["product"], warning["days"]) == (11, 5)
    announced = "day(s) or less left"
    assert agent.log_text().count(announced) == 2  # 30 and 7 days crossed, 1 not yet
    agent.stop()
    agent.start()
    assert agent.status()["warnings"][0]["code"] == "expires_soon"
    assert agent.log_text().count(announced) == 2


def test_metrics_parse_with_prometheus_own_parser_and_name_no_secret(agent_factory, refserver):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    number = refserver.issue()
    agent = agent_factory().start()
    assert agent.call("POST", "/v1/activation", {"registration_number": number})[0] == 200
    conn = UnixConnection(agent.sock, 10)
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    assert response.getheader("Content-Type").startswith("application/openmetrics-text")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"mikolicd_license_state", "mikolicd_license_remaining_seconds", "mikolicd_offline_window_remaining_seconds",
            "mikolicd_last_validation_timestamp_seconds", "mikolicd_next_validation_timestamp_seconds",
            "mikolicd_validations", "mikolicd_server_request_duration_seconds", "mikolicd_build"} <= set(families)
    active = [s for s in families["mikolicd_license_state"].samples if s.labels["state"] == "active"]
    assert active[0].value == 1
    assert number not in text and number[5:10] not in text
    assert not re.search(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}|@|MIKO(UPD)?-", text, re.IGNORECASE)


def test_the_number_the_closed_daemon_kept_is_activated_once_and_journaled(agent_factory, refserver, tmp_path):
    number = refserver.issue()
    key_file = tmp_path / "nats_cache" / "license.key"
    key_file.parent.mkdir()
    key_file.write_text(number.lower() + "\n")
    agent = agent_factory(extra=f'\n[compat]\nkey_file = "{key_file}"\n').start()
    status = wait_for(lambda: (s := agent.status())["state"] == "active" and s, 30, "the imported number")
    assert status["registration_number"].startswith(number[:10])
    assert "activated the registration number found in [compat] key_file" in agent.log_text()
    assert number not in agent.log_text()


def test_a_state_directory_that_is_a_file_stops_start_up_naming_the_key(tmp_path, refserver):
    pbx_box(tmp_path / "hw", 5151)
    agent = AgentProcess(tmp_path, "file-state", refserver.url, refserver.trusted_keys, refserver.ca, tmp_path / "hw")
    agent.state.write_text("not a directory")
    done = subprocess.run(["mikolicd", "run", "--config", str(agent.config)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1 and "[storage] state_dir" in done.stderr and "not a directory" in done.stderr
    assert "Errno" not in done.stderr and "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_a_missing_trusted_keys_file_stops_start_up_saying_what_to_install(tmp_path, refserver):
    pbx_box(tmp_path / "hw", 5152)
    agent = AgentProcess(tmp_path, "no-keys", refserver.url, tmp_path / "missing.pem", refserver.ca, tmp_path / "hw")
    done = subprocess.run(["mikolicd", "run", "--config", str(agent.config)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and "[server] trusted_keys" in done.stderr
    assert "install the licensing server's public key" in done.stderr and done.stderr.count("\n") == 1


def test_a_number_guessing_client_does_not_push_a_real_box_into_grace(agent_factory, refserver_factory):
    """The guesser sends from 127.0.0.2, the box from 127.0.0.1: any 127.x address is this machine."""
    from refclient import Connection, guess_numbers
    server = refserver_factory().start()  # the default limits
    number = server.issue()
    agent = agent_factory(server=server).start()
    assert agent.call("POST", "/v1/activation", {"registration_number": number})[1]["state"] == "active"
    guesses: collections.Counter = collections.Counter()
    until = time.monotonic() + 4
    guesser = threading.Thread(target=guess_numbers, args=(Connection(server.port, server.ca, "127.0.0.2"), until, guesses),
                               daemon=True)
    guesser.start()
    states = []
    while time.monotonic() < until:
        states.append(agent.call("POST", "/v1/validation")[1]["last_validation"]["outcome"])
        time.sleep(0.3)
    guesser.join(20)
    assert states and set(states) == {"ok"} and guesses[429] > guesses[404]
