"""JWS compact serialization with Ed25519 (RFC 8037): verify, sign, and the PEM forms of the keys.

Ed25519 comes from libsodium through PyNaCl. `cryptography` would do the same, but it carries its own
OpenSSL and costs the daemon 8 MiB of resident memory against 1 MiB for PyNaCl (docs/performance.md).
The key formats are fixed-size for Ed25519 (RFC 8410): an SPKI public key and a PKCS #8 private key are
a constant DER prefix followed by the 32 key bytes, so they are read and written here without an ASN.1
library, and anything else is refused.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import TYPE_CHECKING

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

ALG = "EdDSA"
MAX_TOKEN = 64 * 1024
KEY_BYTES = 32
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END \1-----")

if TYPE_CHECKING:
    from pathlib import Path

TrustedKeys = dict[str, VerifyKey]


class JWSError(ValueError):
    """A token that must not be trusted; the message says why, for the admin and the journal."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True) if text else b""
    except (binascii.Error, ValueError) as exc:
        raise JWSError(f"not valid base64url: {exc}") from None


def key_id(public: bytes) -> str:
    """The `kid` of a public key: the first 16 hex digits of SHA-256 of its 32 raw bytes."""
    return hashlib.sha256(public).hexdigest()[:16]


def public_pem(public: bytes) -> str:
    body = base64.encodebytes(_SPKI_PREFIX + public).decode()
    return f"-----BEGIN PUBLIC KEY-----\n{body}-----END PUBLIC KEY-----\n"


def private_pem(key: SigningKey) -> bytes:
    body = base64.encodebytes(_PKCS8_PREFIX + bytes(key)).decode()
    return f"-----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY-----\n".encode()


def _pem_blocks(text: str, label: str) -> list[bytes]:
    return [base64.b64decode("".join(body.split())) for kind, body in _PEM.findall(text) if kind == label]


def read_private_pem(data: bytes) -> SigningKey:
    """An Ed25519 PKCS #8 private key (as `openssl genpkey -algorithm ed25519` writes it)."""
    blocks = _pem_blocks(data.decode("ascii", "replace"), "PRIVATE KEY")
    if len(blocks) != 1 or not blocks[0].startswith(_PKCS8_PREFIX) or len(blocks[0]) != len(_PKCS8_PREFIX) + 32:
        raise ValueError("not an Ed25519 private key in PEM (PKCS #8)")
    return SigningKey(blocks[0][len(_PKCS8_PREFIX):])


def parse_trusted_keys(text: str, source: str) -> TrustedKeys:
    """Ed25519 public keys from a PEM bundle or a JWKS document, indexed by key id."""
    found: list[tuple[str | None, bytes]] = []
    if text.lstrip().startswith("{"):
        try:
            jwks = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{source}: not valid JSON ({exc})") from None
        for jwk in jwks.get("keys", []) if isinstance(jwks, dict) else []:
            if isinstance(jwk, dict) and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
                raw = b64url_decode(str(jwk.get("x", "")))
                if len(raw) == KEY_BYTES:
                    found.append((jwk.get("kid"), raw))
    else:
        for der in _pem_blocks(text, "PUBLIC KEY"):
            if der.startswith(_SPKI_PREFIX) and len(der) == len(_SPKI_PREFIX) + KEY_BYTES:
                found.append((None, der[len(_SPKI_PREFIX):]))
    if not found:
        raise ValueError(f"{source}: no Ed25519 public key found (expected PEM 'PUBLIC KEY' blocks or a JWKS): "
                         "install the licensing server's public key there")
    return {str(kid) if kid else key_id(raw): VerifyKey(raw) for kid, raw in found}


def load_trusted_keys(path: Path) -> TrustedKeys:
    return parse_trusted_keys(path.read_text(), str(path))


def _json_part(part: str, what: str) -> dict:
    try:
        value = json.loads(b64url_decode(part))
    except (ValueError, JWSError) as exc:
        raise JWSError(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise JWSError(f"{what} is not a JSON object")
    return value


def _split(token: object) -> tuple[str, str, str, dict]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN or token.count(".") != 2:
        raise JWSError("not a JWS in compact serialization")
    head_b64, body_b64, sig_b64 = token.split(".")
    header = _json_part(head_b64, "header")
    if header.get("alg") != ALG:
        raise JWSError(f"algorithm {str(header.get('alg'))[:20]!r} refused: only {ALG} is accepted")
    if "crit" in header:
        raise JWSError("a header with critical extensions (crit) is refused")
    return head_b64, body_b64, sig_b64, header


def _check(key: VerifyKey, head_b64: str, body_b64: str, sig_b64: str) -> dict:
    try:
        key.verify(f"{head_b64}.{body_b64}".encode(), b64url_decode(sig_b64))
    except (BadSignatureError, ValueError):
        raise JWSError("signature does not verify") from None
    return _json_part(body_b64, "claims")


def verify(token: object, keys: TrustedKeys, typ: str) -> dict:
    """The claims of a token of type `typ` signed by one of `keys`; anything else raises JWSError."""
    head_b64, body_b64, sig_b64, header = _split(token)
    if header.get("typ") != typ:
        raise JWSError(f"type {str(header.get('typ'))[:40]!r} refused here: expected {typ!r}")
    key = keys.get(header.get("kid"))  # type: ignore[arg-type]
    if key is None:
        raise JWSError(f"signed by unknown key {str(header.get('kid'))[:32]!r}")
    return _check(key, head_b64, body_b64, sig_b64)


def verify_self_signed(token: object, typ: str) -> tuple[dict, bytes]:
    """(claims, public key) of a token signed by the key in its own `jwk` header: an installation's
    offline request or release receipt, whose key the server then compares with the one it registered."""
    head_b64, body_b64, sig_b64, header = _split(token)
    if header.get("typ") != typ:
        raise JWSError(f"type {str(header.get('typ'))[:40]!r} refused here: expected {typ!r}")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise JWSError("the header carries no Ed25519 key (jwk)")
    raw = b64url_decode(str(jwk.get("x", "")))
    if len(raw) != KEY_BYTES:
        raise JWSError("the header's key is not 32 bytes")
    return _check(VerifyKey(raw), head_b64, body_b64, sig_b64), raw


def _b64_json(value: dict) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def sign(claims: dict, key: SigningKey, typ: str, *, embed_key: bool = False) -> str:
    """Sign `claims`; the header names the key by `kid`, or carries it whole (`embed_key`)."""
    public = bytes(key.verify_key)
    header: dict = {"alg": ALG, "typ": typ}
    if embed_key:
        header["jwk"] = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(public)}
    else:
        header["kid"] = key_id(public)
    signing_input = f"{_b64_json(header)}.{_b64_json(claims)}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()).signature)}"
