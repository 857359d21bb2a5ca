"""Crash-safe local state in one directory (0700): the license state, the clock checkpoint, the
installation's key.

`state.json` is replaced atomically (`atomic`) and its previous generation kept as `state.prev.json`:
a crash, power loss or kill -9 at any instant leaves it old or new, and a file that is corrupt anyway
(bit rot, a hand edit) is moved aside, never silently dropped, and the previous generation takes its
place. The clock checkpoint is written every few minutes, so it has its own small file and does not
rewrite the license each time. A state written by the first version of mikolicd loads and is carried
over (`_migrate`).
"""
from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import NamedTuple

from nacl.signing import SigningKey

from . import atomic, journal
from .errors import StorageFailed
from .jws import private_pem, read_private_pem
from .lifecycle import Validation
from .trust import TRUST_ENDING, Checkpoint, Outcome

log = logging.getLogger("mikolicd.store")

STATE = "state.json"
PREVIOUS = "state.prev.json"
CLOCK = "clock.json"
INSTALLATION = "installation.key"
VERSION = 2


class State(NamedTuple):
    """What the agent keeps; never changed in place, only replaced (`_replace`) and saved whole."""

    registration_number: str | None = None
    document: str | None = None  # the signed document exactly as received
    validation: Validation | None = None
    released: bool = False  # the seat was given back on purpose: nothing re-binds it silently
    seat_session: str | None = None  # the session of the seat feature: the activation's
    sessions: dict[str, int] = {}  # other features' capture sessions -> feature; a new dict on every change
    offline_nonce: str | None = None  # of the latest offline request: its answer may be applied once
    announced: tuple[str, ...] = ()  # expiry thresholds already written to the journal (`alerts.crossed`)
    metrics_at: float = 0.0  # when usage metrics were last forwarded

    def to_json(self) -> dict:
        v = self.validation
        return {"version": VERSION, "registration_number": self.registration_number, "document": self.document,
                "validation": None if v is None else {"at": v.at, "outcome": v.outcome.value,
                                                      "server_code": v.server_code, "message": v.message},
                "released": self.released, "seat_session": self.seat_session, "sessions": self.sessions,
                "offline_nonce": self.offline_nonce, "announced": list(self.announced),
                "metrics_at": self.metrics_at}


