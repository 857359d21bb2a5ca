"""Forged, damaged, foreign, stale and replayed license documents from the server's address: the daemon
rejects each one and keeps the license it had, so whoever can answer for the server still cannot change
what this box is licensed for."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from nacl.signing import SigningKey

from badserver import DAY, TTL, BadServer, Issue, Reply, assert_kept_in_grace, stored_document, validate
from mikolicd import protocol
from mikolicd.jws import b64url_decode, b64url_encode
from mikolicd.refserver.signing import Signer

Forge = Callable[[Signer, dict], str]


def compact(header: dict, claims: dict, sign: Callable[[bytes], bytes]) -> str:
    """A JWS with any header and any signing, the way an attacker would assemble one."""
    signing_input = f"{b64url_encode(json.dumps(header).encode())}.{b64url_encode(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64url_encode(sign(signing_input.encode()))}"


def flipped_bit(signer: Signer, claims: dict) -> str:
    head, body, signature = signer.sign(claims).split(".")
    raw = bytearray(b64url_decode(body))
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{b64url_encode(bytes(raw))}.{signature}"


def truncated(signer: Signer, claims: dict) -> str:
    token = signer.sign(claims)
    return token[:len(token) // 2]


def unknown_key(signer: Signer, claims: dict) -> str:
    return Signer(SigningKey.generate()).sign(claims)


def alg_none(signer: Signer, claims: dict) -> str:
    return compact({"alg": "none", "kid": signer.kid}, claims, lambda data: b"")


def alg_hs256(signer: Signer, claims: dict) -> str:
    """The classic confusion: an HMAC keyed with the public key every client holds."""
    return compact({"alg": "HS256", "kid": signer.kid}, claims,
                   lambda data: hmac.new(signer.public_pem(), data, hashlib.sha256).digest())


def alg_rs256(signer: Signer, claims: dict) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return compact({"alg": "RS256", "kid": signer.kid}, claims,
                   lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256()))


def other_host(claims: dict) -> dict:
    bound = claims["binding"]["components"]
    claims["binding"]["components"] = {name: ["0" * 64] if isinstance(value, list) else "0" * 64
                                       for name, value in bound.items()}
    return claims


def past_offline_limit(claims: dict) -> dict:
    return dict(claims, iat=int(time.time()) - 2 * DAY, exp=int(time.time()) - DAY)


def earlier_answer(claims: dict) -> dict:
    """A genuine document from an earlier validation, replayed: signed, unexpired, for this host, but the
    answer to another request (its nonce)."""
    return dict(claims, iat=int(time.time()) - DAY, exp=int(time.time()) - DAY + TTL, nonce="an-earlier-request")


def other_installation(claims: dict) -> dict:
    return dict(claims, install_id="0" * 32)


def other_number(claims: dict) -> dict:
    return dict(claims, registration_number="MIKO-OTHER-NUMBE-RAAAA-00002")


def forged(forge: Forge) -> Callable[[BadServer], Issue]:
    return lambda server: Issue(server.signer, sign=lambda claims: forge(server.signer, claims))


def signed(change: Callable[[dict], dict]) -> Callable[[BadServer], Issue]:
    return lambda server: Issue(server.signer, claims=change)


@pytest.mark.parametrize("answer,message", [
    (forged(flipped_bit), "signature does not verify"),
    (forged(truncated), "not a JWS"),
    (forged(unknown_key), "signed by unknown key"),
    (forged(alg_none), "algorithm 'none' refused"),
    (forged(alg_hs256), "algorithm 'HS256' refused"),
    (forged(alg_rs256), "algorithm 'RS256' refused"),
    (signed(other_host), "bound to different hardware"),
    (signed(past_offline_limit), "past its offline limit"),
    (signed(earlier_answer), "nonce is not this request's"),
    (signed(other_number), "for another registration number"),
    (signed(other_installation), "for another installation"),
    (lambda server: Reply(200, b'{"license": "ok"}'), "sent no document"),
], ids=["flipped-bit", "truncated", "unknown-kid", "alg-none", "alg-HS256", "alg-RS256", "bound-to-another-host",
        "exp-in-the-past", "earlier-document-replayed", "another-number", "another-installation",
        "json-without-document"])
def test_untrustworthy_document_is_rejected_and_the_previous_license_kept(licensed_agent, badserver, answer,
                                                                          message):
    document = stored_document(licensed_agent)
    badserver.on(protocol.VALIDATION, answer(badserver))
    status = validate(licensed_agent)
    assert_kept_in_grace(licensed_agent, status, document, message, outcome="unconfirmed")
    assert "previous license is kept" in status["last_validation"]["message"]
