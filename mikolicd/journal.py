"""Logging for the daemon: ops read it with `journalctl -u mikolicd` and filter on structured fields.

Under journald each record becomes a native journal entry carrying MESSAGE_ID, LICENSE_STATE, SERVER_CODE
and the masked REGISTRATION_NUMBER; anywhere else it is a stderr line with a syslog priority prefix.
Registration numbers and coupons are masked on the handler, so no code path can leak one into a log.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import socket
import struct
import sys
from collections.abc import Callable, Mapping
from typing import IO, Any

from mikolicd.regnum import mask

STATE_CHANGED = "8c36e115c1144b20be655e1fa5df84cf"
SERVER_ERROR = "536451cf79cd4c33adf6d39f2f21268a"
VALIDATED = "81ac35292e0c436e8ff8d85b7cd1fb26"
STORE_CORRUPT = "d141e68588f14ff8afa41408915611c4"
CONFIG_RELOADED = "3ac3f5cbb9424ac288d11310ffd5395a"
CLOCK_BEHIND = "2684174a5c274dd58644526dd02c90a4"
INTERCEPTION = "bac82e88e4ef44ffaa42c4a062545d89"
EXPIRES_SOON = "def8484af0ea461fa1f29badf9f15090"
KEY_IMPORTED = "9f5332c99e014e74938dcf06fbf3effc"

JOURNAL_SOCKET_ENV = "MIKOLICD_JOURNAL_SOCKET"
DEFAULT_JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "mikolicd"
HANDLER_NAME = "mikolicd"

_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE

Sender = Callable[[Mapping[str, str]], None]


def syslog_priority(levelno: int) -> int:
    """Python levels onto syslog priorities: crit 2, err 3, warning 4, info 6, debug 7."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def record_fields(record: logging.LogRecord) -> dict[str, str]:
    """Journal fields ride on a record as upper-case attributes (logging's `extra=`); LogRecord's own are lower-case."""
    return {key: str(value) for key, value in vars(record).items()
            if _FIELD_NAME.fullmatch(key) and value is not None}


def encode_entry(fields: Mapping[str, str]) -> bytes:
    """journald's native datagram: KEY=value lines; a value with a newline goes as KEY, length, raw bytes."""
    out = bytearray()
    for key, value in fields.items():
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def journal_stream_matches(value: str, stat: os.stat_result) -> bool:
    """systemd sets JOURNAL_STREAM=dev:ino for the stderr it connected to journald (systemd.exec(5))."""
    dev, _, ino = value.partition(":")
    try:
        return (int(dev), int(ino)) == (stat.st_dev, stat.st_ino)
    except ValueError:
        return False


class MaskFilter(logging.Filter):
    """Masks the whole rendered record, tracebacks and fields included, before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            # Filters run outside logging's error handling: a bad format must not raise into the daemon.
            text = f"{record.msg} {record.args!r}"
        record.msg = mask(text)
        record.args = ()
        if record.exc_info:
            record.exc_text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        for key, value in record_fields(record).items():
            setattr(record, key, mask(value))
        return True


class SyslogPrefixFormatter(logging.Formatter):
    """Every line starts with <N>, which journald and syslog read as its priority (sd-daemon(3))."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


class NativeSocketSender:
    """journald's native protocol (one datagram per entry), so structured fields reach the journal intact."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def __call__(self, fields: Mapping[str, str]) -> None:
        payload = encode_entry(fields)
        try:
            self.sock.sendto(payload, self.path)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_as_memfd(payload)

    def _send_as_memfd(self, payload: bytes) -> None:
        """An entry too big for one datagram (a long traceback) goes as a sealed memfd, as journald expects."""
        fd = os.memfd_create("mikolicd-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
            self.sock.sendmsg([], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))], 0, self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        self.sock.close()


class JournalHandler(logging.Handler):
    """One native journal entry per record; falls back to stderr lines while journald is unreachable."""

    def __init__(self, send: Sender, fallback: logging.Handler) -> None:
        super().__init__()
        self.send = send
        self.fallback = fallback

    def entry(self, record: logging.LogRecord) -> dict[str, str]:
        return {
            "MESSAGE": self.format(record),
            "PRIORITY": str(syslog_priority(record.levelno)),
            "SYSLOG_IDENTIFIER": SYSLOG_IDENTIFIER,
            "LOGGER": record.name,
            "CODE_FILE": record.pathname,
            "CODE_LINE": str(record.lineno),
            "CODE_FUNC": record.funcName,
            **record_fields(record),
        }

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.send(self.entry(record))
        except OSError:
            self.fallback.emit(record)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        if isinstance(self.send, NativeSocketSender):
            self.send.close()
        super().close()


def _under_journald(env: Mapping[str, str], stream: IO[str]) -> bool:
    value = env.get("JOURNAL_STREAM", "")
    if not value:
        return False
    try:
        return journal_stream_matches(value, os.fstat(stream.fileno()))
    except (OSError, ValueError):
        return False


def _isatty(stream: IO[str]) -> bool:
    """An admin at a terminal reads plain lines; journald and log files get the priority prefix."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _journal_sender(env: Mapping[str, str]) -> Sender:
    return NativeSocketSender(env.get(JOURNAL_SOCKET_ENV) or DEFAULT_JOURNAL_SOCKET)


def setup_logging(verbose: bool = False, *, env: Mapping[str, str] = os.environ,
                  stream: IO[str] | None = None) -> logging.Handler:
    """Install the daemon's log handler on the root logger (replacing one installed before) and return it."""
    stream = stream if stream is not None else sys.stderr
    plain = logging.StreamHandler(stream)
    plain.setFormatter(logging.Formatter("%(name)s: %(message)s") if _isatty(stream) else SyslogPrefixFormatter())
    handler = JournalHandler(_journal_sender(env), plain) if _under_journald(env, stream) else plain
    handler.set_name(HANDLER_NAME)
    handler.addFilter(MaskFilter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return handler


def event(logger: logging.Logger, level: int, message: str, *, message_id: str, state: str | None = None,
          server_code: int | None = None, registration_number: str | None = None, **fields: Any) -> None:
    """Log one catalogued journal entry; ops filter on its fields, e.g. `journalctl LICENSE_STATE=grace`."""
    extra = {"MESSAGE_ID": message_id}
    if state is not None:
        extra["LICENSE_STATE"] = state
    if server_code is not None:
        extra["SERVER_CODE"] = str(server_code)
    if registration_number:
        extra["REGISTRATION_NUMBER"] = mask(registration_number)
    for key, value in fields.items():
        name = key.upper()
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"{key!r} cannot be a journal field name (A-Z, 0-9, _; at most 64)")
        extra[name] = mask(str(value))
    logger.log(level, mask(message), extra=extra)
