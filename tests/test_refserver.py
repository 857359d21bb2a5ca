"""The reference licensing server, spoken to over real HTTPS as an agent would (docs/protocol.md)."""
from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import stat
import uuid

import pytest

from mikolicd.jws import b64url_decode, load_trusted_keys
from mikolicd.license import Feature, License, read_document

from conftest import RefServer
from refclient import Answer, Box, Connection, activated, new_host, trial_form
from refclient import box, connection, other  # noqa: F401  (fixtures)

FORTNIGHT = 14 * 86400


def error_code(answer: Answer) -> int | None:
    status, body = answer
    assert 400 <= status < 500, answer
    return body["error"]["code"]


def document(server: RefServer, token: str) -> License:
    return read_document(token, load_trusted_keys(server.trusted_keys))


def issued_on(lic: License) -> dt.date:
    return dt.datetime.fromtimestamp(lic.issued_at, dt.timezone.utc).date()


# trials

def test_trial_is_thirty_days_of_product_11_with_one_seat_of_feature_33(refserver, box):
    status, body = box.call("trial", **trial_form())
    lic = document(refserver, body["document"])
    assert status == 200 and lic.registration_number == body["registration_number"]
    (product,) = lic.products
    assert (product.id, product.name, product.trial) == (11, "MikoPBX", True)
    assert product.expires == issued_on(lic) + dt.timedelta(days=30)
    assert product.features == (Feature(33, "MikoPBX", count=1, counteach=0, captured=1),)


def test_trial_again_from_the_same_host_with_the_same_email_answers_the_same_number(box):
    form = trial_form()
    first = box.call("trial", **form)[1]["registration_number"]
    status, body = box.call("trial", **form)
    assert status == 200 and body["registration_number"] == first


def test_trial_from_the_same_host_for_another_email_is_2051(box):
    box.call("trial", **trial_form())
    assert error_code(box.call("trial", **trial_form())) == 2051


def test_trial_from_a_host_with_one_replaced_part_is_still_the_same_host(connection):
    seed = uuid.uuid4().hex
    Box(connection, new_host(seed)).call("trial", **trial_form())
    assert error_code(Box(connection, new_host(seed, changed=("nic",))).call("trial", **trial_form())) == 2051


def test_trial_with_an_email_used_by_another_company_is_2022(box, other):
    email = f"{uuid.uuid4().hex}@example.test"
    box.call("trial", **trial_form(email, "First LLC"))
    assert error_code(other.call("trial", **trial_form(email, "Second LLC"))) == 2022


def test_trial_email_and_company_compare_without_case_or_blanks(box, other):
    email = f"{uuid.uuid4().hex}@example.test"
    box.call("trial", **trial_form(email, "First LLC"))
    assert other.call("trial", **trial_form(f" {email.upper()} ", "first llc "))[0] == 200


# activation, seats, validation, release

def test_activation_binds_the_seat_to_the_requesting_host(refserver, box):
    number = refserver.issue("--seats", "1")
    lic = document(refserver, box.call("activation", registration_number=number)[1]["document"])
    assert lic.binding == box.host["components"]
    assert lic.feature(33)[1].captured == 1 and not lic.product(11).trial


def test_activation_again_from_the_same_host_keeps_its_seat(refserver, box):
    number = activated(refserver, box)
    status, body = box.call("activation", registration_number=number)
    assert status == 200 and document(refserver, body["document"]).feature(33)[1].captured == 1


def test_activation_from_another_host_is_2008_telling_to_reset(refserver, box, other):
    number = activated(refserver, box)
    answer = other.call("activation", registration_number=number)
    assert error_code(answer) == 2008 and "reset" in answer[1]["error"]["message"]


def test_reset_lets_another_host_take_the_seat(refserver, box, other):
    number = activated(refserver, box)
    refserver.admin("reset", number)
    assert other.call("activation", registration_number=number)[0] == 200


def test_two_seats_bind_two_hosts_and_refuse_a_third(refserver, box, other, connection):
    number = activated(refserver, box, "--seats", "2")
    status, body = other.call("activation", registration_number=number)
    assert status == 200 and document(refserver, body["document"]).feature(33)[1].captured == 2
    assert error_code(Box(connection).call("activation", registration_number=number)) == 2008


