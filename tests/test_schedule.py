"""When the agent calls the server: jittered checks, capped backoff, Retry-After obeyed."""
import pytest

from mikolicd.schedule import FIRST_RETRY, Policy, first_check, next_check, retry_delay

POLICY = Policy(check_interval=6 * 3600, jitter=0.1, retry_max_delay=3600)


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_next_check_stays_within_the_jitter_band(rand):
    delay = next_check(POLICY, 0, rand)
    assert 0.9 * 6 * 3600 <= delay <= 1.1 * 6 * 3600


def test_two_quick_retries_catch_a_blip():
    assert retry_delay(POLICY, 1, 1.0) == FIRST_RETRY
    assert retry_delay(POLICY, 2, 1.0) == 2 * FIRST_RETRY


def test_after_the_quick_retries_the_gap_is_long_and_jittered():
    assert 1800 <= retry_delay(POLICY, 3, 0.0) < retry_delay(POLICY, 3, 0.99) <= 3600


def test_backoff_is_capped_at_retry_max_delay():
    assert retry_delay(POLICY, 50, 0.999) <= 3600


def test_retry_after_is_a_floor():
    assert retry_delay(POLICY, 1, 0.0, retry_after=900) == 900


def test_start_up_keeps_the_rhythm_of_the_last_good_check():
    assert first_check(POLICY, 1000, 900, 0.5) == 900 + 6 * 3600


def test_start_up_checks_at_once_when_the_last_check_is_overdue():
    assert first_check(POLICY, 10 * 3600 * 24, 0, 0.5) == 10 * 3600 * 24


def test_start_up_without_any_good_check_checks_at_once():
    assert first_check(POLICY, 1000, None, 0.5) == 1000
