"""Fair rate limits, on by default: a client guessing numbers is slowed down, a box validating its own
number is not (docs/refserver.md, "Rate limits")."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from mikolicd.refserver.ratelimit import Limiter, Limits, TokenBucket, client_key

from refclient import Box, Connection, guess_numbers

WINDOW = 4.0  # seconds of guessing and validating side by side


# the buckets, on a clock of plain numbers

def test_a_bucket_admits_its_burst_then_one_request_per_interval():
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.take(0.0) for _ in range(4)] == [0, 0, 0, 0.5]
    assert bucket.take(0.5) == 0 and bucket.take(0.5) == 0.5


def test_a_bucket_without_a_burst_holds_one_second_of_its_rate():
    assert TokenBucket(rate=0.5).capacity == 1 and TokenBucket(rate=50).capacity == 50


def test_spending_below_zero_makes_the_wait_longer():
    bucket = TokenBucket(rate=1, burst=1)
    bucket.spend(0.0)
    bucket.spend(0.0)
    assert bucket.wait(0.0) == 2


def test_guesses_run_out_long_before_requests_do():
    limiter, now = Limiter(Limits(guesses_per_minute=6, guess_burst=2)), 0.0
    for _ in range(2):
        assert limiter.admit("10.0.0.1", now)[0] == 0
        limiter.missed("10.0.0.1", now)
    wait, why = limiter.admit("10.0.0.1", now)
    assert wait == pytest.approx(10) and "unknown numbers" in why
    assert limiter.admit("10.0.0.2", now)[0] == 0


def test_each_address_has_its_own_allowance():
    limiter = Limiter(Limits(address_rps=1, address_burst=2))
    assert [limiter.admit("10.0.0.1", 0.0)[0] for _ in range(3)] == [0, 0, 1]
    assert limiter.admit("10.0.0.2", 0.0)[0] == 0


def test_each_number_has_its_own_allowance_whatever_its_spelling():
    limiter = Limiter(Limits(number_rps=1, number_burst=1))
    assert limiter.admit_number("MIKO-AAAAA-BBBBB-CCCCC-DDDDD", 0.0)[0] == 0
    assert limiter.admit_number(" miko-aaaaa-bbbbb-ccccc-ddddd", 0.0)[0] == 1
    assert limiter.admit_number("MIKO-AAAAA-BBBBB-CCCCC-EEEEE", 0.0)[0] == 0


def test_the_global_bound_holds_across_addresses():
    limiter = Limiter(Limits(max_rps=2))
    assert [limiter.admit(f"10.0.0.{i}", 0.0)[0] for i in range(3)] == [0, 0, 0.5]


def test_a_limit_of_zero_is_off():
    limiter = Limiter(Limits(max_rps=0, address_rps=0, guesses_per_minute=0, number_rps=0))
    for _ in range(1000):
        limiter.missed("10.0.0.1", 0.0)
    assert limiter.admit("10.0.0.1", 0.0)[0] == 0 and limiter.admit_number("N", 0.0)[0] == 0


@pytest.mark.parametrize("address, key", [("192.0.2.7", "192.0.2.7"), ("::ffff:192.0.2.7", "192.0.2.7"),
                                          ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"), (None, "unknown")])
def test_an_ipv6_client_counts_as_its_whole_64(address, key):
    assert client_key(address) == key


# over HTTPS, with the default limits

def test_a_number_guessing_client_is_throttled_while_a_box_validating_its_own_number_is_not(refserver_factory):
    server = refserver_factory().start()
    guesser, box = Connection(server.port, server.ca, "127.0.0.2"), Box(Connection(server.port, server.ca))
    number = server.issue()
    assert box.call("activation", registration_number=number)[0] == 200
    guesses: Counter = Counter()
    until = time.monotonic() + WINDOW
    thread = threading.Thread(target=guess_numbers, args=(guesser, until, guesses), daemon=True)
    thread.start()
    validations = []
    while time.monotonic() < until:
        validations.append(box.call("validation", registration_number=number)[0])
        time.sleep(0.25)
    thread.join(WINDOW + 15)
    assert not thread.is_alive()
    assert validations and set(validations) == {200}
    assert guesses[404] <= Limits().guess_burst + 1 and guesses[429] > 10 * guesses[404]


def test_an_answer_over_a_limit_is_429_with_retry_after(refserver_factory):
    server = refserver_factory("--guess-burst", "1", "--guesses-per-minute", "1").start()
    guesser = Box(Connection(server.port, server.ca, "127.0.0.3"))
    first = guesser.call("validation", registration_number="MIKO-AAAAA-BBBBB-CCCCC-DDDDD")
    status, headers, answer = guesser.connection.post("validation", guesser.body(registration_number="MIKO-1"))
    assert first[0] == 404 and status == 429 and 50 <= int(headers["Retry-After"]) <= 60
    assert answer["error"]["code"] is None and "unknown numbers" in answer["error"]["message"]


def test_one_number_asked_too_often_is_429_for_that_number_only(refserver_factory):
    server = refserver_factory("--number-burst", "3", "--number-rps", "0.1").start()
    box = Box(Connection(server.port, server.ca))
    number = server.issue()
    statuses = [box.call("validation", registration_number=number)[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert box.call("activation", registration_number=server.issue())[0] == 200
