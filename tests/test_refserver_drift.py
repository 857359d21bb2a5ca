"""Binding drift: a seat follows parts replaced now and then, and cannot be walked to another machine one
part per call (docs/protocol.md, "Binding drift")."""
from __future__ import annotations

import time
import uuid

import pytest

from mikolicd.refserver.db import Owner
from mikolicd.refserver.drift import REBIND_INTERVAL, Bound, follow
from mikolicd.forms import TrialForm
from mikolicd.refserver.licensing import ProtocolError

from refclient import HOST_PARTS, Agent, Box, Connection, caller, in_process, new_host, trial_form
from refclient import clock, licensing  # noqa: F401  (fixtures)

DAY = 86400
SEED = "drift"
ORIGINAL = new_host(SEED)["components"]


def swapped(*parts: str, seed: str = SEED) -> dict:
    return new_host(seed, changed=parts)


# the rule, as plain values

def test_an_unchanged_host_records_nothing():
    assert follow(Bound(ORIGINAL), ORIGINAL, 0) == (True, None)


def test_a_first_changed_part_is_recorded_at_once():
    host = swapped("nic")["components"]
    assert follow(Bound(ORIGINAL), host, 100) == (True, Bound(host, 100))


def test_a_second_change_within_the_interval_is_served_but_not_recorded():
    record = Bound(swapped("nic")["components"], 100)
    assert follow(record, swapped("nic", "system_uuid")["components"], 100 + REBIND_INTERVAL - 1) == (True, None)


def test_a_change_after_the_interval_is_recorded():
    record = Bound(swapped("nic")["components"], 100)
    host = swapped("nic", "system_uuid")["components"]
    assert follow(record, host, 100 + REBIND_INTERVAL) == (True, Bound(host, 100 + REBIND_INTERVAL))


def test_a_host_two_parts_away_from_the_record_is_another_host():
    assert follow(Bound(ORIGINAL), swapped("nic", "system_uuid")["components"], 0) == (False, None)


def test_a_part_the_host_did_not_report_stays_in_the_record():
    partial = {k: v for k, v in swapped("machine_id")["components"].items() if k != "board_serial"}
    same, record = follow(Bound(ORIGINAL), partial, 0)
    assert same and record.host["board_serial"] == ORIGINAL["board_serial"]


# over HTTPS

def test_six_calls_each_swapping_one_part_cannot_walk_a_seat_to_another_machine(refserver):
    connection = Connection(refserver.port, refserver.ca)
    seed, agent, number = uuid.uuid4().hex, Agent(), refserver.issue()
    assert Box(connection, new_host(seed), agent).call("activation", registration_number=number)[0] == 200
    walk = [new_host(seed, changed=HOST_PARTS[:i]) for i in range(1, len(HOST_PARTS) + 1)] + [new_host()]
    codes = []
    for host in walk:
        status, answer = Box(connection, host, agent).call("validation", registration_number=number)
        codes.append(None if status == 200 else answer["error"]["code"])
    assert len(walk) == 6 and codes == [None, None, 2008, 2008, 2008, 2008]
    assert Box(connection, walk[-1]).call("activation", registration_number=number)[1]["error"]["code"] == 2008
    assert Box(connection, new_host(seed), agent).call("validation", registration_number=number)[0] == 200


def test_the_rebind_interval_is_a_serve_option(refserver_factory):
    server = refserver_factory("--rebind-interval", "1s").start()
    connection, seed, agent, number = Connection(server.port, server.ca), uuid.uuid4().hex, Agent(), server.issue()
    Box(connection, new_host(seed), agent).call("activation", registration_number=number)
    for i in range(1, 4):
        time.sleep(1.1)
        status, _ = Box(connection, new_host(seed, changed=HOST_PARTS[:i]), agent).call(
            "validation", registration_number=number)
        assert status == 200


# with a clock in the test's hands

def test_parts_replaced_a_month_apart_follow_the_host(licensing, clock):
    agent = Agent()
    number = licensing.issue(Owner(), 11, None, 1, 365, False)
    licensing.activate(number, caller(agent, swapped()))
    for i in range(1, len(HOST_PARTS)):
        clock.now += 31 * DAY
        agent.token = None
        licensing.activate(number, caller(agent, swapped(*HOST_PARTS[:i])))
    (seat,) = licensing.db.license(number).captures
    assert seat.host == swapped(*HOST_PARTS[:-1])["components"]


def test_the_same_parts_replaced_within_days_are_refused(licensing, clock):
    agent = Agent()
    number = licensing.issue(Owner(), 11, None, 1, 365, False)
    licensing.activate(number, caller(agent, swapped()))
    licensing.activate(number, caller(agent, swapped("nic")))
    clock.now += 10 * DAY
    with pytest.raises(ProtocolError, match="seat"):
        licensing.activate(number, caller(agent, swapped("nic", "system_uuid", "board_serial")))


def test_a_trial_host_follows_the_changes_recorded_for_its_seat(tmp_path, clock):
    licensing, agent, form = in_process(tmp_path, clock, rebind_interval=7 * DAY), Agent(), TrialForm(**trial_form())
    number = licensing.trial(form, 11, caller(agent, swapped()))["registration_number"]
    licensing.activate(number, caller(agent, swapped("nic")))
    clock.now += 8 * DAY
    licensing.activate(number, caller(agent, swapped("nic", "system_uuid")))
    again = licensing.trial(form, 11, caller(agent, swapped("nic", "system_uuid")))
    licensing.db.close()
    assert again["registration_number"] == number
