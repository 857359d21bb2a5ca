"""Files mikolicctl writes for the admin: opened before the work that fills them, private from the start.

An offline release drops the license before its receipt exists; had `--output` named a directory that
is not there, the receipt would be lost. So the file is opened first, and a bad path fails before
anything changes. Offline requests, receipts and support bundles concern one installation: 0600.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from ..exits import file_failure


class PrivateFile:
    def __init__(self, path: Path, what: str):
        self.path, self.what, self.written = path, what, False
        try:
            try:
                self.fd, self.created = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), True
            except FileExistsError:
                self.fd, self.created = os.open(path, os.O_WRONLY | os.O_CLOEXEC), False
        except OSError as exc:
            raise file_failure(f"cannot write {what}", path, exc) from None

    def write(self, text: str) -> None:
        try:
            os.fchmod(self.fd, 0o600)
            os.ftruncate(self.fd, 0)
            data = text.encode()
            while data:
                data = data[os.write(self.fd, data):]
            os.fsync(self.fd)
            self.written = True
        except OSError as exc:
            raise file_failure(f"cannot write {self.what}", self.path, exc) from None

    def __enter__(self) -> PrivateFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        os.close(self.fd)
        if self.created and not self.written:
            self.path.unlink(missing_ok=True)  # the work failed: leave no empty file behind
