"""One agent per state directory and per socket: a lock held for the life of the process.

Two agents on one state directory would overwrite each other's license; a second agent binding the
socket path would leave the first one running but unreachable. So each takes an exclusive `flock` on a
lock file in the state directory and, when it binds the socket itself, on one beside the socket, and
writes its pid there so the refusal can say who holds it. The kernel drops the locks when the process
ends, kill -9 included, so a stale lock file never blocks a restart.
"""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

STATE_LOCK = ".lock"


class AlreadyRunning(Exception):
    """Another agent holds the state directory or the socket; `pid` is None when it could not be read."""

    def __init__(self, what: str, pid: int | None):
        holder = f"pid {pid}" if pid else "another process"
        super().__init__(f"another mikolicd ({holder}) already uses {what}: stop it first "
                         "(systemctl stop mikolicd, or kill that pid), or give this one its own "
                         "[storage] state_dir and [api] socket")
        self.what, self.pid = what, pid


def socket_lock_path(sock: Path) -> Path:
    return sock.with_name(f".{sock.name}.lock")


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _lock(path: Path, what: str) -> int:
    """The lock is held on a read-only descriptor: a file kept open for writing would stop the state
    directory's file system from being remounted read-only (EBUSY)."""
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise AlreadyRunning(what, pid) from None
    writer = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        os.write(writer, f"{os.getpid()}\n".encode())
    finally:
        os.close(writer)
    return fd


def _holder(path: Path) -> int | None:
    """The pid holding `path`'s lock, or None when nobody does (probing takes the lock for an instant)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(fd) or -1
    finally:
        os.close(fd)
    return None


def socket_alive(sock: Path) -> bool:
    """Something accepts connections on the path: it is never unlinked, whoever holds it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(sock))
        except OSError:
            return False
    return True


class Instance:
    """The locks of this process; they last until `release` or the process's end."""

    def __init__(self, fds: list[int]):
        self.fds = fds

    def release(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


def acquire(state_dir: Path, sock: Path | None) -> Instance:
    """Lock the state directory (created 0700 if missing) and, unless systemd passes the socket, the socket."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    held = Instance([_lock(state_dir / STATE_LOCK, f"the state directory {state_dir}")])
    try:
        if sock is not None:
            sock.parent.mkdir(parents=True, exist_ok=True)
            held.fds.append(_lock(socket_lock_path(sock), f"the socket {sock}"))
            if socket_alive(sock):
                raise AlreadyRunning(f"the socket {sock}", None)
    except BaseException:
        held.release()
        raise
    return held


def holder(state_dir: Path, sock: Path | None) -> tuple[str, int] | None:
    """(what, pid) of a running agent on this state directory or socket, for commands that check first."""
    pid = _holder(state_dir / STATE_LOCK)
    if pid:
        return f"the state directory {state_dir}", pid
    if sock is not None:
        pid = _holder(socket_lock_path(sock))
        if pid:
            return f"the socket {sock}", pid
    return None
