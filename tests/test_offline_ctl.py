"""`mikolicctl offline …`: codes checked before anything is sent, files private, the whole round trip."""
from __future__ import annotations

import random
import stat
import subprocess
from pathlib import Path

import pytest

from agentproc import AgentProcess, box_agent, free_port, running
from cliproc import one_line, run
from conftest import RefServer
from mikolicd import exits, offlinecode

JWS = "eyJhbGciOiJFZERTQSJ9.eyJub25jZSI6IngifQ.c2lnbmF0dXJl"


def mistyped(code: str) -> str:
    """The code with one character of its second block replaced, as a hand copy goes wrong."""
    at = code.index("-") + 3
    return code[:at] + ("B" if code[at] != "B" else "C") + code[at + 1:]


@pytest.fixture
def nowhere(tmp_path: Path) -> Path:
    """A socket nobody listens on: a command that reaches for it exits 3, so 2 proves nothing was sent."""
    return tmp_path / "none.sock"


def test_a_mistyped_code_is_refused_locally_naming_the_block(nowhere):
    done = run("mikolicctl", "--socket", nowhere, "offline", "apply", mistyped(offlinecode.encode(JWS)))
    assert done.returncode == exits.USAGE
    line = one_line(done.stderr)
    assert line.startswith("mikolicctl: the offline code is not right: checksum error in block 2 ")
    assert line.endswith("; nothing was sent")


def test_a_mistyped_code_of_many_lines_given_as_the_argument_is_refused_the_same_way(nowhere):
    long = offlinecode.encode(JWS + random.Random(1).randbytes(400).hex())  # longer than a file name may be
    assert long.count("\n") > 3
    done = run("mikolicctl", "--socket", nowhere, "offline", "apply", mistyped(long))
    assert done.returncode == exits.USAGE and "checksum error in block 2" in one_line(done.stderr)


def test_a_mistyped_code_on_standard_input_is_refused_the_same_way(nowhere):
    done = run("mikolicctl", "--socket", nowhere, "offline", "apply", "-", input=mistyped(offlinecode.encode(JWS)))
    assert done.returncode == exits.USAGE and "checksum error in block 2" in one_line(done.stderr)


def test_a_mistyped_code_in_a_file_is_refused_the_same_way(nowhere, tmp_path):
    response = tmp_path / "response.txt"
    response.write_text(mistyped(offlinecode.encode(JWS)) + "\n")
    done = run("mikolicctl", "--socket", nowhere, "offline", "apply", response)
    assert done.returncode == exits.USAGE and "checksum error in block 2" in one_line(done.stderr)


def test_a_missing_response_file_exits_4(nowhere, tmp_path):
    done = run("mikolicctl", "--socket", nowhere, "offline", "apply", tmp_path / "response.txt")
    assert done.returncode == exits.FILE_ERROR
    assert "cannot read the offline response" in one_line(done.stderr)


def test_a_good_code_passes_the_local_check_and_goes_to_the_agent(nowhere):
    done = run("mikolicctl", "--socket", nowhere, "offline", "apply", offlinecode.encode(JWS))
    assert done.returncode == exits.UNREACHABLE


# -------------------------------------------------------------------------- with the agent and server


@pytest.fixture(scope="module")
def agent(tmp_path_factory, refserver: RefServer):
    with running(box_agent(tmp_path_factory.mktemp("offline"), refserver, 6400)) as agent:
        number = refserver.issue()
        assert agent.call("POST", "/v1/activation", {"registration_number": number})[0] == 200
        yield agent


def ctl(agent: AgentProcess, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run("mikolicctl", "--socket", agent.sock, *args, cwd=cwd)


def assert_code_printed_and_written_privately(done: subprocess.CompletedProcess, target: Path) -> None:
    assert done.returncode == exits.OK, done.stderr
    assert offlinecode.decode(done.stdout) == target.read_text().strip()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_request_prints_the_code_of_the_request_it_writes_privately(agent, tmp_path):
    target = tmp_path / "request.txt"
    assert_code_printed_and_written_privately(ctl(agent, "offline", "request", "--output", target), target)


def test_request_answered_by_the_server_and_applied_is_active(agent, refserver, tmp_path):
    request = tmp_path / "request.txt"
    assert ctl(agent, "offline", "request", "--output", request).returncode == exits.OK
    response = tmp_path / "response.txt"
    response.write_text(refserver.admin("offline", "answer", str(request)))
    done = ctl(agent, "offline", "apply", response)
    assert done.returncode == exits.OK, done.stderr
    assert "state:          active" in done.stdout


def test_a_response_pasted_as_a_code_on_standard_input_is_applied(agent, refserver, tmp_path):
    request = tmp_path / "request.txt"
    assert ctl(agent, "offline", "request", "--output", request).returncode == exits.OK
    code = refserver.admin("offline", "answer", "--code", str(request))
    done = run("mikolicctl", "--socket", agent.sock, "offline", "apply", "-", input=code)
    assert done.returncode == exits.OK, done.stderr


def test_the_receipt_frees_the_seat_on_the_server_once(agents_for_release, refserver, tmp_path):
    receipt = tmp_path / "receipt.txt"
    assert ctl(agents_for_release, "offline", "release", "--output", receipt).returncode == exits.OK
    assert refserver.cli("offline", "release", str(receipt)).returncode == 0
    assert refserver.cli("offline", "release", str(receipt)).returncode != 0


def test_release_prints_the_receipts_code_and_writes_it_privately(agents_for_release, tmp_path):
    target = tmp_path / "receipt.txt"
    assert_code_printed_and_written_privately(ctl(agents_for_release, "offline", "release", "--output", target),
                                              target)


def test_release_into_a_missing_directory_exits_4_and_keeps_the_license(agents_for_release, tmp_path):
    done = ctl(agents_for_release, "offline", "release", "--output", tmp_path / "missing" / "receipt.txt")
    assert done.returncode == exits.FILE_ERROR
    assert agents_for_release.status()["state"] == "active"


@pytest.fixture
def agents_for_release(tmp_path, refserver: RefServer):
    """An activated agent of its own: releasing drops its license."""
    with running(box_agent(tmp_path, refserver, 6401)) as agent:
        assert agent.call("POST", "/v1/activation", {"registration_number": refserver.issue()})[0] == 200
        yield agent


def test_validate_fails_for_an_offline_license_that_no_server_confirmed(refserver, tmp_path):
    box = box_agent(tmp_path, refserver, 6401, url=f"https://127.0.0.1:{free_port()}")  # no server there
    request, response = tmp_path / "request.txt", tmp_path / "response.txt"
    with running(box):
        done = ctl(box, "offline", "request", "--number", refserver.issue(), "--output", request)
        assert done.returncode == exits.OK, done.stderr
        response.write_text(refserver.admin("offline", "answer", str(request)))
        assert ctl(box, "offline", "apply", response).returncode == exits.OK
        done = ctl(box, "validate")
    assert done.returncode == exits.FAILED and "state:          active" in done.stdout
    assert "not confirmed" in done.stderr
