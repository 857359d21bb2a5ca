"""Crash-safe local state: one JSON file replaced atomically, plus the previous good generation.

A crash, power loss or kill -9 at any instant leaves `state.json` either old or new; a file that is
corrupt anyway (bit rot, a hand edit) is moved aside, never silently dropped, and the previous
generation `state.prev.json` takes its place.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import journal

log = logging.getLogger("mikolicd.store")

STATE = "state.json"
PREVIOUS = "state.prev.json"


class StoreError(OSError):
    """A write that did not happen (disk full, read-only): the old state is still in place."""


@dataclass(frozen=True)
class Validation:
    """The last answer (or silence) of the licensing server."""

    at: float
    outcome: str  # ok | unreachable | refused
    server_code: int | None = None
    message: str = ""


@dataclass(frozen=True)
class State:
    registration_number: str | None = None
    document: str | None = None  # the signed document exactly as received
    validation: Validation | None = None
    clock_high_water: float = 0.0
    extra: dict = field(default_factory=dict)  # small agent bookkeeping, e.g. capture sessions

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> "State":
        if not isinstance(data, dict) or set(data) - {f.name for f in fields(cls)}:
            raise ValueError("not a mikolicd state object")
        number, document = data.get("registration_number"), data.get("document")
        if not all(v is None or isinstance(v, str) for v in (number, document)):
            raise ValueError("registration_number and document must be strings")
        raw = data.get("validation")
        validation = Validation(**raw) if isinstance(raw, dict) else None
        extra = data.get("extra") or {}
        if not isinstance(extra, dict):
            raise ValueError("extra must be an object")
        return cls(number, document, validation, float(data.get("clock_high_water") or 0.0), extra)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Temp file, fsync, rename, fsync dir: readers see the old bytes or the new, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # another user's process
    return True


class Store:
    def __init__(self, directory: Path):
        self.directory = directory

    def ensure(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _read(self, name: str) -> State | None:
        path = self.directory / name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return State.from_json(json.loads(raw))
        except (ValueError, TypeError) as exc:
            aside = path.with_name(f"{name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
            os.replace(path, aside)
            journal.event(log, logging.ERROR, f"state file {path} is corrupt ({exc}); moved aside to {aside.name}",
                          message_id=journal.STORE_CORRUPT)
            return None

    def _sweep(self) -> None:
        """Temp files of a writer killed mid-write (kill -9, power loss) never became the state: drop them."""
        for tmp in self.directory.glob(".*.tmp"):
            pid = tmp.suffixes[-2].lstrip(".") if len(tmp.suffixes) >= 2 else ""
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                tmp.unlink(missing_ok=True)

    def load(self) -> State:
        """The newest good state; an empty one only when nothing good is on disk."""
        if self.directory.is_dir():
            self._sweep()
        current = self._read(STATE)
        if current is not None:
            return current
        previous = self._read(PREVIOUS)
        if previous is not None:
            journal.event(log, logging.WARNING, f"restored the previous good state from {PREVIOUS}",
                          message_id=journal.STORE_CORRUPT)
            return previous
        return State()

    def save(self, state: State) -> None:
        data = json.dumps(state.to_json(), sort_keys=True, indent=1).encode()
        try:
            self.ensure()
            current = self.directory / STATE
            if current.exists():
                write_atomic(self.directory / PREVIOUS, current.read_bytes())
            write_atomic(current, data)
        except OSError as exc:
            raise StoreError(exc.errno, f"cannot write the state in {self.directory}: {exc.strerror}") from exc
