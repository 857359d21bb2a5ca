"""Component hashes and the binding rule: pure, so the rule can be shown with plain values."""
from __future__ import annotations

from typing import NamedTuple

STRONG = ("system_uuid", "system_serial", "board_serial", "chassis_serial", "disk_serial", "nic")
WEAK = ("machine_id",)
COMPONENTS = STRONG + WEAK
# A fixed key: the server must recognise the same host after a reinstall, yet never see raw serials.
HASH_KEY = b"mikolicd/fingerprint/v1"

Value = str | tuple[str, ...]
Components = dict[str, str | list[str]]


class Hardware(NamedTuple):
    """Raw component values (never sent anywhere) and, for absent ones, why. No defaults: a default dict
    would be one object shared by every Hardware."""

    values: dict[str, Value]
    missing: dict[str, str]


def keyed_hash(value: str) -> str:
    """Case and padding differ between sysfs and dmidecode for the same id, so both are dropped."""
    import hashlib  # here, not at the top: starting OpenSSL is a third of what collect-hardware imports,
    import hmac  # and it writes raw values, never a hash
    return hmac.new(HASH_KEY, value.strip().lower().encode(), hashlib.sha256).hexdigest()


def components(hw: Hardware) -> Components:
    """What leaves the host: one hash per component, and one per MAC so a set can be compared."""
    out: Components = {}
    for name, value in hw.values.items():
        out[name] = sorted(keyed_hash(v) for v in value) if isinstance(value, tuple) else keyed_hash(value)
    return out


class Match(NamedTuple):
    """The verdict on a binding, with enough detail for an admin to see which part moved."""

    holds: bool
    status: dict[str, str]  # component -> match | changed | missing | unbound
    matched: int
    required: int
    degraded: bool  # fewer than two strong components were bound: binds on what the host has

    def summary(self) -> dict:
        return {"holds": self.holds, "matched": self.matched, "required": self.required,
                "degraded": self.degraded, "components": dict(self.status)}


def _same(a: str | list[str], b: str | list[str]) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and sorted(a) == sorted(b)
    return a == b


def match(bound: Components, current: Components) -> Match:
    """A binding holds when all but one of its strong components still match, and at least two do."""
    status: dict[str, str] = {}
    for name in COMPONENTS:
        if name not in bound:
            status[name] = "unbound" if name in current else "missing"
        elif name not in current:
            status[name] = "missing"
        else:
            status[name] = "match" if _same(bound[name], current[name]) else "changed"
    strong = [n for n in STRONG if n in bound]
    if len(strong) >= 2:
        matched = sum(status[n] == "match" for n in strong)
        required = max(2, len(strong) - 1)
        return Match(matched >= required, status, matched, required, False)
    names = [n for n in COMPONENTS if n in bound]
    matched = sum(status[n] == "match" for n in names)
    return Match(bool(names) and matched == len(names), status, matched, len(names), True)
