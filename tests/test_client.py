"""The licensing client's rules, in process: reading answers and failures, and retrying as the policy says."""
import json
import socket
import ssl
from email.utils import formatdate

import pytest
import urllib3

from mikolicd.client import MAX_RETRY_AFTER, LicensingClient, classify, describe_transport, retry_after, tls_hint
from mikolicd.config import ServerSection
from mikolicd.errors import Kind, ServerRefused, ServerUnreachable
from mikolicd.schedule import Policy

NOW = 1_795_000_000.0


@pytest.mark.parametrize("header,seconds", [("120", 120.0), ("0", 0.0), ("-5", 0.0), ("1e9", MAX_RETRY_AFTER),
                                            (None, None), ("", None), ("soon", None)])
def test_retry_after_in_seconds_is_read_and_capped(header, seconds):
    assert retry_after(header, NOW) == seconds


def test_retry_after_as_an_http_date_counts_from_now():
    assert retry_after(formatdate(NOW + 90, usegmt=True), NOW) == 90.0


def test_retry_after_date_in_the_past_means_at_once():
    assert retry_after(formatdate(NOW - 90, usegmt=True), NOW) == 0.0


# ------------------------------------------------------------------- classifying answers and failures
def answer(status: int, body: object, content_type: str = "application/json", **headers: str):
    return classify(status, {"Content-Type": content_type, **headers}, json.dumps(body).encode())


def test_a_business_code_is_a_refusal_carrying_its_signed_refusal():
    with pytest.raises(ServerRefused) as err:
        answer(409, {"error": {"code": 2008, "message": "No free license features seat", "refusal": "a.b.c"}})
    assert err.value.server_code == 2008 and err.value.refusal == "a.b.c" and err.value.message.startswith("(2008)")


def test_a_400_naming_a_field_is_the_server_refusing_that_input_not_an_outage():
    with pytest.raises(ServerRefused) as err:
        answer(400, {"error": {"code": None, "message": "companyname is longer than 256 characters",
                               "field": "companyname"}})
    assert err.value.kind is Kind.SERVER_REJECTED_INPUT and "companyname" in err.value.message


@pytest.mark.parametrize("status, body, content_type, why", [
    (500, {"error": {"code": 2009}}, "application/json", "HTTP 500"),
    (429, {}, "application/json", "busy"),
    (403, {"error": "forbidden by proxy policy"}, "application/json", "without an error code"),
    (200, {"document": "x"}, "text/html", "not JSON"),
    (302, {}, "application/json", "redirect"),
])
def test_what_says_nothing_about_the_license_is_no_answer(status, body, content_type, why):
    with pytest.raises(ServerUnreachable, match=why):
        answer(status, body, content_type)


def test_a_server_text_is_made_safe_to_store_and_serve():
    with pytest.raises(ServerRefused) as err:
        answer(409, {"error": {"code": 2041, "message": "used \udc80\nnext"}})
    assert "\n" not in err.value.message and err.value.message.encode("utf-8")


@pytest.mark.parametrize("code, hint", [(20, "TLS interception is likely"), (19, "TLS interception is likely"),
                                        (62, "for another name"), (64, "for another name"),
                                        (10, "has expired"), (9, "not valid yet"), (999, "does not verify")])
def test_tls_verify_codes_say_what_to_do(code, hint):
    assert hint in tls_hint(code)


def test_transport_failures_are_told_apart_by_their_exception_types():
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_code = 62
    cases = {
        urllib3.exceptions.SSLError(verify): "for another name",
        urllib3.exceptions.NewConnectionError(None, "x"): "cannot reach",
        urllib3.exceptions.ProtocolError("x", ConnectionRefusedError(111, "refused")): "connection refused",
        urllib3.exceptions.ProtocolError("x", socket.gaierror(-2, "unknown")): "does not resolve",
        urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"): "did not answer in time",
        urllib3.exceptions.ConnectTimeoutError("x"): "timed out",
    }
    for exc, text in cases.items():
        assert text in describe_transport(exc), (exc, describe_transport(exc))


def test_retries_follow_the_policy_without_sleeping(tmp_path):
    slept: list[float] = []
    client = LicensingClient(ServerSection(url="https://127.0.0.1:9", trusted_keys=tmp_path / "k.pem"),
                             Policy.of(3600, 0.1, 3600), sleep=slept.append, rand=lambda: 1.0)
    client._once = lambda method, path, body: (_ for _ in ()).throw(ServerUnreachable("down"))
    with pytest.raises(ServerUnreachable):
        client.call("/api/v1/validation", {})
    assert slept == [0.5, 1.0]


def test_a_long_retry_after_ends_the_call_at_once_for_the_schedule_to_honour(tmp_path):
    slept: list[float] = []
    client = LicensingClient(ServerSection(url="https://127.0.0.1:9", trusted_keys=tmp_path / "k.pem"),
                             Policy.of(3600, 0.1, 3600), sleep=slept.append)
    client._once = lambda method, path, body: (_ for _ in ()).throw(ServerUnreachable("busy", retry_after=600))
    with pytest.raises(ServerUnreachable):
        client.call("/api/v1/validation", {})
    assert slept == []
