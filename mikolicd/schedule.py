"""When to talk to the licensing server: pure arithmetic, shared by the client, the agent and the fleet model.

Two levels. Within one call (`attempt_delay`, `gives_up`), a few quick tries half a second apart and
growing catch a dropped packet without keeping the admin waiting. Between validation rounds
(`next_check`, `retry_delay`), jitter spreads a fleet's checks over time; after a failed round two quick
retries catch a blip, then the box (in grace, features still available) waits a long jittered gap. A fleet
that backed off exponentially from seconds would return from a long outage in a wave: the boxes that
noticed the outage last retry most often (benchmarks/fleet.py measures it). The server's `Retry-After`
is never undercut, and a caller is never made to wait for one longer than a try's pause.
"""
from __future__ import annotations

from typing import NamedTuple

FIRST_RETRY = 30.0
QUICK_RETRIES = 2
ATTEMPTS = 3
FIRST_ATTEMPT_PAUSE = 0.5
IN_CALL_CAP = 5.0


class Policy(NamedTuple):
    check_interval: float
    jitter: float
    retry_max_delay: float
    attempts: int = ATTEMPTS
    in_call_cap: float = IN_CALL_CAP  # the longest pause between tries of one call

    @classmethod
    def of(cls, check_interval: float, jitter: float, retry_max_delay: float) -> Policy:
        """A box told to retry within seconds (`retry_max_delay`) must not pause longer inside one call."""
        return cls(check_interval, jitter, retry_max_delay, ATTEMPTS, min(IN_CALL_CAP, retry_max_delay))

    # ----------------------------------------------------------------------------- within one call
    def attempt_delay(self, attempt: int, rand: float, retry_after: float | None = None) -> float:
        """The pause after try number `attempt` (1-based) failed: half-jittered exponential, capped."""
        backoff = min(self.in_call_cap, FIRST_ATTEMPT_PAUSE * 2 ** (attempt - 1))
        return max(backoff * (0.5 + 0.5 * rand), retry_after or 0.0)

    def gives_up(self, attempt: int, retry_after: float | None = None) -> bool:
        """After the last try, or at once when the server asks for a pause longer than a try's: the
        schedule honours that Retry-After instead of the caller blocking on it."""
        return attempt >= self.attempts or (retry_after or 0.0) > self.in_call_cap

    # ---------------------------------------------------------------------------- between rounds
    def next_check(self, now: float, rand: float) -> float:
        """After a good answer: the interval, spread by ±jitter (`rand` uniform in [0, 1))."""
        return now + self.check_interval * (1 + self.jitter * (2 * rand - 1))

    def retry_delay(self, failures: int, rand: float, retry_after: float | None = None) -> float:
        """After `failures` failed rounds in a row: 30 s, 60 s, then up to retry_max_delay; half-jittered,
        capped, never before Retry-After."""
        quick = FIRST_RETRY * 2 ** max(0, failures - 1) if failures <= QUICK_RETRIES else self.retry_max_delay
        delay = min(self.retry_max_delay, quick) * (0.5 + 0.5 * rand)
        return max(delay, retry_after or 0.0)

    def first_check(self, now: float, last_ok: float | None, rand: float) -> float:
        """At start-up: keep the rhythm of the last good check instead of calling the server at once."""
        if last_ok is None or last_ok > now:
            return now
        return max(now, self.next_check(last_ok, rand))
