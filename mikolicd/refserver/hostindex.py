"""Which component hashes a trial's host is indexed by, so a trial is found by lookup, not by a scan.

`match` holds only when at least two strong components match (or, for a host bound with fewer, all of
them), so a matching host always shares one indexed pair with the trial host: its strong components,
or, when it was bound with none, its weak ones. Looking up every pair of the requesting host therefore
finds every trial it can match, and `match` then decides among those few. Pure.
"""
from __future__ import annotations

import hashlib

from mikolicd.fingerprint import COMPONENTS, STRONG, WEAK, Components

Key = tuple[str, str]


def value_key(value: str | list[str]) -> str:
    """A component's value as one short string: the hash itself, or one digest of a NIC set."""
    if isinstance(value, str):
        return value
    return hashlib.sha256("\n".join(sorted(value)).encode()).hexdigest()


def indexed(host: Components) -> list[Key]:
    """The keys a trial host is stored under."""
    names = [n for n in STRONG if n in host] or [n for n in WEAK if n in host]
    return [(n, value_key(host[n])) for n in names]


def wanted(host: Components) -> list[Key]:
    """The keys to look up for a requesting host."""
    return [(n, value_key(host[n])) for n in COMPONENTS if n in host]
