"""The command-line tools as an admin runs them: in a pipe that closes early, and on a terminal (a pty)."""
from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 60.0


def run(*argv: str | Path, timeout: float = TIMEOUT, **options) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **options)


def with_stdout_closed(*argv: str | Path, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Standard output is a pipe whose reader is already gone, so the very first write fails, every time:
    what `| head -1` does to a command that writes after head has exited."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run([str(a) for a in argv], stdout=writer, stderr=subprocess.PIPE, text=True,
                              timeout=timeout)
    finally:
        os.close(writer)


@dataclass
class Terminal:
    """A command on a pseudo-terminal: it sees a tty on stdin, stdout and stderr, and Ctrl-C is a keystroke.
    Used as a context manager, so a failed expectation still kills the command (by pid) and closes the tty."""

    pid: int
    fd: int
    output: str = ""
    reaped: bool = False

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.reaped:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            os.close(self.fd)
            self.reaped = True

    @classmethod
    def start(cls, *argv: str | Path) -> Terminal:
        pid, fd = pty.fork()
        if pid == 0:  # the child: exec at once, nothing else runs in the forked test process
            try:
                os.execvp(str(argv[0]), [str(a) for a in argv])
            finally:
                os._exit(127)
        return cls(pid, fd)

    def _read(self, wait: float) -> bool:
        """Collect what arrives within `wait` seconds; False once the command has closed the terminal."""
        ready, _, _ = select.select([self.fd], [], [], max(0.0, wait))
        if not ready:
            return True
        try:
            data = os.read(self.fd, 4096)
        except OSError:  # EIO: the child closed its side
            return False
        self.output += data.decode(errors="replace")
        return bool(data)

    def expect(self, text: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline or not self._read(deadline - time.monotonic()):
                raise AssertionError(f"{text!r} did not appear; the terminal shows {self.output!r}")

    def send(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def wait(self, timeout: float = TIMEOUT) -> int:
        """The exit code, once everything it printed is read; the command is killed (by pid) and the test
        fails when it lingers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(0.1):
            continue
        done, status = os.waitpid(self.pid, os.WNOHANG)
        while not done and time.monotonic() < deadline:
            time.sleep(0.05)
            done, status = os.waitpid(self.pid, os.WNOHANG)
        if not done:
            raise AssertionError(f"still running after {timeout}s; the terminal shows {self.output!r}")
        os.close(self.fd)
        self.reaped = True
        return os.waitstatus_to_exitcode(status)


def one_line(text: str) -> str:
    """The single line a failing command prints; anything more (a traceback) fails the test."""
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]
