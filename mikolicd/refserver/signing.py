"""The server's Ed25519 signing key, and the documents and refusals it signs.

The private key never leaves the server directory; clients get only `trusted_keys.pem`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey

from mikolicd.jws import key_id, private_pem, public_pem, read_private_pem, sign
from mikolicd.license import DOCUMENT_TYPE, REFUSAL_TYPE


@dataclass(frozen=True)
class Signer:
    key: SigningKey

    @property
    def kid(self) -> str:
        return key_id(bytes(self.key.verify_key))

    @classmethod
    def load(cls, path: Path) -> "Signer":
        try:
            return cls(read_private_pem(path.read_bytes()))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def public_pem(self) -> bytes:
        return public_pem(bytes(self.key.verify_key)).encode()

    def sign(self, claims: dict) -> str:
        """A license document."""
        return sign(claims, self.key, DOCUMENT_TYPE)

    def sign_refusal(self, claims: dict) -> str:
        return sign(claims, self.key, REFUSAL_TYPE)


def ensure_key(key_path: Path, trusted_path: Path) -> Signer:
    """Create the key once (0600, never overwritten: clients already trust it) and (re)write the public half."""
    if not key_path.exists():
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(private_pem(SigningKey.generate()))
    signer = Signer.load(key_path)
    trusted_path.write_bytes(signer.public_pem())
    return signer
