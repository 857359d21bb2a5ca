"""When to talk to the licensing server next. Pure arithmetic, so a fleet can be simulated with it.

Jitter spreads a fleet's checks over time; after an outage the capped, jittered backoff and the
server's Retry-After keep tens of thousands of boxes from returning in one wave.
"""
from __future__ import annotations

from dataclasses import dataclass

FIRST_RETRY = 30.0


@dataclass(frozen=True)
class Policy:
    check_interval: float
    jitter: float
    retry_max_delay: float


def next_check(policy: Policy, now: float, rand: float) -> float:
    """After a good answer: the interval, spread by ±jitter (`rand` uniform in [0, 1))."""
    return now + policy.check_interval * (1 + policy.jitter * (2 * rand - 1))


def retry_delay(policy: Policy, failures: int, rand: float, retry_after: float | None = None) -> float:
    """After `failures` failed rounds in a row: exponential, capped, half-jittered, never before Retry-After."""
    ceiling = min(policy.retry_max_delay, FIRST_RETRY * 2 ** max(0, failures - 1))
    delay = ceiling * (0.5 + 0.5 * rand)
    return max(delay, retry_after or 0.0)


def first_check(policy: Policy, now: float, last_ok: float | None, rand: float) -> float:
    """At start-up: keep the rhythm of the last good check instead of calling the server at once."""
    if last_ok is None or last_ok > now:
        return now
    return max(now, next_check(policy, last_ok, rand))
