"""Host identity: read hardware ids under one root directory, hash them, and match a binding.

Reading is I/O; `match` is pure so binding rules can be tested with plain values.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

STRONG = ("system_uuid", "system_serial", "board_serial", "chassis_serial", "disk_serial", "nic")
WEAK = ("machine_id",)
COMPONENTS = STRONG + WEAK
# A fixed key: the server must recognise the same host after a reinstall, yet never see raw serials.
HASH_KEY = b"mikolicd/fingerprint/v1"

Value = str | tuple[str, ...]
Components = dict[str, str | list[str]]


@dataclass(frozen=True)
class Hardware:
    """Raw component values (never sent anywhere) and, for absent ones, why."""

    values: dict[str, Value] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


def keyed_hash(value: str) -> str:
    return hmac.new(HASH_KEY, value.strip().lower().encode(), hashlib.sha256).hexdigest()


def components(hw: Hardware) -> Components:
    out: Components = {}
    for name, value in hw.values.items():
        out[name] = sorted(keyed_hash(v) for v in value) if isinstance(value, tuple) else keyed_hash(value)
    return out


@dataclass(frozen=True)
class Match:
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


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip() or None
    except OSError:
        return None


def _nic_macs(root: Path) -> tuple[str, ...]:
    net = root / "sys/class/net"
    macs = set()
    for iface in sorted(net.iterdir()) if net.is_dir() else ():
        if not (iface / "device").exists() or _read(iface / "addr_assign_type") not in (None, "0"):
            continue
        mac = _read(iface / "address")
        if mac and int(mac.split(":")[0], 16) & 0x02 == 0 and mac != "00:00:00:00:00:00":
            macs.add(mac.lower())
    return tuple(sorted(macs))


def collect(root: Path, dmidecode: str = "") -> Hardware:
    values: dict[str, Value] = {}
    dmi = root / "sys/class/dmi/id"
    for name, leaf in (("system_uuid", "product_uuid"), ("system_serial", "product_serial"),
                       ("board_serial", "board_serial"), ("chassis_serial", "chassis_serial")):
        if v := _read(dmi / leaf):
            values[name] = v
    if macs := _nic_macs(root):
        values["nic"] = macs
    if mid := _read(root / "etc/machine-id"):
        values["machine_id"] = mid
    return Hardware(values, {n: "not found" for n in COMPONENTS if n not in values})
