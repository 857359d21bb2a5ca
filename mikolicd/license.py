"""The signed license document: a JWS (compact, EdDSA/Ed25519) whose claims describe the license.

Only verification lives here; the private key stays on the licensing server.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ALG = "EdDSA"
MAX_TOKEN = 64 * 1024


class DocumentError(ValueError):
    """A document that must not be trusted; the message says why, for the admin and the journal."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True) if text else b""
    except (binascii.Error, ValueError) as exc:
        raise DocumentError(f"document is not valid base64url: {exc}") from None


def key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_trusted_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    """Read Ed25519 public keys from a PEM bundle or a JWKS file, indexed by key id."""
    text = path.read_text()
    keys: list[tuple[str | None, Ed25519PublicKey]] = []
    if text.lstrip().startswith("{"):
        for jwk in json.loads(text).get("keys", []):
            if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
                keys.append((jwk.get("kid"), Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))))
    else:
        for block in text.split("-----END PUBLIC KEY-----")[:-1]:
            key = serialization.load_pem_public_key((block + "-----END PUBLIC KEY-----\n").encode())
            if isinstance(key, Ed25519PublicKey):
                keys.append((None, key))
    if not keys:
        raise ValueError(f"{path}: no Ed25519 public key found (expected PEM 'PUBLIC KEY' blocks or a JWKS): "
                         "install the licensing server's public key there")
    return {kid or key_id(key): key for kid, key in keys}


def _json_part(part: str, what: str) -> dict:
    try:
        value = json.loads(b64url_decode(part))
    except ValueError as exc:
        raise DocumentError(f"document {what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DocumentError(f"document {what} is not a JSON object")
    return value


def verify(token: str, keys: dict[str, Ed25519PublicKey]) -> dict:
    """Return the claims of a token signed by one of `keys`; anything else raises DocumentError."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN or token.count(".") != 2:
        raise DocumentError("document is not a JWS in compact serialization")
    head_b64, body_b64, sig_b64 = token.split(".")
    header = _json_part(head_b64, "header")
    if header.get("alg") != ALG:
        raise DocumentError(f"document algorithm {header.get('alg')!r} refused: only {ALG} is accepted")
    key = keys.get(header.get("kid"))
    if key is None:
        raise DocumentError(f"document signed by unknown key {str(header.get('kid'))[:32]!r}")
    try:
        key.verify(b64url_decode(sig_b64), f"{head_b64}.{body_b64}".encode())
    except InvalidSignature:
        raise DocumentError("document signature does not verify") from None
    return _json_part(body_b64, "claims")


@dataclass(frozen=True)
class Feature:
    id: int
    name: str
    count: int
    counteach: int
    captured: int


@dataclass(frozen=True)
class Product:
    id: int
    name: str
    trial: bool
    expires: dt.date | None
    features: tuple[Feature, ...]


@dataclass(frozen=True)
class License:
    registration_number: str
    license_id: str
    owner: dict[str, str]
    binding: dict
    issued_at: int
    exp: int
    products: tuple[Product, ...]

    @classmethod
    def from_claims(cls, claims: dict) -> "License":
        try:
            products = tuple(
                Product(int(p["id"]), str(p["name"]), bool(p["trial"]),
                        dt.date.fromisoformat(p["expires"]) if p.get("expires") else None,
                        tuple(Feature(int(f["id"]), str(f["name"]), int(f["count"]), int(f.get("counteach", 0)),
                                      int(f.get("captured", 0))) for f in p["features"]))
                for p in claims["products"])
            owner = {k: str(claims["owner"].get(k, "")) for k in ("companyname", "contact", "email", "tel")}
            binding = claims["binding"]["components"]
            if not isinstance(binding, dict):
                raise TypeError("binding components must be an object")
            return cls(str(claims["registration_number"]), str(claims["license_id"]), owner, binding,
                       int(claims["iat"]), int(claims["exp"]), products)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DocumentError(f"document claims are malformed: {exc!r}") from None

    def product(self, product_id: int) -> Product | None:
        return next((p for p in self.products if p.id == product_id), None)

    def feature(self, feature_id: int) -> tuple[Product, Feature] | None:
        return next(((p, f) for p in self.products for f in p.features if f.id == feature_id), None)

    def to_json(self) -> dict:
        return {
            "registration_number": self.registration_number, "license_id": self.license_id, "owner": self.owner,
            "issued_at": self.issued_at, "offline_until": self.exp,
            "products": [{"id": p.id, "name": p.name, "trial": p.trial,
                          "expires": p.expires.isoformat() if p.expires else None,
                          "features": [vars(f) for f in p.features]} for p in self.products],
        }
