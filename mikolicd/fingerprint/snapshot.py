"""The root-only hardware snapshot: DMI serials need root, the daemon does not run as root."""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

from .binding import COMPONENTS, Hardware, Value

log = logging.getLogger(__name__)


def write_snapshot(hw: Hardware, path: Path) -> None:
    """Atomic and 0600; handed to the owner of its directory so the unprivileged daemon can read it."""
    path = Path(path)
    doc = {"values": {k: list(v) if isinstance(v, tuple) else v for k, v in hw.values.items()},
           "missing": dict(hw.missing)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        owner = path.parent.stat()
        if owner.st_uid != os.geteuid():
            try:
                os.chown(tmp, owner.st_uid, owner.st_gid)
            except PermissionError:
                log.warning("cannot hand %s to uid %d: only root can; the daemon may not read it",
                            path, owner.st_uid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
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
