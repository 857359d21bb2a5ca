"""When to talk to the licensing server next. Pure arithmetic, so a fleet can be simulated with it.

Jitter spreads a fleet's checks over time. After a failure two quick retries catch a blip; then the
box (in grace, features still available) waits a long jittered gap. A fleet that backed off
exponentially from seconds would return from a long outage in a wave: the boxes that noticed the
outage last retry most often (benchmarks/fleet.py measures it).
"""
from __future__ import annotations

from dataclasses import dataclass

FIRST_RETRY = 30.0
QUICK_RETRIES = 2


@dataclass(frozen=True)
class Policy:
    check_interval: float
    jitter: float
    retry_max_delay: float


def next_check(policy: Policy, now: float, rand: float) -> float:
    """After a good answer: the interval, spread by ±jitter (`rand` uniform in [0, 1))."""
    return now + policy.check_interval * (1 + policy.jitter * (2 * rand - 1))


def retry_delay(policy: Policy, failures: int, rand: float, retry_after: float | None = None) -> float:
    """After `failures` failed rounds in a row: 30 s, 60 s, then up to retry_max_delay; half-jittered, capped,
    never before Retry-After."""
    quick = FIRST_RETRY * 2 ** max(0, failures - 1) if failures <= QUICK_RETRIES else policy.retry_max_delay
    ceiling = min(policy.retry_max_delay, quick)
    delay = ceiling * (0.5 + 0.5 * rand)
    return max(delay, retry_after or 0.0)


def first_check(policy: Policy, now: float, last_ok: float | None, rand: float) -> float:
    """At start-up: keep the rhythm of the last good check instead of calling the server at once."""
    if last_ok is None or last_ok > now:
        return now
    return max(now, next_check(policy, last_ok, rand))