def _text(data: dict, name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _validation(raw: object) -> Validation | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("validation must be an object")
    code = raw.get("server_code")
    return Validation(float(raw["at"]), Outcome(raw["outcome"]), int(code) if code is not None else None,
                      str(raw.get("message", "")))


FIELDS = frozenset(State().to_json())
FIRST_VERSION_FIELDS = frozenset({"registration_number", "document", "validation", "clock_high_water", "extra"})


def _migrate(data: dict) -> dict:
    """A first-version state: `extra` held the sessions, and a refusal kept the document. A refusal that
    ends trust now drops the document, so an old refused state is carried over as ended."""
    extra = data.get("extra") or {}
    if not isinstance(extra, dict):
        raise ValueError("extra must be an object")
    new = {k: data.get(k) for k in ("registration_number", "document", "validation")}
    v = data.get("validation")
    if isinstance(v, dict) and v.get("outcome") == "refused" and v.get("server_code") in TRUST_ENDING:
        new.update(document=None, validation=dict(v, outcome=Outcome.ENDED.value))
    sessions = extra.get("sessions", {})
    new["sessions"] = sessions
    new["metrics_at"] = extra.get("metrics_at", 0.0)
    return new


def parse(data: object) -> State:
    if not isinstance(data, dict):
        raise ValueError("not a mikolicd state object")
    if "version" not in data:
        if set(data) - FIRST_VERSION_FIELDS:
            raise ValueError(f"unknown fields {', '.join(sorted(set(data) - FIRST_VERSION_FIELDS))[:80]}")
        data = _migrate(data)
    elif data["version"] != VERSION:
        raise ValueError(f"state version {data['version']!r} is not {VERSION}")
    elif set(data) - FIELDS:
        raise ValueError(f"unknown fields {', '.join(sorted(set(data) - FIELDS))[:80]}")
    sessions = data.get("sessions") or {}
    if not isinstance(sessions, dict) or not all(isinstance(k, str) and isinstance(v, int)
                                                 for k, v in sessions.items()):
        raise ValueError("sessions must map session ids to feature numbers")
    announced = data.get("announced") or []
    if not isinstance(announced, list) or not all(isinstance(a, str) for a in announced):
        raise ValueError("announced must be a list of strings")
    return State(_text(data, "registration_number"), _text(data, "document"), _validation(data.get("validation")),
                 data.get("released") is True, _text(data, "seat_session"), dict(sessions),
                 _text(data, "offline_nonce"), tuple(announced), float(data.get("metrics_at") or 0.0))


class Store:
    def __init__(self, directory: Path):
        self.directory = directory

    def _not_a_directory(self) -> StorageFailed:
        return StorageFailed(f"[storage] state_dir {self.directory} is not a directory (a file or a symlink is "
                             "in its place, or on its path): move it away or point state_dir at a directory")

    def _dir(self) -> int:
        """The directory, created 0700 when missing; a file or a symlink in its place is refused."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            return atomic.open_dir(self.directory)
        except (FileExistsError, NotADirectoryError):
            raise self._not_a_directory() from None
        except OSError as exc:
            raise StorageFailed(f"[storage] state_dir {self.directory}: {exc.strerror}") from None

    def _write(self, name: str, data: bytes) -> None:
        fd = self._dir()
        try:
            atomic.replace(fd, name, data)
        except OSError as exc:
            raise StorageFailed(f"cannot write {name} in {self.directory}: {exc.strerror}") from None
        finally:
            os.close(fd)

    def _read(self, name: str) -> bytes | None:
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise self._not_a_directory() from None
        except OSError as exc:
            raise StorageFailed(f"cannot read {name} in {self.directory}: {exc.strerror}") from None

    def _set_aside(self, name: str, why: Exception) -> None:
        path = self.directory / name
        aside = path.with_name(f"{name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        os.replace(path, aside)
        journal.event(log, logging.ERROR, f"state file {path} is corrupt ({why}); moved aside to {aside.name}",
                      message_id=journal.STORE_CORRUPT)

    def _state(self, name: str) -> State | None:
        raw = self._read(name)
        if raw is None:
            return None
        try:
            return parse(json.loads(raw))
        except (ValueError, TypeError, KeyError) as exc:
            self._set_aside(name, exc)
            return None

    def _sweep(self) -> None:
        """Temp files of a writer killed mid-write (kill -9, power loss) never became the state: drop them."""
        for tmp in self.directory.glob(".*.tmp"):
            pid = atomic.writer_pid(tmp.name)
            if pid is not None and pid != os.getpid() and not _alive(pid):
                tmp.unlink(missing_ok=True)

    def load(self) -> State:
        """The newest good state; an empty one only when nothing good is on disk."""
        if self.directory.is_dir():
            self._sweep()
        current = self._state(STATE)
        if current is not None:
            return current
        previous = self._state(PREVIOUS)
        if previous is not None:
            journal.event(log, logging.WARNING, f"restored the previous good state from {PREVIOUS}",
                          message_id=journal.STORE_CORRUPT)
            return previous
        return State()

    def save(self, state: State) -> None:
        """Raises StorageFailed (disk full, read-only): the old state is then still in place."""
        current = self._read(STATE)
        if current is not None:
            self._write(PREVIOUS, current)
        self._write(STATE, json.dumps(state.to_json(), sort_keys=True, indent=1).encode())

    def load_checkpoint(self) -> Checkpoint | None:
        """The clock checkpoint; a first-version state's high-water mark counts as one of an unknown boot."""
        raw = self._read(CLOCK)
        try:
            if raw is not None:
                data = json.loads(raw)
                return Checkpoint(float(data["trusted"]), float(data["boottime"]), str(data["boot_id"]))
            legacy = json.loads(self._read(STATE) or b"{}")
            mark = float(legacy.get("clock_high_water") or 0.0) if isinstance(legacy, dict) else 0.0
        except (ValueError, TypeError, KeyError) as exc:
            if raw is not None:
                self._set_aside(CLOCK, exc)
            return None
        return Checkpoint(mark, 0.0, "") if mark else None

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._write(CLOCK, json.dumps(checkpoint._asdict(), sort_keys=True).encode())

    def installation_key(self) -> SigningKey:
        """This installation's private key, made at the first start; it never leaves the directory."""
        raw = self._read(INSTALLATION)
        if raw is not None:
            mode = stat.S_IMODE(os.stat(self.directory / INSTALLATION).st_mode)
            if mode & 0o077:
                raise StorageFailed(f"{self.directory / INSTALLATION} is readable by others (mode {mode:04o}): "
                                    "chmod 0600 it; a copied key lets another machine pass for this one")
            try:
                return read_private_pem(raw)
            except ValueError as exc:
                raise StorageFailed(f"{self.directory / INSTALLATION}: {exc}; move it away to make a new "
                                    "installation (then activate again)") from None
        key = SigningKey.generate()
        self._write(INSTALLATION, private_pem(key))
        log.info("made a new installation key in %s", self.directory / INSTALLATION)
        return key


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # another user's process
    return True
