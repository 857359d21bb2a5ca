"""Journal entries and stderr lines, with a real datagram socket standing in for journald."""
from __future__ import annotations

import array
import io
import logging
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from mikolicd import journal
from mikolicd.journal import (
    CONFIG_RELOADED, SERVER_ERROR, STATE_CHANGED, STORE_CORRUPT, VALIDATED, event, setup_logging,
)

NUMBER = "MIKO-12345-ABCDE-FGHIJ-KLMNO"
MASKED = "MIKO-12345-*****-*****-*****"
COUPON = "MIKOUPD-QWERT-YUIOP-ASDFG-HJKLZ"
SECRET_PARTS = (b"ABCDE", b"FGHIJ", b"KLMNO", b"YUIOP", b"ASDFG", b"HJKLZ")


def decode_entry(data: bytes) -> dict[str, str]:
    """The reader side of journald's native protocol."""
    fields: dict[str, str] = {}
    while data:
        line, sep, rest = data.partition(b"\n")
        assert sep, f"unterminated field {line[:40]!r}"
        if b"=" in line:
            key, _, value = line.partition(b"=")
            data = rest
        else:
            key, (size,) = line, struct.unpack("<Q", rest[:8])
            value, data = rest[8:8 + size], rest[8 + size + 1:]
        fields[key.decode()] = value.decode()
    return fields


@pytest.fixture
def journald(short_dir: Path) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(short_dir / "journal.sock"))
        sock.settimeout(5)
        yield sock


@pytest.fixture
def stderr_file(short_dir: Path) -> Iterator[io.TextIOWrapper]:
    with open(short_dir / "stderr", "w+") as stream:
        yield stream


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def journald_env(stream: io.TextIOWrapper, socket_path: str) -> dict[str, str]:
    st = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}", journal.JOURNAL_SOCKET_ENV: socket_path}


@pytest.fixture
def under_journald(journald, stderr_file, restore_root_logger) -> socket.socket:
    setup_logging(env=journald_env(stderr_file, journald.getsockname()), stream=stderr_file)
    return journald


def next_entry(sock: socket.socket) -> dict[str, str]:
    return decode_entry(sock.recv(1 << 20))


def test_event_is_one_entry_with_the_structured_fields(under_journald):
    event(logging.getLogger("mikolicd.agent"), logging.WARNING, "license state changed to grace",
          message_id=STATE_CHANGED, state="grace", server_code=2008, registration_number=NUMBER)
    entry = next_entry(under_journald)
    assert entry["MESSAGE"] == "license state changed to grace"
    assert entry["MESSAGE_ID"] == STATE_CHANGED
    assert entry["LICENSE_STATE"] == "grace"
    assert entry["SERVER_CODE"] == "2008"
    assert entry["REGISTRATION_NUMBER"] == MASKED
    assert entry["PRIORITY"] == "4"
    assert entry["SYSLOG_IDENTIFIER"] == "mikolicd"
    assert entry["LOGGER"] == "mikolicd.agent"


def test_event_leaves_out_fields_it_was_not_given(under_journald):
    event(logging.getLogger("mikolicd.agent"), logging.INFO, "validated", message_id=VALIDATED)
    entry = next_entry(under_journald)
    assert entry["MESSAGE_ID"] == VALIDATED
    assert not {"LICENSE_STATE", "SERVER_CODE", "REGISTRATION_NUMBER"} & entry.keys()


def test_extra_event_fields_become_upper_case_journal_fields(under_journald):
    event(logging.getLogger("mikolicd.store"), logging.ERROR, "state file corrupt",
          message_id=STORE_CORRUPT, file="license.jws")
    assert next_entry(under_journald)["FILE"] == "license.jws"


def test_event_refuses_a_name_the_journal_cannot_store():
    with pytest.raises(ValueError, match="journal field"):
        event(logging.getLogger("mikolicd"), logging.INFO, "x", message_id=CONFIG_RELOADED, **{"bad-name": 1})


def test_no_raw_registration_number_or_coupon_reaches_the_journal(under_journald):
    log = logging.getLogger("mikolicd.client")
    try:
        raise RuntimeError(f"server refused {NUMBER}")
    except RuntimeError:
        log.exception("activation of %s with coupon %s failed", NUMBER, COUPON)
    event(log, logging.ERROR, f"(2008) {NUMBER} is bound to another host", message_id=SERVER_ERROR,
          server_code=2008, registration_number=NUMBER, coupon=COUPON)
    first, second = under_journald.recv(1 << 20), under_journald.recv(1 << 20)
    for raw in (first, second):
        assert not [part for part in SECRET_PARTS if part in raw]
    assert MASKED in decode_entry(first)["MESSAGE"]
    assert "RuntimeError: server refused " + MASKED in decode_entry(first)["MESSAGE"]
    assert decode_entry(second)["COUPON"] == "MIKOUPD-QWERT-*****-*****-*****"


