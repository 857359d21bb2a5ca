"""The signed license document: what its claims say, once `jws` has verified who signed it.

Only verification lives on the box; the private key stays on the licensing server.
"""
from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from .jws import JWSError, TrustedKeys, verify

DOCUMENT_TYPE = "JWT"
REFUSAL_TYPE = "mikolic-refusal+jwt"
OFFLINE_REQUEST_TYPE = "mikolic-offline-request+jwt"  # signed by the installation's own key
RELEASE_RECEIPT_TYPE = "mikolic-release-receipt+jwt"  # likewise


class DocumentError(JWSError):
    """A document that must not be trusted; the message says why, for the admin and the journal."""


class Feature(NamedTuple):
    id: int
    name: str
    count: int
    counteach: int
    captured: int


class Product(NamedTuple):
    id: int
    name: str
    trial: bool
    expires: dt.date | None
    features: tuple[Feature, ...]


class License(NamedTuple):
    registration_number: str
    license_id: str
    owner: dict[str, str]
    binding: dict
    issued_at: int
    exp: int
    products: tuple[Product, ...]
    nonce: str | None = None  # the request this document answers (None: a first-protocol document)
    install_id: str | None = None
    token: str | None = None  # the installation's token chain, presented with the next request
    offline: bool = False  # answered to an offline request: usable until `exp` without any server

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
            optional = {name: str(claims[name]) for name in ("nonce", "install_id", "token")
                        if claims.get(name) is not None}
            return cls(str(claims["registration_number"]), str(claims["license_id"]), owner, binding,
                       int(claims["iat"]), int(claims["exp"]), products, **optional,
                       offline=claims.get("offline") is True)
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
                          "features": [f._asdict() for f in p.features]} for p in self.products],
        }


def read_document(token: object, keys: TrustedKeys) -> License:
    """A license document: signed by a trusted key, of the document type, with well-formed claims."""
    try:
        claims = verify(token, keys, DOCUMENT_TYPE)
    except JWSError as exc:
        raise DocumentError(f"document {exc}") from None
    return License.from_claims(claims)
