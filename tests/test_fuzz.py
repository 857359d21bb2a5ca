"""Property-based fuzzing of every JSON endpoint and every legacy license.api method on the real daemon.

Whatever arrives, the answer is a well-formed success or a client-facing error, never a 500, and the
daemon is still there afterwards: inputs come from the PBX web UI, old PBX code and any local user.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from agentproc import AgentProcess, box_agent, running, uds_call
from mikolicd import legacy
from mikolicd.forms import FIELDS as TRIAL_FIELDS

EXAMPLES = 100
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

WRITES: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/v1/registration"): frozenset(TRIAL_FIELDS),
    ("POST", "/v1/activation"): frozenset({"registration_number"}),
    ("DELETE", "/v1/activation"): frozenset(),
    ("POST", "/v1/coupons"): frozenset({"coupon"}),
    ("POST", "/v1/validation"): frozenset(),
}
READS = ["/v1/status", "/v1/license", "/v1/fingerprint", "/v1/health", "/v1/features/"]
LEGACY_FIELDS = ["key", "coupon", "companyname", "email", "contact", "tel", "inn", "description", "product",
                 "feature", "session"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
numbers = st.from_regex(r"\s?[Mm][Ii][Kk][Oo](-[A-Z0-9]{5}){4}\s?", fullmatch=True)
coupons = st.from_regex(r"\s?MIKOUPD(-[A-Z0-9]{5}){4}\s?", fullmatch=True)
plausible = numbers | coupons | st.emails() | st.from_regex(r"\d{1,13}", fullmatch=True) | st.text(max_size=80)


def json_bodies(fields: frozenset[str]) -> st.SearchStrategy[bytes]:
    """Mostly the endpoint's own fields with odd values, also any JSON at all, also bytes that are not JSON."""
    own = st.fixed_dictionaries({}, optional={name: plausible | json_values for name in sorted(fields)})
    extra = st.dictionaries(st.sampled_from(sorted(fields | {"x", ""})), plausible, max_size=3)
    structured = own | extra | json_values
    return structured.map(lambda v: json.dumps(v).encode()) | st.binary(max_size=300)


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, refserver) -> Iterator[AgentProcess]:
    """One agent for the whole module; whatever ran against it, it must have logged no error."""
    with running(box_agent(tmp_path_factory.mktemp("fuzz"), refserver, 9202)) as agent:
        yield agent
        log = agent.log_text()
        assert "Traceback" not in log and "<3>" not in log, f"the fuzzed agent logged an error: {log[-800:]}"


def assert_answered_without_internal_error(agent: AgentProcess, status: int, body: dict) -> None:
    assert status != 500, body
    assert agent.proc.poll() is None, agent.log_text()[-800:]
    assert status < 400 or "error" in body, body


@pytest.mark.parametrize("method,path", sorted(WRITES))
@FUZZ
@given(data=st.data())
def test_write_endpoints_never_answer_500(agent, method, path, data):
    body = data.draw(json_bodies(WRITES[(method, path)]))
    status, answer = uds_call(agent.sock, method, path, raw=body, headers={"Content-Type": "application/json"})
    assert_answered_without_internal_error(agent, status, answer)
    assert status < 400 or isinstance(answer["error"]["code"], str)


@pytest.mark.parametrize("path", READS)
@FUZZ
@given(tail=st.text(max_size=30), query=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
       body=st.binary(max_size=100))
def test_read_endpoints_never_answer_500(agent, path, tail, query, body):
    target = path + (quote(tail, safe="") if path.endswith("/") else "")
    if query:
        target += "?" + urlencode(query)
    status, answer = uds_call(agent.sock, "GET", target, raw=body or None)
    assert_answered_without_internal_error(agent, status, answer)


legacy_fields = st.dictionaries(st.sampled_from(LEGACY_FIELDS) | st.text(max_size=10),
                                plausible | st.sampled_from(["", "11", "33", "0", "-1", "999999999999"]),
                                max_size=6)


@FUZZ
@given(name=st.sampled_from(sorted(legacy.METHODS)) | st.text(max_size=20), fields=legacy_fields,
       how=st.sampled_from(["query", "form", "raw"]), raw=st.binary(max_size=200),
       content_type=st.sampled_from([legacy.FORM, "application/json", "text/plain", legacy.MULTIPART]))
def test_legacy_methods_never_answer_500(agent, name, fields, how, raw, content_type):
    path = legacy.PREFIX + quote(name, safe="")
    if how == "query":
        status, answer = uds_call(agent.sock, "GET", f"{path}?{urlencode(fields)}")
    else:
        body = urlencode(fields).encode() if how == "form" else raw
        status, answer = uds_call(agent.sock, "POST", path, raw=body,
                                  headers={"Content-Type": legacy.FORM if how == "form" else content_type})
    assert_answered_without_internal_error(agent, status, answer)
    assert status != 200 or {"result", "session"} & set(answer), answer


# ------------------------------------------------------------------ structure no honest client sends
def multipart(parts: list[tuple[str, str, bytes]], boundary: str = "fuzzboundary") -> tuple[bytes, str]:
    """A multipart/form-data body of (name, content type, payload) parts, as curl builds one."""
    out = b""
    for name, kind, payload in parts:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n"
                f"Content-Type: {kind}\r\n\r\n").encode() + payload + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"{legacy.MULTIPART}; boundary={boundary}"


part_types = st.sampled_from(["text/plain", "text/plain; charset=utf-8", "message/rfc822", "application/octet-stream",
                              "multipart/mixed", "image/png", "text/html; charset=latin-1", "x/y"])
payloads = st.binary(max_size=120) | st.sampled_from([b"\xff\xfe", b"\xed\xa0\x80", b"From: a@b\r\n\r\nbody",
                                                       b"--fuzzboundary\r\n"])


@FUZZ
@given(name=st.sampled_from(sorted(legacy.METHODS)),
       parts=st.lists(st.tuples(st.sampled_from(LEGACY_FIELDS), part_types, payloads), min_size=1, max_size=4))
def test_structured_multipart_bodies_never_answer_500(agent, name, parts):
    body, content_type = multipart(parts)
    status, answer = uds_call(agent.sock, "POST", legacy.PREFIX + name, raw=body, headers={"Content-Type": content_type})
    assert_answered_without_internal_error(agent, status, answer)


lone_surrogates = st.sampled_from(["\\ud800", "\\udfff", "\\udc80x", "a\\ud83d"])


@pytest.mark.parametrize("method,path", sorted(WRITES))
@FUZZ
@given(field=st.text(max_size=10), escape=lone_surrogates, as_key=st.booleans())
def test_json_with_invalid_unicode_is_refused_with_400(agent, method, path, field, escape, as_key):
    text = json.dumps(field)[1:-1]
    body = (f'{{"{text}{escape}": "x"}}' if as_key else f'{{"{sorted(WRITES[(method, path)] or {"x"})[0]}": '
            f'"{text}{escape}"}}').encode()
    status, answer = uds_call(agent.sock, method, path, raw=body, headers={"Content-Type": "application/json"},
                              timeout=10)
    assert status == 400 and answer["error"]["code"] == "invalid_json", answer


@pytest.mark.parametrize("depth", [10, 100, 30_000])
def test_deep_nesting_is_refused_with_400(agent, depth):
    body = ('{"registration_number": ' + "[" * depth + "]" * depth + "}").encode()
    status, answer = uds_call(agent.sock, "POST", "/v1/activation", raw=body,
                              headers={"Content-Type": "application/json"}, timeout=10)
    assert (status, answer["error"]["code"]) == (400, "invalid_json") and "nested" in answer["error"]["message"]