def test_multi_line_message_arrives_whole(under_journald):
    logging.getLogger("mikolicd").info("first line\nsecond line")
    assert next_entry(under_journald)["MESSAGE"] == "first line\nsecond line"


def test_oversized_entry_is_passed_as_a_sealed_memfd(under_journald):
    size = int(Path("/proc/sys/net/core/wmem_default").read_text()) + 1
    logging.getLogger("mikolicd").info("x" * size)
    fds = array.array("i")
    data, ancillary, _, _ = under_journald.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
    assert data == b""
    (level, kind, payload), = ancillary
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    fds.frombytes(payload)
    with open(fds[0], "rb") as memfd:
        assert journal.fcntl.fcntl(memfd.fileno(), journal.fcntl.F_GET_SEALS) & journal.fcntl.F_SEAL_WRITE
        memfd.seek(0)
        message = decode_entry(memfd.read())["MESSAGE"]
    assert (len(message), set(message)) == (size, {"x"})


def test_unreachable_journal_falls_back_to_prefixed_stderr(short_dir, stderr_file, restore_root_logger):
    setup_logging(env=journald_env(stderr_file, str(short_dir / "no-journald.sock")), stream=stderr_file)
    logging.getLogger("mikolicd").error("server unreachable")
    stderr_file.seek(0)
    assert stderr_file.read() == "<3>mikolicd: server unreachable\n"


def test_journal_stream_of_another_file_means_plain_stderr(journald, stderr_file, short_dir, restore_root_logger):
    with open(short_dir / "other", "w") as other:
        env = journald_env(other, journald.getsockname())
    setup_logging(env=env, stream=stderr_file)
    logging.getLogger("mikolicd").info("started")
    stderr_file.seek(0)
    assert stderr_file.read() == "<6>mikolicd: started\n"
    journald.settimeout(0)
    with pytest.raises(BlockingIOError):
        journald.recv(1 << 20)


@pytest.mark.parametrize(("level", "prefix"), [
    (logging.CRITICAL, "<2>"), (logging.ERROR, "<3>"), (logging.WARNING, "<4>"),
    (logging.INFO, "<6>"), (logging.DEBUG, "<7>"),
])
def test_stderr_lines_carry_the_syslog_priority(level, prefix, restore_root_logger):
    stream = io.StringIO()
    setup_logging(verbose=True, env={}, stream=stream)
    logging.getLogger("mikolicd.agent").log(level, "checked")
    assert stream.getvalue() == f"{prefix}mikolicd.agent: checked\n"


def test_every_traceback_line_keeps_the_priority(restore_root_logger):
    stream = io.StringIO()
    setup_logging(env={}, stream=stream)
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("mikolicd").exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) > 2 and all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>ValueError: bad"


def test_debug_lines_only_when_verbose(restore_root_logger):
    quiet, verbose = io.StringIO(), io.StringIO()
    setup_logging(env={}, stream=quiet)
    logging.getLogger("mikolicd").debug("detail")
    setup_logging(verbose=True, env={}, stream=verbose)
    logging.getLogger("mikolicd").debug("detail")
    assert (quiet.getvalue(), verbose.getvalue()) == ("", "<7>mikolicd: detail\n")


def test_stderr_lines_are_masked(restore_root_logger):
    stream = io.StringIO()
    setup_logging(env={}, stream=stream)
    logging.getLogger("mikolicd").info("activating %s", NUMBER)
    assert stream.getvalue() == f"<6>mikolicd: activating {MASKED}\n"


def test_setting_up_again_replaces_the_previous_handler(restore_root_logger):
    first, second = io.StringIO(), io.StringIO()
    setup_logging(env={}, stream=first)
    setup_logging(env={}, stream=second)
    logging.getLogger("mikolicd").warning("once")
    assert (first.getvalue(), second.getvalue()) == ("", "<4>mikolicd: once\n")


def test_message_ids_are_distinct_128_bit_ids():
    ids = [STATE_CHANGED, SERVER_ERROR, VALIDATED, STORE_CORRUPT, CONFIG_RELOADED]
    assert len(set(ids)) == 5
    assert all(len(bytes.fromhex(i)) == 16 for i in ids)


def test_bad_format_arguments_are_logged_instead_of_raised(restore_root_logger):
    stream = io.StringIO()
    handler = setup_logging(env={}, stream=stream)
    handler.handle(logging.LogRecord("mikolicd", logging.WARNING, __file__, 1, "seats %d of %d", ("one",), None))
    assert stream.getvalue() == "<4>mikolicd: seats %d of %d ('one',)\n"
