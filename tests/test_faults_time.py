"""The box's owner plays with the clock, on the real daemon under libfaketime (Debian's `faketime`).

The daemon judges dates at max(wall clock, trusted time), and the trusted time counts on with
CLOCK_BOOTTIME, which faketime leaves alone here (FAKETIME_DONT_FAKE_MONOTONIC=1). So a clock stopped at
1970 or cycled back and forth gains nothing: once the offline window has really elapsed, the license is
expired. With that setting, Debian's libfaketime 0.9.10 makes time.sleep() hang or fail (upstream issue
426); the daemon's event loop does not use it, and its client sleeps only between tries of a call, so
the "unreachable" server here answers 503 with a Retry-After longer than a try's pause: the client gives
up at once instead of sleeping.
"""
from __future__ import annotations

import glob
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentproc import AgentProcess, wait_for
from badserver import DAY, Reply, validate
from mikolicd import protocol

LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), None)
WINDOW = 8.0  # seconds of offline window left in the seeded document
BUSY = Reply(503, b'{"error": {"code": null, "message": "maintenance"}}', headers={"Retry-After": "3600"})

pytestmark = pytest.mark.skipif(LIBFAKETIME is None, reason="libfaketime is not installed (.ci/run installs faketime)")


class FakeClock:
    """The daemon's wall clock, read by libfaketime from a file the test rewrites."""

    def __init__(self, directory: Path, spec: str):
        self.file = directory / "faketime"
        self.set(spec)

    def set(self, spec: str) -> None:
        self.file.write_text(spec + "\n")

    @property
    def env(self) -> dict[str, str]:
        return {"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(self.file), "FAKETIME_NO_CACHE": "1",
                "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def state(agent: AgentProcess) -> str:
    return agent.status()["state"]


def offline_and_waiting(agent: AgentProcess, badserver) -> None:
    badserver.on(protocol.VALIDATION, BUSY)
    assert validate(agent)["state"] == "grace"


def test_a_clock_stopped_at_1970_cannot_stretch_the_offline_window(seeded, badserver, tmp_path):
    clock = FakeClock(tmp_path, "@1970-01-01 00:00:00")
    agent = seeded(exp_in=WINDOW, env=clock.env)
    offline_and_waiting(agent, badserver)
    assert agent.status()["clock"]["wall_behind_by_s"] > 50 * 365 * DAY
    assert wait_for(lambda: state(agent) == "expired", 4 * WINDOW, "the offline window to end")
    assert agent.call("GET", "/v1/features/33")[1]["available"] is False


@pytest.fixture
def cycling(tmp_path: Path) -> Iterator[FakeClock]:
    """+2 h, -2 h, +2 h, … every half second: what an owner scripting the clock would try."""
    clock = FakeClock(tmp_path, "+0")
    done = threading.Event()

    def cycle() -> None:
        step = 0
        while not done.wait(0.5):
            clock.set("+7200" if step % 2 else "-7200")
            step += 1
    thread = threading.Thread(target=cycle, daemon=True)
    thread.start()
    yield clock
    done.set()
    thread.join(5)


def test_a_clock_cycled_back_and_forth_cannot_stretch_the_offline_window(seeded, badserver, cycling):
    agent = seeded(exp_in=WINDOW, env=cycling.env)
    offline_and_waiting(agent, badserver)
    seen = set()
    assert wait_for(lambda: seen.add(state(agent)) or "expired" in seen, 4 * WINDOW, "the offline window to end")
    assert seen <= {"grace", "expired"}  # never invalid: a clock set back is no crime, only no gain


def test_a_clock_days_behind_stays_active_and_the_status_says_by_how_much(seeded, badserver, tmp_path):
    agent = seeded(env=FakeClock(tmp_path, "-3d").env)
    status = validate(agent)
    assert status["state"] == "active"
    assert abs(status["clock"]["wall_behind_by_s"] - 3 * DAY) < 600
    assert [w["code"] for w in status["warnings"]] == ["clock_behind"]
    assert agent.log_text().count("behind the last trusted time") == 1
