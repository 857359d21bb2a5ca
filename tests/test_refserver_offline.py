"""Offline activation on the server: `offline answer` and release receipts, by command and over HTTPS
(docs/protocol.md, "Offline activation")."""
from __future__ import annotations

from pathlib import Path

import pytest

from mikolicd import offlinecode
from mikolicd.jws import load_trusted_keys, verify
from mikolicd.license import REFUSAL_TYPE, License, read_document

from conftest import RefServer
from refclient import Agent, Box, claims_of, new_host, new_nonce
from refclient import connection  # noqa: F401  (a fixture)

YEAR = 365 * 86400


def written(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"file-{len(list(tmp_path.iterdir()))}.txt"
    path.write_text(text)
    return str(path)


def answered(refserver: RefServer, tmp_path: Path, request: str, *options: str) -> str:
    return refserver.admin("offline", "answer", written(tmp_path, request), *options).strip()


def document(refserver: RefServer, token: str) -> License:
    return read_document(token, load_trusted_keys(refserver.trusted_keys))


def test_an_offline_answer_is_a_document_for_that_request_valid_a_year(refserver, tmp_path):
    agent, host, nonce, number = Agent(), new_host(), new_nonce(), refserver.issue()
    lic = document(refserver, answered(refserver, tmp_path, agent.offline_request(number, host, nonce)))
    assert (lic.registration_number, lic.nonce, lic.install_id, lic.offline) == (number, nonce, agent.id, True)
    assert lic.binding == host["components"] and lic.exp - lic.issued_at == YEAR


def test_an_offline_request_is_read_from_its_copy_paste_code_too(refserver, tmp_path):
    agent, number = Agent(), refserver.issue()
    code = offlinecode.encode(agent.offline_request(number, new_host(), new_nonce()))
    assert document(refserver, answered(refserver, tmp_path, code)).install_id == agent.id


def test_the_offline_lifetime_is_an_option_of_the_command(refserver, tmp_path):
    request = Agent().offline_request(refserver.issue(), new_host(), new_nonce())
    lic = document(refserver, answered(refserver, tmp_path, request, "--offline-ttl", "30d"))
    assert lic.exp - lic.issued_at == 30 * 86400


def test_the_answer_can_be_printed_as_a_code(refserver, tmp_path):
    request = Agent().offline_request(refserver.issue(), new_host(), new_nonce())
    code = answered(refserver, tmp_path, request, "--code")
    assert offlinecode.looks_like_code(code) and document(refserver, offlinecode.decode(code)).offline


def test_an_offline_answer_takes_the_seat(refserver, tmp_path, connection):
    number = refserver.issue()
    answered(refserver, tmp_path, Agent().offline_request(number, new_host(), new_nonce()))
    assert Box(connection).call("activation", registration_number=number)[1]["error"]["code"] == 2008


def test_a_box_answered_offline_goes_on_online_with_the_answers_token(refserver, tmp_path, connection):
    agent, host, number = Agent(), new_host(), refserver.issue()
    agent.token = claims_of(answered(refserver, tmp_path, agent.offline_request(number, host, new_nonce())))["token"]
    assert Box(connection, host, agent).call("validation", registration_number=number)[0] == 200


def test_an_offline_answer_for_a_reinstall_takes_the_seat_over(refserver, tmp_path, connection):
    old = Box(connection)
    number = refserver.issue()
    old.call("activation", registration_number=number)
    answered(refserver, tmp_path, Agent().offline_request(number, old.host, new_nonce()))
    assert old.call("validation", registration_number=number)[1]["error"]["code"] == 2008


@pytest.mark.parametrize("spoil, reason", [("type", "type"), ("signature", "signature"), ("id", "install_id"),
                                           ("typo", "checksum")])
def test_a_request_that_cannot_be_trusted_is_refused(refserver, tmp_path, spoil, reason):
    agent, number = Agent(), refserver.issue()
    request = agent.offline_request(number, new_host(), new_nonce())
    if spoil == "type":
        request = agent.receipt(number)
    elif spoil == "signature":
        request = request[:-4] + ("AAAA" if not request.endswith("AAAA") else "BBBB")
    elif spoil == "id":
        request = agent.offline_request(number, new_host(), new_nonce(), claimed_id=Agent().id)
    else:
        code = offlinecode.encode(request)
        request = code[:3] + ("A" if code[3] != "A" else "B") + code[4:]
    done = refserver.cli("offline", "answer", written(tmp_path, request))
    assert done.returncode == 1 and reason in done.stderr and done.stdout == ""


def test_an_offline_answer_without_a_free_seat_says_2008(refserver, tmp_path, connection):
    number = refserver.issue()
    Box(connection).call("activation", registration_number=number)
    done = refserver.cli("offline", "answer", written(tmp_path, Agent().offline_request(number, new_host(),
                                                                                         new_nonce())))
    assert done.returncode == 1 and "(2008)" in done.stderr


# release receipts

def held_offline(refserver: RefServer, tmp_path: Path) -> tuple[Agent, str]:
    agent, number = Agent(), refserver.issue()
    answered(refserver, tmp_path, agent.offline_request(number, new_host(), new_nonce()))
    return agent, number


def test_a_release_receipt_frees_the_seat_once(refserver, tmp_path, connection):
    agent, number = held_offline(refserver, tmp_path)
    receipt = written(tmp_path, agent.receipt(number))
    assert "released" in refserver.admin("offline", "release", receipt)
    again = refserver.cli("offline", "release", receipt)
    assert again.returncode == 1 and "(2009)" in again.stderr and "already used" in again.stderr
    assert Box(connection).call("activation", registration_number=number)[0] == 200


def test_a_release_receipt_over_https_frees_the_seat_once_then_is_a_signed_2009(refserver, tmp_path, connection):
    agent, number = held_offline(refserver, tmp_path)
    nonce = new_nonce()
    receipt = agent.receipt(number, nonce)
    assert connection.post("offline-release", {"receipt": receipt})[::2] == (200, {"released": True})
    status, _, again = connection.post("offline-release", {"receipt": receipt})
    claims = verify(again["error"]["refusal"], load_trusted_keys(refserver.trusted_keys), REFUSAL_TYPE)
    assert status == 403 and again["error"]["code"] == 2009 and "already used" in again["error"]["message"]
    assert (claims["nonce"], claims["install_id"], claims["registration_number"]) == (nonce, agent.id, number)


def test_a_release_receipt_of_an_installation_without_the_seat_is_2008(refserver, tmp_path, connection):
    _, number = held_offline(refserver, tmp_path)
    status, _, answer = connection.post("offline-release", {"receipt": Agent().receipt(number)})
    assert status == 409 and answer["error"]["code"] == 2008
    assert Box(connection).call("activation", registration_number=number)[0] != 200
