"""The reference licensing server, spoken to over real HTTPS as an agent would (docs/protocol.md)."""
from __future__ import annotations

import datetime as dt
import json
import stat
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests

from mikolicd.fingerprint import keyed_hash
from mikolicd.jws import b64url_decode, load_trusted_keys
from mikolicd.license import Feature, License, read_document

from conftest import RefServer

Answer = tuple[int, dict]
FORTNIGHT = 14 * 86400


def new_host(seed: str | None = None, *, changed: tuple[str, ...] = ()) -> dict:
    """A host description of made-up hardware; `changed` names the parts replaced since."""
    seed = seed or uuid.uuid4().hex
    part = {name: keyed_hash(f"{seed}/{name}" + ("/replaced" if name in changed else ""))
            for name in ("system_uuid", "system_serial", "board_serial", "nic", "machine_id")}
    return {"components": {**part, "nic": [part["nic"]]}}


def trial_form(email: str | None = None, company: str = "Example LLC") -> dict:
    return {"companyname": company, "email": email or f"{uuid.uuid4().hex}@example.test", "contact": "Ann Admin",
            "tel": "+7 495 000-00-00", "inn": "7701234567"}


@pytest.fixture(scope="module")
def session(refserver: RefServer) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides `verify`
        s.verify = str(refserver.ca)
        yield s


@pytest.fixture(scope="module")
def call(refserver: RefServer, session: requests.Session) -> Callable[..., Answer]:
    def call(name: str, **body: object) -> Answer:
        response = session.post(f"{refserver.url}/api/v1/{name}", json=body, timeout=10)
        return response.status_code, response.json()
    return call


def error_code(answer: Answer) -> int | None:
    status, body = answer
    assert 400 <= status < 500, answer
    return body["error"]["code"]


def document(server: RefServer, token: str) -> License:
    return read_document(token, load_trusted_keys(server.trusted_keys))


def issued_on(lic: License) -> dt.date:
    return dt.datetime.fromtimestamp(lic.issued_at, dt.timezone.utc).date()


def activated(refserver: RefServer, call: Callable[..., Answer], *issue_args: str) -> tuple[str, dict]:
    number, host = refserver.issue(*issue_args), new_host()
    assert call("activation", registration_number=number, host=host)[0] == 200
    return number, host


# trials

def test_trial_is_thirty_days_of_product_11_with_one_seat_of_feature_33(refserver, call):
    status, body = call("trial", **trial_form(), host=new_host())
    lic = document(refserver, body["document"])
    assert status == 200 and lic.registration_number == body["registration_number"]
    (product,) = lic.products
    assert (product.id, product.name, product.trial) == (11, "MikoPBX", True)
    assert product.expires == issued_on(lic) + dt.timedelta(days=30)
    assert product.features == (Feature(33, "MikoPBX", count=1, counteach=0, captured=1),)


def test_trial_again_from_the_same_host_with_the_same_email_answers_the_same_number(call):
    host, form = new_host(), trial_form()
    first = call("trial", **form, host=host)[1]["registration_number"]
    status, body = call("trial", **form, host=host)
    assert status == 200 and body["registration_number"] == first


def test_trial_from_the_same_host_for_another_email_is_2051(call):
    host = new_host()
    call("trial", **trial_form(), host=host)
    assert error_code(call("trial", **trial_form(), host=host)) == 2051


def test_trial_from_a_host_with_one_replaced_part_is_still_the_same_host(call):
    seed = uuid.uuid4().hex
    call("trial", **trial_form(), host=new_host(seed))
    assert error_code(call("trial", **trial_form(), host=new_host(seed, changed=("nic",)))) == 2051


def test_trial_with_an_email_used_by_another_company_is_2022(call):
    email = f"{uuid.uuid4().hex}@example.test"
    call("trial", **trial_form(email, "First LLC"), host=new_host())
    assert error_code(call("trial", **trial_form(email, "Second LLC"), host=new_host())) == 2022


@pytest.mark.parametrize("field", ["companyname", "email", "contact"])
def test_trial_without_a_required_field_is_a_bad_request(call, field):
    form = {k: v for k, v in trial_form().items() if k != field}
    status, body = call("trial", **form, host=new_host())
    assert status == 400 and body["error"]["code"] is None and field in body["error"]["message"]