def test_validation_answers_a_fresh_document_for_the_bound_host(refserver, box):
    number = activated(refserver, box)
    status, body = box.call("validation", registration_number=number)
    assert status == 200 and document(refserver, body["document"]).binding == box.host["components"]


def test_validation_from_another_host_is_2008(refserver, box, other):
    number = activated(refserver, box)
    assert error_code(other.call("validation", registration_number=number)) == 2008


def test_validation_of_a_host_without_a_seat_takes_a_free_one(refserver, box):
    number = refserver.issue()
    status, body = box.call("validation", registration_number=number)
    assert status == 200 and document(refserver, body["document"]).feature(33)[1].captured == 1


def test_release_frees_the_seat_for_another_host(refserver, box, other):
    number = activated(refserver, box)
    assert box.call("release", registration_number=number) == (200, {"released": True})
    assert other.call("activation", registration_number=number)[0] == 200


def test_release_of_the_seat_features_session_releases_the_seat(refserver, box, other):
    number = activated(refserver, box)
    session = box.call("capture", registration_number=number, feature=33)[1]["session"]
    assert box.call("release-feature", registration_number=number, feature=33, session=session)[0] == 200
    assert other.call("activation", registration_number=number)[0] == 200


def test_termless_number_has_no_end_date(refserver, box):
    number = activated(refserver, box, "--termless")
    lic = document(refserver, box.call("validation", registration_number=number)[1]["document"])
    assert lic.product(11).expires is None


def test_ended_product_is_2011(refserver, box):
    number = refserver.issue("--days", "-1")
    assert error_code(box.call("activation", registration_number=number)) == 2011


def test_revoked_number_is_2009_on_every_call(refserver, box):
    number = activated(refserver, box)
    refserver.admin("revoke", number)
    answers = [box.call("validation", registration_number=number),
               box.call("release", registration_number=number),
               box.call("coupon", registration_number=number, coupon=refserver.coupon()),
               box.call("capture", registration_number=number, feature=33),
               box.call("metrics", registration_number=number, fields={})]
    assert [error_code(a) for a in answers] == [2009] * len(answers)


@pytest.mark.parametrize("number", ["MIKO-AAAAA-BBBBB-CCCCC-DDDDD", "MIKO-123", 42])
def test_unknown_or_malformed_number_is_2026(box, number):
    assert error_code(box.call("activation", registration_number=number)) == 2026


# coupons

def test_coupon_makes_the_product_termless(refserver, box):
    number = box.call("trial", **trial_form())[1]["registration_number"]
    status, body = box.call("coupon", registration_number=number, coupon=refserver.coupon())
    product = document(refserver, body["document"]).product(11)
    assert status == 200 and product.expires is None and not product.trial


def test_coupon_of_some_days_extends_the_product(refserver, box):
    number = activated(refserver, box, "--days", "10")
    body = box.call("coupon", registration_number=number, coupon=refserver.coupon("--days", "5"))[1]
    lic = document(refserver, body["document"])
    assert lic.product(11).expires == issued_on(lic) + dt.timedelta(days=15)


def test_coupon_works_once_then_2041(refserver, box):
    number = activated(refserver, box)
    coupon = refserver.coupon()
    assert box.call("coupon", registration_number=number, coupon=coupon)[0] == 200
    assert error_code(box.call("coupon", registration_number=number, coupon=coupon)) == 2041


def test_unknown_coupon_is_2040(refserver, box):
    number = activated(refserver, box)
    answer = box.call("coupon", registration_number=number, coupon="MIKOUPD-AAAAA-BBBBB-CCCCC-DDDDD")
    assert error_code(answer) == 2040


def test_blocked_coupon_is_2057(refserver, box):
    number = activated(refserver, box)
    coupon = refserver.coupon()
    refserver.admin("block", coupon)
    assert error_code(box.call("coupon", registration_number=number, coupon=coupon)) == 2057


def test_coupon_for_a_number_not_activated_on_this_host_is_2037(refserver, box, other):
    number = activated(refserver, box)
    assert error_code(other.call("coupon", registration_number=number, coupon=refserver.coupon())) == 2037


# product trials and feature captures

