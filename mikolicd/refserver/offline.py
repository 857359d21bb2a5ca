"""Offline requests and release receipts: JWS signed by an installation's own key, as a file or a code.

What arrives by hand is checked here before any rule runs: the text is the JWS itself or its copy-paste
code, the signature is by the key in its own header, the type is the one expected, and the installation
id is that key's. Pure: text in, claims out.
"""
from __future__ import annotations

from dataclasses import dataclass

from mikolicd import offlinecode
from mikolicd.jws import JWSError, b64url_encode, verify_self_signed
from mikolicd.refserver import fields
from mikolicd.refserver.fields import Caller, FieldError, Installation
from mikolicd.license import OFFLINE_REQUEST_TYPE, RELEASE_RECEIPT_TYPE


class OfflineError(ValueError):
    """A request or receipt that cannot be used; the message says why, for the admin."""


@dataclass(frozen=True)
class OfflineRequest:
    registration_number: object
    caller: Caller  # an offline request holds no token: it restarts the chain, like any activation
    description: str


@dataclass(frozen=True)
class Receipt:
    registration_number: object
    install_id: str
    key: str
    nonce: str


def _claims(text: str, typ: str, what: str) -> tuple[dict, str]:
    """(claims, the signer's key in base64url) of a JWS or of its copy-paste code."""
    text = text.strip()
    try:
        if offlinecode.looks_like_code(text):
            text = offlinecode.decode(text)
        claims, key = verify_self_signed(text, typ)
    except (offlinecode.CodeError, JWSError) as exc:
        raise OfflineError(f"not a usable {what}: {exc}") from None
    if claims.get("install_id") != fields.install_id(key):
        raise OfflineError(f"not a usable {what}: install_id is not the id of the key that signed it")
    if "registration_number" not in claims:
        raise OfflineError(f"not a usable {what}: it names no registration number")
    return claims, b64url_encode(key)


def read_request(text: str) -> OfflineRequest:
    claims, key = _claims(text, OFFLINE_REQUEST_TYPE, "offline request")
    try:
        caller = Caller(fields.host(claims.get("host")), fields.nonce(claims.get("nonce")),
                        Installation(claims["install_id"], key, None))
        description = fields.text(claims, "description")
    except FieldError as exc:
        raise OfflineError(f"not a usable offline request: {exc.message}") from None
    return OfflineRequest(claims["registration_number"], caller, description)


def read_receipt(text: str) -> Receipt:
    claims, key = _claims(text, RELEASE_RECEIPT_TYPE, "release receipt")
    try:
        nonce = fields.nonce(claims.get("nonce"))
    except FieldError as exc:
        raise OfflineError(f"not a usable release receipt: {exc.message}") from None
    return Receipt(claims["registration_number"], claims["install_id"], key, nonce)