# activation, seats, validation, release

def test_activation_binds_the_seat_to_the_requesting_host(refserver, call):
    number, host = refserver.issue("--seats", "1"), new_host()
    lic = document(refserver, call("activation", registration_number=number, host=host)[1]["document"])
    assert lic.binding == host["components"]
    assert lic.feature(33)[1].captured == 1 and not lic.product(11).trial


def test_activation_again_from_the_same_host_keeps_its_seat(refserver, call):
    number, host = activated(refserver, call)
    status, body = call("activation", registration_number=number, host=host)
    assert status == 200 and document(refserver, body["document"]).feature(33)[1].captured == 1


def test_activation_follows_parts_replaced_one_at_a_time(refserver, call):
    seed = uuid.uuid4().hex
    number = refserver.issue()
    call("activation", registration_number=number, host=new_host(seed))
    call("activation", registration_number=number, host=new_host(seed, changed=("nic",)))
    later = new_host(seed, changed=("nic", "system_uuid"))
    status, body = call("activation", registration_number=number, host=later)
    assert status == 200 and document(refserver, body["document"]).binding == later["components"]


def test_activation_from_another_host_is_2008_telling_to_reset(refserver, call):
    number, _ = activated(refserver, call)
    answer = call("activation", registration_number=number, host=new_host())
    assert error_code(answer) == 2008 and "reset" in answer[1]["error"]["message"]


def test_reset_lets_another_host_take_the_seat(refserver, call):
    number, _ = activated(refserver, call)
    refserver.admin("reset", number)
    assert call("activation", registration_number=number, host=new_host())[0] == 200


def test_two_seats_bind_two_hosts_and_refuse_a_third(refserver, call):
    number, _ = activated(refserver, call, "--seats", "2")
    status, body = call("activation", registration_number=number, host=new_host())
    assert status == 200 and document(refserver, body["document"]).feature(33)[1].captured == 2
    assert error_code(call("activation", registration_number=number, host=new_host())) == 2008


def test_validation_answers_a_fresh_document_for_the_bound_host(refserver, call):
    number, host = activated(refserver, call)
    status, body = call("validation", registration_number=number, host=host)
    assert status == 200 and document(refserver, body["document"]).binding == host["components"]


def test_validation_from_another_host_is_2008(refserver, call):
    number, _ = activated(refserver, call)
    assert error_code(call("validation", registration_number=number, host=new_host())) == 2008


def test_release_frees_the_seat_for_another_host(refserver, call):
    number, host = activated(refserver, call)
    assert call("release", registration_number=number, host=host) == (200, {"released": True})
    assert call("activation", registration_number=number, host=new_host())[0] == 200


def test_termless_number_has_no_end_date(refserver, call):
    number, host = activated(refserver, call, "--termless")
    lic = document(refserver, call("validation", registration_number=number, host=host)[1]["document"])
    assert lic.product(11).expires is None


def test_ended_product_is_2011(refserver, call):
    number = refserver.issue("--days", "-1")
    assert error_code(call("activation", registration_number=number, host=new_host())) == 2011


def test_revoked_number_is_2009_on_every_call(refserver, call):
    number, host = activated(refserver, call)
    refserver.admin("revoke", number)
    answers = [call("validation", registration_number=number, host=host),
               call("release", registration_number=number, host=host),
               call("coupon", registration_number=number, coupon=refserver.coupon(), host=host),
               call("capture", registration_number=number, feature=33, host=host),
               call("metrics", registration_number=number, host=host, fields={})]
    assert [error_code(a) for a in answers] == [2009] * len(answers)


@pytest.mark.parametrize("number", ["MIKO-AAAAA-BBBBB-CCCCC-DDDDD", "MIKO-123", 42])
def test_unknown_or_malformed_number_is_2026(call, number):
    assert error_code(call("activation", registration_number=number, host=new_host())) == 2026


# coupons

def test_coupon_makes_the_product_termless(refserver, call):
    host = new_host()
    number = call("trial", **trial_form(), host=host)[1]["registration_number"]
    status, body = call("coupon", registration_number=number, coupon=refserver.coupon(), host=host)
    product = document(refserver, body["document"]).product(11)
    assert status == 200 and product.expires is None and not product.trial


