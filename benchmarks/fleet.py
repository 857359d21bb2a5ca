"""Target 7: a fleet through a server outage, on a simulated clock, with the agent's own schedule code.

Every agent runs the daemon's own `schedule.Policy`, the one the licensing client and the agent use:
`next_check` after a good answer; after a failed try the in-call pauses (`attempt_delay`, honouring
Retry-After) until `gives_up`, then `retry_delay` between rounds. The server is the reference server's token bucket, answering 429 with
Retry-After above its rate. A naive fleet retrying at a fixed interval runs through the same outage.
"""
from __future__ import annotations

import heapq
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from mikolicd import build, protocol
from mikolicd.client import LicensingClient
from mikolicd.config import Config, ServerSection
from mikolicd.errors import ServerUnreachable
from mikolicd.refserver.ratelimit import TokenBucket
from mikolicd.schedule import Policy

from .harness import Outcome, Stage

HOUR = 3600.0
OUTAGE = 6 * HOUR
CAPACITY = 3.0  # the server is sized for this multiple of the fleet's steady rate; above it, 429
NAIVE_RETRY = 300.0
SEED = 7


@dataclass(frozen=True)
class Timeline:
    """Six hours of settling, six of steady state measured, the outage, then the return and its echo."""

    policy: Policy

    @property
    def steady_from(self) -> float:
        return self.policy.check_interval

    @property
    def outage_at(self) -> float:
        return 2 * self.policy.check_interval

    @property
    def back_at(self) -> float:
        return self.outage_at + OUTAGE

    @property
    def end(self) -> float:
        p = self.policy
        return self.back_at + p.check_interval * (1 + p.jitter) + p.retry_max_delay + HOUR

    def down(self, t: float) -> bool:
        return self.outage_at <= t < self.back_at


@dataclass
class AgentRules:
    """The daemon's retry rules: in-call client retries, then the schedule's backoff between rounds."""

    policy: Policy
    rng: random.Random
    failures: list[int]

    def after_failure(self, agent: int, attempt: int, retry_after: float | None) -> tuple[float, int]:
        if not self.policy.gives_up(attempt, retry_after):
            return self.policy.attempt_delay(attempt, self.rng.random(), retry_after), attempt + 1
        self.failures[agent] += 1
        return self.policy.retry_delay(self.failures[agent], self.rng.random(), retry_after), 1

    def succeeded(self, agent: int) -> None:
        self.failures[agent] = 0

    def through_outage(self, agent: int, t: float, attempt: int, timeline: Timeline) -> tuple[float, int]:
        while timeline.down(t):
            delay, attempt = self.after_failure(agent, attempt, None)
            t += delay
        return t, attempt


@dataclass
class NaiveRules:
    """Retry every NAIVE_RETRY seconds, no backoff, no jitter, Retry-After ignored."""

    def after_failure(self, agent: int, attempt: int, retry_after: float | None) -> tuple[float, int]:
        return NAIVE_RETRY, 1

    def succeeded(self, agent: int) -> None:
        return None

    def through_outage(self, agent: int, t: float, attempt: int, timeline: Timeline) -> tuple[float, int]:
        return t + NAIVE_RETRY * math.ceil((timeline.back_at - t) / NAIVE_RETRY), 1


@dataclass
class Traffic:
    """Requests reaching the server per simulated minute, refused ones included."""

    per_minute: Counter = field(default_factory=Counter)
    refused: int = 0

    def steady_mean(self, timeline: Timeline) -> float:
        first, last = int(timeline.steady_from // 60), int(timeline.outage_at // 60)
        return sum(self.per_minute[m] for m in range(first, last)) / (last - first)

    def peak_after_return(self, timeline: Timeline) -> int:
        return max(self.per_minute[m] for m in range(int(timeline.back_at // 60), int(timeline.end // 60)))


def simulate(agents: int, policy: Policy, rules: AgentRules | NaiveRules, rng: random.Random) -> Traffic:
    """Event-driven: a heap of (time, agent, attempt); outage rounds are skipped through without the heap."""
    timeline = Timeline(policy)
    bucket = TokenBucket(CAPACITY * agents / policy.check_interval)
    heap = [(rng.random() * policy.check_interval, agent, 1) for agent in range(agents)]
    heapq.heapify(heap)
    traffic = Traffic()
    while heap:
        t, agent, attempt = heapq.heappop(heap)
        if t >= timeline.end:
            break
        if timeline.down(t):
            resumed, attempt = rules.through_outage(agent, t, attempt, timeline)
            heapq.heappush(heap, (resumed, agent, attempt))
            continue
        traffic.per_minute[int(t // 60)] += 1
        wait = bucket.take(t)
        if not wait:
            rules.succeeded(agent)
            heapq.heappush(heap, (policy.next_check(t, rng.random()), agent, 1))
            continue
        traffic.refused += 1
        delay, attempt = rules.after_failure(agent, attempt, math.ceil(wait))
        heapq.heappush(heap, (t + delay, agent, attempt))
    return traffic


def default_policy() -> Policy:
    return build.policy(Config())


def fleet(agents: int) -> Outcome:
    policy = default_policy()
    timeline = Timeline(policy)
    rng = random.Random(SEED)
    start = time.monotonic()
    agent = simulate(agents, policy, AgentRules(policy, rng, [0] * agents), rng)
    naive = simulate(agents, policy, NaiveRules(), random.Random(SEED))
    ratio = agent.peak_after_return(timeline) / agent.steady_mean(timeline)
    naive_ratio = naive.peak_after_return(timeline) / naive.steady_mean(timeline)
    return Outcome(f"7. fleet of {agents} through a 6 h outage: peak/min after return vs steady mean",
                   f"{ratio:.2f}x (naive {naive_ratio:.1f}x)", "<= 3x", ratio <= 3,
                   f"steady {agent.steady_mean(timeline):.0f}/min, peak {agent.peak_after_return(timeline)}/min, "
                   f"{agent.refused} answered 429; naive retry every {NAIVE_RETRY:g} s peaks at "
                   f"{naive.peak_after_return(timeline)}/min; policy check {policy.check_interval:g} s, jitter "
                   f"{policy.jitter:g}, retry_max_delay {policy.retry_max_delay:g} s; server admits "
                   f"{CAPACITY:g}x the steady rate; simulated in {time.monotonic() - start:.0f} s")


def retry_after(stage: Stage) -> Outcome:
    """The real server under load answers 429 with Retry-After, and the real client waits that long."""
    rate = 0.5
    url = stage.start_server("--max-rps", str(rate))
    client = LicensingClient(ServerSection(url=url, trusted_keys=stage.server_dir / "trusted_keys.pem",
                                           ca_file=stage.pki.ca, timeout=5.0), default_policy())
    refusals: list[float | None] = []
    try:
        for _ in range(5):
            try:
                client.ping()
            except ServerUnreachable as exc:
                refusals.append(exc.retry_after)
        start = time.monotonic()
        client.call(protocol.PING, method="GET")
        waited = time.monotonic() - start
    finally:
        client.close()
    announced = [r for r in refusals if r]
    obeyed = bool(announced) and len(announced) == len(refusals) and waited >= min(announced)
    return Outcome("7b. reference server under load: 429 + Retry-After, obeyed by the client",
                   f"{len(announced)}/{len(refusals)} with Retry-After; waited {waited:.1f} s",
                   ">= Retry-After", obeyed,
                   f"server --max-rps {rate:g}; Retry-After values {sorted(set(announced))}")
