"""How systemd learns that the agent is ready, alive and reloading, and how it hands over the API socket.

The datagram protocol of sd_notify(3) and the fd passing of sd_listen_fds(3) are small and stable, so the
daemon speaks them itself: one code path, the same under systemd and in the tests (which listen on their
own NOTIFY_SOCKET), and no libsystemd binding to build. Outside systemd everything is a no-op.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping, MutableMapping
from typing import NamedTuple

log = logging.getLogger("mikolicd.notify")

LISTEN_FDS_START = 3


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings: half the timeout, as sd_watchdog_enabled(3) advises.

    None when no watchdog is armed for this process. An empty WATCHDOG_PID counts as unset, so a
    launcher can clear an inherited value without disabling the watchdog.
    """
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


def _one_line(text: str) -> str:
    """A newline would end the STATUS= assignment and start a bogus one."""
    return " ".join(text.split())


def _datagram_address(address: str) -> str:
    return "\0" + address[1:] if address.startswith("@") else address


class Notifier(NamedTuple):
    """The sd_notify side of the daemon; never raises, since systemd going away must not stop licensing."""

    address: str | None
    watchdog_interval: float | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Notifier:
        interval = watchdog_interval(env, os.getpid())
        address = env.get("NOTIFY_SOCKET", "")
        return cls(address if address.startswith(("/", "@")) else None, interval)

    def notify(self, *assignments: str) -> bool:
        """Send one message of KEY=VALUE assignments; True when it was handed to systemd."""
        if self.address is None:
            return False
        message = "\n".join(assignments)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(errors="replace"), _datagram_address(self.address))
            return True
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={_one_line(status)}")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def reloading(self) -> bool:
        """systemd >= 253 (Type=notify-reload) pairs RELOADING=1 with the clock reading to order reloads."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def reloaded(self, status: str) -> bool:
        return self.ready(status)


def listen_fds_with_names(env: MutableMapping[str, str] = os.environ) -> list[tuple[str, socket.socket]]:
    """Sockets passed by systemd (sd_listen_fds(3)), each with its FileDescriptorName= ("unknown" if unset).

    The variables are removed whatever they hold, so that no child process takes the sockets for its own.
    """
    count_text = env.pop("LISTEN_FDS", "")
    pid_text = env.pop("LISTEN_PID", "")
    names_text = env.pop("LISTEN_FDNAMES", "")
    try:
        count, pid = int(count_text), int(pid_text)
    except ValueError:
        return []
    if pid != os.getpid() or count <= 0:
        return []
    names = names_text.split(":") if names_text else []
    names += ["unknown"] * (count - len(names))
    passed = []
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + count):
        os.set_inheritable(fd, False)
        passed.append((names[fd - LISTEN_FDS_START], socket.socket(fileno=fd)))
    return passed


def listen_fds(env: MutableMapping[str, str] = os.environ) -> list[socket.socket]:
    """The passed sockets in order; empty when the daemon was not socket-activated."""
    return [sock for _, sock in listen_fds_with_names(env)]
