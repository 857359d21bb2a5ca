"""Host identity: read hardware ids under one root directory, hash them, and match a binding.

Hashing and `match` (module `binding`) are pure, so binding rules are tested with plain values and the
pure core imports them without the readers. Reading (`collect`, the snapshot) is I/O and is loaded only
when one of its names is used. docs/fingerprint.md says what is read and why.
"""
from __future__ import annotations

from typing import Any

from .binding import (COMPONENTS, HASH_KEY, STRONG, WEAK, Components, Hardware, Match, Value, components,
                      keyed_hash, match)
from .placeholders import is_placeholder

__all__ = ["COMPONENTS", "HASH_KEY", "STRONG", "WEAK", "Components", "Hardware", "Match", "Value",
           "collect", "components", "is_placeholder", "keyed_hash", "match", "read_snapshot",
           "write_snapshot"]

_READERS = {"collect": "reader", "read_snapshot": "snapshot", "write_snapshot": "snapshot"}


def __getattr__(name: str) -> Any:
    if name in _READERS:
        from importlib import import_module
        return getattr(import_module(f".{_READERS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