def test_coupon_of_some_days_extends_the_product(refserver, call):
    number, host = activated(refserver, call, "--days", "10")
    body = call("coupon", registration_number=number, coupon=refserver.coupon("--days", "5"), host=host)[1]
    lic = document(refserver, body["document"])
    assert lic.product(11).expires == issued_on(lic) + dt.timedelta(days=15)


def test_coupon_works_once_then_2041(refserver, call):
    number, host = activated(refserver, call)
    coupon = refserver.coupon()
    assert call("coupon", registration_number=number, coupon=coupon, host=host)[0] == 200
    assert error_code(call("coupon", registration_number=number, coupon=coupon, host=host)) == 2041


def test_unknown_coupon_is_2040(refserver, call):
    number, host = activated(refserver, call)
    answer = call("coupon", registration_number=number, coupon="MIKOUPD-AAAAA-BBBBB-CCCCC-DDDDD", host=host)
    assert error_code(answer) == 2040


def test_blocked_coupon_is_2057(refserver, call):
    number, host = activated(refserver, call)
    coupon = refserver.coupon()
    refserver.admin("block", coupon)
    assert error_code(call("coupon", registration_number=number, coupon=coupon, host=host)) == 2057


def test_coupon_for_a_number_not_activated_on_this_host_is_2037(refserver, call):
    number, _ = activated(refserver, call)
    answer = call("coupon", registration_number=number, coupon=refserver.coupon(), host=new_host())
    assert error_code(answer) == 2037


# product trials and feature captures

def test_product_trial_adds_a_thirty_day_module_trial(refserver, call):
    number, host = activated(refserver, call)
    lic = document(refserver, call("product-trial", registration_number=number, product=42, host=host)[1]["document"])
    module = lic.product(42)
    assert (module.name, module.trial, module.expires) == ("Module 42", True, issued_on(lic) + dt.timedelta(days=30))
    assert module.features == (Feature(42, "Feature 42", count=1, counteach=0, captured=0),)
    assert lic.product(11).features[0].captured == 1


def test_capture_from_the_same_host_returns_the_same_session(refserver, call):
    number, host = activated(refserver, call)
    call("product-trial", registration_number=number, product=42, host=host)
    first = call("capture", registration_number=number, feature=42, host=host)[1]
    status, again = call("capture", registration_number=number, feature=42, host=host)
    assert status == 200 and again["session"] == first["session"]
    assert document(refserver, again["document"]).feature(42)[1].captured == 1


def test_release_feature_frees_the_capture(refserver, call):
    number, host = activated(refserver, call)
    call("product-trial", registration_number=number, product=42, host=host)
    session = call("capture", registration_number=number, feature=42, host=host)[1]["session"]
    answer = call("release-feature", registration_number=number, feature=42, session=session)
    lic = document(refserver, call("validation", registration_number=number, host=host)[1]["document"])
    assert answer == (200, {"released": True}) and lic.feature(42)[1].captured == 0


def test_release_feature_with_an_unknown_session_is_2009(refserver, call):
    number, _ = activated(refserver, call)
    assert error_code(call("release-feature", registration_number=number, feature=33, session="nope")) == 2009


def test_capture_of_a_feature_outside_the_license_is_2008(refserver, call):
    number, host = activated(refserver, call)
    assert error_code(call("capture", registration_number=number, feature=77, host=host)) == 2008


def test_metrics_are_accepted(refserver, call):
    number, host = activated(refserver, call)
    answer = call("metrics", registration_number=number, host=host, fields={"calls": "12"})
    assert answer == (200, {"accepted": True})


# the document

def test_document_is_signed_by_the_server_key_and_lives_the_default_fortnight(refserver, call):
    body = call("trial", **trial_form(), host=new_host())[1]
    header = json.loads(b64url_decode(body["document"].split(".")[0]))
    (kid,) = load_trusted_keys(refserver.trusted_keys)
    lic = document(refserver, body["document"])
    assert header == {"alg": "EdDSA", "kid": kid, "typ": "JWT"}
    assert lic.exp - lic.issued_at == FORTNIGHT


