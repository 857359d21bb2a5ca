"""This installation: its own Ed25519 key pair, and the id the licensing server knows it by.

Two copies of one state directory are one installation running twice; the server tells them apart by
the token chain (docs/protocol.md), and this key signs what travels without a network (offline requests,
release receipts). Pure: the store reads and writes the key.
"""
from __future__ import annotations

import hashlib
from typing import NamedTuple

from nacl.signing import SigningKey

from .jws import b64url_encode, sign


class Installation(NamedTuple):
    key: SigningKey

    @property
    def public(self) -> bytes:
        return bytes(self.key.verify_key)

    @property
    def id(self) -> str:
        return install_id(self.public)

    def describe(self, token: str | None) -> dict:
        """The `installation` field of every host-scoped request."""
        return {"id": self.id, "key": b64url_encode(self.public), "token": token}

    def sign(self, claims: dict, typ: str) -> str:
        return sign(claims, self.key, typ, embed_key=True)


def install_id(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()[:32]