def test_product_trial_adds_a_thirty_day_module_trial(refserver, box):
    number = activated(refserver, box)
    lic = document(refserver, box.call("product-trial", registration_number=number, product=42)[1]["document"])
    module = lic.product(42)
    assert (module.name, module.trial, module.expires) == ("Module 42", True, issued_on(lic) + dt.timedelta(days=30))
    assert module.features == (Feature(42, "Feature 42", count=1, counteach=0, captured=0),)
    assert lic.product(11).features[0].captured == 1


def test_capture_from_the_same_host_returns_the_same_session(refserver, box):
    number = activated(refserver, box)
    box.call("product-trial", registration_number=number, product=42)
    first = box.call("capture", registration_number=number, feature=42)[1]
    status, again = box.call("capture", registration_number=number, feature=42)
    assert status == 200 and again["session"] == first["session"]
    assert document(refserver, again["document"]).feature(42)[1].captured == 1


def test_release_feature_frees_the_capture(refserver, box):
    number = activated(refserver, box)
    box.call("product-trial", registration_number=number, product=42)
    session = box.call("capture", registration_number=number, feature=42)[1]["session"]
    answer = box.call("release-feature", registration_number=number, feature=42, session=session)
    lic = document(refserver, box.call("validation", registration_number=number)[1]["document"])
    assert answer == (200, {"released": True}) and lic.feature(42)[1].captured == 0


def test_release_feature_with_an_unknown_session_is_2009(refserver, box):
    number = activated(refserver, box)
    assert error_code(box.call("release-feature", registration_number=number, feature=33, session="nope")) == 2009


def test_capture_of_a_feature_outside_the_license_is_2008(refserver, box):
    number = activated(refserver, box)
    assert error_code(box.call("capture", registration_number=number, feature=77)) == 2008


def test_metrics_are_accepted(refserver, box):
    number = activated(refserver, box)
    assert box.call("metrics", registration_number=number, fields={"calls": "12"}) == (200, {"accepted": True})


# the document

def test_document_is_signed_by_the_server_key_and_lives_the_default_fortnight(refserver, box):
    body = box.call("trial", **trial_form())[1]
    header = json.loads(b64url_decode(body["document"].split(".")[0]))
    (kid,) = load_trusted_keys(refserver.trusted_keys)
    lic = document(refserver, body["document"])
    assert header == {"alg": "EdDSA", "kid": kid, "typ": "JWT"}
    assert lic.exp - lic.issued_at == FORTNIGHT


def test_document_carries_the_requests_nonce_and_the_installation(refserver, box):
    number = refserver.issue()
    lic = document(refserver, box.call("activation", registration_number=number)[1]["document"])
    assert (lic.nonce, lic.install_id, lic.token, lic.offline) == (box.nonce, box.agent.id, box.agent.token, False)


def test_document_ttl_sets_the_offline_lifetime(refserver_factory):
    server = refserver_factory("--document-ttl", "15m").start()
    lic = document(server, Box(Connection(server.port, server.ca)).call("trial", **trial_form())[1]["document"])
    assert lic.exp - lic.issued_at == 15 * 60


# transport: ping, bad requests, overload, shutdown

def test_ping_answers_the_server_time_and_a_date_header(connection):
    status, headers, body = connection.request("GET", "/api/v1/ping")
    assert status == 200 and body["ok"] is True and "Date" in headers
    assert dt.datetime.fromisoformat(body["server_time"]).tzinfo is not None


def test_unknown_path_answers_json(connection):
    status, _, body = connection.request("GET", "/api/v2/anything")
    assert status == 404 and body["error"]["code"] is None


def test_requests_above_max_rps_get_429_with_retry_after(refserver_factory):
    server = refserver_factory("--max-rps", "1").start()
    connection = Connection(server.port, server.ca)
    answers = [connection.request("GET", "/api/v1/ping") for _ in range(10)]
    limited = [(headers, body) for status, headers, body in answers if status == 429]
    assert limited and all(int(headers["Retry-After"]) >= 1 and "error" in body for headers, body in limited)


def test_serve_exits_cleanly_on_sigterm(refserver_factory):
    server = refserver_factory().start()
    assert server.stop() == 0


def test_certificate_names_localhost_too(refserver):
    context = ssl.create_default_context(cafile=str(refserver.ca))
    with socket.create_connection(("localhost", refserver.port), 10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version()


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
