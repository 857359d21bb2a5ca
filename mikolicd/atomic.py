"""Atomic file replacement on file descriptors: the state store and the root-written hardware snapshot.

Readers see the old bytes or the new, never a mix: a temporary file is written, fsynced and renamed over
the target, and the directory is fsynced. Everything goes through descriptors — the directory is opened
component by component without following symlinks, the temporary file is created exclusively under a
random name, mode and owner are set on the open file — so a process that can write the directory (the
daemon's own user, when root writes the snapshot) cannot redirect a write or a chown anywhere else.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeDirectory(OSError):
    """A directory that someone other than its owner (or root) could rearrange under the writer."""


def open_dir(path: Path) -> int:
    """A descriptor of `path`, walked from `/` (or the working directory) one component at a time, each
    opened with O_NOFOLLOW: a symlink anywhere on the way is refused (ELOOP/ENOTDIR), not followed."""
    fd = os.open("/" if path.is_absolute() else ".", _DIR_FLAGS)
    try:
        for part in path.parts[1:] if path.is_absolute() else path.parts:
            if part in ("", "."):
                continue
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def require_private(dir_fd: int, path: Path) -> os.stat_result:
    """Refuse a directory that others may write: they could swap entries while root works in it."""
    st = os.fstat(dir_fd)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDirectory(f"{path} is writable by its group or by others (mode {stat.S_IMODE(st.st_mode):04o}): "
                              "use a directory only its owner can write, such as /run/mikolicd")
    return st


def temp_name(name: str) -> str:
    return f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"


def writer_pid(temp: str) -> int | None:
    """The pid a temporary name was made by, so a sweeper can tell a dead writer's leftovers."""
    parts = temp.split(".")
    return int(parts[-3]) if len(parts) >= 4 and parts[-1] == "tmp" and parts[-3].isdigit() else None


def replace(dir_fd: int, name: str, data: bytes, mode: int = 0o600, owner: tuple[int, int] | None = None) -> None:
    """Write `data` as `name` in the directory `dir_fd`, atomically; `owner` (uid, gid) set on the file."""
    tmp = temp_name(name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    os.fsync(dir_fd)