def test_document_ttl_sets_the_offline_lifetime(refserver_factory, pki):
    server = refserver_factory("--document-ttl", "15m").start()
    answer = requests.post(f"{server.url}/api/v1/trial", json={**trial_form(), "host": new_host()},
                           verify=str(pki.ca), timeout=10).json()
    lic = document(server, answer["document"])
    assert lic.exp - lic.issued_at == 15 * 60


# transport: ping, bad requests, overload, shutdown

def test_ping_answers_the_server_time_and_a_date_header(refserver, session):
    response = session.get(f"{refserver.url}/api/v1/ping", timeout=10)
    assert response.json()["ok"] is True and "Date" in response.headers
    assert dt.datetime.fromisoformat(response.json()["server_time"]).tzinfo is not None


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"registration_number": "MIKO-AAAAA-BBBBB-CCCCC-DDDDD"}',
                                 b'{"registration_number": "MIKO-AAAAA-BBBBB-CCCCC-DDDDD", "host": {"components": {}}}'])
def test_garbage_is_a_bad_request_with_an_error_body(refserver, session, raw):
    response = session.post(f"{refserver.url}/api/v1/activation", data=raw, timeout=10,
                            headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] is None


def test_unknown_path_answers_json(refserver, session):
    response = session.get(f"{refserver.url}/api/v2/anything", timeout=10)
    assert response.status_code == 404 and response.json()["error"]["code"] is None


def test_requests_above_max_rps_get_429_with_retry_after(refserver_factory, pki):
    server = refserver_factory("--max-rps", "1").start()
    with requests.Session() as s:
        responses = [s.get(f"{server.url}/api/v1/ping", verify=str(pki.ca), timeout=10) for _ in range(10)]
    limited = [r for r in responses if r.status_code == 429]
    assert limited and all(int(r.headers["Retry-After"]) >= 1 and "error" in r.json() for r in limited)


def test_serve_exits_cleanly_on_sigterm(refserver_factory):
    server = refserver_factory().start()
    assert server.stop() == 0


def test_certificate_names_localhost_too(refserver, session):
    assert session.get(f"https://localhost:{refserver.port}/api/v1/ping", timeout=10).status_code == 200


# the command line

def test_init_again_keeps_the_signing_key_private_and_unchanged(refserver_factory):
    server = refserver_factory()
    key = (server.dir / "signing-key.pem").read_bytes()
    server.admin("init")
    assert (server.dir / "signing-key.pem").read_bytes() == key
    assert stat.S_IMODE((server.dir / "signing-key.pem").stat().st_mode) == 0o600


@pytest.mark.parametrize("command", [("issue",), ("coupon",), ("reset", "MIKO-AAAAA-BBBBB-CCCCC-DDDDD"),
                                     ("serve", "--listen", "127.0.0.1:1")])
def test_commands_on_an_uninitialised_directory_say_to_run_init(tmp_path, pki, command):
    done = RefServer(tmp_path / "missing", pki).cli(*command)
    assert done.returncode == 1 and "mikolic-server init" in done.stderr


@pytest.mark.parametrize("command", [("reset", "MIKO-AAAAA-BBBBB-CCCCC-DDDDD"),
                                     ("revoke", "MIKO-AAAAA-BBBBB-CCCCC-DDDDD"),
                                     ("block", "MIKOUPD-AAAAA-BBBBB-CCCCC-DDDDD"), ("revoke", "MIKO-1")])
def test_admin_commands_on_unknown_items_fail(refserver, command):
    done = refserver.cli(*command)
    assert done.returncode == 1 and done.stderr.startswith(f"mikolic-server {command[0]}:")


def test_admin_errors_never_show_the_whole_number(refserver):
    assert "CCCCC" not in refserver.cli("revoke", "MIKO-AAAAA-BBBBB-CCCCC-DDDDD").stderr


@pytest.mark.parametrize("args", [("issue", "--seats", "0"), ("serve", "--listen", "127.0.0.1:1", "--document-ttl",
                                                                "soon"), ("serve", "--listen", "nowhere")])
def test_bad_option_values_are_refused(refserver, args):
    done = refserver.cli(*args)
    assert done.returncode == 2 and "error" in done.stderr


def test_devpki_private_key_is_owner_only(pki):
    assert stat.S_IMODE(pki.key.stat().st_mode) == 0o600
