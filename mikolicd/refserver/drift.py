"""Binding drift: a seat's remembered host follows parts replaced now and then, and no faster.

A request matching the remembered host (one strong component changed at most) is the same host. Its
changes are recorded at most once per interval, so six calls that each swap one part cannot walk a seat
to another machine: the second swap within the interval differs from the record in two parts. Pure.
"""
from __future__ import annotations

from dataclasses import dataclass

from mikolicd.fingerprint import Components, match

REBIND_INTERVAL = 30 * 86400


@dataclass(frozen=True)
class Bound:
    """The host a seat was bound with, and when a change to it was last recorded (None: never)."""

    host: Components
    rebound_at: int | None = None


def merged(bound: Components, host: Components) -> Components:
    """The record after a change: the host's values win; a part it did not report stays as it was, so a
    component that is unreadable for a while does not weaken the binding."""
    return {**bound, **host}


def follow(bound: Bound, host: Components, now: int, interval: int = REBIND_INTERVAL) -> tuple[bool, Bound | None]:
    """(is it the same host, the record to keep instead or None when the record stays as it is)."""
    if not match(bound.host, host).holds:
        return False, None
    record = merged(bound.host, host)
    if record == bound.host or (bound.rebound_at is not None and now - bound.rebound_at < interval):
        return True, None
    return True, Bound(record, now)
