"""The server's Ed25519 signing key and JWS compact signing of license claims.

The private key never leaves the server directory; clients get only `trusted_keys.pem`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mikolicd.license import ALG, b64url_encode, key_id


def _json_b64(value: dict) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


@dataclass(frozen=True)
class Signer:
    key: Ed25519PrivateKey

    @property
    def kid(self) -> str:
        return key_id(self.key.public_key())

    @classmethod
    def load(cls, path: Path) -> "Signer":
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path}: not an Ed25519 private key")
        return cls(key)

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, claims: dict) -> str:
        signing_input = f"{_json_b64({'alg': ALG, 'kid': self.kid, 'typ': 'JWT'})}.{_json_b64(claims)}"
        return f"{signing_input}.{b64url_encode(self.key.sign(signing_input.encode()))}"


def ensure_key(key_path: Path, trusted_path: Path) -> Signer:
    """Create the key once (0600, never overwritten: clients already trust it) and (re)write the public half."""
    if not key_path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption())
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
    signer = Signer.load(key_path)
    trusted_path.write_bytes(signer.public_pem())
    return signer
