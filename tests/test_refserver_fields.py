"""A malformed or over-long field is HTTP 400 naming the field and its limit, never an outage-like answer
(docs/protocol.md, "Conventions" and "Field limits")."""
from __future__ import annotations

import json

import pytest

from mikolicd.refserver import fields
from mikolicd.refserver.fields import FieldError

from refclient import Agent, Connection, new_nonce, trial_form
from refclient import connection  # noqa: F401  (a fixture)

LONG = "x" * 257
NUMBER = "MIKO-AAAAA-BBBBB-CCCCC-DDDDD"


def body(call: str, **changes: object) -> dict:
    """A well-formed body for `call` with `changes` applied (None removes a field)."""
    base = _base()
    extra = {"trial": trial_form(), "coupon": {"coupon": "MIKOUPD-AAAAA-BBBBB-CCCCC-DDDDD"},
             "capture": {"feature": 33}, "release-feature": {"feature": 33, "session": "s"},
             "product-trial": {"product": 42}, "metrics": {"fields": {"calls": "1"}}}.get(call, {})
    merged = {**base, **({} if call == "trial" else {"registration_number": NUMBER}), **extra, **changes}
    return {k: v for k, v in merged.items() if v is not None}


def _base() -> dict:
    agent = Agent()
    return {"host": {"components": {"system_uuid": "a" * 64, "board_serial": "b" * 64, "nic": ["c" * 64]}},
            "nonce": new_nonce(), "installation": agent.field()}


def refused_field(connection: Connection, call: str, **changes: object) -> tuple[str | None, str]:
    status, _, answer = connection.post(call, body(call, **changes))
    assert status == 400 and answer["error"]["code"] is None, (status, answer)
    return answer["error"]["field"], answer["error"]["message"]


@pytest.mark.parametrize("name", ["companyname", "email", "contact", "tel", "inn", "description"])
def test_a_trial_field_over_256_characters_is_400_naming_it_and_the_limit(connection, name):
    field, message = refused_field(connection, "trial", **{name: LONG + "@"})
    assert field == name and name in message and "256" in message


@pytest.mark.parametrize("call, name", [("coupon", "coupon"), ("release-feature", "session"),
                                        ("activation", "registration_number")])
def test_other_text_fields_over_256_characters_are_400(connection, call, name):
    field, message = refused_field(connection, call, **{name: LONG})
    assert field == name and "256" in message


@pytest.mark.parametrize("name", ["companyname", "email", "contact"])
def test_a_missing_required_trial_field_is_400(connection, name):
    assert refused_field(connection, "trial", **{name: None})[0] == name


@pytest.mark.parametrize("email, inn, name", [("no-at-sign", "7701234567", "email"),
                                              ("a@example.test", "12345", "inn")])
def test_a_malformed_email_or_inn_is_400(connection, email, inn, name):
    assert refused_field(connection, "trial", email=email, inn=inn)[0] == name


@pytest.mark.parametrize("host", [None, "h", {"components": {}}, {"components": {f"c{i}": "v" for i in range(65)}},
                                  {"components": {"system_uuid": LONG}}, {"components": {"nic": ["n"] * 65}},
                                  {"components": {"nic": []}}, {"components": {"system_uuid": 7}}])
def test_a_malformed_host_is_400(connection, host):
    field, message = refused_field(connection, "validation", host=host)
    assert field == "host" and ("64" in message or "256" in message)


@pytest.mark.parametrize("nonce", [None, "short", new_nonce()[:-1] + "!", new_nonce() + "A", 12,
                                   new_nonce()[:-1] + "B"])
def test_a_nonce_that_is_not_32_bytes_of_base64url_is_400(connection, nonce):
    field, message = refused_field(connection, "validation", nonce=nonce)
    assert field == "nonce" and "43" in message


def test_an_installation_id_that_is_not_the_keys_is_400(connection):
    installation = {**Agent().field(), "id": Agent().id}
    field, message = refused_field(connection, "activation", installation=installation)
    assert field == "installation" and "not the key's" in message


@pytest.mark.parametrize("change", [{"key": "short"}, {"token": "t" * 65}, {"token": 5}, {"id": "XYZ"}])
def test_a_malformed_installation_is_400(connection, change):
    installation = {**Agent().field(), **change}
    assert refused_field(connection, "validation", installation=installation)[0] == "installation"


def test_a_missing_installation_is_400(connection):
    assert refused_field(connection, "validation", installation=None)[0] == "installation"


@pytest.mark.parametrize("value", [{f"n{i}": "v" for i in range(65)}, {"calls": LONG}, {"calls": 3}, ["calls"]])
def test_malformed_metrics_fields_are_400(connection, value):
    assert refused_field(connection, "metrics", fields=value)[0] == "fields"


@pytest.mark.parametrize("call, name, value", [("capture", "feature", "33"), ("capture", "feature", 0),
                                               ("capture", "feature", True), ("product-trial", "product", 2 ** 31)])
def test_a_number_field_that_is_not_a_positive_whole_number_is_400(connection, call, name, value):
    assert refused_field(connection, call, **{name: value})[0] == name


@pytest.mark.parametrize("receipt", [None, "not a receipt", LONG])
def test_a_malformed_release_receipt_is_400(connection, receipt):
    status, _, answer = connection.post("offline-release", {"receipt": receipt} if receipt else {})
    assert status == 400 and answer["error"]["field"] == "receipt"


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b"\xff\xfe{}", b"[" * 60000])
def test_a_body_that_is_not_a_json_object_is_400_without_a_field(connection, raw):
    status, _, answer = connection.request("POST", "/api/v1/activation", raw)
    assert status == 400 and answer["error"]["field"] is None and answer["error"]["code"] is None


def test_a_lone_surrogate_in_a_text_field_is_400(connection):
    raw = json.dumps(body("trial")).replace('"Ann Admin"', '"Ann \\ud800"').encode()
    status, _, answer = connection.request("POST", "/api/v1/trial", raw)
    assert status == 400 and answer["error"]["field"] == "contact"


def test_a_malformed_but_short_number_is_still_2026(connection):
    status, _, answer = connection.post("activation", body("activation", registration_number="MIKO-123"))
    assert status == 404 and answer["error"]["code"] == 2026


# the parsing rules as plain values

def test_nic_hashes_are_kept_in_one_order_so_hosts_compare_as_values():
    assert fields.host({"components": {"nic": ["b", "a"]}}) == {"nic": ["a", "b"]}


def test_a_missing_token_is_the_first_request_of_an_installation():
    agent = Agent()
    assert fields.installation({"id": agent.id, "key": agent.public}).token is None


def test_field_errors_name_their_field():
    with pytest.raises(FieldError) as caught:
        fields.trial_form({"companyname": "c", "email": "e@x.example", "contact": ""})
    assert caught.value.field == "contact"
