"""Fair rate limits: per client address, per registration number, a bound on guesses, and a global bound.

One global bucket alone lets a single client that guesses numbers take every answer, so a real box's
validation is refused (429) and drifts into grace. Here each address has its own allowance; an answer
that names something that does not exist (2026, 2040) also spends one of the address's few guesses, and
an address out of guesses waits, whatever it asks; each number has its own allowance, so nobody can
flood one box's number; the global bucket bounds the sum. Pure: the caller passes the clock.
"""
from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, field

MAX_KEYS = 50_000  # buckets kept per kind; the one idle longest is dropped first (it would be full again)


@dataclass
class TokenBucket:
    """Admit `rate` requests a second on average, and bursts of up to `burst` (default: `rate`, at least one)."""

    rate: float
    burst: float | None = None
    tokens: float = field(init=False)
    stamp: float | None = None

    def __post_init__(self) -> None:
        self.tokens = self.capacity

    @property
    def capacity(self) -> float:
        return self.burst if self.burst is not None else max(1.0, self.rate)

    def _refill(self, now: float) -> None:
        if self.stamp is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, now: float) -> float:
        """0 when a request may pass now, else the seconds until one may; takes nothing."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def spend(self, now: float) -> None:
        """One token, even below zero: what was already done is paid for, and waited off later."""
        self._refill(now)
        self.tokens -= 1

    def take(self, now: float) -> float:
        """Like `wait`, but a request that may pass spends a token."""
        wait = self.wait(now)
        if not wait:
            self.tokens -= 1
        return wait


class Buckets:
    """One bucket per key, at most MAX_KEYS of them."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __getitem__(self, key: str) -> TokenBucket:
        bucket = self.buckets.pop(key, None) or TokenBucket(self.rate, self.burst)
        self.buckets[key] = bucket
        if len(self.buckets) > MAX_KEYS:
            self.buckets.popitem(last=False)
        return bucket


@dataclass(frozen=True)
class Limits:
    """The defaults admit a site of hundreds of boxes behind one address; 0 switches a limit off."""

    max_rps: float = 500.0
    address_rps: float = 20.0
    address_burst: float = 200.0
    guesses_per_minute: float = 10.0
    guess_burst: float = 20.0
    number_rps: float = 1.0
    number_burst: float = 30.0


def client_key(address: str | None) -> str:
    """An IPv6 client has a whole /64 to pick addresses from, so it counts as one client."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(getattr(ip, "ipv4_mapped", None) or ip)


class Limiter:
    """Asked before a request runs (`admit`, `admit_number`) and told after an answer that was a miss."""

    def __init__(self, limits: Limits) -> None:
        self.total = TokenBucket(limits.max_rps) if limits.max_rps else None
        self.addresses = Buckets(limits.address_rps, limits.address_burst) if limits.address_rps else None
        self.guesses = (Buckets(limits.guesses_per_minute / 60, limits.guess_burst)
                        if limits.guesses_per_minute else None)
        self.numbers = Buckets(limits.number_rps, limits.number_burst) if limits.number_rps else None

    def admit(self, address: str | None, now: float) -> tuple[float, str]:
        """(seconds to wait or 0, what was exceeded) for any request from `address`."""
        key = client_key(address)
        if self.guesses is not None and (wait := self.guesses[key].wait(now)):
            return wait, "too many unknown numbers or coupons from this address"
        if self.addresses is not None and (wait := self.addresses[key].take(now)):
            return wait, "too many requests from this address"
        if self.total is not None and (wait := self.total.take(now)):
            return wait, "the server is busy"
        return 0.0, ""

    def admit_number(self, number: str, now: float) -> tuple[float, str]:
        if self.numbers is not None and (wait := self.numbers[number.strip().upper()].take(now)):
            return wait, "too many requests for this registration number"
        return 0.0, ""

    def missed(self, address: str | None, now: float) -> None:
        """The answer said a number or coupon does not exist: one guess spent."""
        if self.guesses is not None:
            self.guesses[client_key(address)].spend(now)
