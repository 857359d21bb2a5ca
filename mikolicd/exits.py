"""Exit codes and the one line every command ends with when it cannot do its job.

`mikolicd` and `mikolicctl` run in an admin's terminal and in scripts: whatever goes wrong (an interrupted
prompt, a closed pipe, a path that cannot be written) must end with one sentence naming the thing, the
cause and the fix, and an exit code a script can test, never a Python traceback.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

OK = 0
FAILED = 1  # the agent refused, or the outcome is not the one asked for
USAGE = 2  # a wrong option or input, refused before anything was sent (argparse uses 2 as well)
UNREACHABLE = 3  # no agent answers on the socket
FILE_ERROR = 4  # a local file or directory could not be read or written
INTERRUPTED = 130  # Ctrl-C, or input ended at a prompt: 128 + SIGINT, as shells report it
PIPE_CLOSED = 141  # the reader of standard output went away: 128 + SIGPIPE, as for any command in a pipe

_FILE_FIXES = {
    errno.ENOENT: "create the directory {parent} first, or choose another path",
    errno.ENOTDIR: "a part of {path} is a file, not a directory: choose another path",
    errno.EISDIR: "{path} is a directory: name a file in it",
    errno.EEXIST: "{path} is a file, not a directory: choose another path",
    errno.EACCES: "run as root, or choose a path this user may write",
    errno.EPERM: "run as root, or choose a path this user may write",
    errno.EROFS: "that file system is read-only: choose another path",
    errno.ENOSPC: "the disk is full: free some space, or choose another path",
}


class Failure(Exception):
    """Ends the command: `message` for the admin, `exit` for scripts, `code` and `answer` for `--json`."""

    def __init__(self, message: str, exit: int = FAILED, code: str = "failed",
                 answer: dict[str, Any] | None = None):
        super().__init__(message)
        self.message, self.exit, self.code, self.answer = message, exit, code, answer

    def __str__(self) -> str:
        return self.message


class OutputClosed(Exception):
    """Standard output's reader went away (`mikolicctl status | head -1`)."""


def file_failure(action: str, path: Path, exc: OSError, fix: str = "") -> Failure:
    """`action` says what was attempted, e.g. "cannot write the snapshot"; unless given, the fix follows
    from errno."""
    fix = fix or _FILE_FIXES.get(exc.errno or 0, "check the path and its permissions").format(
        path=path, parent=path.parent)
    return Failure(f"{action} {path}: {exc.strerror or exc}; {fix}", FILE_ERROR, "file_error")


ExitRow = tuple[int, str]


def merged(own: Iterable[ExitRow], shared: Iterable[ExitRow]) -> tuple[ExitRow, ...]:
    """A command's own meanings, and the shared ones it does not redefine, in order of code."""
    mine = tuple(own)
    known = {code for code, _ in mine}
    return tuple(sorted((*mine, *(row for row in shared if row[0] not in known))))


def help_table(rows: Iterable[ExitRow]) -> str:
    """The `exit codes:` block of a --help text."""
    lines = [textwrap.fill(meaning, 96, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7)
             for code, meaning in rows]
    return "exit codes:\n" + "\n".join(lines)


def emit(text: str) -> None:
    """Print to standard output now, so a closed pipe is noticed here and not at interpreter exit."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        raise OutputClosed() from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse prints --help and swallows a closed pipe, exiting 0; this one ends like every other output."""

    def print_help(self, file: Any = None) -> None:
        if file is None:
            emit(self.format_help().rstrip("\n"))
        else:
            super().print_help(file)


def say(prog: str, message: str) -> None:
    """One line on standard error; a closed standard error is not worth another error."""
    try:
        sys.stderr.write(f"{prog}: {message}\n")
        sys.stderr.flush()
    except OSError:
        pass


def _silence_stdout() -> None:
    """Point the closed stdout at /dev/null, so the interpreter's last flush does not complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def guarded(prog: str, body: Callable[[], int], json_mode: Callable[[], bool] = lambda: False,
            interrupted: str = "interrupted") -> int:
    """Run a command's `body` and turn every way it can end into an exit code and at most one line;
    `json_mode` tells, once the arguments are parsed, whether a failure is also printed as JSON."""
    try:
        code = body()
        sys.stdout.flush()
        return code
    except Failure as failure:
        if json_mode():
            answer = failure.answer or {"error": {"code": failure.code, "message": failure.message,
                                                  "server_code": None}}
            try:
                emit(json.dumps(answer, indent=2, ensure_ascii=False))
            except OutputClosed:
                _silence_stdout()
        say(prog, failure.message)
        return failure.exit
    except (OutputClosed, BrokenPipeError):
        _silence_stdout()
        return PIPE_CLOSED
    except KeyboardInterrupt:
        say(prog, interrupted)
        return INTERRUPTED
