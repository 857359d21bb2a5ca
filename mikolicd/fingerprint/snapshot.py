"""The root-only hardware snapshot: DMI serials need root, the daemon does not run as root."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .. import atomic
from .binding import COMPONENTS, Hardware, Value


def write_snapshot(hw: Hardware, path: Path) -> None:
    """Atomic and 0600, handed to the owner of its directory so the unprivileged daemon can read it.

    Root writes into a directory the daemon's user owns, so nothing here follows a path that user could
    plant: the directory is opened without following symlinks, and the file is created, chowned and
    chmodded through its own descriptor (`atomic`). A directory others may write is refused."""
    path = Path(path)
    doc = {"values": {k: list(v) if isinstance(v, tuple) else v for k, v in hw.values.items()},
           "missing": dict(hw.missing)}
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    dir_fd = atomic.open_dir(path.parent)
    try:
        st = atomic.require_private(dir_fd, path.parent)
        owner = (st.st_uid, st.st_gid) if os.geteuid() == 0 and st.st_uid != 0 else None
        atomic.replace(dir_fd, path.name, data, 0o600, owner)
    finally:
        os.close(dir_fd)


def _value(name: str, raw: object) -> Value:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        return tuple(raw)
    raise ValueError(f"snapshot value of {name} is neither a string nor a list of strings")


def read_snapshot(path: Path) -> Hardware:
    """Raises OSError or ValueError (never with raw values in the message) when it cannot be used."""
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("values"), dict) \
            or not isinstance(doc.get("missing"), dict):
        raise ValueError("snapshot is not an object with 'values' and 'missing'")
    unknown = (set(doc["values"]) | set(doc["missing"])) - set(COMPONENTS)
    if unknown:
        raise ValueError(f"snapshot names unknown components: {', '.join(sorted(unknown))}")
    if not all(isinstance(v, str) for v in doc["missing"].values()):
        raise ValueError("snapshot reasons must be strings")
    return Hardware({k: _value(k, v) for k, v in doc["values"].items()}, dict(doc["missing"]))
