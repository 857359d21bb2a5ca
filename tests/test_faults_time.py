"""The box's owner plays with the clock, on the real daemon under libfaketime (Debian's `faketime`).

The daemon judges dates at max(wall clock, trusted time), and the trusted time counts on with
CLOCK_BOOTTIME, which faketime leaves alone here (FAKETIME_DONT_FAKE_MONOTONIC=1). So a clock stopped at
1970 or cycled back and forth gains nothing: once the offline window has really elapsed, the license is
expired. With that setting, Debian's libfaketime 0.9.10 breaks time.sleep() (upstream issue 426: the
absolute CLOCK_MONOTONIC deadline Python sleeps to is "faked" into the far future), and the client sleeps
between the tries of a call. The tests work around it, not the product: a tiny library preloaded before
libfaketime hands clock_nanosleep straight to the kernel.
"""
from __future__ import annotations

import glob
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentproc import AgentProcess, wait_for
from badserver import DAY, Reply, validate
from mikolicd import protocol

LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), None)
WINDOW = 8.0  # seconds of offline window left in the seeded document
BUSY = Reply(503, b'{"error": {"code": null, "message": "maintenance"}}', headers={"Retry-After": "3600"})

SLEEP_SHIM = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
int clock_nanosleep(clockid_t clock, int flags, const struct timespec *t, struct timespec *left) {
    return syscall(SYS_clock_nanosleep, clock, flags, t, left) == 0 ? 0 : errno;
}
"""

pytestmark = [pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime is not installed (.ci/run installs faketime)"),
              pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler for the sleep shim")]


@pytest.fixture(scope="module")
def sleep_shim(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("shim")
    (directory / "shim.c").write_text(SLEEP_SHIM)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(directory / "shim.so"), str(directory / "shim.c")],
                   check=True, timeout=60)
    return directory / "shim.so"


@pytest.fixture(autouse=True)
def honest_server(badserver) -> Iterator[None]:
    yield
    badserver.reset()


class FakeClock:
    """The daemon's wall clock, read by libfaketime from a file the test rewrites."""

    def __init__(self, directory: Path, spec: str, shim: Path):
        self.file = directory / "faketime"
        self.shim = shim
        self.set(spec)

    def set(self, spec: str) -> None:
        self.file.write_text(spec + "\n")

    @property
    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": f"{self.shim} {LIBFAKETIME}", "FAKETIME_TIMESTAMP_FILE": str(self.file),
                "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def state(agent: AgentProcess) -> str:
    return agent.status()["state"]


def offline_and_waiting(agent: AgentProcess, badserver) -> None:
    badserver.on(protocol.VALIDATION, BUSY)
    assert validate(agent)["state"] == "grace"


def test_a_clock_stopped_at_1970_cannot_stretch_the_offline_window(seeded, badserver, tmp_path, sleep_shim):
    clock = FakeClock(tmp_path, "@1970-01-01 00:00:00", sleep_shim)
    agent = seeded(exp_in=WINDOW, env=clock.env, age=0)  # a box at 1970 trusts no time after the `iat`
    offline_and_waiting(agent, badserver)
    assert agent.status()["clock"]["wall_behind_by_s"] > 50 * 365 * DAY
    assert wait_for(lambda: state(agent) == "expired", 4 * WINDOW, "the offline window to end")
    assert agent.call("GET", "/v1/features/33")[1]["available"] is False


@pytest.fixture
def cycling(tmp_path: Path, sleep_shim: Path) -> Iterator[FakeClock]:
    """The clock 2 h, then 59 min, then 2 h behind, … every half second: an owner keeping it just behind the
    license's limits, as a script would."""
    clock = FakeClock(tmp_path, "+0", sleep_shim)
    done = threading.Event()

    def cycle() -> None:
        step = 0
        while not done.wait(0.5):
            clock.set("-3540" if step % 2 else "-7200")
            step += 1
    thread = threading.Thread(target=cycle, daemon=True)
    thread.start()
    yield clock
    done.set()
    thread.join(5)


def test_a_clock_cycled_back_and_forth_cannot_stretch_the_offline_window(seeded, badserver, cycling):
    agent = seeded(exp_in=WINDOW, env=cycling.env, age=0)
    offline_and_waiting(agent, badserver)
    seen = set()
    assert wait_for(lambda: seen.add(state(agent)) or "expired" in seen, 4 * WINDOW, "the offline window to end")
    assert seen <= {"grace", "expired"}  # never invalid: a clock set back is no crime, only no gain


def test_a_clock_days_behind_stays_active_and_the_status_says_by_how_much(seeded, tmp_path, sleep_shim):
    agent = seeded(env=FakeClock(tmp_path, "-3d", sleep_shim).env)
    status = validate(agent)
    assert status["state"] == "active"
    assert abs(status["clock"]["wall_behind_by_s"] - 3 * DAY) < 600
    assert [w["code"] for w in status["warnings"]] == ["clock_behind"]
    assert agent.log_text().count("behind the last trusted time") == 1
