"""Clock faults: rolled back by days, a box booting at 1970, NTP steps and DST.

The daemon reads `time.time()` and the system clock cannot be moved in a test, so the state machine is
judged at chosen instants, and the daemon is shown the same situations through its stored state: a
`clock_high_water` ahead of now is, to the daemon, a clock that moved back.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import time

import pytest

from agentproc import AgentProcess
from badserver import DAY, TTL, Issue, stored_state, validate
from mikolicd import protocol
from mikolicd.license import Feature, Product
from mikolicd.lifecycle import CLOCK_TOLERANCE, LicenseState, evaluate, feature_status
from test_lifecycle import NOW, facts, lic

BOOT_1970 = 1000.0


# ---------------------------------------------------------------------- the state machine
def test_clock_moved_back_by_days_cannot_unlock_a_document_past_its_offline_limit():
    seen_expire = lic(iat=NOW - 20 * DAY, exp=NOW - DAY)
    verdict = evaluate(facts(seen_expire, now=NOW - 3 * DAY, high_water=NOW))
    assert verdict.state is LicenseState.INVALID and "clock" in verdict.reason
    assert not feature_status(verdict, seen_expire, 33).available


def test_clock_moved_back_just_beyond_the_tolerance_is_detected():
    verdict = evaluate(facts(lic(), now=NOW - CLOCK_TOLERANCE - 1, high_water=NOW))
    assert verdict.state is LicenseState.INVALID


@pytest.mark.parametrize("step", [1, 3600, 10 * DAY], ids=["ntp-step", "dst-hour", "days"])
def test_clock_stepping_forward_raises_no_alarm(step):
    verdict = evaluate(facts(lic(), now=NOW + step, high_water=NOW))
    assert verdict.state is LicenseState.ACTIVE and not verdict.clock_unknown


@pytest.mark.parametrize("ended", [lic(iat=NOW - 20 * DAY, exp=NOW - DAY),
                                   lic(trial=True, expires=dt.date(2026, 11, 20), iat=NOW - 20 * DAY)],
                         ids=["offline-limit", "trial-end"])
def test_box_at_1970_judges_dates_at_the_last_time_it_saw(ended):
    verdict = evaluate(facts(ended, now=BOOT_1970, high_water=NOW))
    assert verdict.state is LicenseState.EXPIRED


def test_box_at_1970_does_not_unlock_a_module_that_ended_before_the_last_time_it_saw():
    module = Product(20, "Module 20", True, dt.date(2026, 11, 20), (Feature(20, "Feature 20", 1, 0, 1),))
    with_module = dataclasses.replace(lic(iat=NOW - 20 * DAY), products=lic().products + (module,))
    verdict = evaluate(facts(with_module, now=BOOT_1970, high_water=NOW))
    assert verdict.usable and not feature_status(verdict, with_module, 20).available


def test_box_at_1970_is_known_time_again_once_the_clock_is_set():
    verdict = evaluate(facts(lic(), now=NOW + 60, high_water=NOW))
    assert verdict.state is LicenseState.ACTIVE and not verdict.clock_unknown


# ---------------------------------------------------------------------- the daemon
def high_water(agent: AgentProcess) -> float:
    return stored_state(agent)["clock_high_water"]


@pytest.mark.parametrize("exp_in", [TTL, DAY], ids=["inside-offline-limit", "offline-limit-already-seen-pass"])
def test_daemon_whose_clock_moved_back_by_days_is_invalid_and_locks_the_seat(seeded, exp_in):
    agent = seeded(ahead=3 * DAY, exp_in=exp_in)
    status = agent.status()
    assert status["state"] == "invalid" and "clock was moved back" in status["reason"]
    assert agent.call("GET", "/v1/features/33")[1]["available"] is False


@pytest.mark.parametrize("date,state", [(True, "active"), (False, "invalid")],
                         ids=["server-date-agrees", "no-server-date"])
def test_only_a_server_date_that_agrees_clears_the_clock_alarm(seeded, badserver, date, state):
    badserver.reset()
    badserver.on(protocol.VALIDATION, Issue(badserver.signer, date=date))
    agent = seeded(ahead=3 * DAY)
    assert validate(agent)["state"] == state
    assert (high_water(agent) < time.time() + DAY) is date


@pytest.mark.parametrize("ahead", [5, 3600], ids=["ntp-step", "dst-hour"])
def test_daemon_raises_no_alarm_for_small_clock_steps_back(seeded, ahead):
    agent = seeded(ahead=ahead)
    assert agent.status()["state"] == "active"
    assert agent.call("GET", "/v1/features/33")[1]["available"] is True
