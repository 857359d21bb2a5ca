"""When the agent calls the server: jittered checks, capped backoff, Retry-After obeyed."""
import pytest

from mikolicd.schedule import FIRST_RETRY, Policy

POLICY = Policy.of(check_interval=6 * 3600, jitter=0.1, retry_max_delay=3600)


@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_next_check_stays_within_the_jitter_band(rand):
    assert 0.9 * 6 * 3600 <= POLICY.next_check(0, rand) <= 1.1 * 6 * 3600


def test_two_quick_retries_catch_a_blip():
    assert POLICY.retry_delay(1, 1.0) == FIRST_RETRY
    assert POLICY.retry_delay(2, 1.0) == 2 * FIRST_RETRY


def test_after_the_quick_retries_the_gap_is_long_and_jittered():
    assert 1800 <= POLICY.retry_delay(3, 0.0) < POLICY.retry_delay(3, 0.99) <= 3600


def test_backoff_is_capped_at_retry_max_delay():
    assert POLICY.retry_delay(50, 0.999) <= 3600


def test_retry_after_is_a_floor():
    assert POLICY.retry_delay(1, 0.0, retry_after=900) == 900


def test_start_up_keeps_the_rhythm_of_the_last_good_check():
    assert POLICY.first_check(1000, 900, 0.5) == 900 + 6 * 3600


def test_start_up_checks_at_once_when_the_last_check_is_overdue():
    assert POLICY.first_check(10 * 3600 * 24, 0, 0.5) == 10 * 3600 * 24


def test_start_up_without_any_good_check_checks_at_once():
    assert POLICY.first_check(1000, None, 0.5) == 1000


def test_tries_within_a_call_pause_half_a_second_then_longer_jittered():
    assert [POLICY.attempt_delay(n, 1.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert POLICY.attempt_delay(1, 0.0) == 0.25


def test_a_pause_within_a_call_never_exceeds_the_cap_nor_undercuts_retry_after():
    assert POLICY.attempt_delay(20, 1.0) == 5.0
    assert POLICY.attempt_delay(1, 0.0, retry_after=3.0) == 3.0


def test_a_call_gives_up_after_its_tries_or_at_once_for_a_long_retry_after():
    assert not POLICY.gives_up(2) and POLICY.gives_up(3)
    assert POLICY.gives_up(1, retry_after=600)


def test_a_box_told_to_retry_within_seconds_never_pauses_longer_inside_a_call():
    assert Policy.of(3600, 0.1, 2.0).in_call_cap == 2.0
