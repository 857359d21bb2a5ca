"""Root disk serial, physical NIC addresses and machine-id, read from sysfs, procfs and udev under a root."""
from __future__ import annotations

import os
import re
from pathlib import Path

from .binding import Hardware
from .placeholders import is_placeholder

_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
# Names of virtual devices that may still carry a `device` link (e.g. a tap bound to a vhost device).
_VIRTUAL_NAMES = ("docker", "br-", "virbr", "veth", "bond", "team", "tun", "tap", "wg", "vnet", "dummy")
ARPHRD_ETHER = "1"


def read(path: Path) -> str | None:
    """Every component is optional, so an absent or unreadable file is simply no value."""
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def _root_mount(root: Path) -> tuple[str, str, str] | None:
    """(major:minor, fstype, source) of the topmost mount on `/`."""
    found = None
    for line in (read(root / "proc/self/mountinfo") or "").splitlines():
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if sep and len(fields) >= 5 and len(rest) >= 2 and fields[4] == "/":
            found = (fields[2], rest[0], rest[1])
    return found


def _block_device(root: Path, devnum: str, source: str) -> Path | None:
    """The sysfs dir of the mounted device; btrfs and the like mount an anonymous 0:N, so the source helps."""
    candidates = [root / "sys/dev/block" / devnum]
    if source.startswith("/dev/"):
        candidates.append(root / "sys/class/block" / Path(source).name)
    for link in candidates:
        if link.exists():
            return link.resolve()
    return None


def _backing_disk(dev: Path, depth: int = 0) -> Path:
    """Partition -> its disk; LVM, LUKS and md -> the first disk beneath them."""
    if (dev / "partition").exists():
        return dev.parent
    slaves = sorted((dev / "slaves").iterdir()) if (dev / "slaves").is_dir() and depth < 8 else []
    return _backing_disk(slaves[0].resolve(), depth + 1) if slaves else dev


def _udev_serials(root: Path, disk: Path) -> list[str]:
    data = read(root / f"run/udev/data/b{read(disk / 'dev')}") or ""
    props = dict(line[2:].partition("=")[::2] for line in data.splitlines() if line.startswith("E:"))
    return [props[k] for k in ("ID_SERIAL_SHORT", "ID_SERIAL") if props.get(k)]


def _by_id_names(root: Path, disk: Path) -> list[str]:
    by_id = root / "dev/disk/by-id"
    names = sorted(os.listdir(by_id)) if by_id.is_dir() else []
    return [n for n in names if not n.startswith(("wwn-", "nvme-eui.")) and "-part" not in n
            and (by_id / n).is_symlink() and Path(os.readlink(by_id / n)).name == disk.name]


def collect_disk(root: Path) -> Hardware:
    """Serial of the disk holding `/`, from the first source that has one."""
    mount = _root_mount(root)
    if mount is None:
        return Hardware({}, {"disk_serial": "no root mount in proc/self/mountinfo"})
    devnum, fstype, source = mount
    dev = _block_device(root, devnum, source)
    if dev is None:
        return Hardware({}, {"disk_serial": f"root filesystem ({fstype}) is not on a block device"})
    disk = _backing_disk(dev)
    candidates = [read(disk / "serial"), read(disk / "device/serial"),
                  *_udev_serials(root, disk), *_by_id_names(root, disk)]
    serial = next((c for c in candidates if c), None)
    if serial is None:
        return Hardware({}, {"disk_serial": f"disk {disk.name} reports no serial"})
    # The later sources only decorate the first (model prefix, by-id name), so a placeholder there is final.
    if is_placeholder(serial):
        return Hardware({}, {"disk_serial": "placeholder value"})
    return Hardware({"disk_serial": serial}, {})


def _permanent_mac(iface: Path) -> str | None:
    """A bond rewrites its slaves' addresses; the slave keeps the burnt-in one in perm_hwaddr."""
    perm = read(iface / "bonding_slave/perm_hwaddr")
    if perm:
        return perm.lower()
    if read(iface / "addr_assign_type") not in (None, "0"):
        return None  # random, stolen or set by software
    return (read(iface / "address") or "").lower()


def _is_physical(iface: Path) -> bool:
    return (iface.name != "lo" and not iface.name.startswith(_VIRTUAL_NAMES)
            and (iface / "device").exists() and not (iface / "bridge").exists()
            and not (iface / "bonding").exists() and not (iface / "tun_flags").exists()
            and read(iface / "type") in (None, ARPHRD_ETHER))


def _is_global_unicast(mac: str) -> bool:
    """Bit 0 of the first octet marks multicast, bit 1 a locally administered (made-up) address."""
    return bool(_MAC.fullmatch(mac)) and int(mac[:2], 16) & 0x03 == 0 and mac != "00:00:00:00:00:00"


def collect_nics(root: Path) -> Hardware:
    """Burnt-in addresses of physical NICs: stable across renames, Docker networks and bonds."""
    net = root / "sys/class/net"
    macs = set()
    for iface in sorted(net.iterdir()) if net.is_dir() else ():
        mac = _permanent_mac(iface) if _is_physical(iface) else None
        if mac and _is_global_unicast(mac):
            macs.add(mac)
    if not macs:
        return Hardware({}, {"nic": "no physical network interface with a permanent address"})
    return Hardware({"nic": tuple(sorted(macs))}, {})


def collect_machine_id(root: Path) -> Hardware:
    """Weak: a cloned image or a copied root filesystem carries it along."""
    value = read(root / "etc/machine-id")
    if value is None:
        return Hardware({}, {"machine_id": "no etc/machine-id"})
    if is_placeholder(value):
        return Hardware({}, {"machine_id": "placeholder value"})
    return Hardware({"machine_id": value}, {})
