"""An air-gapped box: activated by an offline request and answer alone, active without any server until
the answer's own end, and the answer good once and only there."""
from __future__ import annotations


import pytest

from agentproc import box_agent, free_port, running
from mikolicd import offlinecode

NOWHERE = f"https://127.0.0.1:{free_port()}"  # nothing listens there: the box never reaches a server


def answer(refserver, request: str, tmp_path) -> str:
    path = tmp_path / f"request-{abs(hash(request))}.txt"
    path.write_text(request)
    return refserver.admin("offline", "answer", str(path)).strip()


@pytest.fixture
def box(tmp_path, refserver):
    with running(box_agent(tmp_path, refserver, 7100, url=NOWHERE)) as agent:
        yield agent


def request_for(box, number: str) -> str:
    code, body = box.call("GET", f"/v1/offline/request?registration_number={number}")
    assert code == 200, body
    assert offlinecode.decode(body["code"]) == body["request"]
    return body["request"]


def test_a_box_that_never_reached_a_server_is_active_by_an_offline_answer(box, refserver, tmp_path):
    number = refserver.issue()
    response = answer(refserver, request_for(box, number), tmp_path)
    code, status = box.call("POST", "/v1/offline/response", {"response": response})
    assert code == 200 and status["state"] == "active" and status["offline"], status
    validated = box.call("POST", "/v1/validation")[1]
    assert validated["state"] == "active" and validated["last_validation"]["outcome"] == "unreachable"


def test_an_offline_answer_works_once(box, refserver, tmp_path):
    number = refserver.issue()
    response = answer(refserver, request_for(box, number), tmp_path)
    assert box.call("POST", "/v1/offline/response", {"response": response})[0] == 200
    code, body = box.call("POST", "/v1/offline/response", {"response": response})
    assert code == 409 and body["error"]["code"] == "offline_not_requested"


def test_only_the_latest_request_can_be_answered(box, refserver, tmp_path):
    number = refserver.issue("--seats", "2")
    first = answer(refserver, request_for(box, number), tmp_path)
    request_for(box, number)
    code, body = box.call("POST", "/v1/offline/response", {"response": first})
    assert code == 502 and "nonce" in body["error"]["message"]


def test_an_offline_answer_for_another_host_or_installation_is_refused(tmp_path, refserver):
    number = refserver.issue("--seats", "2")
    with running(box_agent(tmp_path, refserver, 7101, name="a", url=NOWHERE)) as a, \
            running(box_agent(tmp_path, refserver, 7102, name="b", url=NOWHERE)) as b:
        for_a = answer(refserver, request_for(a, number), tmp_path)
        request_for(b, number)
        code, body = b.call("POST", "/v1/offline/response", {"response": for_a})
        assert code == 502 and b.status()["state"] == "pending", body


def test_a_mistyped_code_is_refused_by_the_agent_too(box, refserver, tmp_path):
    number = refserver.issue()
    code_text = offlinecode.encode(answer(refserver, request_for(box, number), tmp_path))
    typo = ("B" if code_text[0] != "B" else "C") + code_text[1:]
    code, body = box.call("POST", "/v1/offline/response", {"response": typo})
    assert code == 400 and body["error"]["code"] == "invalid_offline_code" and "block 1" in body["error"]["message"]


def test_a_release_receipt_frees_the_seat_once(box, refserver, tmp_path):
    number = refserver.issue("--seats", "1")
    response = answer(refserver, request_for(box, number), tmp_path)
    assert box.call("POST", "/v1/offline/response", {"response": response})[0] == 200
    code, released = box.call("POST", "/v1/offline/release")
    assert code == 200 and box.status()["state"] == "pending"
    receipt = tmp_path / "receipt.txt"
    receipt.write_text(released["receipt"])
    assert refserver.cli("offline", "release", str(receipt)).returncode == 0
    again = refserver.cli("offline", "release", str(receipt))
    assert again.returncode != 0 and "already used" in again.stderr
